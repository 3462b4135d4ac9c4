"""Time: epoch seconds, date space, local midnights across DST, dates to the epochs bars of a
timeframe are stored in, IBKR's zone names and UTC strings."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from fetcher.domain.time import (
    DAY,
    DEFAULT_ZONE,
    date_epoch,
    dates_epochs,
    epoch,
    from_epoch,
    ibkr_utc,
    local_midnight,
    zone_info,
    zone_name,
)
from fetcher.domain.timeframes import TIMEFRAMES

NY = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")


def test_epoch_and_from_epoch_are_utc_and_inverse():
    moment = dt.datetime(2024, 3, 10, 7, 30, tzinfo=dt.UTC)
    assert epoch(moment) == 1_710_055_800
    assert from_epoch(1_710_055_800) == moment
    assert from_epoch(0).tzinfo == dt.UTC
    # the same instant written in another zone is the same epoch
    assert epoch(moment.astimezone(NY)) == 1_710_055_800


def test_date_epoch_is_midnight_utc_of_the_date():
    assert date_epoch(dt.date(1970, 1, 1)) == 0
    assert date_epoch(dt.date(2024, 1, 2)) == 19_724 * DAY
    assert from_epoch(date_epoch(dt.date(2024, 2, 29))) == dt.datetime(2024, 2, 29, tzinfo=dt.UTC)
    assert date_epoch(dt.date(1969, 12, 31)) == -DAY


def test_local_midnight_follows_the_zone_offset_across_dst():
    # New York: UTC-5 in winter, UTC-4 from 2024-03-10 02:00 to 2024-11-03 02:00
    assert ibkr_utc(local_midnight(dt.date(2024, 3, 10), NY)) == "20240310-05:00:00"
    assert ibkr_utc(local_midnight(dt.date(2024, 3, 11), NY)) == "20240311-04:00:00"
    assert ibkr_utc(local_midnight(dt.date(2024, 11, 3), NY)) == "20241103-04:00:00"
    assert ibkr_utc(local_midnight(dt.date(2024, 11, 4), NY)) == "20241104-05:00:00"
    assert ibkr_utc(local_midnight(dt.date(2024, 7, 4), CHICAGO)) == "20240704-05:00:00"


def test_local_days_are_23_and_25_hours_long_on_dst_changes():
    def hours(day: dt.date) -> float:
        nxt = day + dt.timedelta(days=1)
        return (local_midnight(nxt, NY) - local_midnight(day, NY)) / 3600

    assert hours(dt.date(2024, 3, 10)) == 23
    assert hours(dt.date(2024, 11, 3)) == 25
    assert hours(dt.date(2024, 6, 1)) == 24


def test_every_local_midnight_of_a_year_is_midnight_on_the_local_clock():
    day = dt.date(2024, 1, 1)
    while day.year == 2024:
        local = from_epoch(local_midnight(day, NY)).astimezone(NY)
        assert (local.date(), local.time()) == (day, dt.time(0)), day
        day += dt.timedelta(days=1)


def test_a_midnight_the_clock_skips_is_the_first_instant_of_the_day():
    # Sao Paulo went from 00:00 straight to 01:00 on 2018-11-04
    sao_paulo = ZoneInfo("America/Sao_Paulo")
    start = local_midnight(dt.date(2018, 11, 4), sao_paulo)
    assert ibkr_utc(start) == "20181104-03:00:00"
    assert from_epoch(start).astimezone(sao_paulo).time() == dt.time(1)


def test_ibkr_utc_is_yyyymmdd_dash_time_in_utc():
    assert ibkr_utc(0) == "19700101-00:00:00"
    assert ibkr_utc(epoch(dt.datetime(2024, 1, 31, 16, tzinfo=NY))) == "20240131-21:00:00"
    assert ibkr_utc(epoch(dt.datetime(2024, 7, 31, 16, tzinfo=NY))) == "20240731-20:00:00"


@pytest.mark.parametrize(
    ("ibkr", "iana"),
    [
        ("US/Eastern", "America/New_York"),
        ("US/Central", "America/Chicago"),
        ("", DEFAULT_ZONE),
        ("Europe/Berlin", "Europe/Berlin"),
        ("Asia/Tokyo", "Asia/Tokyo"),
    ],
)
def test_zone_names_from_ibkr_are_canonical(ibkr, iana):
    assert zone_name(ibkr) == iana
    assert zone_info(ibkr) == ZoneInfo(iana)


def test_dates_are_inclusive_from_the_first_to_the_start_of_the_day_after_the_last():
    start, end = dt.date(2024, 3, 9), dt.date(2024, 3, 10)  # DST begins on the 10th in New York
    first, last = dates_epochs(start, end, TIMEFRAMES["DAILY"], NY)
    assert (first, last) == (date_epoch(start), date_epoch(dt.date(2024, 3, 11)))
    assert last - first == 2 * DAY
    first, last = dates_epochs(start, end, TIMEFRAMES["1-HOUR"], NY)
    assert first == date_epoch(start) + 5 * 3600  # midnight EST
    assert last == date_epoch(dt.date(2024, 3, 11)) + 4 * 3600  # midnight EDT
    assert last - first == 47 * 3600  # the 10th has 23 hours
    first, last = dates_epochs(end, end, TIMEFRAMES["WEEKLY"], NY)  # one date: one whole day
    assert last - first == DAY and first % DAY == 0
