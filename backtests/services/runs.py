"""Backtest runs: computed on loaded bars, stored with their metrics, trades and equity curve;
several symbols also as one equal-weight portfolio."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fetcher.domain.bars import BarBatch
from fetcher.domain.time import from_epoch
from fetcher.exceptions import InvalidInput

from ..domain.commissions import Commission
from ..domain.engine import BacktestResult, EngineConfig, Trades, backtest_run
from ..domain.metrics import metrics_compute, metrics_json, time_text
from ..domain.strategies import Strategy
from ..models import BacktestRun, RunKind
from ..selectors import BarSet

EQUITY_POINTS = 2_000  # most points of a stored equity curve


@dataclass(frozen=True)
class Settings:
    """How a backtest trades, whatever the bars."""

    cash: float
    commission: Commission
    commission_text: str
    trade_on_close: bool = False
    long_short: bool = False

    def engine(self, cash: float | None = None) -> EngineConfig:
        return EngineConfig(
            cash=self.cash if cash is None else cash,
            commission=self.commission,
            trade_on_close=self.trade_on_close,
            long_short=self.long_short,
        )


@dataclass(frozen=True)
class Outcome:
    """One computed backtest: the stored run and what the pictures and tables need."""

    run: BacktestRun
    label: str
    ts: np.ndarray
    close: np.ndarray
    result: BacktestResult
    metrics: dict[str, float]


def backtest_length_check(*, barset: BarSet, strategy: Strategy, params: dict) -> None:
    """A range too short for the strategy's indicators is refused (it could not trade)."""
    need = strategy.warmup(params) + 2
    have = len(barset.bars)
    if have < need:
        raise InvalidInput(
            f"{barset.label}: {have} {barset.timeframe.name} bars from {barset.start} to "
            f"{barset.end}, but {strategy.name} with {params} needs at least {need} "
            "(its slowest indicator, then one bar to trade): widen the range or shorten the window"
        )


def backtest_compute(
    *,
    bars: BarBatch,
    strategy: Strategy,
    params: dict,
    config: EngineConfig,
    indicators: dict | None = None,
) -> tuple[BacktestResult, dict[str, float]]:
    """Signals, simulation and metrics on bars in memory (no database)."""
    warmup = strategy.warmup(params)
    events = strategy.signals(bars.close, params, {} if indicators is None else indicators)
    result = backtest_run(
        open=bars.open, close=bars.close, events=events, warmup=warmup, config=config
    )
    metrics = metrics_compute(
        ts=bars.ts, close=bars.close, equity=result.equity, trades=result.trades, warmup=warmup
    )
    return result, metrics


def trades_json(trades: Trades, ts: np.ndarray) -> list[dict]:
    """Closed trades under backtesting.py's column names."""
    columns = zip(
        trades.size.tolist(),
        trades.entry_bar.tolist(),
        trades.exit_bar.tolist(),
        trades.entry_price.tolist(),
        trades.exit_price.tolist(),
        trades.pnl.tolist(),
        trades.return_pct.tolist(),
        trades.commission.tolist(),
        strict=True,
    )
    return [
        {
            "Size": size,
            "EntryBar": entry_bar,
            "ExitBar": exit_bar,
            "EntryPrice": entry_price,
            "ExitPrice": exit_price,
            "PnL": pnl,
            "ReturnPct": return_pct,
            "Commission": commission,
            "EntryTime": time_text(ts[entry_bar]),
            "ExitTime": time_text(ts[exit_bar]),
        }
        for size, entry_bar, exit_bar, entry_price, exit_price, pnl, return_pct, commission in columns
    ]


def equity_json(ts: np.ndarray, equity: np.ndarray) -> list[list[float]]:
    """The equity curve, thinned to at most EQUITY_POINTS points (first and last kept)."""
    if len(ts) > EQUITY_POINTS:
        keep = np.unique(np.linspace(0, len(ts) - 1, EQUITY_POINTS).round().astype(np.int64))
        ts, equity = ts[keep], equity[keep]
    return [[int(t), float(e)] for t, e in zip(ts.tolist(), equity.tolist(), strict=True)]


def run_fields(
    *,
    barset: BarSet,
    strategy: Strategy,
    params: dict,
    settings: Settings,
    group: str,
    kind: str,
    ts: np.ndarray,
    result: BacktestResult,
    metrics: dict[str, float],
    elapsed_ms: float,
    symbol: str | None = None,
    fetch_run_id: int | None = None,
    with_curves: bool = True,
) -> dict:
    """A BacktestRun's fields: what was asked, on which bars, and what came out (a sweep point
    keeps its metrics only: no trades, no curve)."""
    return {
        "group": group,
        "kind": kind,
        "strategy": strategy.name,
        "params": params,
        "symbol": symbol or barset.label,
        "instrument": barset.instrument if kind != RunKind.PORTFOLIO else None,
        "timeframe": barset.timeframe.code,
        "what_to_show": int(barset.what_to_show),
        "rth": barset.rth,
        "start": barset.start,
        "end": barset.end,
        "first_bar": from_epoch(int(ts[0])),
        "last_bar": from_epoch(int(ts[-1])),
        "bars": len(ts),
        "data_source": barset.data_source,
        "source": barset.source,
        "account": barset.account,
        "fetch_run_id": fetch_run_id,
        "cash": settings.cash,
        "commission": settings.commission_text,
        "trade_on_close": settings.trade_on_close,
        "long_short": settings.long_short,
        "metrics": metrics_json(metrics),
        "trades": trades_json(result.trades, ts) if with_curves else [],
        "equity": equity_json(ts, result.equity) if with_curves else [],
        "elapsed_ms": elapsed_ms,
    }


