"""Shared fixtures: the gateway simulator on a free loopback port, and real clients (ib_insync,
ib_async) on it."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import signal
import socket
import subprocess
import sys

import pytest
import redis
from django.conf import settings as django_settings

from ibsim.server import Faults, GatewaySimulator, SimConfig
from tests.support import (
    QUEUE_KEYS,
    ROOT,
    SmtpServer,
    Worker,
    deployed_env,
    free_port,
    wait_until,
)

_client_ids = itertools.count(100)


@pytest.fixture
def sim_factory():
    """Start simulators with a given configuration; all are stopped at the end of the test."""
    started: list[GatewaySimulator] = []

    def start(**config) -> GatewaySimulator:
        faults = config.pop("faults", None) or Faults()
        sim = GatewaySimulator(SimConfig(port=0, faults=faults, **config)).start_in_thread()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop_thread()


@pytest.fixture
def sim(sim_factory) -> GatewaySimulator:
    return sim_factory()


def ensure_loop() -> None:
    """asyncio.run() (the commands use it) leaves the main thread without an event loop."""
    try:
        if not asyncio.get_event_loop_policy().get_event_loop().is_closed():
            return
    except RuntimeError:
        pass
    asyncio.set_event_loop(asyncio.new_event_loop())


@pytest.fixture
def ib_factory():
    """Connect real clients (ib_insync's IB, or `library`'s: ib_async); all are disconnected at
    the end of the test."""
    clients: list = []

    def connect(
        sim: GatewaySimulator,
        client_id: int | None = None,
        readonly: bool = True,
        timeout: float = 5,
        library: str = "ib_insync",
    ):
        ensure_loop()
        ib = importlib.import_module(library).IB()
        ib.RaiseRequestErrors = True
        clients.append(ib)
        ib.connect(
            "127.0.0.1",
            sim.port,
            clientId=client_id or next(_client_ids),
            readonly=readonly,
            timeout=timeout,
        )
        return ib

    yield connect
    for ib in clients:
        ib.disconnect()


@pytest.fixture
def ib(sim, ib_factory):
    return ib_factory(sim)


@pytest.fixture
def in_process_tasks():
    """Run fetches in this process (the embedded default), whatever REDIS_URL says."""
    from fetcher import queues
    from ibdata_project.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    for task_id in list(queues._in_process):  # runs started in the background end in the test
        queues.task_join(task_id)
    app.conf.task_always_eager = before


@pytest.fixture
def gateway(sim, settings, tmp_path, in_process_tasks):
    """Point the project at a fresh simulator and a fresh catalog; tasks run in this process."""
    settings.IBKR_HOST = "127.0.0.1"
    settings.IBKR_PORT = sim.port
    settings.DATA_DIR = tmp_path
    return sim


@pytest.fixture
def clean_broker():
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    client.delete(*QUEUE_KEYS)
    for key in client.scan_iter("ibdata:pacer:*"):
        client.delete(key)
    yield client
    client.delete(*QUEUE_KEYS)


@pytest.fixture
def workers(tmp_path, clean_broker):
    started: list[Worker] = []

    def start(
        sim,
        *,
        client_id: int = 31,
        time_scale: float = 1.0,
        wait: bool = True,
        name: str = "",
        queues: tuple[str, ...] = ("ibkr",),
        env: dict[str, str] | None = None,
    ) -> Worker:
        env = deployed_env(
            tmp_path,
            sim,
            IBKR_CLIENT_ID=str(client_id),
            IBKR_PACING_TIME_SCALE=str(time_scale),
            # at 600x the gateway's windows are milliseconds: on a loaded test machine allow
            # half a second between admission and arrival
            IBKR_PACING_MARGIN_S="0.5",
            **(env or {}),
        )
        worker = Worker(
            env,
            tmp_path / f"worker-{len(started)}.log",
            name or f"{queues[0]}{len(started)}",
            queues=queues,
        )
        started.append(worker)
        return worker.start(wait=wait)

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def smtp():
    """A real SMTP server on a free loopback port, collecting what is sent to it."""
    server = SmtpServer().start()
    yield server
    server.stop()


class SimProcesses:
    """Simulators in processes of their own, as `python -m ibsim OPTIONS` runs them: each
    call starts one and returns the port it listens on; `kill(port)` ends one with SIGKILL."""

    def __init__(self):
        self.started: dict[int, subprocess.Popen] = {}

    def __call__(self, *options: str) -> int:
        port = free_port()
        command = [sys.executable, "-m", "ibsim", "--host", "127.0.0.1", "--port", str(port)]
        self.started[port] = subprocess.Popen(
            [*command, *options], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, 60, "simulator listening")
        return port

    def kill(self, port: int) -> None:
        self.started[port].send_signal(signal.SIGKILL)
        self.started[port].wait(10)

    def stop(self) -> None:
        for proc in self.started.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(15)


@pytest.fixture
def sim_processes():
    """Start simulators in processes of their own; every one is stopped at the end of the test."""
    started = SimProcesses()
    yield started
    started.stop()


@pytest.fixture
def s3(tmp_path, monkeypatch, settings):
    """A real S3-compatible server (moto's, in its own process) on a free loopback port, with a
    bucket; this process's AWS_* settings and variables point at it, and so do deployed_env's."""
    from tests.support.catalog import S3Server

    server = S3Server(tmp_path / "s3.log").start()
    for name, value in server.env_vars.items():
        monkeypatch.setenv(name, value)
        setattr(settings, name, value)
    yield server
    server.stop()
