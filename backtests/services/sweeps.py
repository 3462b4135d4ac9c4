"""Parameter sweeps: the grid cut into chunks, each a task on the backtests queue (run here and
now without a broker); a worker reads the bars once and keeps them for every later chunk."""

from __future__ import annotations

import math
import time

from django.db import transaction

from fetcher.exceptions import IbdataError, InvalidInput
from fetcher.queues import TaskName, task_send

from ..domain.engine import TradingConfig
from ..domain.metrics import DURATIONS, TIMES
from ..domain.strategies import strategy_get
from ..models import BacktestRun, RunKind
from ..selectors import backtest_runs_count, sweep_points_done
from .bars import backtest_bars
from .runs import backtest_point

SWEEP_POLL_S = 0.2


def sweep_chunks_send(
    *,
    request: dict,
    strategy: str,
    points: list[dict],
    trading: TradingConfig,
    group: str,
    chunk_size: int,
) -> list[str]:
    """Queue the grid's chunks (after this transaction commits); returns their task ids."""
    config = trading.to_json()
    ids: list[str] = []

    def send() -> None:
        for first in range(0, len(points), max(1, chunk_size)):
            chunk = points[first : first + chunk_size]
            ids.append(
                task_send(TaskName.BACKTEST_SWEEP_CHUNK, request, strategy, chunk, config, group)
            )

    transaction.on_commit(send)
    return ids


def sweep_chunk_run(
    *, request: dict, strategy: str, points: list[dict], config: dict, group: str
) -> int:
    """Backtest a chunk of grid points on one series and store each; points already stored
    (a chunk delivered twice) are skipped. Returns how many were stored."""
    barset = backtest_bars(request=request)
    chosen = strategy_get(strategy)
    trading = TradingConfig.from_json(config)
    done = sweep_points_done(group=group)
    indicators = _indicator_cache(barset)
    runs = []
    for point in points:
        params = chosen.params_resolve(point)
        if tuple(sorted(params.items())) in done:
            continue
        run, _, _ = backtest_point(
            barset=barset,
            strategy=chosen,
            params=params,
            trading=trading,
            group=group,
            kind=RunKind.SWEEP,
            indicators=indicators,
        )
        runs.append(run)
    BacktestRun.objects.bulk_create(runs)
    return len(runs)


_indicators: dict[str, object] = {"bars": None, "cache": {}}


def _indicator_cache(barset) -> dict:
    """Indicators of the bars a worker holds (one SMA per window, however many points use it)."""
    if _indicators["bars"] is not barset:
        _indicators.update(bars=barset, cache={})
    return _indicators["cache"]


def sweep_wait(*, group: str, total: int, timeout_s: float, progress=None) -> int:
    """Wait until every point of the sweep is stored; IbdataError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = backtest_runs_count(group=group, kind=RunKind.SWEEP)
        if progress:
            progress(done)
        if done >= total:
            return done
        if time.monotonic() > deadline:
            raise IbdataError(
                f"the sweep has {done} of {total} points after {timeout_s:.0f} s: is a worker on "
                "the backtests queue running? (celery -A ibdata_project worker -Q backtests)"
            )
        time.sleep(SWEEP_POLL_S)


def metric_check(name: str, example: dict) -> str:
    """The metric to rank a sweep by, as backtesting.py names it (a number, not a time)."""
    numeric = [k for k in example if k not in TIMES and k not in DURATIONS]
    for key in numeric:
        if key.lower() == name.strip().lower():
            return key
    raise InvalidInput(f"--maximize {name!r} is not a metric: use one of {', '.join(numeric)}")


def sweep_best(*, runs: list[BacktestRun], metric: str, limit: int) -> list[BacktestRun]:
    """The runs with the largest value of `metric` (undefined values last)."""

    def score(run: BacktestRun) -> float:
        value = run.metrics.get(metric)
        return value if isinstance(value, int | float) and math.isfinite(value) else -math.inf

    return sorted(runs, key=score, reverse=True)[:limit]
