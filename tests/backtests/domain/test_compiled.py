"""The compiled loops against what they reproduce: pandas' rolling mean bit for bit, Python's
float floor division, np.cov, and hand-checked days, intervals and equity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtests.domain import compiled

DAY = 86_400
MONDAY = 1_704_067_200  # 2024-01-01 00:00 UTC


def pandas_mean(values: np.ndarray, window: int) -> np.ndarray:
    return pd.Series(values).rolling(window).mean().to_numpy()


def test_rolling_means_are_pandas_bit_for_bit():
    rng = np.random.default_rng(11)
    prices = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.001, 5_000))), 2)  # cents: ties
    mixed = rng.normal(0, 1, 2_000)
    mixed[[10, 500, 501]] = np.nan
    mixed[600:700] = 3.25  # a run of one value gives that value exactly
    for values in (prices, mixed):
        windows = np.array([1, 2, 7, 30, 200], dtype=np.int64)
        rows = compiled.rolling_means(values, windows)
        for window, row in zip(windows, rows, strict=True):
            np.testing.assert_array_equal(row, pandas_mean(values, int(window)))


def test_the_fast_path_for_prices_is_the_same_mean():
    rng = np.random.default_rng(12)
    prices = np.round(50 + np.cumsum(rng.normal(0, 0.05, 3_000)).clip(-40), 2)
    prices[100:160] = 42.42
    for window in (2, 10, 50):
        np.testing.assert_array_equal(
            compiled.rolling_mean_positive(prices, window),
            compiled.rolling_means(prices, np.array([window], dtype=np.int64))[0],
        )


def test_floor_division_is_pythons():
    rng = np.random.default_rng(13)
    for a, b in zip(rng.uniform(0, 1e7, 2_000), rng.uniform(0.01, 500, 2_000), strict=True):
        assert compiled._floor_div(a, b) == a // b
    assert compiled._floor_div(0.3, 0.1) == 0.3 // 0.1 == 2.0
    assert compiled._floor_div(0.0, 3.0) == 0.0


def test_day_closes_and_weekend_bars():
    # Friday 2024-01-05 (two bars), Saturday (one), Monday (three).
    ts = MONDAY + np.array([4 * DAY, 4 * DAY + 60, 5 * DAY + 10, 7 * DAY, 7 * DAY + 1, 7 * DAY + 2])
    equity = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    closes, weekend = compiled.day_closes(ts, equity)
    np.testing.assert_array_equal(closes, [2.0, 3.0, 6.0])
    assert weekend == 1
    empty, none = compiled.day_closes(ts[:0], equity[:0])
    assert len(empty) == 0 and none == 0


def test_bars_held_counts_each_bar_once():
    entry = np.array([1, 2, 10], dtype=np.int64)
    exit_ = np.array([5, 4, 10], dtype=np.int64)
    assert compiled.bars_held(entry, exit_) == 6  # bars 1-5 and 10


def test_diff_beta_is_np_covs():
    rng = np.random.default_rng(14)
    x, y = rng.normal(0, 1, 300).cumsum(), rng.normal(0, 1, 300).cumsum()
    cov = np.cov(np.diff(x), np.diff(y))
    assert compiled.diff_beta(x, y) == pytest.approx(cov[0, 1] / cov[1, 1], rel=1e-12)
    assert np.isnan(compiled.diff_beta(x[:2], y[:2]))


def test_equity_curve_books_each_change_at_its_bar_and_finds_the_ruin():
    close = np.array([10.0, 11.0, 12.0, 2.0, 1.0])
    # Bar 1: 50 shares bought at 10 (cash 500 left of 1000).
    equity, ruin = compiled.equity_curve(
        1,
        close,
        1000.0,
        np.array([1], dtype=np.int64),
        np.array([500.0]),
        np.array([50], dtype=np.int64),
        np.array([10.0]),
    )
    np.testing.assert_array_equal(equity, [1000, 550, 600, 100, 50])
    assert ruin == -1
    _, ruin = compiled.equity_curve(
        0,
        close,
        1000.0,
        np.array([1], dtype=np.int64),
        np.array([-50.0]),
        np.array([100], dtype=np.int64),
        np.array([10.0]),
    )
    assert ruin == 3  # -50 + (2 - 10) * 100 <= 0; bars 1 and 2 were above zero


def test_drawdown_periods_end_at_a_new_peak_or_the_last_bar():
    ts = MONDAY + DAY * np.arange(7)
    equity = np.array([100.0, 90.0, 100.0, 100.0, 80.0, 85.0, 90.0])
    deepest, peak, durations, depths = compiled.drawdowns(ts, equity)
    assert (deepest, peak) == (pytest.approx(0.2), 100.0)
    np.testing.assert_array_equal(durations, [2 * DAY, 3 * DAY])
    np.testing.assert_allclose(depths, [0.1, 0.2])
