"""Sweeps across two real Celery worker processes on the backtests queue (Redis broker): every
point stored once, each worker reading the bars at most once; a user's own strategy file loaded
by the workers, and its failure there told in one line."""

from __future__ import annotations

import os

import pytest
from django.conf import settings as django_settings

from backtests.models import BacktestRun, RunKind
from ibdata_project.celery import app
from tests.support import DEPLOYED_SHAPE, ROOT, Worker, worker_database_url

pytestmark = [pytest.mark.django_db(transaction=True), *DEPLOYED_SHAPE]


@pytest.fixture
def backtest_workers(tmp_path, clean_broker, gateway):
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_DIR": str(tmp_path / "logs"),
    }
    workers = [
        Worker(env, tmp_path / f"backtests-{i}.log", f"backtests{i}", queues=("backtests",))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    yield workers
    for worker in workers:
        worker.stop()


def test_a_sweep_runs_on_two_workers_reading_the_bars_once_each(backtest_workers, backtest):
    args = ("--symbols", "AAPL", "--start", "2022-01-01", "--end", "2024-12-31")
    assert backtest(*args)[0] == 0  # fetched in this process
    app.conf.task_always_eager = False  # the sweep goes through Redis (in_process_tasks restores)
    code, out, err = backtest(
        *args, "--fast", "5:50:5", "--slow", "20:60:10", "--data-source", "db", "--chunk", "2"
    )
    assert code == 0, err
    assert "on the backtests queue" in out
    points = BacktestRun.objects.filter(kind=RunKind.SWEEP)
    assert points.count() == 34  # 10 x 5 grid less the 16 with fast >= slow
    assert len({tuple(sorted(p.params.items())) for p in points}) == 34
    reads = [w.log.read_text().count("bars read: AAPL DAILY") for w in backtest_workers]
    chunks = [w.log.read_text().count("backtests.sweep_chunk[") for w in backtest_workers]
    assert all(r <= 1 for r in reads) and sum(reads) >= 1, reads
    assert sum(chunks) >= 17, chunks  # 17 chunks received (and logged again when done)


FRAGILE = """
import numpy as np
from backtests.domain.strategies import Parameter, Strategy


class Fragile(Strategy):
    parameters = (Parameter("window", 20),)

    def warmup(self, params):
        return params["window"]

    def signals(self, bars, params, cache):
        if params["window"] == 10:
            raise RuntimeError("window 10 is not supported")
        return np.zeros(len(bars), dtype=np.int8)
"""


def test_a_users_strategy_file_is_swept_by_the_workers(backtest_workers, backtest, tmp_path):
    args = ("--symbols", "AAPL", "--start", "2023-01-01", "--end", "2024-12-31")
    assert backtest(*args)[0] == 0  # fetched in this process
    app.conf.task_always_eager = False  # the sweep goes through Redis (in_process_tasks restores)
    mine = tmp_path / "research" / "rsi.py"
    mine.parent.mkdir()
    mine.write_text((ROOT / "docs/examples/rsi_reversion.py").read_text())
    code, out, err = backtest(
        *args,
        "--strategy",
        str(mine),
        "--param",
        "period=7:28:7",
        "--param",
        "lower=25,30,35",
        "--data-source",
        "db",
        "--chunk",
        "3",
    )
    assert code == 0, err
    assert "Sweep of 12 points on AAPL" in out and "on the backtests queue" in out
    points = BacktestRun.objects.filter(kind=RunKind.SWEEP)
    assert points.count() == 12 and {p.strategy for p in points} == {"rsi-reversion"}
    assert {p.strategy_source for p in points} == {str(mine)}
    chunks = [w.log.read_text().count("backtests.sweep_chunk[") for w in backtest_workers]
    assert sum(chunks) >= 4, chunks  # 4 chunks of 3 points, all taken by the workers


def test_a_strategy_failing_on_a_worker_ends_the_sweep_in_one_line(
    backtest_workers, backtest, tmp_path
):
    args = ("--symbols", "AAPL", "--start", "2024-01-01", "--end", "2024-12-31")
    assert backtest(*args)[0] == 0
    app.conf.task_always_eager = False
    mine = tmp_path / "fragile.py"
    mine.write_text(FRAGILE)
    # The command tries the slowest point (window 30) itself; window 10 fails on a worker.
    code, out, err = backtest(
        *args, "--strategy", str(mine), "--param", "window=10:30:10", "--data-source", "db"
    )
    assert code == 1, err
    assert "a sweep task failed on a worker: " in err
    assert (
        f"strategy {mine}: Fragile.signals raised RuntimeError: window 10 is not supported" in err
    )
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
