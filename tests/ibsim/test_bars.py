"""Bars for one request (ibsim.bars): whole-session minutes cut to the window and aggregated to
the bar size, on the local clock."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from ibsim.bars import intraday_bars, period_bars
from ibsim.model import model
from tests.support import epoch_at, listing

AAPL = listing("AAPL")
ET = ZoneInfo("America/New_York")
M = model(AAPL, 0)


def clock(epochs) -> list[str]:
    return [datetime.fromtimestamp(int(t), ET).strftime("%H:%M:%S") for t in epochs]


def test_second_bars_are_cut_to_the_window_to_the_second():
    start = epoch_at("2024-01-03 10:00") + 17
    bars = intraday_bars(M, "TRADES", True, 1, start, start + 90)
    assert len(bars) == 90 and bars.time[0] == start and np.all(np.diff(bars.time) == 1)
    fives = intraday_bars(M, "TRADES", True, 5, start, start + 90)
    assert clock(fives.time[:2]) == ["10:00:20", "10:00:25"]  # on the 5-second grid


def test_minute_bars_keep_whole_minutes_that_start_in_the_window():
    start = epoch_at("2024-01-03 10:00")
    bars = intraday_bars(M, "TRADES", True, 60, start + 30, start + 600)
    assert clock(bars.time[[0, -1]]) == ["10:01:00", "10:09:00"] and len(bars) == 9


def test_larger_bars_follow_the_local_clock_and_start_again_each_session():
    window = (epoch_at("2024-01-02 00:00"), epoch_at("2024-01-04 00:00"))
    bars = intraday_bars(M, "TRADES", False, 7200, *window)
    assert clock(bars.time) == ["04:00:00", "06:00:00", "08:00:00", "10:00:00", "12:00:00",
                                "14:00:00", "16:00:00", "18:00:00"] * 2  # fmt: skip
    rth = intraday_bars(M, "TRADES", True, 7200, *window)
    assert clock(rth.time[:4]) == ["09:30:00", "10:00:00", "12:00:00", "14:00:00"]


def test_weeks_are_dated_by_their_last_trading_day_and_months_by_their_first():
    window = (epoch_at("2024-01-01 00:00"), epoch_at("2024-03-01 00:00"))
    weeks = period_bars(M, "TRADES", True, "week", *window)
    assert weeks.dates.tolist()[:3] == [20240105, 20240112, 20240119]  # Fridays
    easter = period_bars(
        M, "TRADES", True, "week", epoch_at("2024-03-25 00:00"), epoch_at("2024-03-30 00:00")
    )
    assert easter.dates.tolist() == [20240328]  # Good Friday: the week ends on Thursday
    months = period_bars(M, "TRADES", True, "month", *window)
    assert months.dates.tolist() == [20240102, 20240201]
    days = period_bars(M, "TRADES", True, "day", *window)
    january = days.dates < 20240201
    assert months.volume[0] == days.volume[january].sum()
    assert months.high[0] == days.high[january].max()


def test_a_window_without_sessions_has_no_bars():
    weekend = (epoch_at("2024-01-06 00:00"), epoch_at("2024-01-07 00:00"))
    assert len(intraday_bars(M, "TRADES", False, 60, *weekend)) == 0
    assert intraday_bars(M, "TRADES", False, 60, *weekend).dates is None
    assert len(period_bars(M, "TRADES", True, "day", *weekend)) == 0
