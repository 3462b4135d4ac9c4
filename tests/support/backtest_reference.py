"""backtesting.py 0.6.6 as the reference: the built-in strategies' rules (SMA crossover, Donchian
breakout) run by it, and its statistics in our shapes, so parity tests compare like with like."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA


class _LongOrOut(Strategy):
    """What a +1 and a -1 signal do, as the engine does them: be long; be short (long_short)
    or flat."""

    long_short = False

    def go_long(self):
        if not self.position.is_long:
            self.position.close()
            self.buy()

    def go_short_or_out(self):
        if self.long_short:
            if not self.position.is_short:
                self.position.close()
                self.sell()
        else:
            self.position.close()


class SmaCross(_LongOrOut):
    fast = 10
    slow = 30

    def init(self):
        self.fast_sma = self.I(SMA, self.data.Close, self.fast)
        self.slow_sma = self.I(SMA, self.data.Close, self.slow)

    def next(self):
        if crossover(self.fast_sma, self.slow_sma):
            self.go_long()
        elif crossover(self.slow_sma, self.fast_sma):
            self.go_short_or_out()


class DonchianBreakout(_LongOrOut):
    """Close above the highest high of the `entry` bars before: long; below the lowest low of
    the `exit` bars before: flat (short with long_short)."""

    entry = 20
    exit = 10

    def init(self):
        self.upper = self.I(_channel, self.data.High, self.entry, "max")
        self.lower = self.I(_channel, self.data.Low, self.exit, "min")

    def next(self):
        close = self.data.Close[-1]
        if close > self.upper[-1]:
            self.go_long()
        elif close < self.lower[-1]:
            self.go_short_or_out()


def _channel(values, window: int, side: str):
    rolling = pd.Series(values).rolling(window)
    return (rolling.max() if side == "max" else rolling.min()).shift(1)


def frame(ts: np.ndarray, open_, high, low, close) -> pd.DataFrame:
    index = pd.to_datetime(np.asarray(ts, dtype="int64"), unit="s")
    return pd.DataFrame(
        {"Open": open_, "High": high, "Low": low, "Close": close, "Volume": 0.0}, index=index
    )


def reference_run(
    data: pd.DataFrame,
    *,
    cash: float,
    commission,
    trade_on_close: bool = False,
    strategy: type[Strategy] = SmaCross,
    **params,
) -> pd.Series:
    """backtesting.py's run of `strategy` (SmaCross: fast, slow; DonchianBreakout: entry,
    exit; both long_short) on `data`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = Backtest(
            data, strategy, cash=cash, commission=commission, trade_on_close=trade_on_close
        )
        return backtest.run(**params)


def assert_same_run(reference: pd.Series, result, metrics: dict) -> None:
    """Same trades (sizes, bars, prices, P&L), the same equity curve, and every statistic equal
    within 1e-9 relative (NaN matching NaN)."""
    from backtests.domain.metrics import DURATIONS, TIMES

    trades = reference["_trades"]
    assert len(trades) == len(result.trades)
    np.testing.assert_array_equal(trades["Size"].to_numpy(), result.trades.size)
    np.testing.assert_array_equal(trades["EntryBar"].to_numpy(), result.trades.entry_bar)
    np.testing.assert_array_equal(trades["ExitBar"].to_numpy(), result.trades.exit_bar)
    np.testing.assert_array_equal(trades["EntryPrice"].to_numpy(), result.trades.entry_price)
    np.testing.assert_array_equal(trades["ExitPrice"].to_numpy(), result.trades.exit_price)
    np.testing.assert_allclose(trades["PnL"].to_numpy(), result.trades.pnl, rtol=1e-12)
    np.testing.assert_allclose(
        reference["_equity_curve"]["Equity"].to_numpy(), result.equity, rtol=1e-12
    )
    theirs = {k: v for k, v in reference.items() if not k.startswith("_")}
    assert list(theirs) == list(metrics)
    for key, value in theirs.items():
        if key in TIMES:
            value = pd.Timestamp(value).timestamp()
        elif key in DURATIONS:
            value = pd.Timedelta(value).total_seconds() if not pd.isna(value) else np.nan
        value, ours = float(value), float(metrics[key])
        if np.isnan(value):
            assert np.isnan(ours), key
        else:
            assert ours == value or abs(ours - value) <= 1e-9 * abs(value), (key, ours, value)


def assert_same_stored(reference: pd.Series, run) -> None:
    """A stored BacktestRun against backtesting.py: the same trades and statistics (numbers
    within 1e-9 relative, times and durations as pandas prints them, NaN stored as null)."""
    trades = reference["_trades"]
    assert len(trades) == len(run.trades)
    for theirs, ours in zip(trades.itertuples(), run.trades, strict=True):
        assert (theirs.Size, theirs.EntryBar, theirs.ExitBar) == (
            ours["Size"],
            ours["EntryBar"],
            ours["ExitBar"],
        )
        assert (theirs.EntryPrice, theirs.ExitPrice) == (ours["EntryPrice"], ours["ExitPrice"])
        assert ours["PnL"] == pytest.approx(theirs.PnL, rel=1e-12)
        assert ours["EntryTime"] == str(theirs.EntryTime)
    theirs = {k: v for k, v in reference.items() if not k.startswith("_")}
    assert sorted(theirs) == sorted(run.metrics), set(theirs) ^ set(run.metrics)
    for key, value in theirs.items():
        ours = run.metrics[key]
        if isinstance(value, pd.Timestamp | pd.Timedelta):
            assert ours == str(value), key
        elif pd.isna(value):
            assert ours is None, key
        else:
            assert ours == pytest.approx(float(value), rel=1e-9), key
