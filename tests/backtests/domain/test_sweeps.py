"""Sweep grids: what grid_parse reads, grids sized before they are built, the points a strategy
can run, chunks and a chunk as a task takes it."""

from __future__ import annotations

import json

import pytest

from backtests.domain.commissions import IbkrFixedCommission
from backtests.domain.engine import TradingConfig
from backtests.domain.problems import InvalidRequest
from backtests.domain.strategies import strategy_get
from backtests.domain.sweeps import (
    MAX_POINTS,
    SweepChunk,
    chunks_of,
    grid_parse,
    grid_points,
    sweep_points,
)
from fetcher.exceptions import InvalidInput
from tests.support.backtest_data import daily_bars_request


def flags(field: str) -> str:
    return f"--{field}"


def test_sweep_grids():
    assert grid_parse("5:50:5", "fast") == list(range(5, 51, 5))
    assert grid_parse("10,30,20", "fast") == [10, 20, 30]
    assert grid_parse("10", "fast") == [10]
    assert grid_parse(None, "fast") is None
    assert len(grid_points({"fast": [5, 10], "slow": [20, 30, 40]})) == 6
    with pytest.raises(InvalidInput, match="not a whole number"):
        grid_parse("5:x", "fast")
    with pytest.raises(InvalidInput, match="start <= stop"):
        grid_parse("50:5:5", "fast")


def test_a_range_without_a_step_steps_by_one_and_its_stop_is_included():
    assert grid_parse("3:6", "slow") == [3, 4, 5, 6]
    assert grid_parse(" 7 ", "slow") == [7]
    with pytest.raises(InvalidRequest) as raised:
        grid_parse("1:2:3:4", "slow")
    assert raised.value.phrase(flags).startswith("--slow '1:2:3:4' is not a whole number")


def test_a_huge_range_is_refused_by_its_size_before_it_is_built():
    # 20 billion values: built, they would not fit in memory.
    with pytest.raises(InvalidRequest) as raised:
        grid_parse("1:20000000000", "fast")
    assert raised.value.phrase(flags) == (
        f"--fast '1:20000000000' has 20,000,000,000 values: a sweep has at most {MAX_POINTS:,}"
    )
    assert len(grid_parse(f"1:{MAX_POINTS}", "fast")) == MAX_POINTS


def test_a_grid_of_too_many_points_is_refused_before_its_points_are_built():
    side = list(range(1, 10_001))  # 10,000 x 10,000: 100 million points
    with pytest.raises(InvalidRequest) as raised:
        grid_points({"fast": side, "slow": side})
    assert [p.field for p in raised.value.problems] == ["grids"]
    assert raised.value.phrase(flags) == (
        f"the sweep has 100,000,000 points (--fast × --slow): at most {MAX_POINTS:,}"
    )


def test_points_the_strategy_cannot_run_are_skipped_and_counted():
    sma = strategy_get("sma")
    points, skipped = sweep_points(sma, {"fast": [5, 20, 40], "slow": [20, 30]})
    assert points == [{"fast": 5, "slow": 20}, {"fast": 5, "slow": 30}, {"fast": 20, "slow": 30}]
    assert skipped == 3
    with pytest.raises(InvalidRequest) as raised:
        sweep_points(sma, {"fast": [30, 40], "slow": [20]})
    assert raised.value.phrase(flags) == (
        "no point of the grid is valid for sma (e.g. --fast 30 must be smaller than --slow 20)"
    )


def test_chunks_of():
    assert chunks_of([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert chunks_of([1, 2], 10) == [[1, 2]]


def test_a_chunk_goes_through_json_unchanged():
    bars = daily_bars_request("AAPL")
    trading = TradingConfig(50_000.0, IbkrFixedCommission(), trade_on_close=True)
    chunk = SweepChunk(
        bars, "sma", ({"fast": 5, "slow": 20}, {"fast": 10, "slow": 20}), trading, "g1"
    )
    assert SweepChunk.from_json(json.loads(json.dumps(chunk.to_json()))) == chunk
