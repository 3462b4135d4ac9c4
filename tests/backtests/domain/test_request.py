"""A backtest request: what a user types read into a frozen request, checked when built, every
problem tied to its field and phrased by the caller; grids sized before they are built."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from backtests.domain.bars import DataSource
from backtests.domain.commissions import FractionCommission, IbkrFixedCommission
from backtests.domain.engine import TradingConfig
from backtests.domain.problems import InvalidRequest
from backtests.domain.request import BacktestRequest
from fetcher.domain.instruments import instrument_spec_parse
from fetcher.domain.timeframes import WhatToShow

TODAY = dt.date(2025, 6, 2)
START = dt.date(2024, 1, 1)


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def problems(**texts) -> tuple[list[str], str]:
    """The fields with problems, and the problems phrased as the command does."""
    texts = {"symbols": "AAPL", "start": START, "today": TODAY} | texts
    with pytest.raises(InvalidRequest) as raised:
        BacktestRequest.parse(**texts)
    return [p.field for p in raised.value.problems], raised.value.phrase(flag)


def test_what_a_user_types_is_read_into_the_request():
    request = BacktestRequest.parse(
        symbols="AAPL,MSFT:NASDAQ",
        start="2024-01-01",
        today=TODAY,
        strategy=" SMA ",
        grids={"fast": "5", "slow": None},
        timeframe="1-hour",
        what_to_show="midpoint",
        rth=False,
        data_source="DB",
        cash="2500.5",
        commission="ibkr",
        long_short=True,
        maximize="sortino ratio",
        plot="out/equity.PNG",
    )
    assert [s.label for s in request.symbols] == ["AAPL", "MSFT:NASDAQ"]
    assert (request.start, request.end) == (START, TODAY)  # no end: the day asked
    assert request.strategy == "sma" and request.grids == {"fast": (5,), "slow": (30,)}
    assert not request.is_sweep and request.params == {"fast": 5, "slow": 30}
    assert request.title == "sma fast=5 slow=30"
    assert request.timeframe.name == "1-HOUR" and request.what_to_show == WhatToShow.MIDPOINT
    assert request.data_source is DataSource.DB and request.maximize == "Sortino Ratio"
    assert request.trading == TradingConfig(2500.5, IbkrFixedCommission(), False, True)
    assert request.plot == Path("out/equity.PNG") and request.heatmap is None
    bars = request.bars_requests()
    assert [b.spec for b in bars] == list(request.symbols)
    assert {(b.start, b.end, b.rth, b.data_source) for b in bars} == {(START, TODAY, False, "db")}


def test_a_request_is_frozen():
    request = BacktestRequest(symbols=(instrument_spec_parse("AAPL"),), start=START)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.start = TODAY


def test_every_problem_of_every_text_at_once():
    fields, line = problems(
        symbols="AA$PL", grids={"fast": "5:x"}, cash="lots", commission="x", top="x"
    )
    assert fields == ["symbols", "fast", "top", "cash", "commission"]
    assert line.startswith("malformed instrument 'AA$PL'")
    assert "--fast '5:x' is not a whole number" in line and "--top 'x' is not a whole" in line
    assert "--cash 'lots' is not a number" in line and "--commission 'x' is neither" in line
    assert "\n" not in line


def test_problems_of_the_values_once_read():
    fields, line = problems(
        start=dt.date(2024, 2, 1),
        end=START,
        data_source="csv",
        maximize="Happiness",
        cash="-5",
        chunk="0",
        plot="a.jpg",
    )
    assert fields == ["data_source", "maximize", "end", "cash", "chunk", "plot"]
    assert "--data-source 'csv': use one of ibkr, db, catalog" in line
    assert "--maximize 'Happiness' is not a metric: use one of Exposure Time [%]," in line
    assert "empty range: --end 2024-01-01 is before --start 2024-02-01" in line
    assert "--cash -5 must be a positive amount" in line and "--chunk 0 must be at least 1" in line
    assert "--plot 'a.jpg' must name a .png file" in line


@pytest.mark.parametrize(
    ("texts", "field", "message"),
    [
        ({"symbols": " "}, "symbols", "no symbols given: use --symbols AAPL,MSFT"),
        ({"start": None}, "start", "no --start given: use --start 2024-01-01 (and --end)"),
        (
            {"start": dt.date(2025, 7, 1), "end": dt.date(2025, 7, 4)},
            "start",
            "--start 2025-07-01 is in the future (today is",
        ),
        ({"strategy": "rsi"}, "strategy", "unknown strategy 'rsi': use one of donchian, sma"),
        (
            {"grids": {"fast": "30", "slow": "10"}},
            "fast",
            "--fast 30 must be smaller than --slow 10",
        ),
        ({"timeframe": "7-DAY"}, "timeframe", "unknown timeframe '7-DAY'"),
        ({"what_to_show": "LAST"}, "what_to_show", "unknown what-to-show 'LAST'"),
        ({"grids": {"period": "14"}}, "period", "sma has no parameter --period"),
        ({"heatmap": "grid.svg"}, "heatmap", "--heatmap 'grid.svg' must name a .png file"),
        ({"start": "2024-13-01"}, "start", "--start '2024-13-01' is not a valid date: use YYYY"),
        ({"end": "31/12/2024"}, "end", "--end '31/12/2024' is not a date: use YYYY-MM-DD"),
    ],
)
def test_one_problem_names_its_field(texts, field, message):
    fields, line = problems(**texts)
    assert fields == [field] and message in line


def test_a_sweep_runs_the_points_its_strategy_can():
    request = BacktestRequest.parse(
        symbols="AAPL", start=START, grids={"fast": "5:20:5", "slow": "20:60:20"}, today=TODAY
    )
    assert request.is_sweep and len(request.points) == 11 and request.skipped == 1
    assert {"fast": 20, "slow": 20} not in request.points
    assert request.title == "sma fast=5,10,15,20 slow=20,40,60"
    fields, line = problems(symbols="AAPL,MSFT", grids={"fast": "5:10:5"})
    assert fields == ["symbols"] and line == "a sweep takes one symbol: give --symbols one symbol"
    fields, line = problems(grids={"fast": "40:50:10", "slow": "20,30"})
    assert fields == ["grids"] and "no point of the grid is valid for sma" in line


def test_grids_are_refused_by_their_size_before_they_are_built():
    # Built, 20 million values each (and 4e14 points) would not fit in memory.
    fields, line = problems(grids={"fast": "1:20000000", "slow": "1:20000000"})
    assert fields == ["fast", "slow"]
    assert line.startswith("--fast '1:20000000' has 20,000,000 values: a sweep has at most 100,000")
    fields, line = problems(grids={"fast": "1:1000", "slow": "1:1000"})
    assert fields == ["grids"]
    assert line == "the sweep has 1,000,000 points (--fast × --slow): at most 100,000"


def test_values_built_directly_are_checked_as_parsed_ones():
    aapl = (instrument_spec_parse("AAPL"),)
    with pytest.raises(InvalidRequest) as raised:
        BacktestRequest(
            symbols=aapl,
            start=START,
            trading=TradingConfig(float("nan"), FractionCommission(0.0)),
            top=0,
            today=TODAY,
        )
    assert [p.field for p in raised.value.problems] == ["cash", "top"]
    request = BacktestRequest(symbols=aapl, start=START, data_source="catalog", today=TODAY)
    assert request.data_source is DataSource.CATALOG and request.end == TODAY
