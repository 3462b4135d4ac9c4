"""The Donchian breakout: its channels (the bars before, the bar itself excluded), and its runs
against backtesting.py with the same rules, trade for trade and metric for metric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from backtesting.test import GOOG

from backtests.domain.commissions import FractionCommission, IbkrFixedCommission
from backtests.domain.compute import backtest_compute
from backtests.domain.engine import TradingConfig
from backtests.domain.problems import InvalidRequest
from backtests.domain.strategies import strategy_get
from backtests.domain.strategies.donchian import channel
from fetcher.domain.bars import BarBatch
from tests.support.backtest_reference import (
    DonchianBreakout,
    assert_same_run,
    frame,
    reference_run,
)


def test_a_channel_holds_the_extreme_of_the_bars_before():
    high = np.array([3.0, 5.0, 4.0, 6.0, 1.0, 2.0])
    np.testing.assert_array_equal(channel(high, 2, "max", {}), [np.nan, np.nan, 5, 5, 6, 6])
    np.testing.assert_array_equal(channel(high, 3, "min", {}), [np.nan] * 3 + [3, 4, 1])
    assert np.isnan(channel(high, 6, "max", {})).all()  # never a full window before a bar


def test_signals_break_out_of_the_channels():
    donchian = strategy_get("donchian")
    close = np.array([10.0, 11.0, 10.5, 12.0, 11.5, 9.0, 9.5])
    bars = BarBatch.from_columns(
        ts=np.arange(7) * 86_400,
        open=close,
        high=close + 0.25,
        low=close - 0.25,
        close=close,
        volume=np.zeros(7),
        wap=close,
        bar_count=np.zeros(7),
    )
    params = {"entry": 2, "exit": 2}
    # bar 3: 12 > max(11.25, 10.75), long; bar 5: 9 < min(11.75, 11.25), out; bar 6: 9.5 > 8.75
    assert donchian.events(bars, params, {}).tolist() == [0, 0, 0, 1, 0, -1, 0]
    assert donchian.warmup_bars({"entry": 20, "exit": 55}) == 55


def test_its_parameters_are_whole_bars_of_at_least_one():
    donchian = strategy_get("donchian")
    assert donchian.defaults == {"entry": 20, "exit": 10}
    with pytest.raises(InvalidRequest) as raised:
        donchian.params_resolve({"entry": 0})
    assert raised.value.phrase() == "entry 0 must be at least 1"


def ours(data: pd.DataFrame, *, cash, commission, trade_on_close, long_short, entry, exit):
    strategy = strategy_get("donchian")
    params = strategy.params_resolve({"entry": entry, "exit": exit})
    trading = TradingConfig(cash, commission, trade_on_close, long_short)
    ts = data.index.to_numpy().astype("datetime64[s]").astype(np.int64)
    bars = BarBatch.from_columns(
        ts=ts,
        open=data.Open,
        high=data.High,
        low=data.Low,
        close=data.Close,
        volume=np.zeros(len(ts)),
        wap=data.Close,
        bar_count=np.zeros(len(ts)),
    )
    return backtest_compute(bars=bars, strategy=strategy, params=params, trading=trading)


@pytest.mark.parametrize("long_short", [False, True], ids=["long-only", "long-short"])
@pytest.mark.parametrize("trade_on_close", [False, True], ids=["next-open", "on-close"])
@pytest.mark.parametrize("entry,exit", [(20, 10), (55, 20)])
def test_goog_sample(long_short, trade_on_close, entry, exit):
    rules = {"trade_on_close": trade_on_close, "long_short": long_short, "entry": entry}
    reference = reference_run(
        GOOG, strategy=DonchianBreakout, cash=10_000, commission=0.002, exit=exit, **rules
    )
    result, metrics = ours(
        GOOG, cash=10_000, commission=FractionCommission(0.002), exit=exit, **rules
    )
    assert_same_run(reference, result, metrics)
    assert len(result.trades) > 5


@pytest.mark.parametrize("long_short", [False, True], ids=["long-only", "long-short"])
def test_intraday_random_walk_with_wicks(long_short):
    rng = np.random.default_rng(11)
    n = 20_000
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.0005, n))), 2)
    open_ = np.r_[close[0], close[:-1]]
    high = np.round(np.maximum(open_, close) + rng.uniform(0, 0.05, n), 2)
    low = np.round(np.minimum(open_, close) - rng.uniform(0, 0.05, n), 2)
    ts = 1_600_000_020 // 60 * 60 + 60 * np.arange(n)
    data = frame(ts, open_, high, low, close)
    commission = IbkrFixedCommission()
    reference = reference_run(
        data,
        strategy=DonchianBreakout,
        cash=100_000,
        commission=commission,
        entry=60,
        exit=30,
        long_short=long_short,
    )
    result, metrics = ours(
        data,
        cash=100_000,
        commission=commission,
        trade_on_close=False,
        long_short=long_short,
        entry=60,
        exit=30,
    )
    assert_same_run(reference, result, metrics)
    assert len(result.trades) > 50
