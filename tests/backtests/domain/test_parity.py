"""Parity with backtesting.py 0.6.6 on its own GOOG sample and on intraday bars: the same
trades, the same equity, the same statistics within 1e-9 relative."""

from __future__ import annotations

import numpy as np
import pytest
from backtesting.test import GOOG

from backtests.domain.commissions import FractionCommission, IbkrFixedCommission
from backtests.domain.engine import EngineConfig, backtest_run
from backtests.domain.metrics import metrics_compute
from backtests.domain.strategies import strategy_get
from tests.support.backtest_reference import assert_same_run, frame, reference_run


def ours(ts, open_, close, *, fast, slow, cash, commission, trade_on_close, long_short):
    strategy = strategy_get("sma")
    params = strategy.params_resolve({"fast": fast, "slow": slow})
    events = strategy.signals(close, params, {})
    warmup = strategy.warmup(params)
    config = EngineConfig(cash, commission, trade_on_close, long_short)
    result = backtest_run(open=open_, close=close, events=events, warmup=warmup, config=config)
    metrics = metrics_compute(
        ts=ts, close=close, equity=result.equity, trades=result.trades, warmup=warmup
    )
    return result, metrics


@pytest.mark.parametrize("long_short", [False, True], ids=["long-only", "long-short"])
@pytest.mark.parametrize("trade_on_close", [False, True], ids=["next-open", "on-close"])
@pytest.mark.parametrize("fast,slow", [(10, 30), (5, 50)])
def test_goog_sample(long_short, trade_on_close, fast, slow):
    ts = GOOG.index.to_numpy().astype("datetime64[s]").astype(np.int64)
    reference = reference_run(
        GOOG,
        fast=fast,
        slow=slow,
        cash=10_000,
        commission=0.002,
        trade_on_close=trade_on_close,
        long_short=long_short,
    )
    result, metrics = ours(
        ts,
        GOOG.Open.to_numpy(),
        GOOG.Close.to_numpy(),
        fast=fast,
        slow=slow,
        cash=10_000,
        commission=FractionCommission(0.002),
        trade_on_close=trade_on_close,
        long_short=long_short,
    )
    assert len(result.trades) > 10
    assert_same_run(reference, result, metrics)


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
    reference = reference_run(
        frame(ts, open_, high, low, close),
        fast=20,
        slow=100,
        cash=100_000,
        commission=commission,
        long_short=long_short,
    )
    result, metrics = ours(
        ts,
        open_,
        close,
        fast=20,
        slow=100,
        cash=100_000,
        commission=commission,
        trade_on_close=False,
        long_short=long_short,
    )
    assert len(result.trades) > 50
    assert_same_run(reference, result, metrics)
