"""Celery tasks of the backtests queue: thin, each calls one service."""

from __future__ import annotations

from celery import shared_task

from fetcher.queues import TaskName

from .domain.sweeps import SweepChunk
from .services.sweeps import sweep_chunk_run

SWEEP_CHUNK_SOFT_TIME_LIMIT_S = 15 * 60
SWEEP_CHUNK_TIME_LIMIT_S = SWEEP_CHUNK_SOFT_TIME_LIMIT_S + 60


@shared_task(
    name=TaskName.BACKTEST_SWEEP_CHUNK,
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=SWEEP_CHUNK_TIME_LIMIT_S,
    soft_time_limit=SWEEP_CHUNK_SOFT_TIME_LIMIT_S,
)
def sweep_chunk(chunk: dict) -> int:
    """Backtest a chunk of a sweep's grid (SweepChunk.to_json); safe to run twice (stored
    points are skipped)."""
    return sweep_chunk_run(chunk=SweepChunk.from_json(chunk))
