"""One backtest computed (signals, fills, metrics) against backtesting.py 0.6.6 on its own GOOG
sample and on intraday bars: the same trades, the same equity, the same statistics within 1e-9
relative."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from backtesting.test import GOOG

from backtests.domain.commissions import FractionCommission, IbkrFixedCommission
from backtests.domain.compute import backtest_compute, backtest_simulate
from backtests.domain.engine import TradingConfig
from backtests.domain.strategies import strategy_get
from tests.support.backtest_data import batch_of
from tests.support.backtest_reference import assert_same_run, frame, reference_run


def ours(data: pd.DataFrame, *, fast, slow, cash, commission, trade_on_close, long_short):
    strategy = strategy_get("sma")
    params = strategy.params_resolve({"fast": fast, "slow": slow})
    trading = TradingConfig(cash, commission, trade_on_close, long_short)
    ts = data.index.to_numpy().astype("datetime64[s]").astype(np.int64)
    bars = batch_of(ts, data.Open.to_numpy(), data.Close.to_numpy())
    return backtest_compute(bars=bars, strategy=strategy, params=params, trading=trading)


def assert_parity(data: pd.DataFrame, *, commission, theirs=None, **rules):
    """Ours and backtesting.py on `data` with the same rules (their commission `theirs` when
    given as they take it): the same run, which is returned."""
    reference = reference_run(data, commission=commission if theirs is None else theirs, **rules)
    result, metrics = ours(data, commission=commission, **rules)
    assert_same_run(reference, result, metrics)
    return result


@pytest.mark.parametrize("long_short", [False, True], ids=["long-only", "long-short"])
@pytest.mark.parametrize("trade_on_close", [False, True], ids=["next-open", "on-close"])
@pytest.mark.parametrize("fast,slow", [(10, 30), (5, 50)])
def test_goog_sample(long_short, trade_on_close, fast, slow):
    result = assert_parity(
        GOOG,
        commission=FractionCommission(0.002),
        theirs=0.002,
        fast=fast,
        slow=slow,
        cash=10_000,
        trade_on_close=trade_on_close,
        long_short=long_short,
    )
    assert len(result.trades) > 10


def minute_bars(n: int, seed: int):
    """A random walk on a cent grid, one bar a minute (weekends included): ties between
    averages happen, so equal values must compare equal in both engines."""
    rng = np.random.default_rng(seed)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.0005, n))), 2)
    open_ = np.r_[close[0], close[:-1]]
    ts = 1_600_000_020 // 60 * 60 + 60 * np.arange(n)
    return ts, open_, np.maximum(open_, close), np.minimum(open_, close), close


@pytest.mark.parametrize("long_short", [False, True], ids=["long-only", "long-short"])
@pytest.mark.parametrize(
    "commission", [FractionCommission(0.001), IbkrFixedCommission()], ids=["fraction", "ibkr"]
)
def test_intraday_random_walk(long_short, commission):
    ts, open_, high, low, close = minute_bars(20_000, seed=7)
    result = assert_parity(
        frame(ts, open_, high, low, close),
        commission=commission,
        fast=20,
        slow=100,
        cash=100_000,
        trade_on_close=False,
        long_short=long_short,
    )
    assert len(result.trades) > 50


def test_indicators_kept_across_calls_give_the_same_run():
    ts, open_, _, _, close = minute_bars(2_000, seed=3)
    bars = batch_of(ts, open_, close)
    sma = strategy_get("sma")
    trading = TradingConfig(10_000.0, FractionCommission(0.001))
    kept: dict = {}
    for fast in (5, 10):
        params = {"fast": fast, "slow": 50}
        shared = backtest_simulate(
            bars=bars, strategy=sma, params=params, trading=trading, indicators=kept
        )
        alone = backtest_simulate(bars=bars, strategy=sma, params=params, trading=trading)
        np.testing.assert_array_equal(shared.equity, alone.equity)
        np.testing.assert_array_equal(shared.trades.entry_bar, alone.trades.entry_bar)
    assert set(kept) == {("sma", 5), ("sma", 10), ("sma", 50)}  # the slow SMA computed once
