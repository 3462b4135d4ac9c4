"""Fetches on real Celery workers: Redis broker, PostgreSQL, the simulator over a socket."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings

from fetcher.domain.requests import FetchRequest
from fetcher.models import Bar, Coverage, FetchRun, RunStatus
from fetcher.services.fetch_runs import fetch_run_create
from tests.support import (
    DEPLOYED_SHAPE,
    ROOT,
    bars_of,
    enqueue,
    recent_sessions,
    truth_times,
    wait_finished,
    wait_until,
    worker_database_url,
)

pytestmark = [pytest.mark.django_db(transaction=True), *DEPLOYED_SHAPE]

# Bars of 5 seconds exist for six months only: their tests fetch recent full sessions.
THREE = [d.isoformat() for d in recent_sessions(3)]
YEAR = ("2025-01-01", "2025-12-31")  # of 1-minute bars: 250 requests an instrument
STALE_S = 10  # FETCH_STALE_AFTER_S of the processes that find a dead worker's runs (default 60)


def test_fetch_through_the_ibkr_worker_equals_the_in_process_path(
    sim, workers, in_process_tasks, settings, tmp_path
):
    settings.IBKR_HOST, settings.IBKR_PORT, settings.DATA_DIR = (
        "127.0.0.1",
        sim.port,
        tmp_path / "inproc",
    )
    from fetcher.execution.executor import fetch_run_execute

    run = fetch_run_create(
        request=FetchRequest.parse(
            instruments="AAPL", timeframe="1-MINUTE", start="2024-01-02", end="2024-01-05"
        )
    )
    assert fetch_run_execute(run_id=run.pk).status == RunStatus.SUCCEEDED
    in_process = bars_of("AAPL", "1-MINUTE")
    assert len(in_process) == 4 * 390
    Bar.objects.all().delete()
    Coverage.objects.all().delete()

    # now the same run through a real worker (in_process_tasks restores the flag afterwards)
    workers(sim)
    from ibdata_project.celery import app

    app.conf.task_always_eager = False
    run = enqueue("AAPL", "2024-01-02", "2024-01-05", "1-MINUTE")
    done = wait_finished(run.pk, 60)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert bars_of("AAPL", "1-MINUTE") == in_process
    assert done.gateway_port == sim.port and done.server_version == 176


def test_two_fetches_from_two_processes_make_no_pacing_violation(sim_factory, workers):
    sim = sim_factory(time_scale=600)
    workers(sim, client_id=41, time_scale=600)
    workers(sim, client_id=42, time_scale=600)
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "IBKR_HOST": "127.0.0.1",
        "IBKR_PORT": str(sim.port),
    }
    args = ["--start", THREE[0], "--end", THREE[-1], "--timeframe", "5-SECOND", "--no-wait"]
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "fetch", "--instruments", symbols, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for symbols in ("AAPL,MSFT,NVDA", "GOOGL,AMZN,META")
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    runs = list(FetchRun.objects.all())
    assert len(runs) == 2
    for run in runs:
        done = wait_finished(run.pk, 180)
        assert done.status == RunStatus.SUCCEEDED, done.error
    assert sim.stats.pacing_violations == 0
    for symbol in ("AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META"):
        times = [int(r[0].timestamp()) for r in bars_of(symbol, "5-SECOND")]
        assert times == truth_times(sim, symbol, "5 secs", THREE[0], THREE[-1])
    assert sim.stats.counts["historical_requests"] == 6 * 3 * 7  # 7 requests a session


def test_two_processes_without_a_shared_pacer_break_the_gateway_rules(sim_factory, tmp_path):
    """The gateway counts pacing for all its connections: two fetches that pace themselves
    each on their own (no Redis) together send more than it allows. The test above, with the
    Redis pacer, sees none."""
    # 60 requests in any 10 s: each process sends 60 at once, then waits 10 s for its last 3,
    # so the two overlap whatever their start-up times
    sim = sim_factory(time_scale=60)
    args = ["--start", THREE[0], "--end", THREE[-1], "--timeframe", "5-SECOND"]
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "fetch", "--instruments", symbols, *args],
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": worker_database_url(),
                "REDIS_URL": "",  # tasks in-process, each with a pacer of its own
                "IBKR_HOST": "127.0.0.1",
                "IBKR_PORT": str(sim.port),
                "IBKR_CLIENT_ID": str(client_id),
                "IBKR_PACING_TIME_SCALE": "60",
                "DATA_DIR": str(tmp_path / f"data-{client_id}"),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for client_id, symbols in ((51, "AAPL,MSFT,NVDA"), (52, "GOOGL,AMZN,META"))
    ]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert sim.stats.counts["connections"] >= 2, outputs
    assert sim.stats.pacing_violations > 0, outputs


def test_a_killed_worker_resumes_the_run_on_restart(sim_factory, workers):
    """A year of 1-minute bars for two instruments (500 requests); the worker is killed (-9)
    a fifth of the way in; once the run's heartbeat is stale (FETCH_STALE_AFTER_S, 10 s here) a
    new worker resumes it when it starts, and every bar is stored once."""
    from fetcher.selectors import fetch_runs_orphaned

    sim = sim_factory()
    worker = workers(sim)
    run = enqueue("AAPL,MSFT", YEAR[0], YEAR[1], "1-MINUTE")
    deadline = time.monotonic() + 60
    while FetchRun.objects.get(pk=run.pk).chunks_done < 100:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.1)
    # Flower's view: the task reports PROGRESS with the run's counts
    from celery.result import AsyncResult

    from ibdata_project.celery import app

    state = AsyncResult(FetchRun.objects.get(pk=run.pk).task_id, app=app)
    deadline = time.monotonic() + 10
    while not (state.state == "PROGRESS" and state.info.get("chunks_planned") == 500):
        assert time.monotonic() < deadline, (state.state, state.info)
        time.sleep(0.2)
    assert state.info["run_id"] == run.pk
    assert 0 < state.info["chunks_done"] < state.info["chunks_planned"]
    worker.kill()
    killed_at = FetchRun.objects.get(pk=run.pk)
    assert (
        killed_at.status == RunStatus.RUNNING and killed_at.chunks_done < killed_at.chunks_planned
    )
    # silent for FETCH_STALE_AFTER_S: its worker is gone (a live one beats every HEARTBEAT_S)
    wait_until(lambda: fetch_runs_orphaned(stale_after_s=STALE_S), STALE_S + 30, "stale")
    workers(sim, name="ibkr-restarted", env={"FETCH_STALE_AFTER_S": str(STALE_S)})
    deadline = time.monotonic() + 30
    while FetchRun.objects.get(pk=run.pk).chunks_done <= killed_at.chunks_done:
        assert time.monotonic() < deadline, "the run did not resume"
        time.sleep(0.1)
    done = wait_finished(run.pk, 120)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.recoveries == 1 and done.chunks_done == 500
    for symbol in ("AAPL", "MSFT"):
        times = [int(r[0].timestamp()) for r in bars_of(symbol, "1-MINUTE")]
        assert times == truth_times(sim, symbol, "1 min", *YEAR)
    assert done.bars_stored == sum(len(bars_of(s, "1-MINUTE")) for s in ("AAPL", "MSFT"))


def test_the_worker_reconnects_after_a_dropped_connection(sim_factory, workers):
    from ibsim.server import Faults

    sim = sim_factory(faults=Faults(drop_after_requests=3))
    workers(sim)
    run = enqueue("AAPL", "2024-01-02", "2024-01-31", "1-MINUTE")
    done = wait_finished(run.pk, 120)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert sim.stats.counts["dropped_connections"] == 1
    assert sim.stats.counts["connections"] >= 2
    times = [int(r[0].timestamp()) for r in bars_of("AAPL", "1-MINUTE")]
    assert times == truth_times(sim, "AAPL", "1 min", "2024-01-02", "2024-01-31")


def test_requests_lost_in_an_outage_1101_are_sent_again(sim_factory, workers):
    """An outage ends with 1101 (restored, data lost): the requests in flight are never
    answered; the client fails them at once, retryably, sends them again, and the run ends
    with every bar once."""
    from fetcher.models import FetchChunk
    from ibsim.server import Faults

    faults = Faults(outage_after_requests=4, outage_s=0.5, outage_data_lost=True)
    sim = sim_factory(latency_s=0.5, faults=faults)  # answers take 0.5 s: some are in flight
    workers(sim)
    run = enqueue("AAPL,MSFT", "2024-01-02", "2024-01-31", "1-MINUTE")
    done = wait_finished(run.pk, 120)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert sim.stats.errors[1101] == 1 and sim.stats.counts["lost_in_outage"] > 0
    resent = FetchChunk.objects.filter(run_id=run.pk, last_error__contains="data lost")
    assert resent.count() == sim.stats.counts["lost_in_outage"]
    assert all(c.attempts == 2 for c in resent)
    for symbol in ("AAPL", "MSFT"):
        times = [int(r[0].timestamp()) for r in bars_of(symbol, "1-MINUTE")]
        assert times == truth_times(sim, symbol, "1 min", "2024-01-02", "2024-01-31")


def test_a_logged_off_gateway_is_waited_for_and_the_run_goes_on_after_the_login(
    sim_factory, workers
):
    """The weekly log-off in the middle of a run: every connection dropped, the port refusing
    connections until someone logs in (with 2FA). The worker says so in one line, keeps trying,
    and the run goes on after the login with every bar once."""
    from ibsim.server import Faults

    sim = sim_factory(faults=Faults(log_off_after_requests=10))
    worker = workers(sim)
    run = enqueue("AAPL,MSFT", "2024-01-02", "2024-01-31", "1-MINUTE")
    worker.wait_for("refuses connections", 60)
    [line] = [line for line in worker.text().splitlines() if "refuses connections" in line]
    assert "logged off" in line and "WARNING" in line
    assert FetchRun.objects.get(pk=run.pk).status == RunStatus.RUNNING
    sim.call(sim.log_in)
    done = wait_finished(run.pk, 120)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert sim.stats.counts["log_offs"] == 1
    for symbol in ("AAPL", "MSFT"):
        times = [int(r[0].timestamp()) for r in bars_of(symbol, "1-MINUTE")]
        assert times == truth_times(sim, symbol, "1 min", "2024-01-02", "2024-01-31")


def test_a_200_while_the_gateway_is_in_its_reset_does_not_fail_the_instrument(sim, workers):
    """The worker's connection is told 1100 (the nightly reset); the gateway answers 200 for
    contracts that exist for a while. The run waits for 1102, then qualifies through the false
    200s (asked again after a back-off, as the gateway is just out of its reset)."""
    worker = workers(sim)
    sim.call(sim.connectivity_lost)
    sim.call(sim.spurious_200, 3.0)
    run = enqueue("AAPL", "2024-01-02", "2024-01-05", "1-MINUTE")
    worker.wait_for("Connectivity between IB and Trader Workstation has been lost", 10)
    sim.call(sim.connectivity_restored)
    done = wait_finished(run.pk, 60)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert sim.stats.errors[200] >= 1 and "nightly reset" in worker.text()
    times = [int(r[0].timestamp()) for r in bars_of("AAPL", "1-MINUTE")]
    assert times == truth_times(sim, "AAPL", "1 min", "2024-01-02", "2024-01-05")


def test_a_stopped_broker_is_a_one_line_error_and_writes_nothing(sim):
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "IBKR_HOST": "127.0.0.1",
        "IBKR_PORT": str(sim.port),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "fetch",
            "--instruments",
            "AAPL",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-05",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "Cannot reach the task broker" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert FetchRun.objects.count() == 0


def test_orphaned_runs_are_resumed_or_failed(clean_broker):
    from fetcher.selectors import fetch_runs_orphaned
    from fetcher.services.recovery import fetch_runs_recover
    from fetcher.timings import MAX_RECOVERIES

    run = fetch_run_create(request=FetchRequest.parse(instruments="AAPL"))
    alive = fetch_run_create(request=FetchRequest.parse(instruments="MSFT"))
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    FetchRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, heartbeat_at=stale)
    FetchRun.objects.filter(pk=alive.pk).update(
        status=RunStatus.RUNNING, heartbeat_at=dt.datetime.now(dt.UTC)
    )
    assert fetch_runs_orphaned(stale_after_s=60) == [run.pk]  # a run that beats is never taken
    assert fetch_runs_recover(stale_after_s=60) == [run.pk]
    assert clean_broker.llen("ibkr") == 1  # queued again
    assert fetch_runs_orphaned(stale_after_s=60) == []  # its heartbeat was renewed
    FetchRun.objects.filter(pk=run.pk).update(heartbeat_at=stale, recoveries=MAX_RECOVERIES)
    assert fetch_runs_recover(stale_after_s=60) == []
    failed = FetchRun.objects.get(pk=run.pk)
    assert failed.status == RunStatus.FAILED and "died" in failed.error


def test_an_unexpected_error_fails_the_run_and_the_worker_serves_the_next(sim, workers, tmp_path):
    """A real fault outside the project's errors (the catalog's folder is a file) ends the run
    as failed with its one line; the same worker then serves the next run."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "catalog").write_text("not a folder")
    worker = workers(sim)
    run = enqueue("AAPL", "2024-01-02", "2024-01-05", "DAILY")
    failed = wait_finished(run.pk, 60)
    assert failed.status == RunStatus.FAILED
    assert failed.error.startswith("unexpected error: ") and "\n" not in failed.error
    assert "catalog" in failed.error
    (data / "catalog").unlink()
    run = enqueue("AAPL", "2024-01-02", "2024-01-05", "DAILY")
    done = wait_finished(run.pk, 60)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert len(bars_of("AAPL", "DAILY")) == 4
    worker.wait_for("failed unexpectedly", 5)  # the traceback went to the log


def test_following_a_run_whose_worker_died_ends_with_a_clear_error(sim_factory, workers):
    """`manage.py fetch` follows the run; the worker is killed (-9): once the run's heartbeat
    is older than FETCH_STALE_AFTER_S (10 s here) the command stops following, says why, and
    exits 1."""
    sim = sim_factory()
    worker = workers(sim)
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "IBKR_HOST": "127.0.0.1",
        "IBKR_PORT": str(sim.port),
        "FETCH_STALE_AFTER_S": str(STALE_S),
    }
    args = ["--start", YEAR[0], "--end", YEAR[1], "--timeframe", "1-MINUTE"]
    follower = subprocess.Popen(
        [sys.executable, "manage.py", "fetch", "--instruments", "AAPL,MSFT", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not FetchRun.objects.filter(chunks_done__gte=100).exists():
        assert time.monotonic() < deadline and follower.poll() is None, "no progress"
        time.sleep(0.2)
    worker.kill()
    out, err = follower.communicate(timeout=STALE_S + 60)
    run = FetchRun.objects.get()
    assert follower.returncode == 1, out + err
    assert f"run {run.pk} stopped: the worker running it is gone" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert run.status == RunStatus.RUNNING  # resumed when an ibkr worker starts again
