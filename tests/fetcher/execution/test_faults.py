"""Faults of the services a run depends on, for real: Redis killed (-9) and restarted, a
PostgreSQL of the test's own restarted, in the middle of a run on a real ibkr worker. The run
waits for them, says so in the log, and completes with every bar once."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
import pytest

from fetcher.models import FetchRun, RunStatus
from tests.fetcher.execution.test_worker import bars_of, truth_times
from tests.support import (
    DEPLOYED_SHAPE,
    PG_BIN,
    ROOT,
    PrivatePostgres,
    PrivateRedis,
    Worker,
    wait_finished,
    wait_until,
    worker_database_url,
)

pytestmark = [pytest.mark.django_db(transaction=True), *DEPLOYED_SHAPE, pytest.mark.slow]

SYMBOLS = ("AAPL", "MSFT")
# a year of 1-minute bars: 250 requests each, 500 in all, ~11 s at 45 requests a second
START, END = "2025-01-01", "2025-12-31"


def worker_env(sim, tmp_path, *, database_url: str, redis_url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "IBKR_HOST": "127.0.0.1",
        "IBKR_PORT": str(sim.port),
        "IBKR_CLIENT_ID": "71",
        "DATA_DIR": str(tmp_path / "data"),
    }


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def fetch_no_wait(env: dict) -> subprocess.CompletedProcess:
    args = ["--instruments", ",".join(SYMBOLS), "--start", START, "--end", END]
    return manage(env, "fetch", *args, "--timeframe", "1-MINUTE", "--no-wait")


def test_redis_killed_and_restarted_mid_run(sim_factory, tmp_path):
    sim = sim_factory()
    private = PrivateRedis(tmp_path / "redis").start()
    env = worker_env(sim, tmp_path, database_url=worker_database_url(), redis_url=private.url)
    worker = Worker(env, tmp_path / "worker.log", "ibkr-redis-fault").start()
    try:
        started = fetch_no_wait(env)
        assert started.returncode == 0, started.stdout + started.stderr
        run = FetchRun.objects.get()
        wait_until(lambda: FetchRun.objects.get(pk=run.pk).chunks_done >= 100, 60, "progress")

        private.kill()  # Redis gone, with the pacer's state, the queue and the results
        worker.wait_for("Redis unreachable", 30)
        worker.wait_for("progress not published", 30)  # Flower's counts wait; the run does not
        time.sleep(2)  # requests wait meanwhile
        during = FetchRun.objects.get(pk=run.pk)
        assert during.status == RunStatus.RUNNING
        private.start()

        done = wait_finished(run.pk, 180)
        assert done.status == RunStatus.SUCCEEDED, done.error
        worker.wait_for("Redis is back", 5)
        worker.wait_for("progress published again", 5)
        for symbol in SYMBOLS:
            times = [int(r[0].timestamp()) for r in bars_of(symbol, "1-MINUTE")]
            assert times == truth_times(sim, symbol, "1 min", START, END)
        assert done.bars_stored == sum(len(bars_of(s, "1-MINUTE")) for s in SYMBOLS)
        assert done.requests_made == 500
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
