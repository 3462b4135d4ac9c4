"""Runs whose worker died (their heartbeat went stale): resumed (queued again), or failed after
too many deaths (what they stored exported to the catalog). A run whose executor still beats is
never touched, whoever looks."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from fetcher.models import FetchRun, RunStatus
from fetcher.selectors import fetch_runs_orphaned
from fetcher.storage.catalog import default_root
from fetcher.timings import MAX_RECOVERIES

from .alerts import scheduled_run_alert
from .fetch_runs import fetch_run_enqueue
from .items import fetch_run_store_finish


def fetch_run_recover(
    *, run_id: int, stale_after_s: float, max_recoveries: int = MAX_RECOVERIES
) -> bool:
    """Count a resumption of an orphaned run and queue it again (True), or fail it after too
    many (False). Decided under the run's row lock, on its heartbeat as it is then: of two
    processes looking at once, the second finds the heartbeat the first renewed, and leaves
    the run alone; so does everyone while its executor beats."""
    with transaction.atomic():
        run = FetchRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING:
            return False
        stale_before = timezone.now() - dt.timedelta(seconds=stale_after_s)
        if run.heartbeat_at is not None and run.heartbeat_at >= stale_before:
            return False  # alive, or just resumed by another process
        if run.recoveries >= max_recoveries:
            run.status, run.finished_at = RunStatus.FAILED, timezone.now()
            run.error = f"the worker running it died {run.recoveries + 1} times; giving up"
            run.save()
            transaction.on_commit(lambda: scheduled_run_alert(run_id=run_id))
            # what it stored goes to the catalog all the same
            transaction.on_commit(
                lambda: fetch_run_store_finish(run_id=run_id, catalog_root=default_root())
            )
            return False
        run.recoveries += 1
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["recoveries", "heartbeat_at"])
        fetch_run_enqueue(run_id=run_id)
        return True


def fetch_runs_recover(*, stale_after_s: float) -> list[int]:
    """Queue again every run whose heartbeat is older than `stale_after_s` (see
    selectors.fetch_runs_orphaned); the ids queued."""
    return [
        run_id
        for run_id in fetch_runs_orphaned(stale_after_s=stale_after_s)
        if fetch_run_recover(run_id=run_id, stale_after_s=stale_after_s)
    ]
