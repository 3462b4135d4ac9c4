"""Parameter sweeps: the grid cut into chunks, each a task on the backtests queue (run here and
now without a broker); a worker reads the bars once and keeps them for every later chunk."""

from __future__ import annotations

import math
import time

from django.db import transaction

from fetcher.exceptions import IbdataError
from fetcher.queues import TaskName, task_send

from ..domain.bars import BarsRequest
from ..domain.compute import backtest_simulate
from ..domain.engine import TradingConfig
from ..domain.strategies import Strategy, strategy_get
from ..domain.sweeps import SweepChunk, chunks_of
from ..models import BacktestRun, RunKind
from ..selectors import backtest_runs_count, sweep_points_done
from .bars import backtest_bars
from .runs import backtest_point

SWEEP_POLL_S = 0.2
FAILURES_POLL_S = 2.0  # how often the sweep's tasks are asked whether one failed


def sweep_chunks_send(
    *,
    bars: BarsRequest,
    strategy: str,
    points: list[dict],
    trading: TradingConfig,
    group: str,
    chunk_size: int,
    strategy_digest: str = "",
) -> list[str]:
    """Queue the grid's chunks (after this transaction commits); returns their task ids (the
    list fills when they are sent). `strategy` is what a worker loads (Strategy.reference)."""
    chunks = [
        SweepChunk(bars, strategy, tuple(part), trading, group, strategy_digest)
        for part in chunks_of(points, chunk_size)
    ]
    ids: list[str] = []

    def send() -> None:
        for chunk in chunks:
            ids.append(task_send(TaskName.BACKTEST_SWEEP_CHUNK, chunk.to_json()))

    transaction.on_commit(send)
    return ids


def sweep_chunk_run(*, chunk: SweepChunk) -> int:
    """Backtest a chunk of grid points on one series and store each; points already stored
    (a chunk delivered twice) are skipped. Returns how many were stored."""
    barset = backtest_bars(request=chunk.bars)
    strategy = strategy_get(chunk.strategy, digest=chunk.strategy_digest)
    done = sweep_points_done(group=chunk.group)
    indicators = _indicator_cache(barset)
    runs = []
    for point in chunk.points:
        params = strategy.params_resolve(point)
        if tuple(sorted(params.items())) in done:
            continue
        run, _, _ = backtest_point(
            barset=barset,
            strategy=strategy,
            params=params,
            trading=chunk.trading,
            group=chunk.group,
            kind=RunKind.SWEEP,
            indicators=indicators,
        )
        runs.append(run)
    BacktestRun.objects.bulk_create(runs)
    return len(runs)


def sweep_trial(*, barset, strategy: Strategy, params: dict, trading: TradingConfig) -> None:
    """One point of the sweep computed here, stored nowhere: a strategy that fails on these
    bars does so before any task is sent (its indicators stay for this process's chunks)."""
    backtest_simulate(
        bars=barset.bars,
        strategy=strategy,
        params=params,
        trading=trading,
        indicators=_indicator_cache(barset),
    )


_indicators: dict[str, object] = {"bars": None, "cache": {}}


def _indicator_cache(barset) -> dict:
    """Indicators of the bars a worker holds (one SMA per window, however many points use it)."""
    if _indicators["bars"] is not barset:
        _indicators.update(bars=barset, cache={})
    return _indicators["cache"]


def sweep_wait(
    *, group: str, total: int, timeout_s: float, progress=None, task_ids: list[str] = ()
) -> int:
    """Wait until every point of the sweep is stored; IbdataError when one of `task_ids`
    failed on a worker (its error in one line), or after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    pending, asked = list(task_ids), 0.0
    while True:
        done = backtest_runs_count(group=group, kind=RunKind.SWEEP)
        if progress:
            progress(done)
        if done >= total:
            return done
        if pending and time.monotonic() - asked >= FAILURES_POLL_S:
            asked = time.monotonic()
            pending, failed = _tasks_failed(pending)
            if failed:
                raise IbdataError(f"a sweep task failed on a worker: {failed}")
        if time.monotonic() > deadline:
            raise IbdataError(
                f"the sweep has {done} of {total} points after {timeout_s:.0f} s: is a worker on "
                "the backtests queue running? (celery -A ibdata_project worker -Q backtests)"
            )
        time.sleep(SWEEP_POLL_S)


def _tasks_failed(task_ids: list[str]) -> tuple[list[str], str]:
    """The tasks not yet succeeded, and the error of the first that failed on one line ('' when
    none did)."""
    from celery.result import AsyncResult

    pending = []
    for task_id in task_ids:
        result = AsyncResult(task_id)
        if result.state == "FAILURE":
            last = (result.traceback or "").strip().splitlines()[-1:] or [str(result.result)]
            return pending, last[0].partition(": ")[2] or last[0]
        if result.state != "SUCCESS":
            pending.append(task_id)
    return pending, ""


def sweep_best(*, runs: list[BacktestRun], metric: str, limit: int) -> list[BacktestRun]:
    """The runs with the largest value of `metric` (undefined values last)."""

    def score(run: BacktestRun) -> float:
        value = run.metrics.get(metric)
        return value if isinstance(value, int | float) and math.isfinite(value) else -math.inf

    return sorted(runs, key=score, reverse=True)[:limit]
