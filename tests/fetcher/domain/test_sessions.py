"""Sessions: the exchange calendar each instrument trades on, holidays, early closes, DST."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from fetcher.domain.sessions import FIRST_YEAR, LAST_YEAR, SessionTable, session_table
from fetcher.domain.time import EPOCH_DATE, epoch, from_epoch, local_midnight

NY = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
XNYS = session_table(sec_type="STK", exchange="SMART", primary_exchange="NYSE", time_zone="")
CME = session_table(sec_type="FUT", exchange="CME", primary_exchange="", time_zone="US/Central")
FX = session_table(sec_type="CASH", exchange="IDEALPRO", primary_exchange="", time_zone="")


def ny(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=NY)


def ct(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CHICAGO)


def date_of(day) -> dt.date:
    """A session table's day number as a date."""
    return EPOCH_DATE + dt.timedelta(days=int(day))


def session(table: SessionTable, day: dt.date, rth: bool = True) -> tuple | None:
    """(open, close) of the session of `day` as UTC datetimes; None when there is none."""
    number = (day - EPOCH_DATE).days
    i = int(np.searchsorted(table.day, number))
    if i == len(table.day) or table.day[i] != number:
        return None
    opens, closes = (table.rth_open, table.rth_close) if rth else (table.eth_open, table.eth_close)
    return from_epoch(int(opens[i])), from_epoch(int(closes[i]))


def test_us_stocks_trade_0930_1600_and_0400_2000_extended():
    day = dt.date(2024, 11, 27)
    assert session(XNYS, day) == (ny(2024, 11, 27, 9, 30), ny(2024, 11, 27, 16))
    assert session(XNYS, day, rth=False) == (ny(2024, 11, 27, 4), ny(2024, 11, 27, 20))
    assert XNYS.zone == "America/New_York"


def test_independence_day_has_no_session_and_the_day_before_closes_early():
    assert session(XNYS, dt.date(2024, 7, 4)) is None
    assert session(XNYS, dt.date(2024, 7, 4), rth=False) is None
    assert session(XNYS, dt.date(2024, 7, 3)) == (ny(2024, 7, 3, 9, 30), ny(2024, 7, 3, 13))
    assert session(XNYS, dt.date(2024, 7, 5)) == (ny(2024, 7, 5, 9, 30), ny(2024, 7, 5, 16))


def test_black_friday_closes_at_1300_and_extended_hours_at_1700():
    day = dt.date(2024, 11, 29)
    assert session(XNYS, day) == (ny(2024, 11, 29, 9, 30), ny(2024, 11, 29, 13))
    assert session(XNYS, day, rth=False) == (ny(2024, 11, 29, 4), ny(2024, 11, 29, 17))
    assert session(XNYS, dt.date(2024, 11, 28)) is None  # Thanksgiving


def test_the_open_stays_0930_new_york_time_across_dst():
    friday, monday = session(XNYS, dt.date(2024, 3, 8)), session(XNYS, dt.date(2024, 3, 11))
    assert friday[0] == dt.datetime(2024, 3, 8, 14, 30, tzinfo=dt.UTC)
    assert monday[0] == dt.datetime(2024, 3, 11, 13, 30, tzinfo=dt.UTC)


def test_an_index_has_no_extended_hours():
    spx = session_table(
        sec_type="IND", exchange="CBOE", primary_exchange="", time_zone="US/Eastern"
    )
    day = dt.date(2024, 11, 29)
    assert session(spx, day, rth=False) == session(spx, day) == session(XNYS, day)
    assert np.array_equal(spx.eth_open, spx.rth_open)
    assert np.array_equal(spx.eth_close, spx.rth_close)


