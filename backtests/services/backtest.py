"""A backtest as a user asks for it: the missing bars fetched, the bars read, the runs computed
and stored (one per symbol and their portfolio, or a sweep's points), pictures and CSVs written."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fetcher.execution.preflight import broker_check, tasks_in_process

from ..domain.bars import BarsRequest, DataSource
from ..domain.request import BacktestRequest
from ..models import BacktestRun
from ..selectors import BarSet, backtest_runs_of_group
from .bars import backtest_bars
from .exports import csv_write, equity_csv, output_path_check, trades_csv
from .fetch import backtest_fetch_missing
from .pictures import equity_picture_write, sweep_heatmap_write
from .runs import Outcome, backtest_execute, backtest_length_check, backtest_portfolio
from .sweeps import sweep_best, sweep_chunks_send, sweep_trial, sweep_wait

log = logging.getLogger("ibdata.backtests")
SWEEP_TIMEOUT_S = 3600.0

Notes = Callable[[str], None]  # what the user should know while it runs


@dataclass(frozen=True)
class SweepOutcome:
    label: str  # the symbol
    runs: list[BacktestRun]  # every point, in the order stored
    best: list[BacktestRun]  # the request's top by its metric


@dataclass(frozen=True)
class BacktestOutcome:
    """What a backtest made: its runs (stored), and the files it wrote as (what, where)."""

    request: BacktestRequest
    group: str  # the runs' group
    fetch_run_id: int | None  # the fetch that filled the range first
    singles: tuple[Outcome, ...] = ()
    portfolio: Outcome | None = None
    sweep: SweepOutcome | None = None
    files: tuple[tuple[str, Path], ...] = ()


OUTPUTS = {"plot": ".png", "heatmap": ".png", "trades_csv": "", "equity_csv": ""}


def backtest_submit(*, request: BacktestRequest, notes: Notes = log.info) -> BacktestOutcome:
    """Do what the request asks. A picture or CSV that could not be written fails first,
    before anything is fetched or stored."""
    for name, kind in OUTPUTS.items():
        if path := getattr(request, name):
            output_path_check(field=name, path=path, kind=kind)
    fetch_run_id = None
    if request.data_source == DataSource.IBKR:
        fetch_run_id = backtest_fetch_missing(
            specs=list(request.symbols),
            timeframe=request.timeframe,
            what_to_show=request.what_to_show,
            rth=request.rth,
            start=request.start,
            end=request.end,
            notes=notes,
        )
    bars = request.bars_requests()
    barsets = [backtest_bars(request=b) for b in bars]
    group = uuid.uuid4().hex
    if request.is_sweep:
        return _sweep(request, bars[0], barsets[0], group, fetch_run_id, notes)
    return _runs(request, barsets, group, fetch_run_id)


def _runs(
    request: BacktestRequest, barsets: list[BarSet], group: str, fetch_run_id: int | None
) -> BacktestOutcome:
    """One run per symbol, and their portfolio when there are several; stored, none of them
    when a symbol has too few bars."""
    for barset in barsets:
        backtest_length_check(barset=barset, strategy=request.strategy_spec, params=request.params)
    common = {
        "strategy": request.strategy_spec,
        "params": request.params,
        "trading": request.trading,
        "group": group,
        "fetch_run_id": fetch_run_id,
    }
    singles = tuple(backtest_execute(barset=b, **common) for b in barsets)
    portfolio = backtest_portfolio(barsets=barsets, **common) if len(barsets) > 1 else None
    lines = [*singles, *([portfolio] if portfolio else [])]
    files = []
    if request.plot:
        title = f"{request.title} · {request.timeframe.name} {request.start} to {request.end}"
        path = equity_picture_write(
            path=request.plot, title=title, curves=[(o.label, o.ts, o.result.equity) for o in lines]
        )
        files.append(("Equity and drawdown", path))
    if request.trades_csv:
        runs = [(o.label, o.run.trades) for o in singles]
        files.append(("Trades", csv_write(request.trades_csv, lambda out: trades_csv(out, runs))))
    if request.equity_csv:
        curves = [(o.label, o.ts, o.result.equity) for o in singles]
        if portfolio:
            curves.append(("Portfolio", portfolio.ts, portfolio.result.equity))
        path = csv_write(request.equity_csv, lambda out: equity_csv(out, curves))
        files.append(("Equity curves", path))
    return BacktestOutcome(request, group, fetch_run_id, singles, portfolio, files=tuple(files))


def _sweep(
    request: BacktestRequest,
    bars: BarsRequest,
    barset: BarSet,
    group: str,
    fetch_run_id: int | None,
    notes: Notes,
) -> BacktestOutcome:
    """The grid's points as tasks on the backtests queue (in this process without a broker),
    awaited and ranked. Bars too few for the slowest point are refused before any is sent."""
    strategy = request.strategy_spec
    slowest = max(request.points, key=strategy.warmup_bars)
    backtest_length_check(barset=barset, strategy=strategy, params=slowest)
    # Here first: a strategy that fails does so in one line before any task is sent.
    sweep_trial(barset=barset, strategy=strategy, params=slowest, trading=request.trading)
    here = tasks_in_process()
    notes(
        f"Sweep of {len(request.points)} points on {barset.label} ({len(barset.bars)} "
        f"{barset.timeframe.name} bars)"
        + (f"; {request.skipped} points skipped (invalid parameters)" if request.skipped else "")
        + (" in this process" if here else " on the backtests queue")
    )
    if not here:
        broker_check()
    task_ids = sweep_chunks_send(
        bars=bars,
        strategy=strategy.reference,
        strategy_digest=strategy.digest,
        points=list(request.points),
        trading=request.trading,
        group=group,
        chunk_size=request.chunk,
    )
    sweep_wait(group=group, total=len(request.points), timeout_s=SWEEP_TIMEOUT_S, task_ids=task_ids)
    runs = backtest_runs_of_group(group=group)
    best = sweep_best(runs=runs, metric=request.maximize, limit=request.top)
    sweep = SweepOutcome(barset.label, runs, best)
    files = (("Heatmap", _heatmap(request, sweep)),) if request.heatmap else ()
    return BacktestOutcome(request, group, fetch_run_id, sweep=sweep, files=files)


def _heatmap(request: BacktestRequest, sweep: SweepOutcome) -> Path:
    """The ranking metric over the grid: the first parameter across, the last one up."""
    names = list(request.grids)
    return sweep_heatmap_write(
        path=request.heatmap,
        runs=sweep.runs,
        x=names[0],
        y=names[-1],
        metric=request.maximize,
        title=f"{request.strategy_spec.name} on {sweep.label}: {request.maximize}",
    )
