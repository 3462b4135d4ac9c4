"""A sweep across two real Celery worker processes on the backtests queue (Redis broker): every
point stored once, each worker reading the bars at most once."""

from __future__ import annotations

import os

import pytest
from django.conf import settings as django_settings

from backtests.models import BacktestRun, RunKind
from ibdata_project.celery import app
from tests.support import DEPLOYED_SHAPE, Worker, worker_database_url

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
