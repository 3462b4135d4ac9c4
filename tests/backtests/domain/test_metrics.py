"""Metrics on small hand-checked series: a known drawdown and its duration, a known trade list."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtests.domain.metrics import (
    ANNUALISED_MIN_DAYS,
    DAY,
    annual_periods,
    annualised_note,
    drawdown,
    drawdown_stats,
    duration_text,
    geometric_mean,
    metrics_compute,
)
from tests.support.backtest_data import trades_of

MONDAY = 1_704_067_200  # 2024-01-01 00:00 UTC


def test_drawdown_depths_and_durations():
    equity = np.array([100.0, 110.0, 99.0, 121.0, 110.0, 120.0])
    ts = MONDAY + DAY * np.arange(6)
    dd = drawdown(equity)
    np.testing.assert_allclose(dd, [0, 0, 0.1, 0, 1 - 110 / 121, 1 - 120 / 121])
    deepest_all, peak, durations, deepest = drawdown_stats(ts, equity)
    assert (deepest_all, peak) == (pytest.approx(0.1), 121.0)
    # 110 -> 99 -> 121: two days from peak to recovery; 121 -> ... not recovered by the end.
    np.testing.assert_array_equal(durations, [2 * DAY, 2 * DAY])
    np.testing.assert_allclose(deepest, [0.1, 1 - 110 / 121])
    metrics = metrics_compute(
        ts=ts, close=equity, equity=equity, trades=trades_of([], [], [], []), warmup=0
    )
    assert metrics["Max. Drawdown [%]"] == pytest.approx(-10.0)
    assert metrics["Avg. Drawdown [%]"] == pytest.approx(-(0.1 + 1 - 110 / 121) / 2 * 100)
    assert metrics["Max. Drawdown Duration"] == 2 * DAY
    assert metrics["Return [%]"] == pytest.approx(20.0)
    assert metrics["Equity Peak [$]"] == 121.0
    assert metrics["# Trades"] == 0 and math.isnan(metrics["Win Rate [%]"])
    assert "Commissions [$]" not in metrics  # as backtesting.py: shown only when paid


def test_trade_statistics_of_a_known_trade_list():
    equity = np.full(10, 100.0)
    ts = MONDAY + DAY * np.arange(10)
    trades = trades_of([10, -5, 20], [0.1, -0.05, 0.2], [1, 4, 6], [3, 5, 8])
    m = metrics_compute(ts=ts, close=equity, equity=equity, trades=trades, warmup=0)
    assert m["# Trades"] == 3
    assert m["Win Rate [%]"] == pytest.approx(200 / 3)
    assert m["Best Trade [%]"] == pytest.approx(20.0)
    assert m["Worst Trade [%]"] == pytest.approx(-5.0)
    assert m["Avg. Trade [%]"] == pytest.approx(((1.1 * 0.95 * 1.2) ** (1 / 3) - 1) * 100)
    assert m["Profit Factor"] == pytest.approx(0.3 / 0.05)
    assert m["Expectancy [%]"] == pytest.approx(25 / 3)
    assert m["SQN"] == pytest.approx(math.sqrt(3) * 25 / 3 / np.std([10, -5, 20], ddof=1))
    assert m["Kelly Criterion"] == pytest.approx(2 / 3 - (1 / 3) / (15 / 5))
    # Bars 1-3, 4-5 and 6-8 held: 8 of 10.
    assert m["Exposure Time [%]"] == pytest.approx(80.0)
    assert m["Max. Trade Duration"] == 2 * DAY
    assert m["Avg. Trade Duration"] == math.ceil(5 / 3) * DAY  # rounded up to whole days


def test_annualisation_follows_the_data():
    def per_year(ts):
        return annual_periods(ts, np.linspace(100, 200, len(ts)))[0]

    weekdays = MONDAY + DAY * np.array([d for d in range(28) if d % 7 < 5])
    assert per_year(weekdays) == 252
    assert per_year(MONDAY + DAY * np.arange(28)) == 365
    assert per_year(MONDAY + 7 * DAY * np.arange(10)) == 52
    assert per_year(MONDAY + 60 * np.arange(7 * 1440)) == 365  # every minute, every day
    # Daily returns are between the last equities of consecutive days with bars.
    minutes = MONDAY + 3600 * np.arange(72)  # three days, hourly
    equity = np.repeat([100.0, 110.0, 99.0], 24)
    np.testing.assert_allclose(annual_periods(minutes, equity)[1], [0.1, -0.1])


def test_geometric_mean_and_growth_measures():
    assert geometric_mean(np.array([0.1, -0.1])) == pytest.approx(math.sqrt(1.1 * 0.9) - 1)
    assert geometric_mean(np.array([0.5, -1.0])) == 0.0
    # Two years of daily equity doubling: CAGR is 41.4%.
    ts = MONDAY + DAY * np.arange(731)
    equity = 100 * 2 ** (np.arange(731) / 730.5)
    m = metrics_compute(
        ts=ts, close=equity, equity=equity, trades=trades_of([], [], [], []), warmup=0
    )
    assert m["CAGR [%]"] == pytest.approx((2 ** (1 / 2) - 1) * 100, rel=1e-9)
    assert m["Max. Drawdown [%]"] == 0.0 and math.isnan(m["Calmar Ratio"])


def test_duration_text():
    assert duration_text(584 * DAY) == "584 days 00:00:00"
    assert duration_text(90 * 60) == "0 days 01:30:00"
    assert duration_text(math.nan) == "-"


def test_annualised_figures_of_a_short_range_carry_a_note():
    two_weeks = annualised_note(0, 14 * 86400)
    assert two_weeks is not None and "extrapolate 14 days of bars to a year" in two_weeks
    assert "CAGR" in two_weeks and "Sharpe Ratio" in two_weeks
    assert annualised_note(0, ANNUALISED_MIN_DAYS * 86400) is None
