"""The backtest engine: signals on bar close, fills at the next open (or this close), whole shares.

Execution follows backtesting.py's defaults, so its users get the same trades: an order placed
on bar i's close fills at bar i+1's open (`trade_on_close`: at bar i's close, booked when bar
i+1 is processed); a new position takes whole shares worth all the cash less one part in 2**52,
after its entry commission; commission is charged on entry and on exit; an open position at the
end counts in the equity but is not a trade; a reversal closes the old trade first, then sizes
the new one from the cash. Everything per bar is numpy; only the fills (a few per thousand bars)
are a Python loop, because each size depends on the cash the trade before left.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from .commissions import Commission

# backtesting.py's default order size: all available cash, as a fraction just under one.
FULL_EQUITY = 1 - sys.float_info.epsilon


@dataclass(frozen=True)
class EngineConfig:
    cash: float
    commission: Commission
    trade_on_close: bool = False
    long_short: bool = False


@dataclass(frozen=True)
class Trades:
    """Closed trades as columns (backtesting.py's `_trades`)."""

    size: np.ndarray  # int64, negative for shorts
    entry_bar: np.ndarray
    exit_bar: np.ndarray
    entry_price: np.ndarray
    exit_price: np.ndarray
    pnl: np.ndarray  # after both commissions
    return_pct: np.ndarray  # a fraction: 0.05 is 5%
    commission: np.ndarray  # entry + exit

    def __len__(self) -> int:
        return len(self.size)


@dataclass(frozen=True)
class OpenTrade:
    size: int
    entry_bar: int
    entry_price: float


@dataclass(frozen=True)
class BacktestResult:
    equity: np.ndarray
    trades: Trades
    open_trade: OpenTrade | None
    warmup: int
    commissions: float  # all commissions paid, closed trades and the open one

    @property
    def final_equity(self) -> float:
        return float(self.equity[-1])


def backtest_run(
    *,
    open: np.ndarray,
    close: np.ndarray,
    events: np.ndarray,
    warmup: int,
    config: EngineConfig,
) -> BacktestResult:
    """Simulate one instrument. `events[i]` is the strategy's decision on bar i's close: +1 be
    long, -1 be short (long-only: be flat), 0 keep what is held. Bars up to `warmup` only feed
    the indicators."""
    n = len(close)
    start = warmup + 1
    # Decisions of the last bar have no next bar to fill on.
    signal_bars = (
        np.flatnonzero(events[start : n - 1]) + start if n - 1 > start else np.empty(0, int)
    )
    result = _simulate(open, close, events, signal_bars, warmup, config, stop_bar=None)
    if len(result[0]) and n > start:
        equity = result[0]
        ruined = np.flatnonzero(equity[start:] <= 0)
        if len(ruined):
            # Out of money: everything is closed at that bar's close and trading stops there.
            stop = int(ruined[0]) + start
            result = _simulate(open, close, events, signal_bars, warmup, config, stop_bar=stop)
    equity, trades, open_trade, commissions = result
    return BacktestResult(equity, trades, open_trade, warmup, commissions)


def _simulate(open, close, events, signal_bars, warmup, config: EngineConfig, stop_bar):
    commission = config.commission
    cash = float(config.cash)
    state = 0  # -1 short, 0 flat, +1 long
    size = 0
    entry_price = 0.0
    entry_bar = 0
    paid = 0.0
    # Closed trades, in order: size, entry bar, exit bar, entry price, exit price, exit fee.
    closed: list[tuple] = []
    # After each bar that processed fills: cash, position size and entry price from then on.
    c_bar, c_cash, c_size, c_entry = [], [], [], []
    opens, closes = open.tolist(), close.tolist()
    decisions = events[signal_bars].tolist()
    bars = signal_bars.tolist()
    long_short = config.long_short
    on_close = config.trade_on_close
    for i, decision in zip(bars, decisions, strict=True):
        target = (1 if decision > 0 else -1) if long_short else (1 if decision > 0 else 0)
        if target == state:
            continue
        processed = i + 1
        if stop_bar is not None and processed > stop_bar:
            break
        price = closes[i] if on_close else opens[processed]
        fill_bar = i if on_close else processed
        if state:
            exit_fee = commission(size, price)
            cash += size * (price - entry_price) - exit_fee
            paid += exit_fee
            closed.append((size, entry_bar, fill_bar, entry_price, price, exit_fee))
            state, size = 0, 0
        if target:
            price_with_fee = price + commission(FULL_EQUITY, price) / FULL_EQUITY
            available = max(0.0, cash)
            shares = int((available * 1.0 * FULL_EQUITY) // price_with_fee)
            if shares and not shares * price_with_fee > available:
                size = shares * target
                entry_price, entry_bar, state = price, fill_bar, target
                entry_fee = commission(size, price)
                cash -= entry_fee
                paid += entry_fee
        c_bar.append(processed)
        c_cash.append(cash)
        c_size.append(size)
        c_entry.append(entry_price if size else 0.0)
    if stop_bar is not None and state:
        price = closes[stop_bar]
        exit_fee = commission(size, price)
        paid += exit_fee
        closed.append((size, entry_bar, stop_bar, entry_price, price, exit_fee))
        state, size = 0, 0
    equity = _equity(close, config.cash, c_bar, c_cash, c_size, c_entry)
    if stop_bar is not None:
        equity[stop_bar:] = 0.0
    trades = _trades(closed, commission)
    open_trade = OpenTrade(size, entry_bar, entry_price) if state else None
    return equity, trades, open_trade, paid


def _equity(close, cash0, c_bar, c_cash, c_size, c_entry) -> np.ndarray:
    """Cash plus the open position's value at each close, as backtesting.py books it
    (close * size - size * entry), so equal equities compare equal in both."""
    n = len(close)
    segment = np.zeros(n, dtype=np.int64)
    if c_bar:
        segment[np.asarray(c_bar)] = np.arange(1, len(c_bar) + 1)
        np.maximum.accumulate(segment, out=segment)
    cash = np.asarray([float(cash0), *c_cash])[segment]
    size = np.asarray([0, *c_size], dtype=np.int64)[segment].astype(np.float64)
    entry = np.asarray([0.0, *c_entry])[segment]
    return cash + (close * size - size * entry)


def _trades(closed: list[tuple], commission: Commission) -> Trades:
    """Closed trades as columns; each one's commission is its exit fee plus its entry fee."""
    rows = list(zip(*closed, strict=True)) if closed else [()] * 6
    size = np.asarray(rows[0], dtype=np.int64)
    entry_price = np.asarray(rows[3], dtype=np.float64)
    exit_price = np.asarray(rows[4], dtype=np.float64)
    fees = np.asarray(
        [fee + commission(s, p) for s, p, fee in zip(rows[0], rows[3], rows[5], strict=True)],
        dtype=np.float64,
    )
    sizes = size.astype(np.float64)
    pnl = sizes * (exit_price - entry_price) - fees
    with np.errstate(divide="ignore", invalid="ignore"):
        return_pct = np.sign(sizes) * (exit_price / entry_price - 1) - fees / (
            np.abs(sizes) * entry_price
        )
    return Trades(
        size=size,
        entry_bar=np.asarray(rows[1], dtype=np.int64),
        exit_bar=np.asarray(rows[2], dtype=np.int64),
        entry_price=entry_price,
        exit_price=exit_price,
        pnl=pnl,
        return_pct=return_pct,
        commission=fees,
    )
