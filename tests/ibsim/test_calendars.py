"""Exchange sessions of the simulated market (ibsim.calendars): extended and regular hours per
session kind, holidays and early closes, and IBKR's trading-hours strings."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np
import pytest

from ibsim.calendars import FOREX_CALENDAR, SessionKind, sessions, trading_hours
from tests.support import epoch_at, listing

CT = ZoneInfo("America/Chicago")
ES = listing("ES", "FUT")
EURUSD = listing("EUR", "CASH")
NYSE = sessions("XNYS", SessionKind.US_EQUITY, "US/Eastern")


def session_bounds(instrument, start: int, end: int, use_rth: bool):
    """(starts, ends) of the instrument's sessions that overlap [start, end)."""
    s = sessions(instrument.calendar, instrument.session_kind, instrument.time_zone_id)
    starts, ends = s.bounds(use_rth)
    keep = (starts < end) & (ends > start) & (ends > starts)
    return starts[keep], ends[keep]


def session_of(s, date: int) -> int:
    (i,) = np.flatnonzero(s.date == date)
    return int(i)


def test_future_and_forex_sessions_span_a_weekday():
    starts, ends = session_bounds(
        ES, epoch_at("2024-01-03 10:00"), epoch_at("2024-01-03 11:00"), False
    )
    assert starts.tolist() == [epoch_at("2024-01-02 17:00", CT)]
    assert ends.tolist() == [epoch_at("2024-01-03 16:00", CT)]
    starts, ends = session_bounds(
        ES, epoch_at("2024-01-03 10:00"), epoch_at("2024-01-03 11:00"), True
    )
    assert (starts.tolist(), ends.tolist()) == (
        [epoch_at("2024-01-03 08:30", CT)],
        [epoch_at("2024-01-03 15:00", CT)],
    )

    starts, ends = session_bounds(
        EURUSD, epoch_at("2024-01-03 10:00"), epoch_at("2024-01-03 11:00"), True
    )
    assert (starts.tolist(), ends.tolist()) == (
        [epoch_at("2024-01-02 17:15")],  # IDEALPRO: 1715-1700
        [epoch_at("2024-01-03 17:00")],
    )


def test_us_equity_sessions_have_extended_hours_holidays_and_early_closes():
    assert NYSE.time_zone == "America/New_York"  # IBKR's US/Eastern, as IANA names it
    i = session_of(NYSE, 20240102)
    assert (NYSE.ext_start[i], NYSE.rth_start[i]) == (
        epoch_at("2024-01-02 04:00"),
        epoch_at("2024-01-02 09:30"),
    )
    assert (NYSE.rth_end[i], NYSE.ext_end[i]) == (
        epoch_at("2024-01-02 16:00"),
        epoch_at("2024-01-02 20:00"),
    )
    assert NYSE.max_minutes == 16 * 60
    early = session_of(NYSE, 20231124)  # the day after Thanksgiving closes at 13:00
    assert (NYSE.rth_end[early], NYSE.ext_end[early]) == (
        epoch_at("2023-11-24 13:00"),
        epoch_at("2023-11-24 17:00"),
    )
    assert 20240115 not in NYSE.date  # Martin Luther King Jr. Day
    assert np.all(np.diff(NYSE.ext_start) > 0)
    assert NYSE.bounds(True) == (NYSE.rth_start, NYSE.rth_end)


def test_local_offsets_follow_daylight_saving_time():
    winter, summer = session_of(NYSE, 20240102), session_of(NYSE, 20240701)
    assert NYSE.utc_offset[winter] == -5 * 3600 and NYSE.utc_offset[summer] == -4 * 3600
    assert NYSE.rth_start[summer] == epoch_at("2024-07-01 09:30")


def test_an_index_has_regular_hours_only_and_forex_trades_around_the_clock():
    index = sessions("XNYS", SessionKind.RTH_ONLY, "US/Central")
    assert np.array_equal(index.ext_start, index.rth_start)
    assert np.array_equal(index.ext_end, index.rth_end)
    fx = sessions(FOREX_CALENDAR, SessionKind.FOREX, "US/Eastern")
    assert np.all(fx.ext_end - fx.ext_start == 23.75 * 3600)  # 17:15 to 17:00, New York
    assert 20231225 not in fx.date and 20240101 not in fx.date and 20240102 in fx.date
    assert not np.isin(fx.day % 7, (2, 3)).any()  # no session on a Saturday or Sunday


def test_sessions_are_built_once_per_process():
    assert sessions("XNYS", "us_equity", "US/Eastern") is NYSE


def test_a_session_kind_must_fit_its_calendar():
    with pytest.raises(ValueError, match="does not apply to XNYS"):
        sessions("XNYS", SessionKind.FOREX, "US/Eastern")


def test_trading_hours_mark_the_days_without_a_session_closed():
    fx = sessions(FOREX_CALENDAR, SessionKind.FOREX, "US/Eastern")
    trading, liquid = trading_hours(fx, "US/Eastern", epoch_at("2024-01-05 12:00"), days=4)
    # Friday's session; Saturday is closed; Sunday is not: Monday's session opens on it
    assert trading == "20240104:1715-20240105:1700;20240106:CLOSED;20240107:1715-20240108:1700"
    assert liquid == trading
