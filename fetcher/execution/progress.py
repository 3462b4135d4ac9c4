"""A running fetch's progress as Celery task state, which Flower shows (at most twice a second)."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("ibdata.fetch")

PROGRESS_STATE = "PROGRESS"
PROGRESS_EVERY_S = 0.5
PROGRESS_KEYS = ("run_id", "chunks_done", "chunks_planned", "bars", "instrument")


class TaskProgress:
    """A progress callback for RunExecutor that sets the task's state to PROGRESS.

    The task's id is captured here: the callback runs on the gateway's loop thread, where the
    task's (thread-local) request is not visible."""

    def __init__(self, task) -> None:
        self.task = task
        self.task_id = task.request.id
        self.enabled = bool(self.task_id) and not task.request.is_eager
        self._last = 0.0
        self._failing = False

    def __call__(self, event: dict) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < PROGRESS_EVERY_S:
            return
        self._last = now
        try:
            self.task.update_state(
                task_id=self.task_id,
                state=PROGRESS_STATE,
                meta={key: event.get(key) for key in PROGRESS_KEYS},
            )
        except Exception as exc:  # noqa: BLE001 - a display: the run goes on without it
            if not self._failing:
                log.warning("progress not shown in Flower while the result backend fails: %s", exc)
            self._failing = True
        else:
            self._failing = False
