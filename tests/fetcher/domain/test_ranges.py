"""Ranges: which range one instrument's fetch covers and why; up to when stored bars are complete."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from fetcher.domain.ranges import INTRADAY_DEFAULT_DAYS, complete_until, day_start, resolve_range
from fetcher.domain.time import date_epoch, epoch, local_midnight
from fetcher.domain.timeframes import SMALL_BARS_DAYS, TIMEFRAMES

NY = ZoneInfo("America/New_York")
DAY = 86_400
DAILY, MINUTE, SECONDS = TIMEFRAMES["DAILY"], TIMEFRAMES["1-MINUTE"], TIMEFRAMES["5-SECOND"]
TODAY = dt.date(2024, 6, 28)  # a Friday
NOW = epoch(dt.datetime(2024, 6, 28, 14, 0, 7, tzinfo=NY))
HEAD = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)  # 09:30 in New York


def ny(*args) -> int:
    return epoch(dt.datetime(*args, tzinfo=NY))


def resolve(tf=DAILY, **given) -> tuple[int, int, str]:
    asked = {"start": None, "end": None, "since_head": False, "head": None, "covered": []}
    return resolve_range(tf=tf, zone=NY, now=NOW, **{**asked, **given})


def test_day_start_is_local_midnight_intraday_and_date_space_for_daily_bars():
    assert day_start(dt.date(2024, 3, 10), MINUTE, NY) == ny(2024, 3, 10)
    assert day_start(dt.date(2024, 3, 11), MINUTE, NY) == ny(2024, 3, 11)  # an hour less after
    assert day_start(dt.date(2024, 3, 11), DAILY, NY) == date_epoch(dt.date(2024, 3, 11))
    assert day_start(dt.date(2024, 3, 11), TIMEFRAMES["MONTHLY"], NY) % 86_400 == 0


def test_start_and_end_given_are_whole_dates():
    start, end = dt.date(2024, 1, 1), dt.date(2024, 1, 31)
    assert resolve(start=start, end=end) == (
        date_epoch(start),
        date_epoch(dt.date(2024, 2, 1)),
        "2024-01-01 to 2024-01-31",
    )
    assert resolve(MINUTE, start=start, end=end) == (
        ny(2024, 1, 1),
        ny(2024, 2, 1),
        "2024-01-01 to 2024-01-31",
    )


def test_no_end_is_up_to_now_intraday_and_through_today_daily():
    start = dt.date(2024, 6, 3)
    assert resolve(MINUTE, start=start) == (ny(2024, 6, 3), NOW, "2024-06-03 to 2024-06-28")
    assert resolve(MINUTE, start=start, end=TODAY)[1] == NOW
    assert resolve(start=start)[:2] == (date_epoch(start), date_epoch(dt.date(2024, 6, 29)))


def test_since_head_starts_at_the_gateway_first_data():
    first, last, note = resolve(MINUTE, since_head=True, head=HEAD)
    assert (first, last) == (epoch(HEAD), NOW)
    assert note == "since the gateway's first data (2024-01-02)"
    # even when bars are stored: planning subtracts them
    assert resolve(MINUTE, since_head=True, head=HEAD, covered=[(ny(2024, 6, 3), NOW)])[0] == (
        epoch(HEAD)
    )


def test_nothing_stored_daily_starts_at_the_gateway_first_data():
    first, last, note = resolve(head=HEAD)
    assert last == date_epoch(dt.date(2024, 6, 29))
    assert note == "since the gateway's first data (2024-01-02)"
    assert resolve(head=HEAD, since_head=True) == (first, last, note)


@pytest.mark.parametrize(
    ("head", "first_day"),
    [(HEAD, dt.date(2024, 1, 2)), (None, TODAY)],
    ids=["head", "no-head"],
)
def test_a_daily_range_since_the_head_starts_at_the_head_date(head, first_day):
    first, _, note = resolve(since_head=True, head=head)
    assert first == date_epoch(first_day)
    assert note == f"since the gateway's first data ({first_day})"


def test_nothing_stored_intraday_is_the_last_30_days():
    first, last, note = resolve(MINUTE)
    assert first == local_midnight(TODAY - dt.timedelta(days=INTRADAY_DEFAULT_DAYS), NY)
    assert first == ny(2024, 5, 29) and last == NOW
    assert note == "last 30 days (nothing stored yet)"


def test_an_update_starts_after_the_last_stored_bar():
    covered = [(ny(2024, 5, 1), ny(2024, 5, 10)), (ny(2024, 6, 3), ny(2024, 6, 27, 16))]
    assert resolve(MINUTE, covered=covered) == (
        ny(2024, 6, 27, 16),
        NOW,
        "update after the last stored bar (2024-06-27 20:00 UTC)",
    )
    stored_daily = [(date_epoch(dt.date(2020, 1, 2)), date_epoch(dt.date(2024, 6, 27)))]
    assert resolve(covered=stored_daily)[:2] == (
        date_epoch(dt.date(2024, 6, 27)),
        date_epoch(dt.date(2024, 6, 29)),
    )


def test_an_update_with_everything_stored_is_an_empty_range():
    covered = [(date_epoch(dt.date(2020, 1, 2)), date_epoch(dt.date(2024, 7, 1)))]
    first, last, _ = resolve(covered=covered, end=dt.date(2024, 1, 31))
    assert first == last == date_epoch(dt.date(2024, 7, 1))


def test_a_start_before_the_head_is_clamped_to_it():
    start = dt.date(2023, 12, 1)
    first, _, note = resolve(start=start, head=HEAD)
    assert first == date_epoch(dt.date(2024, 1, 2))  # daily bars: the head's date
    assert note == "2023-12-01 to 2024-06-28; clamped to the gateway's first data (2024-01-02)"
    assert resolve(MINUTE, start=start, head=HEAD)[0] == epoch(HEAD)  # intraday: the instant
    assert resolve(start=dt.date(2024, 1, 3), head=HEAD)[2] == "2024-01-03 to 2024-06-28"


def test_small_bars_go_back_six_months_at_most():
    oldest = local_midnight(TODAY - dt.timedelta(days=SMALL_BARS_DAYS), NY)
    suffix = f"; bars of 30 s or less: the last {SMALL_BARS_DAYS} days only"
    old_head = dt.datetime(1999, 3, 10, 14, 30, tzinfo=dt.UTC)
    first, last, note = resolve(SECONDS, since_head=True, head=old_head)
    assert (first, last) == (oldest, NOW) and first == ny(2023, 12, 31)
    assert note == "since the gateway's first data (1999-03-10)" + suffix
    assert resolve(SECONDS, since_head=True, head=HEAD)[0] == epoch(HEAD)  # a later head wins
    assert resolve(SECONDS, start=dt.date(2023, 6, 1))[0] == oldest
    assert resolve(SECONDS, start=dt.date(2024, 6, 3)) == (
        ny(2024, 6, 3),
        NOW,
        "2024-06-03 to 2024-06-28",
    )
    assert resolve(MINUTE, since_head=True, head=HEAD)[0] == epoch(HEAD)  # a minute is not small


def test_complete_until_intraday_is_the_start_of_the_bar_still_forming():
    assert complete_until(MINUTE, NOW, NY) == ny(2024, 6, 28, 14)
    assert complete_until(SECONDS, NOW + 0.9, NY) == ny(2024, 6, 28, 14, 0, 5)
    assert complete_until(TIMEFRAMES["1-HOUR"], ny(2024, 6, 28, 11, 30), NY) == ny(2024, 6, 28, 11)
    assert complete_until(MINUTE, ny(2024, 6, 28, 14), NY) == ny(2024, 6, 28, 14)


@pytest.mark.parametrize(
    ("name", "forming"),
    [("2-HOUR", (10, 0)), ("3-HOUR", (9, 30)), ("4-HOUR", (9, 30)), ("8-HOUR", (9, 30))],
)
def test_complete_until_multi_hour_bars_follow_the_local_clock(name, forming):
    # 11:30 New York time in winter: the 2-hour bar of 10:00-12:00 is still forming, and the
    # longer bars that opened with the session at 09:30
    now = ny(2024, 1, 2, 11, 30)
    assert complete_until(TIMEFRAMES[name], now, NY) <= ny(2024, 1, 2, *forming)


def test_complete_until_daily_weekly_monthly_is_the_current_period_in_the_exchange_zone():
    evening = ny(2024, 6, 28, 22)  # already Saturday in UTC
    assert complete_until(DAILY, evening, NY) == date_epoch(dt.date(2024, 6, 28))
    # a week is dated by its last trading day (IBKR): this one's, June 28, is still today
    assert complete_until(TIMEFRAMES["WEEKLY"], evening, NY) == date_epoch(dt.date(2024, 6, 28))
    assert complete_until(TIMEFRAMES["MONTHLY"], evening, NY) == date_epoch(dt.date(2024, 6, 1))
    saturday = ny(2024, 6, 29, 9)  # the week of June 28 is over
    assert complete_until(TIMEFRAMES["WEEKLY"], saturday, NY) == date_epoch(dt.date(2024, 6, 29))
    monday = ny(2024, 7, 1, 9)
    assert complete_until(TIMEFRAMES["MONTHLY"], monday, NY) == date_epoch(dt.date(2024, 7, 1))


def test_a_weekly_range_reaches_the_friday_of_its_last_week():
    """The week in progress is dated by its last trading day, days ahead (IBKR's dating)."""
    weekly = TIMEFRAMES["WEEKLY"]
    wednesday = dt.date(2024, 6, 26)
    assert resolve(weekly, start=dt.date(2024, 6, 3), end=wednesday)[1] == date_epoch(TODAY) + DAY
    assert resolve(weekly, start=dt.date(2024, 6, 3))[1] == date_epoch(dt.date(2024, 6, 29))
    sunday = dt.date(2024, 6, 30)  # its week ended on Friday the 28th
    assert resolve(weekly, start=dt.date(2024, 6, 3), end=sunday)[1] == date_epoch(sunday) + DAY
