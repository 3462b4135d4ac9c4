"""Runs whose worker died: resumed (queued again), or failed after too many deaths."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from fetcher.models import FetchRun, RunStatus
from fetcher.selectors import fetch_runs_orphaned
from fetcher.timings import MAX_RECOVERIES

from .fetch_runs import fetch_run_enqueue


def fetch_run_recover(*, run_id: int, max_recoveries: int = MAX_RECOVERIES) -> bool:
    """Count a resumption of an orphaned run (True), or fail it after too many (False)."""
    with transaction.atomic():
        run = FetchRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING:
            return False
        if run.recoveries >= max_recoveries:
            run.status, run.finished_at = RunStatus.FAILED, timezone.now()
            run.error = f"the worker running it died {run.recoveries + 1} times; giving up"
            run.save()
            return False
        run.recoveries += 1
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["recoveries", "heartbeat_at"])
        return True


def fetch_runs_recover(*, stale_after_s: float | None) -> list[int]:
    """Queue again every orphaned run (see selectors.fetch_runs_orphaned); the ids queued."""
    resumed = []
    for run_id in fetch_runs_orphaned(stale_after_s=stale_after_s):
        if fetch_run_recover(run_id=run_id):
            fetch_run_enqueue(run_id=run_id)
            resumed.append(run_id)
    return resumed
