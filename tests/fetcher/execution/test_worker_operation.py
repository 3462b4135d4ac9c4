"""The ibkr worker in operation never pretends: a taken client id, a gateway kept down (one mail
to a real SMTP server, and one when it is back), workers started during a run, recoveries raced.
Real `celery worker` processes, Redis, PostgreSQL and the simulator over a socket."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

from fetcher.domain.requests import FetchRequest
from fetcher.models import FetchRun, Incident, IncidentKind, RunStatus
from fetcher.services.fetch_runs import fetch_run_create
from ibsim.server import Faults, GatewaySimulator, SimConfig
from tests.support import (
    DEPLOYED_SHAPE,
    ROOT,
    enqueue,
    free_port,
    wait_finished,
    wait_until,
    worker_database_url,
)

pytestmark = [pytest.mark.django_db(transaction=True), *DEPLOYED_SHAPE]

YEAR = ("2025-01-01", "2025-12-31")  # of 1-minute bars: 250 requests an instrument
JANUARY = ("2024-01-02", "2024-01-31")
CONNECTED = "connected to gateway"
CLASH = "already in use"


@pytest.fixture
def gateway_at():
    """Simulators on one port, one after the other: stopping one and starting the next is a
    gateway restart. All are stopped at the end."""
    port, started = free_port(), []

    def start(**config) -> GatewaySimulator:
        sim = GatewaySimulator(SimConfig(port=port, **config)).start_in_thread()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop_thread()


def runs_done(worker_logs: list[str]) -> list[str]:
    """The fetch tasks the workers executed to the end, by task id, from their logs."""
    return [
        task_id
        for log in worker_logs
        for task_id in re.findall(r"Task fetcher\.fetch_run\[([\w-]+)\] succeeded", log)
    ]


def test_two_workers_with_one_client_id_serve_every_run_once(gateway_at, workers, ib_factory):
    """Another client holds the id both workers use: neither takes a run (the run waits in the
    queue, not failed); it lets go, one worker connects and serves; the other keeps trying
    and takes none. After a gateway restart they race again: every run still ends once."""
    sim = gateway_at()
    holder = ib_factory(sim, client_id=31)
    a = workers(sim, client_id=31, name="ibkr-a")
    b = workers(sim, client_id=31, name="ibkr-b")
    for worker in (a, b):
        worker.wait_for(CLASH, 30)
        assert "taking no runs" in worker.text()
    waiting = enqueue("AAPL", *JANUARY, "DAILY")
    # both have tried (and failed) again since: neither took the run, nor failed it
    attempts = [w.text().count("still cannot connect") for w in (a, b)]
    a.wait_for("still cannot connect", 60, count=attempts[0] + 1)
    b.wait_for("still cannot connect", 60, count=attempts[1] + 1)
    assert FetchRun.objects.get(pk=waiting.pk).status == RunStatus.PENDING
    holder.disconnect()
    first = [waiting, enqueue("MSFT", *JANUARY, "DAILY")]
    for run in first:
        assert wait_finished(run.pk, 120).status == RunStatus.SUCCEEDED
    served_by_first = sim.stats.counts["historical_requests"]

    sim.stop_thread()  # the gateway restarts: both workers lose it, then race for the id
    wait_until(lambda: "gateway unavailable" in a.text() + b.text(), 30, "the drop seen")
    connections = (a.text() + b.text()).count(CONNECTED)
    restarted = gateway_at()
    wait_until(lambda: (a.text() + b.text()).count(CONNECTED) > connections, 120, "reconnected")
    second = [enqueue(s, *JANUARY, "DAILY") for s in ("NVDA", "GOOGL", "AMZN")]
    for run in second:
        assert wait_finished(run.pk, 120).status == RunStatus.SUCCEEDED

    runs = [FetchRun.objects.get(pk=r.pk) for r in first + second]
    # a task's "succeeded" line is logged after its run has ended in the database
    wait_until(lambda: len(runs_done([a.text(), b.text()])) >= len(runs), 30, "the tasks logged")
    assert sorted(runs_done([a.text(), b.text()])) == sorted(r.task_id for r in runs)
    assert all(r.recoveries == 0 and r.chunks_done == r.chunks_planned == 1 for r in runs)
    assert served_by_first == 2 and restarted.stats.counts["historical_requests"] == 3
    assert a.proc.poll() is None and b.proc.poll() is None  # the loser stays up, honestly
    assert CLASH in a.text() + b.text()


def test_workers_started_during_a_run_leave_it_to_the_worker_executing_it(sim_factory, workers):
    """A healthy run of 500 requests; three more ibkr workers start at once while it goes on:
    none resumes it (its heartbeat is fresh), it ends once, every request sent once."""
    sim = sim_factory(latency_s=5.0)  # 50 open requests of 5 s: the run lasts about 50 s
    workers(sim, client_id=31)
    run = enqueue("AAPL,MSFT", *YEAR, "1-MINUTE")
    wait_until(lambda: FetchRun.objects.get(pk=run.pk).chunks_done >= 20, 120, "progress")
    late = [workers(sim, client_id=41 + n, name=f"ibkr-late{n}", wait=False) for n in range(3)]
    for worker in late:
        worker.wait_for("ready.", 60)  # its start-up recovery is done
    assert FetchRun.objects.get(pk=run.pk).status == RunStatus.RUNNING
    assert not any("resuming" in worker.text() for worker in late)
    done = wait_finished(run.pk, 300)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.recoveries == 0 and done.chunks_done == done.chunks_planned == 500
    assert sim.stats.counts["historical_requests"] == 500  # nothing executed twice


def test_a_stale_run_is_resumed_by_one_of_processes_racing(clean_broker):
    """Four processes (workers starting at once, beat) each find the same run stale, then all
    try to resume it at the same moment: it is queued again once, counted once."""
    run = fetch_run_create(request=FetchRequest.parse(instruments="AAPL"))
    silent = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    FetchRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, heartbeat_at=silent)
    barrier = "ibdata:test:recover-barrier"
    clean_broker.delete(barrier)
    script = (
        "import time, redis\n"
        "from django.conf import settings\n"
        "from fetcher.selectors import fetch_runs_orphaned\n"
        "from fetcher.services.recovery import fetch_run_recover\n"
        "found = fetch_runs_orphaned(stale_after_s=60)\n"
        "r = redis.Redis.from_url(settings.REDIS_URL)\n"
        f"r.incr({barrier!r})\n"
        f"while int(r.get({barrier!r})) < 4: time.sleep(0.01)\n"
        "print([i for i in found if fetch_run_recover(run_id=i, stale_after_s=60)])\n"
    )
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0].strip().splitlines()[-1] for p in procs]
    assert sorted(outputs) == sorted(["[]", "[]", "[]", f"[{run.pk}]"]), outputs
    assert FetchRun.objects.get(pk=run.pk).recoveries == 1
    assert clean_broker.llen("ibkr") == 1
    clean_broker.delete(barrier)


def test_a_gateway_kept_down_is_mailed_once_and_once_when_back(gateway_at, workers, smtp):
    """The gateway stops for longer than IBKR_ALERT_AFTER_S: one mail to the admins, through a
    real SMTP server, however long it stays down; one more when the worker is connected again,
    and it takes runs again."""
    sim = gateway_at()
    worker = workers(
        sim,
        client_id=31,
        env={
            "EMAIL_URL": smtp.url,
            "DJANGO_ADMINS": "Ops <ops@example.com>",
            "IBKR_ALERT_AFTER_S": "2",
        },
    )
    sim.stop_thread()
    wait_until(lambda: smtp.messages, 60, "the down mail")
    [down] = smtp.messages
    key = f"127.0.0.1:{sim.port} (client id 31)"
    assert down["Subject"] == f"[ibdata] Gateway Unreachable: {key}"
    assert down["X-Envelope-To"] == "ops@example.com"
    body = down.get_content()
    assert "has not been able to connect" in body and "connection refused" in body
    assert "two-factor" in body  # a refused port is also how a logged-off gateway looks
    # still down: more attempts, no more mail
    tries = worker.text().count("still cannot connect")
    worker.wait_for("still cannot connect", 60, count=tries + 2)
    assert len(smtp.messages) == 1

    gateway_at()  # back
    wait_until(lambda: len(smtp.messages) == 2, 120, "the back mail")
    back = smtp.messages[1]
    assert back["Subject"] == f"[ibdata] over: Gateway Unreachable: {key}"
    assert "connected to its gateway" in back.get_content()
    run = enqueue("AAPL", *JANUARY, "DAILY")
    assert wait_finished(run.pk, 120).status == RunStatus.SUCCEEDED
    assert len(smtp.messages) == 2
    incident = Incident.objects.get()
    assert incident.kind == IncidentKind.GATEWAY_UNREACHABLE and incident.closed_at is not None


def test_a_competing_session_is_mailed_once_and_once_when_over(sim_factory, workers, smtp):
    """Another login takes the market data (10197) in the middle of a month of minutes: one
    mail when it begins, one when requests are answered again, and every bar arrives."""
    sim = sim_factory(faults=Faults(competing_after_requests=5, competing_s=3.0))
    workers(sim, env={"EMAIL_URL": smtp.url, "DJANGO_ADMINS": "Ops <ops@example.com>"})
    run = enqueue("AAPL", *JANUARY, "1-MINUTE")
    assert wait_finished(run.pk, 180).status == RunStatus.SUCCEEDED
    wait_until(lambda: len(smtp.messages) == 2, 60, "the two mails")
    begun, over = smtp.messages
    key = f"127.0.0.1:{sim.port}"
    assert begun["Subject"] == f"[ibdata] Competing Session: {key}"
    assert "log the other session out" in begun.get_content()
    assert over["Subject"] == f"[ibdata] over: Competing Session: {key}"
    assert FetchRun.objects.get(pk=run.pk).bars_stored == 21 * 390
    assert Incident.objects.get(kind=IncidentKind.COMPETING_SESSION).closed_at is not None
