"""Celery queues and task names, in one place, and how the layers below the tasks enqueue them.

Services enqueue a task by its name, so nothing below `fetcher.tasks` imports it.
"""

from __future__ import annotations

from enum import StrEnum


class Queue(StrEnum):
    IBKR = "ibkr"  # one worker per gateway connection, concurrency 1
    DEFAULT = "default"  # housekeeping
    BACKTESTS = "backtests"


class TaskName(StrEnum):
    FETCH_RUN = "fetcher.fetch_run"
    FETCH_RUNS_RECOVER = "fetcher.fetch_runs_recover"
    FETCH_SCHEDULE = "fetcher.fetch_schedule"  # sent by beat: starts a schedule's fetch run
    BACKTEST_SWEEP_CHUNK = "backtests.sweep_chunk"


# Which queue each task goes to (CELERY_TASK_ROUTES routes by it, for every sender).
TASK_QUEUES: dict[str, Queue] = {
    TaskName.FETCH_RUN: Queue.IBKR,
    TaskName.FETCH_RUNS_RECOVER: Queue.DEFAULT,
    TaskName.FETCH_SCHEDULE: Queue.DEFAULT,
    TaskName.BACKTEST_SWEEP_CHUNK: Queue.BACKTESTS,
}
TASK_ROUTES = {name: {"queue": queue.value} for name, queue in TASK_QUEUES.items()} | {
    "backtests.*": {"queue": Queue.BACKTESTS.value}
}


def task_send(name: str, *args) -> str:
    """Queue the task `name` and return its id. With no broker configured (the embedded
    default), the task runs here and now, as Celery's eager mode runs any task."""
    from celery import current_app

    if current_app.conf.task_always_eager:
        current_app.loader.import_default_modules()  # registers the tasks (autodiscovery)
        # apply(), not apply_async(): eager apply_async still takes a producer from the broker
        # connection pool, and with no broker that logs a warning on every call.
        return current_app.tasks[name].apply(args).id
    return current_app.send_task(name, args=args).id
