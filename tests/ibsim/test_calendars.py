"""Exchange sessions of the simulated market (ibsim.calendars): extended and regular hours per
session kind, holidays and early closes, and IBKR's trading-hours strings."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ibsim.calendars import sessions
from ibsim.universe import find
from tests.support import epoch_at

CT = ZoneInfo("America/Chicago")
(ES,) = find("ES", "FUT", "", "USD")
(EURUSD,) = find("EUR", "CASH", "", "USD")


def session_bounds(instrument, start: int, end: int, use_rth: bool):
    """(starts, ends) of the instrument's sessions that overlap [start, end)."""
    s = sessions(instrument.calendar, instrument.session_kind, instrument.time_zone_id)
    starts, ends = s.bounds(use_rth)
    keep = (starts < end) & (ends > start) & (ends > starts)
    return starts[keep], ends[keep]


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
        [epoch_at("2024-01-02 17:00")],
        [epoch_at("2024-01-03 17:00")],
    )
