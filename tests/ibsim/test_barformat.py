"""Bar arrays as HISTORICAL_DATA rows (ibsim.barformat): dates per formatDate, prices at the
contract's decimals."""

from __future__ import annotations

import numpy as np
import pytest

from ibsim.aggregate import BarArrays
from ibsim.barformat import bar_rows, bar_rows_span, date_strings, decimals_for
from ibsim.timewindow import format_bar_time
from tests.support import epoch_at


def test_intraday_dates_match_the_one_at_a_time_format_across_a_dst_change():
    times = np.arange(epoch_at("2024-03-09 12:00"), epoch_at("2024-03-11 12:00"), 3600)
    for zone in ("US/Eastern", "US/Central"):
        assert date_strings(times, None, zone, 1) == [format_bar_time(int(t), zone) for t in times]
    assert date_strings(times, None, "US/Eastern", 2) == [str(t) for t in times]


def test_daily_and_larger_bars_are_dated_by_their_session():
    dates = np.array([20240102, 20240103])
    assert date_strings(np.array([0, 1]), dates, "US/Eastern", 2) == ["20240102", "20240103"]


def test_rows_carry_prices_at_the_contracts_decimals():
    bars = BarArrays(
        time=np.array([epoch_at("2024-01-02 09:30")]),
        dates=None,
        open=np.array([1.1]),
        high=np.array([1.23456]),
        low=np.array([1.0]),
        close=np.array([1.2]),
        volume=np.array([1500]),
        wap=np.array([1.123456]),
        count=np.array([12]),
    )
    (row,) = bar_rows(bars, "US/Eastern", 1, decimals=2)
    assert row.split("\0") == [
        "20240102 09:30:00 US/Eastern",
        "1.10",
        "1.23",
        "1.00",
        "1.20",
        "1500",
        "1.1235",  # the average price keeps two more decimals
        "12",
    ]


def test_the_span_before_the_rows():
    start, end = epoch_at("2024-01-02 09:30"), epoch_at("2024-01-02 16:00")
    assert bar_rows_span(start, end, "US/Eastern", 2) == (str(start), str(end))
    assert bar_rows_span(start, end, "US/Eastern", 1) == (
        "20240102 09:30:00 US/Eastern",
        "20240102 16:00:00 US/Eastern",
    )


@pytest.mark.parametrize(
    ("tick", "decimals"), [(0.01, 2), (0.25, 2), (1.0, 2), (0.001, 3), (0.00005, 5)]
)
def test_at_least_two_decimals_and_enough_for_the_tick(tick, decimals):
    assert decimals_for(tick) == decimals
