"""A running fetch's progress as Celery task state, which Flower shows (at most twice a second)."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("ibdata.fetch")

PROGRESS_STATE = "PROGRESS"
PROGRESS_EVERY_S = 0.5
PROGRESS_KEYS = ("run_id", "chunks_done", "chunks_planned", "bars", "instrument")


class TaskProgress:
    """A progress callback for RunExecutor that sets the task's state to PROGRESS.

    The callback runs on the gateway's loop thread and only notes the latest counts; a thread
    of its own sends them to the result backend, so a slow or unreachable Redis never holds up
    the gateway connection. The task's id is captured here: the task's (thread-local) request
    is not visible from those threads. Use as a context manager: the sender ends with the task.
    """

    def __init__(self, task) -> None:
        self.task = task
        self.task_id = task.request.id
        self.enabled = bool(self.task_id) and not task.request.is_eager
        self._latest: dict | None = None
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._pause = threading.Event()
        self._closed = False
        self._failing = False
        self._sender: threading.Thread | None = None

    def __enter__(self) -> TaskProgress:
        if self.enabled:
            self._sender = threading.Thread(
                target=self._send_forever, name=f"progress-{self.task_id}", daemon=True
            )
            self._sender.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed = True
        self._changed.set()
        self._pause.set()
        if self._sender is not None:
            self._sender.join(timeout=5)

    def __call__(self, event: dict) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._latest = {key: event.get(key) for key in PROGRESS_KEYS}
        self._changed.set()

    def _send_forever(self) -> None:
        while not self._closed:
            self._changed.wait()
            self._changed.clear()
            with self._lock:
                meta, self._latest = self._latest, None
            if meta is not None and not self._closed:
                self._send(meta)
            self._pause.wait(PROGRESS_EVERY_S)  # at most twice a second; set when closing

    def _send(self, meta: dict) -> None:
        try:
            self.task.update_state(task_id=self.task_id, state=PROGRESS_STATE, meta=meta)
        except Exception as exc:  # noqa: BLE001 - a display: the run goes on without it
            if not self._failing:
                log.warning("progress not shown in Flower while the result backend fails: %s", exc)
            self._failing = True
        else:
            self._failing = False
