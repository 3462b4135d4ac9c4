"""Celery queue names, in one place."""

from enum import StrEnum


class Queue(StrEnum):
    IBKR = "ibkr"  # one worker per gateway connection, concurrency 1
    DEFAULT = "default"  # housekeeping
    BACKTESTS = "backtests"


# Which queue each task goes to (CELERY_TASK_ROUTES).
TASK_ROUTES = {
    "fetcher.fetch_run": {"queue": Queue.IBKR.value},
    "fetcher.fetch_runs_recover": {"queue": Queue.DEFAULT.value},
    "backtests.*": {"queue": Queue.BACKTESTS.value},
}
