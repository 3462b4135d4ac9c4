"""Backtest runs: computed on loaded bars, stored with their metrics, trades and equity curve;
several symbols also as one equal-weight portfolio."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fetcher.domain.time import from_epoch
from fetcher.exceptions import InvalidInput

from ..domain.compute import backtest_compute
from ..domain.engine import BacktestResult, Trades, TradingConfig
from ..domain.metrics import metrics_json, time_text
from ..domain.portfolio import portfolio_compute
from ..domain.strategies import Strategy
from ..models import BacktestRun, RunKind
from ..selectors import BarSet

EQUITY_POINTS = 2_000  # most points of a stored equity curve


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
    need = strategy.warmup_bars(params) + 2
    have = len(barset.bars)
    if have < need:
        raise InvalidInput(
            f"{barset.label}: {have} {barset.timeframe.name} bars from {barset.start} to "
            f"{barset.end}, but {strategy.name} with {params} needs at least {need} "
            "(its slowest indicator, then one bar to trade): widen the range or shorten the window"
        )


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
    trading: TradingConfig,
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
        "strategy_source": "" if strategy.builtin else strategy.reference,
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
        "cash": trading.cash,
        "commission": trading.commission.text,
        "trade_on_close": trading.trade_on_close,
        "long_short": trading.long_short,
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
    trading: TradingConfig,
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
        trading=trading,
        indicators=indicators,
    )
    fields = run_fields(
        barset=barset,
        strategy=strategy,
        params=params,
        trading=trading,
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
    trading: TradingConfig,
    group: str,
    fetch_run_id: int | None = None,
) -> Outcome:
    """Backtest one symbol's bars and store the run."""
    run, result, metrics = backtest_point(
        barset=barset,
        strategy=strategy,
        params=params,
        trading=trading,
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
    trading: TradingConfig,
    group: str,
    fetch_run_id: int | None = None,
) -> Outcome:
    """The equal-weight portfolio of the symbols (backtests.domain.portfolio), stored."""
    began = time.perf_counter()
    portfolio = portfolio_compute(
        bars=[b.bars for b in barsets], strategy=strategy, params=params, trading=trading
    )
    elapsed_ms = (time.perf_counter() - began) * 1000
    labels = ", ".join(b.label for b in barsets)
    run = BacktestRun.objects.create(
        **run_fields(
            barset=barsets[0],
            strategy=strategy,
            params=params,
            trading=trading,
            group=group,
            kind=RunKind.PORTFOLIO,
            ts=portfolio.ts,
            result=portfolio.result,
            metrics=portfolio.metrics,
            elapsed_ms=elapsed_ms,
            symbol=",".join(b.label for b in barsets),
            fetch_run_id=fetch_run_id,
        )
    )
    return Outcome(
        run,
        f"Portfolio ({labels})",
        portfolio.ts,
        portfolio.market,
        portfolio.result,
        portfolio.metrics,
    )
