"""Execution rules on small hand-checked series: next open, trade on close, whole shares,
commission on both fills, an open trade at the end, reversals, out of money."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backtests.domain.commissions import FractionCommission, IbkrFixedCommission
from backtests.domain.engine import TradingConfig, backtest_run

OPEN = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 15.0])
CLOSE = np.array([10.5, 11.5, 12.5, 13.5, 14.5, 15.5])


def run(events, *, commission=0.01, trade_on_close=False, long_short=False, cash=1000.0):
    config = TradingConfig(cash, FractionCommission(commission), trade_on_close, long_short)
    return backtest_run(
        open=OPEN, close=CLOSE, events=np.array(events, dtype=np.int8), warmup=0, config=config
    )


def test_fills_at_next_open_in_whole_shares_with_commission_on_both_fills():
    result = run([0, 1, 0, -1, 0, 0])
    trades = result.trades
    assert len(trades) == 1
    # Signal on bar 1's close, filled at bar 2's open (12); exit signal on bar 3, filled at 14.
    assert (trades.entry_bar[0], trades.exit_bar[0]) == (2, 4)
    assert (trades.entry_price[0], trades.exit_price[0]) == (12.0, 14.0)
    # Whole shares from all the cash, the entry fee included: 1000 // (12 * 1.01) = 82.
    assert trades.size[0] == 82
    entry_fee, exit_fee = 82 * 12 * 0.01, 82 * 14 * 0.01
    assert trades.commission[0] == pytest.approx(entry_fee + exit_fee)
    assert trades.pnl[0] == pytest.approx(82 * 2 - entry_fee - exit_fee)
    assert trades.return_pct[0] == pytest.approx(14 / 12 - 1 - (entry_fee + exit_fee) / (82 * 12))
    # Equity: cash until the fill; then cash less the entry fee plus the position at the close.
    cash_in = 1000 - entry_fee
    expected = [1000, 1000, cash_in + 82 * 0.5, cash_in + 82 * 1.5, 0, 0]
    expected[4] = expected[5] = 1000 + 82 * 2 - entry_fee - exit_fee
    np.testing.assert_allclose(result.equity, expected)
    assert result.open_trade is None


def test_trade_on_close_fills_at_the_signal_bars_close():
    trades = run([0, 1, 0, -1, 0, 0], trade_on_close=True).trades
    assert (trades.entry_bar[0], trades.exit_bar[0]) == (1, 3)
    assert (trades.entry_price[0], trades.exit_price[0]) == (11.5, 13.5)
    assert trades.size[0] == int(1000 // (11.5 * 1.01))


def test_open_trade_at_the_end_is_in_the_equity_not_in_the_trades():
    result = run([0, 0, 0, 1, 0, 0])
    assert len(result.trades) == 0
    open_trade = result.open_trade
    assert (open_trade.entry_bar, open_trade.entry_price) == (4, 14.0)
    size = int(1000 // (14 * 1.01))
    assert open_trade.size == size
    assert result.equity[-1] == pytest.approx(1000 - size * 14 * 0.01 + size * 1.5)
    assert result.commissions == pytest.approx(size * 14 * 0.01)


def test_a_signal_on_the_last_bar_is_never_filled():
    result = run([0, 0, 0, 0, 0, 1])
    assert result.open_trade is None and len(result.trades) == 0
    np.testing.assert_array_equal(result.equity, 1000.0)


def test_long_only_ignores_a_second_entry_and_an_exit_while_flat():
    trades = run([0, -1, 1, 1, -1, 0]).trades
    assert len(trades) == 1
    assert (trades.entry_bar[0], trades.exit_bar[0]) == (3, 5)


def test_long_short_reverses_closing_first_then_sizing_from_the_cash():
    result = run([0, 1, 0, -1, 0, 0], long_short=True, commission=0.0)
    trades = result.trades
    assert len(trades) == 1 and trades.size[0] == 83  # 1000 // 12
    cash_after = 1000 + 83 * 2
    short = result.open_trade
    assert (short.size, short.entry_bar, short.entry_price) == (-int(cash_after // 14), 4, 14.0)


def test_too_little_cash_for_one_share_places_no_trade():
    result = run([0, 1, 0, -1, 0, 0], cash=5.0)
    assert len(result.trades) == 0 and result.open_trade is None


def test_out_of_money_closes_everything_and_stops():
    prices = np.array([10.0, 10.0, 10.0, 100.0, 300.0, 5.0])
    config = TradingConfig(1000.0, FractionCommission(0.0), long_short=True)
    events = np.array([0, -1, 0, 0, 1, 0], dtype=np.int8)
    result = backtest_run(open=prices, close=prices, events=events, warmup=0, config=config)
    # Short 99 at 10 on bar 2 (1000 less one part in 2**52 buys 99, not 100); at bar 3's close
    # (100) the equity is below zero: the short is closed there, the equity is 0 from then on
    # and the later signal is never filled. backtesting.py gives the same trade and equity.
    trades = result.trades
    assert len(trades) == 1 and trades.size[0] == -99
    assert (trades.exit_bar[0], trades.exit_price[0]) == (3, 100.0)
    np.testing.assert_array_equal(result.equity, [1000, 1000, 1000, 0, 0, 0])
    assert result.open_trade is None


@pytest.mark.parametrize(
    "commission", [FractionCommission(0.0), FractionCommission(0.0015), IbkrFixedCommission()]
)
def test_a_trading_config_goes_through_json_unchanged(commission):
    config = TradingConfig(12_345.5, commission, trade_on_close=True, long_short=True)
    data = json.loads(json.dumps(config.to_json()))
    assert TradingConfig.from_json(data) == config
    assert config.with_cash(100.0) == TradingConfig(100.0, commission, True, True)
