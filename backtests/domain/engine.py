"""The backtest engine: signals on bar close, fills at the next open (or this close), whole shares.

Execution follows backtesting.py's defaults, so its users get the same trades: an order placed
on bar i's close fills at bar i+1's open (`trade_on_close`: at bar i's close, booked when bar
i+1 is processed); a new position takes whole shares worth all the cash less one part in 2**52,
after its entry commission; commission is charged on entry and on exit; an open position at the
end counts in the equity but is not a trade; a reversal closes the old trade first, then sizes
the new one from the cash. Signals are numpy; the fills are a compiled loop (each size depends
on the cash the trade before left), and so is the equity curve.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

import numpy as np

from .commissions import Commission, commission_parse
from .compiled import equity_curve, fills

# backtesting.py's default order size: all available cash, as a fraction just under one.
FULL_EQUITY = 1 - sys.float_info.epsilon


@dataclass(frozen=True)
class TradingConfig:
    """How a backtest trades, whatever the bars: its cash, commission, fills and sides."""

    cash: float
    commission: Commission
    trade_on_close: bool = False  # fill at the signal bar's close, not the next bar's open
    long_short: bool = False  # the opposite signal goes short, not flat

    def with_cash(self, cash: float) -> TradingConfig:
        return replace(self, cash=cash)

    def to_json(self) -> dict:
        return {
            "cash": self.cash,
            "commission": self.commission.text,
            "trade_on_close": self.trade_on_close,
            "long_short": self.long_short,
        }

    @classmethod
    def from_json(cls, data: dict) -> TradingConfig:
        return cls(
            cash=float(data["cash"]),
            commission=commission_parse(data["commission"]),
            trade_on_close=bool(data["trade_on_close"]),
            long_short=bool(data["long_short"]),
        )


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
    config: TradingConfig,
) -> BacktestResult:
    """Simulate one instrument. `events[i]` is the strategy's decision on bar i's close: +1 be
    long, -1 be short (long-only: be flat), 0 keep what is held. Bars up to `warmup` only feed
    the indicators."""
    n = len(close)
    start = warmup + 1
    # Decisions of the last bar have no next bar to fill on.
    signal_bars = (
        np.flatnonzero(events[start : n - 1]) + start if n - 1 > start else np.empty(0, np.int64)
    )
    result, ruin = _simulate(open, close, events, signal_bars, config, start, stop_bar=-1)
    if ruin >= 0:
        # Out of money: everything is closed at that bar's close and trading stops there.
        result, _ = _simulate(open, close, events, signal_bars, config, start, stop_bar=ruin)
    return replace(result, warmup=warmup)


def _simulate(open, close, events, signal_bars, config: TradingConfig, start: int, stop_bar: int):
    signal_bars = signal_bars.astype(np.int64)
    processed = signal_bars + 1
    if config.trade_on_close:
        prices, fill_bars = close[signal_bars], signal_bars
    else:
        prices, fill_bars = open[processed], processed
    commission = config.commission
    columns, after, (state, size, entry_price, entry_bar, paid) = fills(
        events[signal_bars].astype(np.int64),
        np.ascontiguousarray(prices, dtype=np.float64),
        fill_bars,
        processed,
        float(config.cash),
        config.long_short,
        stop_bar,
        FULL_EQUITY,
        *commission.schedule(),
    )
    columns = list(columns)
    if stop_bar >= 0 and state:
        # Closed at the ruinous bar's close, its exit fee charged as any exit's.
        price = float(close[stop_bar])
        exit_fee = commission(size, price)
        paid += exit_fee
        fees = exit_fee + commission(size, entry_price)
        extra = [[size], [entry_bar], [stop_bar], [entry_price], [price], [fees]]
        columns = [
            np.concatenate([c, np.asarray(e, dtype=c.dtype)])
            for c, e in zip(columns, extra, strict=True)
        ]
        state = 0
    equity, ruin = equity_curve(
        start, np.ascontiguousarray(close, dtype=np.float64), float(config.cash), *after
    )
    if stop_bar >= 0:
        equity[stop_bar:] = 0.0
    open_trade = OpenTrade(int(size), int(entry_bar), float(entry_price)) if state else None
    return BacktestResult(equity, _trades(*columns), open_trade, 0, float(paid)), ruin


def _trades(size, entry_bar, exit_bar, entry_price, exit_price, fees) -> Trades:
    """Closed trades as columns; `fees` are each one's exit plus entry commissions."""
    sizes = size.astype(np.float64)
    pnl = sizes * (exit_price - entry_price) - fees
    with np.errstate(divide="ignore", invalid="ignore"):
        return_pct = np.sign(sizes) * (exit_price / entry_price - 1) - fees / (
            np.abs(sizes) * entry_price
        )
    return Trades(
        size=size,
        entry_bar=entry_bar,
        exit_bar=exit_bar,
        entry_price=entry_price,
        exit_price=exit_price,
        pnl=pnl,
        return_pct=return_pct,
        commission=fees,
    )
