"""The equal-weight portfolio of several symbols: each trades its share of the cash on its own
bars; the portfolio's line runs on every timestamp any of them has."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fetcher.domain.bars import BarBatch

from .compute import backtest_simulate
from .engine import BacktestResult, Trades, TradingConfig
from .metrics import metrics_compute
from .strategies import Strategy


@dataclass(frozen=True)
class Portfolio:
    ts: np.ndarray  # every timestamp any symbol has
    market: np.ndarray  # the average of the symbols' closes, each over its warm-up bar's close
    result: BacktestResult  # the summed equity, every symbol's closed trades
    metrics: dict[str, float]


def portfolio_compute(
    *, bars: Sequence[BarBatch], strategy: Strategy, params: dict, trading: TradingConfig
) -> Portfolio:
    """Each symbol backtested with `trading.cash / N`, combined (portfolio_combine)."""
    share = trading.with_cash(trading.cash / len(bars))
    results = [
        backtest_simulate(bars=b, strategy=strategy, params=params, trading=share) for b in bars
    ]
    return portfolio_combine(
        bars=bars, results=results, share=share.cash, warmup=strategy.warmup_bars(params)
    )


def portfolio_combine(
    *, bars: Sequence[BarBatch], results: Sequence[BacktestResult], share: float, warmup: int
) -> Portfolio:
    """The symbols' runs as one: on the union of their timestamps, the sum of their equities
    (each carried forward; its cash `share` before its first bar), their closed trades in the
    order they closed, and for market the mean of their closes over each one's close on its
    warm-up bar. The portfolio's warm-up ends when the last symbol's does."""
    union = np.unique(np.concatenate([b.ts for b in bars]))
    equity = np.zeros(len(union))
    market = np.zeros(len(union))
    parts = []
    for batch, result in zip(bars, results, strict=True):
        equity += carried(union, batch.ts, result.equity, share)
        market += carried(union, batch.ts, batch.close, batch.close[0]) / batch.close[warmup]
        parts.append(trades_reindexed(result.trades, batch.ts, union))
    market /= len(bars)
    trades = trades_concat(parts)
    start = int(np.searchsorted(union, max(int(b.ts[warmup]) for b in bars)))
    metrics = metrics_compute(ts=union, close=market, equity=equity, trades=trades, warmup=start)
    result = BacktestResult(equity, trades, None, start, float(trades.commission.sum()))
    return Portfolio(union, market, result, metrics)


def carried(union: np.ndarray, ts: np.ndarray, values: np.ndarray, before: float) -> np.ndarray:
    """`values` (one per `ts`) at each time of `union`: the last one at or before it, `before`
    ahead of the first."""
    at = np.searchsorted(ts, union, side="right") - 1
    return np.where(at >= 0, values[np.maximum(at, 0)], before)


def trades_reindexed(trades: Trades, ts: np.ndarray, union: np.ndarray) -> Trades:
    """Trades whose bars index `ts`, with their bars indexing `union` instead."""
    return Trades(
        size=trades.size,
        entry_bar=np.searchsorted(union, ts[trades.entry_bar]),
        exit_bar=np.searchsorted(union, ts[trades.exit_bar]),
        entry_price=trades.entry_price,
        exit_price=trades.exit_price,
        pnl=trades.pnl,
        return_pct=trades.return_pct,
        commission=trades.commission,
    )


def trades_concat(parts: Sequence[Trades]) -> Trades:
    """Several symbols' trades as one list, in the order they closed (then opened)."""
    fields = Trades.__dataclass_fields__
    joined = {name: np.concatenate([getattr(p, name) for p in parts]) for name in fields}
    order = np.lexsort((joined["entry_bar"], joined["exit_bar"]))
    return Trades(**{name: values[order] for name, values in joined.items()})
