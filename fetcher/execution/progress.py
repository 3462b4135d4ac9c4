"""A running fetch's progress as Celery task state and task events, for Flower (twice a second at most)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .outages import one_line

log = logging.getLogger("ibdata.fetch")

PROGRESS_STATE = "PROGRESS"
# Flower builds its task pages from task events, and a custom event type becomes the task's
# state there: "task-progress" shows as PROGRESS, its `result` field as the task's result.
PROGRESS_EVENT = "task-progress"
PROGRESS_EVERY_S = 0.5
PROGRESS_KEYS = (
    "run_id",
    "chunks_done",
    "chunks_planned",
    "bars",
    "instrument",
    "requests_per_gateway",  # several gateways share the run: what each one answered
)


class TaskProgress:
    """A progress callback for RunExecutor: the task's state becomes PROGRESS in the result
    backend (AsyncResult, Flower's /api/task/result) and a task-progress event carries the same
    counts to Flower's task page and /api/task/info.

    Called on the gateway's loop thread, so the task's id and worker are captured here (its
    request is thread-local), and the counts go out from a thread of their own: the loop never
    waits on Redis for them. They go out at most every PROGRESS_EVERY_S; the last ones
    PROGRESS_EVERY_S later at most, so what Flower shows is never older. `close()` before the
    task returns: nothing goes out after it, so PROGRESS never overwrites the final state."""

    def __init__(self, task) -> None:
        self.task = task
        self.task_id = task.request.id
        self.hostname = task.request.hostname
        self.enabled = bool(self.task_id) and not task.request.is_eager
        self.meta: dict = dict.fromkeys(PROGRESS_KEYS)
        self._last = 0.0
        self._later: asyncio.TimerHandle | None = None
        self._lock = threading.Lock()
        self._failing = False  # the last publication failed (said once in the log)
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="task-progress")

    def __call__(self, event: dict) -> None:
        # counts are the run's so far; the instrument is the last one an event named
        self.meta.update((k, event[k]) for k in PROGRESS_KEYS if event.get(k) is not None)
        if not self.enabled:
            return
        wait = self._last + PROGRESS_EVERY_S - time.monotonic()
        if wait <= 0:
            self._send()
        elif self._later is None:
            self._later = asyncio.get_running_loop().call_later(wait, self._send)

    def _send(self) -> None:
        """On the loop: take the counts as they are now, hand them to the sender thread."""
        self._later = None
        self._last = time.monotonic()
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            self._sender.submit(self._publish, dict(self.meta))

    def _publish(self, meta: dict) -> None:
        with self._lock:
            if not self.enabled:
                return
            try:
                self.task.update_state(task_id=self.task_id, state=PROGRESS_STATE, meta=meta)
                with self.task.app.events.default_dispatcher(hostname=self.hostname) as events:
                    events.send(PROGRESS_EVENT, uuid=self.task_id, result=meta)
            except Exception as exc:  # progress is for display: the run goes on without it
                if not self._failing:
                    log.warning("progress not published (%s): the run goes on", one_line(exc))
                self._failing = True
            else:
                if self._failing:
                    log.warning("progress published again")
                self._failing = False

    def close(self) -> None:
        with self._lock:
            self.enabled = False  # a publication still queued will find it so
        self._sender.shutdown(wait=True)
