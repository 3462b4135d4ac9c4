"""What several test modules share: where the project is, real Celery worker processes, and
waiting for a run to end."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
# Celery's keys in the broker: the queues and the Redis transport's unacked bookkeeping.
QUEUE_KEYS = ("ibkr", "default", "backtests", "unacked", "unacked_index", "unacked_mutex")
# Tests of the deployed shape: worker processes share PostgreSQL and Redis with the test.
DEPLOYED_SHAPE = [
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis (REDIS_URL)"),
    pytest.mark.skipif(
        not django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="worker processes need a shared database (PostgreSQL)",
    ),
]


def worker_database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """A real `celery worker` process (by default the ibkr worker: -Q ibkr --pool solo)."""

    def __init__(
        self,
        env: dict,
        log: Path,
        name: str,
        *,
        queues: tuple[str, ...] = ("ibkr",),
        pool: str = "solo",
        concurrency: int = 1,
    ):
        self.env, self.log, self.name = env, log, name
        self.queues, self.pool, self.concurrency = queues, pool, concurrency
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> Worker:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "ibdata_project",
                "worker",
                "-Q",
                ",".join(self.queues),
                "--pool",
                self.pool,
                "--concurrency",
                str(self.concurrency),
                "-n",
                f"{self.name}@%h",
                "-E",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
                "--logfile",
                str(self.log),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if wait:
            self.wait_for("ready.", 60)
        return self

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists() and text in self.log.read_text(errors="replace"):
                return
            if self.proc and self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"worker {self.name}: no {text!r} in its log:\n{self.log.read_text(errors='replace')[-3000:]}"
        )

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_finished(run_id: int, timeout: float):
    """The run once it has ended (succeeded, partial, failed or cancelled)."""
    from fetcher.models import FetchRun, RunStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = FetchRun.objects.get(pk=run_id)
        if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
            return run
        time.sleep(0.5)  # the simulator shares this process: poll gently
    raise AssertionError(
        f"run {run_id} still {FetchRun.objects.get(pk=run_id).status} after {timeout}s"
    )
