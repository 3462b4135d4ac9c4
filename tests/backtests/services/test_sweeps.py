"""A sweep's chunk on stored bars: its points stored once, whether the chunk comes once or twice
(through the task, as a worker takes it)."""

from __future__ import annotations

import pytest

from backtests.domain.commissions import FractionCommission
from backtests.domain.engine import TradingConfig
from backtests.domain.sweeps import SweepChunk
from backtests.models import BacktestRun, RunKind
from backtests.services.sweeps import sweep_chunk_run
from backtests.tasks import sweep_chunk
from tests.support.backtest_data import daily_bars_request

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_chunk_delivered_twice_stores_its_points_once(gateway, backtest):
    code, _, err = backtest("--symbols", "AAPL", "--start", "2024-01-01", "--end", "2024-12-31")
    assert code == 0, err
    bars = daily_bars_request("AAPL")
    points = ({"fast": 5, "slow": 20}, {"fast": 10, "slow": 20}, {"fast": 10, "slow": 40})
    chunk = SweepChunk(bars, "sma", points, TradingConfig(1e5, FractionCommission(0.0)), "twice")
    assert sweep_chunk_run(chunk=chunk) == 3
    assert sweep_chunk(chunk.to_json()) == 0  # the task, delivered again
    runs = BacktestRun.objects.filter(group="twice")
    assert runs.count() == 3 and {r.kind for r in runs} == {RunKind.SWEEP}
    assert sorted((r.params["fast"], r.params["slow"]) for r in runs) == [
        (5, 20),
        (10, 20),
        (10, 40),
    ]
    assert all(r.trades == [] and r.equity == [] and "Sharpe Ratio" in r.metrics for r in runs)
