"""The equal-weight portfolio on hand-checked legs: the union timeline, equities carried forward,
the normalised market line, trades re-indexed and in the order they closed."""

from __future__ import annotations

import numpy as np
import pytest

from backtests.domain.commissions import FractionCommission
from backtests.domain.compute import backtest_simulate
from backtests.domain.engine import BacktestResult, Trades, TradingConfig
from backtests.domain.portfolio import (
    carried,
    portfolio_combine,
    portfolio_compute,
    trades_concat,
)
from backtests.domain.strategies import strategy_get
from fetcher.domain.bars import BarBatch
from tests.support.backtest_data import batch_of, trades_of

DAY = 86_400
MONDAY = 1_704_067_200  # 2024-01-01 00:00 UTC


def batch(days, close) -> BarBatch:
    return batch_of(MONDAY + DAY * np.asarray(days), close, close)


def trades(entry_bar, exit_bar, pnl=()) -> Trades:
    pnl = np.asarray(pnl, dtype=float) if len(pnl) else np.zeros(len(entry_bar))
    return trades_of(pnl, pnl / 100, entry_bar, exit_bar, commission=0.5)


def result(equity, closed: Trades) -> BacktestResult:
    return BacktestResult(np.asarray(equity, dtype=float), closed, None, 1, 0.0)


def test_two_legs_on_different_days_make_one_line():
    a = batch([0, 2, 4], [10.0, 11.0, 12.0])
    b = batch([1, 2, 3], [20.0, 22.0, 24.0])
    legs = [
        result([50, 55, 60], trades([0], [2], [10])),
        result([50, 52, 48], trades([1], [2], [-2])),
    ]
    portfolio = portfolio_combine(bars=[a, b], results=legs, share=50.0, warmup=1)
    np.testing.assert_array_equal(portfolio.ts, MONDAY + DAY * np.arange(5))
    # a carried forward: 50 50 55 55 60; b: its share before its first bar, then 50 52 48 48.
    np.testing.assert_array_equal(portfolio.result.equity, [100, 100, 107, 103, 108])
    # Each close over the close on its warm-up bar (bar 1), b's first close before it trades.
    expected = (np.array([10, 10, 11, 11, 12]) / 11 + np.array([20, 20, 22, 24, 24]) / 22) / 2
    np.testing.assert_allclose(portfolio.market, expected, rtol=1e-15)
    # b's trade (days 2 to 3) closed before a's (days 0 to 4): it comes first.
    t = portfolio.result.trades
    assert (t.entry_bar.tolist(), t.exit_bar.tolist(), t.pnl.tolist()) == ([2, 0], [3, 4], [-2, 10])
    assert portfolio.result.warmup == 2  # both legs' warm-up bar is day 2
    assert portfolio.result.commissions == 1.0 and portfolio.result.open_trade is None
    assert portfolio.metrics["# Trades"] == 2
    assert portfolio.metrics["Equity Final [$]"] == 108
    assert portfolio.metrics["Return [%]"] == pytest.approx(8.0)


def test_carried_takes_the_last_value_at_or_before_each_time():
    union = np.array([0, 1, 2, 3, 4, 5])
    values = carried(union, np.array([1, 3, 4]), np.array([7.0, 8.0, 9.0]), -1.0)
    np.testing.assert_array_equal(values, [-1, 7, 7, 8, 9, 9])


def test_trades_that_close_together_are_ordered_by_entry():
    joined = trades_concat([trades([3, 1], [6, 9]), trades([2], [6])])
    assert joined.entry_bar.tolist() == [2, 3, 1] and joined.exit_bar.tolist() == [6, 6, 9]


def test_each_symbol_trades_its_share_of_the_cash():
    rng = np.random.default_rng(5)
    a = batch(np.arange(300), 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 300))))
    b = batch(np.arange(5, 300, 1), 50 * np.exp(np.cumsum(rng.normal(0, 0.02, 295))))
    sma = strategy_get("sma")
    params = {"fast": 5, "slow": 20}
    trading = TradingConfig(30_000.0, FractionCommission(0.001))
    portfolio = portfolio_compute(bars=[a, b], strategy=sma, params=params, trading=trading)
    share = trading.with_cash(15_000.0)
    alone = [backtest_simulate(bars=x, strategy=sma, params=params, trading=share) for x in (a, b)]
    assert portfolio.result.equity[0] == 30_000.0
    assert portfolio.result.equity[-1] == pytest.approx(sum(r.equity[-1] for r in alone))
    assert len(portfolio.result.trades) == sum(len(r.trades) for r in alone) > 0
    assert portfolio.metrics["# Trades"] == len(portfolio.result.trades)
