"""Celery queues and task names, in one place, and how the layers below the tasks enqueue them.

Services enqueue a task by its name, so nothing below `fetcher.tasks` imports it.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from enum import StrEnum


class Queue(StrEnum):
    IBKR = "ibkr"  # one worker per gateway connection, concurrency 1
    DEFAULT = "default"  # housekeeping
    BACKTESTS = "backtests"


class TaskName(StrEnum):
    FETCH_RUN = "fetcher.fetch_run"
    FETCH_RUNS_RECOVER = "fetcher.fetch_runs_recover"
    FETCH_SCHEDULE = "fetcher.fetch_schedule"  # sent by beat: starts a schedule's fetch run
    BARS_CHECK = "fetcher.bars_check"  # `bars check`, sent by beat when scheduled
    BACKTEST_SWEEP_CHUNK = "backtests.sweep_chunk"


# Which queue each task goes to (CELERY_TASK_ROUTES routes by it, for every sender).
TASK_QUEUES: dict[str, Queue] = {
    TaskName.FETCH_RUN: Queue.IBKR,
    TaskName.FETCH_RUNS_RECOVER: Queue.DEFAULT,
    TaskName.FETCH_SCHEDULE: Queue.DEFAULT,
    TaskName.BARS_CHECK: Queue.DEFAULT,
    TaskName.BACKTEST_SWEEP_CHUNK: Queue.BACKTESTS,
}
TASK_ROUTES = {name: {"queue": queue.value} for name, queue in TASK_QUEUES.items()} | {
    "backtests.*": {"queue": Queue.BACKTESTS.value}
}


# Tasks run in this process in the background (the embedded default): one thread per queue, as
# a deployed queue's worker takes one task at a time (the ibkr queue's one gateway connection).
_queue_threads: dict[str, ThreadPoolExecutor] = {}
_in_process: dict[str, Future] = {}
_lock = threading.Lock()


def task_send(name: str, *args, background: bool = False) -> str:
    """Queue the task `name` and return its id. With no broker configured (the embedded
    default), the task runs in this process, as Celery's eager mode runs any task: here and
    now, or with `background` on its queue's thread (task_running / task_join follow it)."""
    from celery import current_app, uuid

    if not current_app.conf.task_always_eager:
        return current_app.send_task(name, args=args).id
    current_app.loader.import_default_modules()  # registers the tasks (autodiscovery)
    task = current_app.tasks[name]
    # apply(), not apply_async(): eager apply_async still takes a producer from the broker
    # connection pool, and with no broker that logs a warning on every call.
    if not background:
        return task.apply(args).id
    task_id = uuid()

    def apply() -> None:
        from django.db import connections

        try:
            task.apply(args, task_id=task_id)
        finally:
            connections.close_all()  # this thread's own connections

    queue = TASK_QUEUES.get(name, Queue.DEFAULT)
    with _lock:
        if queue not in _queue_threads:
            _queue_threads[queue] = ThreadPoolExecutor(1, thread_name_prefix=f"queue-{queue}")
        _in_process[task_id] = _queue_threads[queue].submit(apply)
    return task_id


def task_running(task_id: str) -> bool | None:
    """Whether an in-process task is still waiting or running; None for a task this process
    did not run in the background (a worker's, or an unknown one)."""
    future = _in_process.get(task_id)
    return None if future is None else not future.done()


def task_join(task_id: str) -> None:
    """Wait for an in-process task to end (nothing to wait for otherwise)."""
    future = _in_process.pop(task_id, None)
    if future is not None:
        future.result()