def test_forex_trades_weekdays_from_1715_new_york_the_day_before():
    assert FX.zone == "America/New_York"
    assert session(FX, dt.date(2024, 1, 5)) == (ny(2024, 1, 4, 17, 15), ny(2024, 1, 5, 17))
    assert session(FX, dt.date(2024, 1, 6)) is None and session(FX, dt.date(2024, 1, 7)) is None
    assert session(FX, dt.date(2024, 1, 8)) == (ny(2024, 1, 7, 17, 15), ny(2024, 1, 8, 17))
    assert session(FX, dt.date(2024, 12, 25)) is not None  # no exchange holidays
    # across DST: 17:15 New York time still
    assert session(FX, dt.date(2024, 3, 11)) == (ny(2024, 3, 10, 17, 15), ny(2024, 3, 11, 17))
    assert session(FX, dt.date(2024, 3, 11), rth=False) == session(FX, dt.date(2024, 3, 11))


def test_forex_keeps_new_york_sessions_whatever_zone_the_gateway_names():
    london = session_table(
        sec_type="CASH", exchange="IDEALPRO", primary_exchange="", time_zone="Europe/London"
    )
    assert london is FX


def test_cme_futures_trade_from_1700_chicago_the_day_before():
    assert CME.zone == "America/Chicago"
    assert session(CME, dt.date(2024, 1, 8)) == (ct(2024, 1, 7, 17), ct(2024, 1, 8, 17))
    assert session(CME, dt.date(2024, 1, 6)) is None
    assert session(CME, dt.date(2024, 12, 25)) is None
    assert session(CME, dt.date(2024, 7, 4)) == (ct(2024, 7, 3, 17), ct(2024, 7, 4, 12))
    assert session(CME, dt.date(2024, 7, 4), rth=False) == session(CME, dt.date(2024, 7, 4))
    assert date_of(CME.day[0]).year == 1997


@pytest.mark.parametrize(
    ("sec_type", "exchange", "primary_exchange"),
    [
        ("FUT", "GLOBEX", ""),
        ("CONTFUT", "CME", ""),
        ("FUT", "QBALGO", "NYMEX"),
        ("FUT", "CBOT", ""),
    ],
)
def test_the_cme_group_calendar_for_its_exchanges(sec_type, exchange, primary_exchange):
    table = session_table(
        sec_type=sec_type,
        exchange=exchange,
        primary_exchange=primary_exchange,
        time_zone="US/Central",
    )
    assert table is CME


@pytest.mark.parametrize(
    ("sec_type", "exchange", "zone"),
    [("STK", "TSEJ", "Asia/Tokyo"), ("FUT", "EUREX", "Europe/Berlin"), ("CFD", "SMART", "")],
)
def test_anything_else_trades_whole_weekdays_in_its_zone(sec_type, exchange, zone):
    table = session_table(sec_type=sec_type, exchange=exchange, primary_exchange="", time_zone=zone)
    local = ZoneInfo(table.zone)
    assert table.zone == (zone or "America/New_York")
    friday, monday = dt.date(2024, 3, 8), dt.date(2024, 3, 11)
    assert session(table, friday) == (
        from_epoch(local_midnight(friday, local)),
        from_epoch(local_midnight(dt.date(2024, 3, 9), local)),
    )
    assert session(table, dt.date(2024, 3, 9)) is None
    assert session(table, monday) is not None and session(table, dt.date(2024, 1, 1)) is not None


@pytest.mark.parametrize("zone", ["America/Sao_Paulo", "Asia/Jerusalem", "Asia/Tehran"])
def test_a_zone_whose_clock_skips_or_repeats_midnight_still_has_sessions(zone):
    """Brazil's clocks went from 00:00 to 01:00 when DST began; Israel's went back from 01:00 to
    00:00 when it ended: a session starts at the day's first instant (as local_midnight says)."""
    table = session_table(sec_type="STK", exchange="SMART", primary_exchange="", time_zone=zone)
    local = ZoneInfo(zone)

    def midnights(after: int) -> list[int]:
        return [local_midnight(date_of(d + after), local) for d in table.day]

    assert np.array_equal(table.rth_open, midnights(0))
    assert np.array_equal(table.rth_close, midnights(1))


