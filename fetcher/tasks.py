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
    # captured here: the callback runs on the gateway's loop thread, where the task's
    # (thread-local) request is not visible
    task_id, eager = self.request.id, self.request.is_eager

    def progress(event: dict) -> None:  # task state for Flower, at most twice a second
        now = time.monotonic()
        if task_id and not eager and now - last[0] > 0.5:
            last[0] = now
            keys = ("run_id", "chunks_done", "chunks_planned", "bars", "instrument")
            self.update_state(
                task_id=task_id, state="PROGRESS", meta={k: event.get(k) for k in keys}
            )

    return fetch_run_execute(run_id=run_id, progress=progress, persistent=not eager).status


@shared_task(name="fetcher.fetch_runs_recover", acks_late=True)
def fetch_runs_recover_task(stale_after_s: float | None = STALE_AFTER_S) -> list[int]:
    """Resume runs whose worker died (or fail them after repeated deaths)."""
    return fetch_runs_resume(stale_after_s=stale_after_s)


def fetch_runs_resume(*, stale_after_s: float | None) -> list[int]:
    resumed = []
    for run_id in services.fetch_runs_orphaned(stale_after_s=stale_after_s):
        if services.fetch_run_recovery(run_id=run_id, max_recoveries=MAX_RECOVERIES):
            services.fetch_run_enqueue(run_id=run_id)
            resumed.append(run_id)
    return resumed
