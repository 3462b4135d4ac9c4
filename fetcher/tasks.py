"""Celery tasks: thin wrappers that load ids and call services."""

from __future__ import annotations

import time

from celery import shared_task

from . import services

MAX_RECOVERIES = 3
STALE_AFTER_S = 60.0


@shared_task(
    bind=True,
    name="fetcher.fetch_run",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=24 * 3600,
    soft_time_limit=24 * 3600 - 60,
)
def fetch_run_task(self, run_id: int) -> str:
    """Execute a fetch run; safe to run twice (done chunks are skipped, bars are upserted)."""
    from .fetching import fetch_run_execute

    last = [0.0]

    def progress(event: dict) -> None:  # task state for Flower, at most twice a second
        now = time.monotonic()
        if self.request.id and not self.request.is_eager and now - last[0] > 0.5:
            last[0] = now
            self.update_state(state="PROGRESS", meta=services.fetch_run_progress(run_id=run_id))

    return fetch_run_execute(
        run_id=run_id, progress=progress, persistent=not self.request.is_eager
    ).status


@shared_task(name="fetcher.fetch_runs_recover", acks_late=True)
def fetch_runs_recover_task(stale_after_s: float | None = STALE_AFTER_S) -> list[int]:
    """Resume runs whose worker died (or fail them after repeated deaths)."""
    return fetch_runs_resume(stale_after_s=stale_after_s)


def fetch_runs_resume(*, stale_after_s: float | None) -> list[int]:
    resumed = []
    for run_id in services.fetch_runs_orphaned(stale_after_s=stale_after_s):
        if services.fetch_run_recovery(run_id=run_id, max_recoveries=MAX_RECOVERIES):
            fetch_run_task.apply_async((run_id,))
            resumed.append(run_id)
    return resumed
