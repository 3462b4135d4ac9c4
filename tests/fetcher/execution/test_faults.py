"""Faults of the services a run depends on, for real: Redis killed (-9) and restarted, a
PostgreSQL of the test's own restarted, in the middle of a run on a real ibkr worker. The run
waits for them, says so in the log, and completes with every bar once."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

import psycopg
import pytest

from fetcher.models import FetchRun, RunStatus
from tests.support import (
    DEPLOYED_SHAPE,
    PG_BIN,
    PrivatePostgres,
    PrivateRedis,
    Worker,
    bars_of,
    manage,
    recent_sessions,
    truth_times,
    wait_finished,
    wait_until,
    worker_database_url,
)

pytestmark = [pytest.mark.django_db(transaction=True), *DEPLOYED_SHAPE, pytest.mark.slow]

SYMBOLS = ("AAPL", "MSFT")
# a year of 1-minute bars: 250 requests each, 500 in all, ~11 s at 45 requests a second
START, END = "2025-01-01", "2025-12-31"
SEVEN = recent_sessions(7)  # of 5-second bars (kept six months only): 7 requests a session


@dataclass(frozen=True)
class Workload:
    timeframe: str
    bar_size: str
    start: str
    end: str
    requests: int
    kill_after: int  # requests done
    time_scale: float  # of the gateway's pacing windows (simulator and client alike)


MINUTES = Workload("1-MINUTE", "1 min", START, END, 500, 100, 1)
# bars of 5 s: the ten-minute rules bind (at 60x: 60 requests in 10 s), so a pacing state lost
# with Redis would show as violations unless the worker restores it
SMALL = Workload("5-SECOND", "5 secs", SEVEN[0].isoformat(), SEVEN[-1].isoformat(), 98, 20, 60)


def worker_env(sim, tmp_path, *, database_url: str, redis_url: str, time_scale: float = 1) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "IBKR_HOST": "127.0.0.1",
        "IBKR_PORT": str(sim.port),
        "IBKR_CLIENT_ID": "71",
        "IBKR_PACING_TIME_SCALE": str(time_scale),
        "IBKR_PACING_MARGIN_S": "0.5",  # as the workers fixture: a loaded machine is slow
        "DATA_DIR": str(tmp_path / "data"),
    }


def fetch_no_wait(env: dict, work: Workload = MINUTES) -> subprocess.CompletedProcess:
    args = ["--instruments", ",".join(SYMBOLS), "--start", work.start, "--end", work.end]
    return manage(env, "fetch", *args, "--timeframe", work.timeframe, "--no-wait")


@pytest.mark.parametrize("work", [MINUTES, SMALL], ids=["year-of-minutes", "small-bars"])
def test_redis_killed_and_restarted_mid_run(sim_factory, tmp_path, work):
    sim = sim_factory(time_scale=work.time_scale)
    private = PrivateRedis(tmp_path / "redis").start()
    env = worker_env(
        sim,
        tmp_path,
        database_url=worker_database_url(),
        redis_url=private.url,
        time_scale=work.time_scale,
    )
    worker = Worker(env, tmp_path / "worker.log", "ibkr-redis-fault").start()
    try:
        started = fetch_no_wait(env, work)
        assert started.returncode == 0, started.stdout + started.stderr
        run = FetchRun.objects.get()
        wait_until(
            lambda: FetchRun.objects.get(pk=run.pk).chunks_done >= work.kill_after, 60, "progress"
        )

        private.kill()  # Redis gone, with the pacer's state, the queue and the results
        worker.wait_for("Redis unreachable", 30)
        worker.wait_for("progress not published", 30)  # Flower's counts wait, not the run
        time.sleep(2)  # requests wait meanwhile
        during = FetchRun.objects.get(pk=run.pk)
        assert during.status == RunStatus.RUNNING
        private.start()

        done = wait_finished(run.pk, 180)
        assert done.status == RunStatus.SUCCEEDED, done.error
        worker.wait_for("Redis is back", 5)
        worker.wait_for("progress published again", 5)
        if work is SMALL:  # small requests of the last ten minutes: put back before going on
            worker.wait_for("pacing state for gateway", 5)
        # nothing broke the gateway's rules, before or after the outage, and nothing was asked twice
        assert sim.stats.pacing_violations == 0
        assert done.requests_made == work.requests
        for symbol in SYMBOLS:
            times = [int(r[0].timestamp()) for r in bars_of(symbol, work.timeframe)]
            assert times == truth_times(sim, symbol, work.bar_size, work.start, work.end)
        assert done.bars_stored == sum(len(bars_of(s, work.timeframe)) for s in SYMBOLS)
    finally:
        worker.stop()
        private.kill()


@pytest.mark.skipif(PG_BIN is None, reason="needs PostgreSQL's server programs (initdb)")
def test_postgres_restarted_mid_run(sim_factory, tmp_path, clean_broker):
    from django.conf import settings as django_settings

    sim = sim_factory()
    private = PrivatePostgres()
    try:
        private.start()
        private.create_database()
        env = worker_env(
            sim, tmp_path, database_url=private.url, redis_url=django_settings.REDIS_URL
        )
        migrated = manage(env, "migrate", "-v0")
        assert migrated.returncode == 0, migrated.stderr
        worker = Worker(env, tmp_path / "worker.log", "ibkr-pg-fault").start()
        try:
            started = fetch_no_wait(env)
            assert started.returncode == 0, started.stdout + started.stderr

            def run_row():
                with psycopg.connect(private.url.replace("postgres://", "postgresql://")) as c:
                    return c.execute(
                        "SELECT id, status, chunks_done, error FROM fetcher_fetchrun"
                    ).fetchone()

            wait_until(lambda: run_row()[2] >= 100, 60, "progress")
            private.stop("fast")  # every connection dropped, the server gone
            worker.wait_for("database unreachable", 30)
            time.sleep(2)
            private.start()

            wait_until(lambda: run_row()[1] not in ("pending", "running"), 180, "the run's end")
            run_id, status, _, error = run_row()
            assert status == "succeeded", error
            worker.wait_for("database reachable again", 5)
            with psycopg.connect(private.url.replace("postgres://", "postgresql://")) as c:
                for symbol in SYMBOLS:
                    rows = c.execute(
                        "SELECT extract(epoch from b.ts)::bigint FROM fetcher_bar b "
                        "JOIN fetcher_instrument i ON i.id = b.instrument_id "
                        "WHERE i.symbol = %s ORDER BY b.ts",
                        (symbol,),
                    ).fetchall()
                    times = [r[0] for r in rows]
                    assert times == truth_times(sim, symbol, "1 min", START, END)
        finally:
            worker.stop()
    finally:
        private.remove()