def test_tables_are_sorted_and_cover_the_years():
    for table in (XNYS, CME, FX):
        assert np.all(np.diff(table.day) > 0)
        assert np.all(table.rth_open < table.rth_close)
        assert np.all(table.eth_open <= table.rth_open) and np.all(
            table.eth_close >= table.rth_close
        )
        assert date_of(table.day[-1]).year == LAST_YEAR
    assert date_of(XNYS.day[0]).year == FIRST_YEAR


def test_between_gives_the_sessions_overlapping_a_window():
    start, end = epoch(ny(2024, 7, 2, 12)), epoch(ny(2024, 7, 8, 9, 30))
    days, opens, closes = XNYS.between(start, end, use_rth=True)
    dates = [date_of(d) for d in days]
    assert dates == [dt.date(2024, 7, 2), dt.date(2024, 7, 3), dt.date(2024, 7, 5)]
    assert opens[0] == epoch(ny(2024, 7, 2, 9, 30)) and closes[1] == epoch(ny(2024, 7, 3, 13))
    # a window ending at an open, or starting at a close, does not overlap that session
    assert len(XNYS.between(end - 3600, end, use_rth=True)[0]) == 0
    closed = epoch(ny(2024, 7, 5, 16))
    assert len(XNYS.between(closed, closed + 3600, use_rth=True)[0]) == 0
    assert len(XNYS.between(closed, closed + 3600, use_rth=False)[0]) == 1


def test_days_between_is_inclusive():
    first = (dt.date(2024, 7, 1) - EPOCH_DATE).days
    days = XNYS.days_between(first, first + 4)  # Monday to Friday, Thursday the 4th a holiday
    assert (days - first).tolist() == [0, 1, 2, 4]
    assert len(XNYS.days_between(first + 5, first + 6)) == 0


def test_traded_tells_whether_a_window_holds_a_session():
    """What makes an empty answer suspect: a session the calendar says traded in the window
    (2024-07-03 closes at 13:00, its extended hours at 17:00)."""
    july = [epoch(ny(2024, 7, d)) for d in (3, 4, 5)]  # Wednesday, Independence Day, Friday
    assert XNYS.traded(july[0], july[1], use_rth=True, daily=False)
    assert not XNYS.traded(july[1], july[2], use_rth=True, daily=False)  # the holiday
    assert not XNYS.traded(epoch(ny(2024, 7, 3, 13, 30)), july[1], use_rth=True, daily=False)
    assert XNYS.traded(epoch(ny(2024, 7, 3, 13, 30)), july[1], use_rth=False, daily=False)
    day = 86_400
    july4 = (dt.date(2024, 7, 4) - EPOCH_DATE).days * day  # date space: 00:00 UTC of the date
    assert not XNYS.traded(july4, july4 + day, use_rth=True, daily=True)
    assert XNYS.traded(july4, july4 + 2 * day, use_rth=True, daily=True)


def test_gaps_are_the_closed_stretches_between_sessions():
    """What a chart leaves out: the early close of 3 July to the 5th's open (Independence Day
    between), then the night and the weekend."""
    start, end = epoch(ny(2024, 7, 3, 10)), epoch(ny(2024, 7, 8, 12))
    froms, tos = XNYS.gaps(start, end, use_rth=True)
    assert [(from_epoch(int(a)), from_epoch(int(b))) for a, b in zip(froms, tos, strict=True)] == [
        (ny(2024, 7, 3, 13), ny(2024, 7, 5, 9, 30)),
        (ny(2024, 7, 5, 16), ny(2024, 7, 8, 9, 30)),
    ]
    # forex: a quarter of an hour each weekday evening, the weekend from Friday 17:00
    froms, tos = FX.gaps(epoch(ny(2024, 7, 11, 12)), epoch(ny(2024, 7, 15, 12)), use_rth=True)
    assert [int(b - a) // 60 for a, b in zip(froms, tos, strict=True)] == [15, 48 * 60 + 15]
