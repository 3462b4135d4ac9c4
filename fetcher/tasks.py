"""Celery tasks: thin, each calls one service or executor.

Each task's queue is declared beside its name in fetcher.queues (TASK_QUEUES, routed through
CELERY_TASK_ROUTES): Celery deprecates the per-task `queue` attribute for task_routes.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import Reject
from django.conf import settings

from .exceptions import InvalidInput, RunHandedBack
from .execution.executor import fetch_run_execute
from .execution.progress import TaskProgress
from .execution.worker import fetch_run_execute_on_worker
from .queues import TaskName
from .services.alerts import fetch_schedule_broken, scheduled_run_alert
from .services.checks import bars_check_scheduled
from .services.recovery import fetch_runs_recover
from .services.schedules import ScheduledFetch, fetch_schedule_fire
from .storage.catalog import default_root
from .timings import (
    CHECK_TASK_TIME_LIMIT_S,
    FETCH_TASK_SOFT_TIME_LIMIT_S,
    FETCH_TASK_TIME_LIMIT_S,
)

log = logging.getLogger("ibdata.check")


@shared_task(
    bind=True,
    name=TaskName.FETCH_RUN,
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=FETCH_TASK_TIME_LIMIT_S,
    soft_time_limit=FETCH_TASK_SOFT_TIME_LIMIT_S,
)
def fetch_run(self, run_id: int) -> str:
    """Execute a fetch run; safe to run twice (done chunks are skipped, bars are upserted). A
    worker not connected to its gateway hands the run back to the queue, untouched. A
    schedule's run that fails tells the admins."""
    execute = fetch_run_execute if self.request.is_eager else fetch_run_execute_on_worker
    progress = TaskProgress(self)
    try:
        run = execute(run_id=run_id, progress=progress)
    except RunHandedBack as exc:
        raise Reject(str(exc), requeue=True) from None
    finally:
        progress.close()  # no PROGRESS after the task's final state
    scheduled_run_alert(run_id=run.pk)
    return run.status


@shared_task(name=TaskName.FETCH_RUNS_RECOVER, acks_late=True)
def fetch_runs_recover_task(stale_after_s: float | None = None) -> list[int]:
    """Resume runs whose worker died (or fail them after repeated deaths): silent for
    `stale_after_s` (default FETCH_STALE_AFTER_S)."""
    return fetch_runs_recover(stale_after_s=stale_after_s or settings.FETCH_STALE_AFTER_S)


@shared_task(bind=True, name=TaskName.FETCH_SCHEDULE, acks_late=True)
def fetch_schedule(self, **kwargs) -> str:
    """Start a schedule's fetch run (beat names the schedule in a header). Safe to run twice:
    the second delivery finds the first one's run going and starts nothing."""
    schedule = self.request.get("periodic_task_name") or ""
    try:
        handle = fetch_schedule_fire(schedule=schedule, fetch=ScheduledFetch.from_json(kwargs))
    except InvalidInput as exc:
        fetch_schedule_broken(schedule=schedule, error=str(exc))
        raise
    return (
        f"started run {handle.run_id}" if handle else "not started: the previous run is still going"
    )


@shared_task(name=TaskName.BARS_CHECK, acks_late=True, time_limit=CHECK_TASK_TIME_LIMIT_S)
def bars_check_task(instruments: str = "", timeframe: str = "") -> str:
    """`manage.py bars check` run by beat: each series' result kept on its row (the admin shows
    it), findings in the worker's log and an incident for the admins. Safe to run twice: it
    only reads, and records."""
    report = bars_check_scheduled(
        catalog_root=default_root(), instruments=instruments, timeframe=timeframe
    )
    for check in report.checks:
        for line in check.lines:
            log.warning("bars check: %s", line)
    return f"{len(report.checks)} series, {report.bars:,} bars: {report.findings} findings"