def backtest_point(
    *,
    barset: BarSet,
    strategy: Strategy,
    params: dict,
    settings: Settings,
    group: str,
    kind: str,
    indicators: dict | None = None,
    fetch_run_id: int | None = None,
) -> tuple[BacktestRun, BacktestResult, dict[str, float]]:
    """Backtest one symbol's bars with one parameter set: the run, not saved yet (a sweep saves
    its points together), its result and metrics. A sweep point keeps no trades or curve."""
    backtest_length_check(barset=barset, strategy=strategy, params=params)
    began = time.perf_counter()
    result, metrics = backtest_compute(
        bars=barset.bars,
        strategy=strategy,
        params=params,
        config=settings.engine(),
        indicators=indicators,
    )
    fields = run_fields(
        barset=barset,
        strategy=strategy,
        params=params,
        settings=settings,
        group=group,
        kind=kind,
        ts=barset.bars.ts,
        result=result,
        metrics=metrics,
        elapsed_ms=(time.perf_counter() - began) * 1000,
        fetch_run_id=fetch_run_id,
        with_curves=kind != RunKind.SWEEP,
    )
    return BacktestRun(**fields), result, metrics


def backtest_execute(
    *,
    barset: BarSet,
    strategy: Strategy,
    params: dict,
    settings: Settings,
    group: str,
    fetch_run_id: int | None = None,
) -> Outcome:
    """Backtest one symbol's bars and store the run."""
    run, result, metrics = backtest_point(
        barset=barset,
        strategy=strategy,
        params=params,
        settings=settings,
        group=group,
        kind=RunKind.SINGLE,
        fetch_run_id=fetch_run_id,
    )
    run.save()
    bars = barset.bars
    return Outcome(run, barset.label, bars.ts, bars.close, result, metrics)


def backtest_portfolio(
    *,
    barsets: list[BarSet],
    strategy: Strategy,
    params: dict,
    settings: Settings,
    group: str,
    fetch_run_id: int | None = None,
) -> Outcome:
    """The equal-weight portfolio: each symbol trades its share of the cash on its own bars;
    the line is the sum of their equities on every timestamp any of them has (each carried
    forward), its trades all of theirs, its market the average of their normalised closes."""
    began = time.perf_counter()
    share = settings.cash / len(barsets)
    union = np.unique(np.concatenate([b.bars.ts for b in barsets]))
    equity = np.zeros(len(union))
    market = np.zeros(len(union))
    warmup_ts = 0
    parts: list[Trades] = []
    for barset in barsets:
        bars = barset.bars
        result, _ = backtest_compute(
            bars=bars,
            strategy=strategy,
            params=params,
            config=settings.engine(cash=share),
        )
        at = np.searchsorted(bars.ts, union, side="right") - 1
        held = at >= 0
        equity += np.where(held, result.equity[np.maximum(at, 0)], share)
        warmup = strategy.warmup(params)
        base = bars.close[warmup]
        market += np.where(held, bars.close[np.maximum(at, 0)], bars.close[0]) / base
        warmup_ts = max(warmup_ts, int(bars.ts[warmup]))
        t = result.trades
        parts.append(
            Trades(
                size=t.size,
                entry_bar=np.searchsorted(union, bars.ts[t.entry_bar]),
                exit_bar=np.searchsorted(union, bars.ts[t.exit_bar]),
                entry_price=t.entry_price,
                exit_price=t.exit_price,
                pnl=t.pnl,
                return_pct=t.return_pct,
                commission=t.commission,
            )
        )
    trades = _trades_concat(parts)
    market /= len(barsets)
    warmup = int(np.searchsorted(union, warmup_ts))
    metrics = metrics_compute(ts=union, close=market, equity=equity, trades=trades, warmup=warmup)
    result = BacktestResult(equity, trades, None, warmup, float(trades.commission.sum()))
    elapsed_ms = (time.perf_counter() - began) * 1000
    label = "Portfolio (" + ", ".join(b.label for b in barsets) + ")"
    run = BacktestRun.objects.create(
        **run_fields(
            barset=barsets[0],
            strategy=strategy,
            params=params,
            settings=settings,
            group=group,
            kind=RunKind.PORTFOLIO,
            ts=union,
            result=result,
            metrics=metrics,
            elapsed_ms=elapsed_ms,
            symbol=",".join(b.label for b in barsets),
            fetch_run_id=fetch_run_id,
        )
    )
    return Outcome(run, label, union, market, result, metrics)


def _trades_concat(parts: list[Trades]) -> Trades:
    """Several symbols' trades as one list, in the order they closed."""
    fields = Trades.__dataclass_fields__
    joined = {name: np.concatenate([getattr(p, name) for p in parts]) for name in fields}
    order = np.lexsort((joined["entry_bar"], joined["exit_bar"]))
    return Trades(**{name: values[order] for name, values in joined.items()})
