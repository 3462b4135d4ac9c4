"""Celery tasks: thin wrappers that load ids and call services."""

from __future__ import annotations

from celery import shared_task

from .queues import Queue


@shared_task(
    name="fetcher.fetch_run",
    queue=Queue.IBKR,
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=24 * 3600,
    soft_time_limit=24 * 3600 - 60,
)
def fetch_run_task(run_id: int) -> str:
    """Execute a fetch run; safe to run twice (done chunks are skipped, bars are upserted)."""
    from .fetching import fetch_run_execute

    return fetch_run_execute(run_id=run_id).status
