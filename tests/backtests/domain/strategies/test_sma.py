"""The SMA crossover: pandas' rolling mean, strict crossings, its parameters' checks."""

from __future__ import annotations

import numpy as np
import pytest

from backtests.domain.problems import InvalidRequest
from backtests.domain.strategies import strategy_get
from backtests.domain.strategies.sma import crossings, sma, smas
from tests.support.backtest_data import batch_of


def flags(field: str) -> str:
    return f"--{field}"


def test_crossings_are_strict_on_both_bars():
    fast = np.array([1.0, 2.0, 3.0, 3.0, 2.0, 2.0, 1.0])
    slow = np.array([2.0, 2.5, 2.5, 3.0, 3.0, 1.5, 1.5])
    # up at 2 (below, then above); 3 touches and 4 is below after the touch: no crossing;
    # up at 5 (below, then above); down at 6 (above, then below).
    np.testing.assert_array_equal(crossings(fast, slow), [0, 0, 1, 0, 0, 1, -1])
    np.testing.assert_array_equal(crossings(slow, fast), [0, 0, -1, 0, 0, -1, 1])


def test_sma_is_nan_until_the_window_is_full():
    values = sma(np.array([1.0, 2.0, 3.0, 4.0]), 3)
    assert np.isnan(values[:2]).all()
    np.testing.assert_allclose(values[2:], [2.0, 3.0])


def test_each_window_is_computed_once_per_cache():
    close = np.linspace(100.0, 120.0, 50)
    cache: dict = {}
    first = smas(close, [5, 20], cache)
    assert set(cache) == {("sma", 5), ("sma", 20)}
    again = smas(close, [20, 30], cache)
    assert again[20] is first[20]  # taken from the cache, not computed again
    assert set(cache) == {("sma", 5), ("sma", 20), ("sma", 30)}


def test_signals_are_the_fast_average_crossing_the_slow_one():
    close = np.array([5.0, 4.0, 3.0, 2.0, 3.0, 4.0, 5.0, 4.0, 3.0, 2.0])
    bars = batch_of(np.arange(len(close)) * 86_400, close, close)
    params = {"fast": 1, "slow": 3}
    expected = crossings(close, sma(close, 3))
    strategy = strategy_get("sma")
    np.testing.assert_array_equal(strategy.events(bars, params, {}), expected)
    assert expected.tolist() == [0, 0, 0, 0, 1, 0, 0, -1, 0, 0]
    assert strategy.warmup_bars(params) == 2  # the slow SMA's first value


def test_strategy_parameters_are_checked():
    sma_strategy = strategy_get("SMA")
    with pytest.raises(InvalidRequest) as raised:
        sma_strategy.params_resolve({"fast": 30, "slow": 30})
    assert raised.value.phrase(flags) == "--fast 30 must be smaller than --slow 30"
    assert raised.value.problems[0].field == "fast"
    with pytest.raises(InvalidRequest) as raised:
        sma_strategy.params_resolve({"fast": 5, "slow": 0})
    assert raised.value.problems[0].field == "slow"
    assert "at least 1 bar (got --fast 5 --slow 0)" in raised.value.phrase(flags)
