"""A running fetch's progress as Celery task state and task events, for Flower (twice a second at most)."""

from __future__ import annotations

import time

PROGRESS_STATE = "PROGRESS"
# Flower builds its task pages from task events, and a custom event type becomes the task's
# state there: "task-progress" shows as PROGRESS, its `result` field as the task's result.
PROGRESS_EVENT = "task-progress"
PROGRESS_EVERY_S = 0.5
PROGRESS_KEYS = ("run_id", "chunks_done", "chunks_planned", "bars", "instrument")


class TaskProgress:
    """A progress callback for RunExecutor: the task's state becomes PROGRESS in the result
    backend (AsyncResult, Flower's /api/task/result) and a task-progress event carries the same
    counts to Flower's task page and /api/task/info.

    The task's id and worker are captured here: the callback runs on the gateway's loop thread,
    where the task's (thread-local) request is not visible."""

    def __init__(self, task) -> None:
        self.task = task
        self.task_id = task.request.id
        self.hostname = task.request.hostname
        self.enabled = bool(self.task_id) and not task.request.is_eager
        self.meta: dict = dict.fromkeys(PROGRESS_KEYS)
        self._last = 0.0

    def __call__(self, event: dict) -> None:
        # counts are the run's so far; the instrument is the last one an event named
        self.meta.update((k, event[k]) for k in PROGRESS_KEYS if event.get(k) is not None)
        now = time.monotonic()
        if not self.enabled or now - self._last < PROGRESS_EVERY_S:
            return
        self._last = now
        meta = dict(self.meta)
        self.task.update_state(task_id=self.task_id, state=PROGRESS_STATE, meta=meta)
        with self.task.app.events.default_dispatcher(hostname=self.hostname) as dispatcher:
            dispatcher.send(PROGRESS_EVENT, uuid=self.task_id, result=meta)
