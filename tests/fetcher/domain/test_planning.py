"""Planning: the fewest requests, no bar twice, nothing already covered, no empty windows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from fetcher.domain.planning import (
    DAY,
    fetch_plan,
    intervals_merge,
    intervals_subtract,
    months_before,
    plan_requests,
    probe_request,
)
from fetcher.domain.sessions import session_table
from fetcher.domain.timeframes import TIMEFRAMES, duration_accepted, timeframe_parse

NY = ZoneInfo("America/New_York")
XNYS = session_table(
    sec_type="STK", exchange="SMART", primary_exchange="NASDAQ", time_zone="US/Eastern"
)


def local(y, m, d, h=0, mi=0) -> int:
    return int(dt.datetime(y, m, d, h, mi, tzinfo=NY).timestamp())


def day_space(y, m, d) -> int:
    return (dt.date(y, m, d) - dt.date(1970, 1, 1)).days * DAY


def test_intervals_subtract():
    assert intervals_subtract(0, 100, []) == [(0, 100)]
    assert intervals_subtract(0, 100, [(10, 20), (15, 30), (90, 200)]) == [(0, 10), (30, 90)]
    assert intervals_subtract(0, 100, [(0, 100)]) == []


def test_daily_january_2024_is_one_request_of_21_sessions():
    plan = plan_requests(
        sessions=XNYS,
        timeframe=timeframe_parse("DAILY"),
        use_rth=True,
        start=day_space(2024, 1, 1),
        end=day_space(2024, 2, 1),
    )
    assert len(plan) == 1
    [req] = plan
    assert req.duration == "21 D"
    assert req.window_start == day_space(2024, 1, 2) and req.window_end == day_space(2024, 2, 1)
    assert req.end == "20240201-05:00:00"  # local midnight after Jan 31, in UTC


def test_daily_years_split_into_requests_of_at_most_250_sessions():
    plan = plan_requests(
        sessions=XNYS,
        timeframe=timeframe_parse("DAILY"),
        use_rth=True,
        start=day_space(2020, 1, 1),
        end=day_space(2024, 1, 1),
    )
    sessions = sum(int(r.duration.split()[0]) for r in plan)
    assert sessions == 1006  # NYSE sessions 2020-2023
    assert len(plan) == 5
    for a, b in zip(plan, plan[1:], strict=False):
        assert a.window_end <= b.window_start


def test_one_minute_bars_one_request_per_session():
    start, end = local(2024, 1, 1), local(2024, 1, 27)
    plan = plan_requests(
        sessions=XNYS, timeframe=timeframe_parse("1-MINUTE"), use_rth=True, start=start, end=end
    )
    assert len(plan) == 18  # sessions Jan 2..Jan 26, no MLK day
    assert all(r.duration == "1 D" for r in plan)
    assert plan[0].window_start == local(2024, 1, 2, 9, 30) and plan[0].window_end == local(
        2024, 1, 2, 16
    )


def test_two_minute_bars_pair_sessions():
    plan = plan_requests(
        sessions=XNYS,
        timeframe=timeframe_parse("2-MINUTE"),
        use_rth=True,
        start=local(2024, 1, 1),
        end=local(2024, 1, 13),
    )
    assert sorted(r.duration for r in plan) == ["1 D", "2 D", "2 D", "2 D", "2 D"]  # 9 sessions


def test_a_resumed_session_is_fetched_by_seconds():
    plan = plan_requests(
        sessions=XNYS,
        timeframe=timeframe_parse("1-MINUTE"),
        use_rth=True,
        start=local(2024, 1, 2, 12),
        end=local(2024, 1, 3, 16),
    )
    assert [r.duration for r in plan] == ["14400 S", "1 D"]


def test_small_bars_chain_seconds_within_sessions():
    plan = plan_requests(
        sessions=XNYS,
        timeframe=timeframe_parse("5-SECOND"),
        use_rth=True,
        start=local(2024, 1, 2),
        end=local(2024, 1, 3),
    )
    assert len(plan) == 7  # 23,400 s of RTH in requests of 3,600 s
    assert plan[0].duration == "1800 S" and all(r.duration == "3600 S" for r in plan[1:])
    assert plan[0].window_start == local(2024, 1, 2, 9, 30)


@pytest.mark.parametrize("name", ["5-MINUTE", "1-HOUR", "30-MINUTE"])
def test_calendar_windows_tile_the_range_without_overlap(name):
    tf = timeframe_parse(name)
    start, end = local(2023, 10, 2), local(2024, 3, 30)
    plan = plan_requests(sessions=XNYS, timeframe=tf, use_rth=False, start=start, end=end)
    for a, b in zip(plan, plan[1:], strict=False):
        assert a.window_end <= b.window_start
    unit = tf.max_duration.split()[1]
    assert sum(r.duration.endswith(unit) for r in plan) >= len(plan) - 1


def test_covered_windows_are_not_planned_again():
    tf = timeframe_parse("1-MINUTE")
    first = plan_requests(
        sessions=XNYS, timeframe=tf, use_rth=True, start=local(2024, 1, 1), end=local(2024, 1, 15)
    )
    covered = [(r.window_start, r.window_end) for r in first]
    again = plan_requests(
        sessions=XNYS,
        timeframe=tf,
        use_rth=True,
        start=local(2024, 1, 1),
        end=local(2024, 1, 15),
        covered=covered,
    )
    assert again == []
    wider = plan_requests(
        sessions=XNYS,
        timeframe=tf,
        use_rth=True,
        start=local(2024, 1, 1),
        end=local(2024, 1, 20),
        covered=covered,
    )
    assert len(wider) == 4  # Jan 16..19 (Jan 15 is Martin Luther King Jr. Day)


def test_intervals_merge_joins_overlapping_and_touching_intervals():
    assert intervals_merge([]) == []
    assert intervals_merge([(50, 60), (0, 10), (10, 20), (15, 30), (40, 45)]) == [
        (0, 30),
        (40, 45),
        (50, 60),
    ]
    assert intervals_merge([(0, 100), (10, 20)]) == [(0, 100)]


def test_intervals_subtract_keeps_the_range_inside_its_bounds():
    assert intervals_subtract(10, 20, [(0, 5), (30, 40)]) == [(10, 20)]
    assert intervals_subtract(10, 20, [(0, 12), (18, 40)]) == [(12, 18)]
    assert intervals_subtract(10, 10, []) == []


def test_months_before_keeps_the_local_wall_time_and_clamps_the_day():
    assert months_before(local(2024, 3, 31, 16), 1, "America/New_York") == local(2024, 2, 29, 16)
    assert months_before(local(2024, 7, 15, 9, 30), 6, "America/New_York") == local(
        2024, 1, 15, 9, 30
    )
    assert months_before(local(2024, 1, 31), 12, "America/New_York") == local(2023, 1, 31)


def test_a_range_without_sessions_plans_no_request():
    for name, start, end in [
        ("DAILY", day_space(2024, 7, 4), day_space(2024, 7, 5)),  # Independence Day
        ("DAILY", day_space(2024, 7, 6), day_space(2024, 7, 8)),  # a weekend
        ("1-MINUTE", local(2024, 7, 4), local(2024, 7, 5)),
        ("1-HOUR", local(2024, 7, 3, 13), local(2024, 7, 5, 9, 30)),  # after an early close
        ("5-SECOND", local(2024, 7, 6), local(2024, 7, 8)),
    ]:
        assert (
            plan_requests(
                sessions=XNYS, timeframe=timeframe_parse(name), use_rth=True, start=start, end=end
            )
            == []
        ), name


@dataclass(frozen=True)
class Listing:
    """What the gateway says of an instrument, as fetch_plan reads it."""

    sec_type: str = "STK"
    exchange: str = "SMART"
    primary_exchange: str = "NASDAQ"
    time_zone: str = "US/Eastern"


NOW = local(2024, 6, 28, 14)  # a Friday afternoon
HEAD = dt.datetime(2004, 1, 2, 14, 30, tzinfo=dt.UTC)


def plan_of(*, listing=Listing(), timeframe="DAILY", use_rth=True, covered=(), **asked):
    given = {"start": None, "end": None, "since_head": False, "head": HEAD, **asked}
    return fetch_plan(
        listing=listing,
        timeframe=timeframe_parse(timeframe),
        use_rth=use_rth,
        covered=list(covered),
        now=NOW,
        **given,
    )


def test_fetch_plan_is_the_range_then_the_requests_for_its_sessions():
    plan = plan_of(start=dt.date(2024, 1, 1), end=dt.date(2024, 1, 31))
    assert (plan.start, plan.end) == (day_space(2024, 1, 1), day_space(2024, 2, 1))
    assert plan.note == "2024-01-01 to 2024-01-31"
    assert plan.requests == plan_requests(
        sessions=XNYS,
        timeframe=timeframe_parse("DAILY"),
        use_rth=True,
        start=plan.start,
        end=plan.end,
    )
    assert [r.duration for r in plan.requests] == ["21 D"]


def test_fetch_plan_with_everything_covered_has_no_request():
    asked = {"start": dt.date(2024, 1, 1), "end": dt.date(2024, 1, 31)}
    first = plan_of(**asked)
    again = plan_of(covered=[(first.start, first.end)], **asked)
    assert (again.start, again.end, again.note) == (first.start, first.end, first.note)
    assert again.requests == []
    minutes = plan_of(timeframe="1-MINUTE", **asked)
    covered = [(r.window_start, r.window_end) for r in minutes.requests]
    assert len(minutes.requests) == 21
    assert plan_of(timeframe="1-MINUTE", covered=covered, **asked).requests == []


def test_fetch_plan_asks_only_for_what_is_missing():
    asked = {"start": dt.date(2024, 1, 1), "end": dt.date(2024, 1, 31), "timeframe": "1-MINUTE"}
    covered = [(local(2024, 1, 1), local(2024, 1, 16))]  # up to MLK day, included
    plan = plan_of(covered=covered, **asked)
    assert len(plan.requests) == 12  # the sessions of Jan 16..31
    assert plan.requests[0].window_start == local(2024, 1, 16, 9, 30)


def test_fetch_plan_update_after_the_last_stored_bar():
    covered = [(local(2024, 6, 3), local(2024, 6, 28, 12))]
    plan = plan_of(timeframe="1-MINUTE", covered=covered)
    assert (plan.start, plan.end) == (local(2024, 6, 28, 12), NOW)
    assert plan.note.startswith("update after the last stored bar")
    assert [(r.window_start, r.window_end, r.duration) for r in plan.requests] == [
        (local(2024, 6, 28, 12), NOW, "7200 S")
    ]
    assert plan_of(timeframe="1-MINUTE", covered=[(local(2024, 6, 3), NOW)]).requests == []


def test_an_update_asks_again_for_windows_once_answered_empty():
    """A window answered "no data" although it traded (suspect, so not covered) lies before the
    last stored bar: an update asks for it too, and its range starts there; a fetch of given
    dates does not reach out for it."""
    glitch = (local(2024, 6, 12, 9, 30), local(2024, 6, 12, 16))
    covered = [(local(2024, 6, 3), glitch[0]), (glitch[1], local(2024, 6, 28, 12))]
    plan = plan_of(timeframe="1-MINUTE", covered=covered, retry=[glitch])
    assert (plan.start, plan.end) == (glitch[0], NOW)
    assert plan.note.endswith("; 1 window(s) once answered empty asked again")
    assert [(r.window_start, r.window_end, r.duration) for r in plan.requests] == [
        (*glitch, "1 D"),
        (local(2024, 6, 28, 12), NOW, "7200 S"),
    ]
    dated = plan_of(
        timeframe="1-MINUTE",
        covered=covered,
        retry=[glitch],
        start=dt.date(2024, 6, 20),
        end=dt.date(2024, 6, 21),
    )
    assert [r.window_start for r in dated.requests] == []  # covered, and the glitch not asked


def test_fetch_plan_reads_ranges_in_the_listing_zone_and_its_calendar():
    es = Listing("FUT", "CME", "", "US/Central")
    plan = plan_of(
        listing=es, timeframe="1-MINUTE", start=dt.date(2024, 6, 3), end=dt.date(2024, 6, 3)
    )
    chicago = ZoneInfo("America/Chicago")
    midnight = int(dt.datetime(2024, 6, 3, tzinfo=chicago).timestamp())
    assert (plan.start, plan.end) == (midnight, midnight + DAY)
    # the session of June 3 opened at 17:00 on the 2nd: the range cuts it at midnight, and the
    # session of June 4 opens at 17:00 on the 3rd
    assert [r.duration for r in plan.requests] == ["61200 S", "25200 S"]
    assert plan.requests[-1].window_end == midnight + DAY


def test_fetch_plan_for_forex_follows_sessions_from_1715_new_york():
    eurusd = Listing("CASH", "IDEALPRO", "", "")
    weekend = plan_of(listing=eurusd, start=dt.date(2024, 6, 22), end=dt.date(2024, 6, 23))
    assert weekend.requests == []
    plan = plan_of(
        listing=eurusd, timeframe="1-HOUR", start=dt.date(2024, 6, 24), end=dt.date(2024, 6, 24)
    )
    assert plan.requests[0].window_start == local(2024, 6, 24)
    assert plan.requests[-1].window_end == local(2024, 6, 25)


def test_a_bare_daily_fetch_asks_for_the_head_date_bar():
    plan = plan_of(end=dt.date(2004, 1, 9))
    assert plan.requests[0].window_start == day_space(2004, 1, 2)
    assert [r.duration for r in plan.requests] == ["6 D"]  # Jan 2 and 5..9


@pytest.mark.parametrize("name", list(TIMEFRAMES))
@pytest.mark.parametrize(
    "listing",
    [
        ("STK", "SMART", "NASDAQ", "US/Eastern"),
        ("FUT", "CME", "", "US/Central"),
        ("CASH", "IDEALPRO", "", ""),
    ],
    ids=["stock", "future", "forex"],
)
def test_every_planned_request_is_one_ibkr_accepts(name, listing):
    """IBKR refuses more than 365 D (or 52 W, 12 M, 86400 S: 'must be made in years') and
    over-long intraday spans: a plan over a long range, with holes, asks for neither."""
    tf = TIMEFRAMES[name]
    sessions = session_table(
        sec_type=listing[0], exchange=listing[1], primary_exchange=listing[2], time_zone=listing[3]
    )
    days = 20 if tf.small else (400 if tf.intraday else 3 * 366)
    end = local(2024, 6, 28, 15, 17) if tf.intraday else day_space(2024, 6, 29)
    start = end - days * DAY
    covered = [(start + 5 * DAY + 3600, start + 9 * DAY), (end - 40 * DAY, end - 33 * DAY + 60)]
    plan = plan_requests(
        sessions=sessions, timeframe=tf, use_rth=False, start=start, end=end, covered=covered
    )
    assert plan
    for request in plan:
        assert duration_accepted(tf, request.duration), (name, request)


def test_durations_ibkr_accepts():
    minute, daily = TIMEFRAMES["1-MINUTE"], TIMEFRAMES["DAILY"]
    assert duration_accepted(minute, "1 D") and duration_accepted(minute, "86400 S")
    assert not duration_accepted(minute, "2 D")  # within IBKR's limit, beyond the step table
    assert duration_accepted(daily, "365 D") and not duration_accepted(daily, "400 D")
    assert duration_accepted(daily, "30 Y") and not duration_accepted(daily, "13 M")
    assert not duration_accepted(TIMEFRAMES["1-SECOND"], "100000 S")


def test_a_probe_asks_for_one_stored_bar_again():
    minute = probe_request(timeframe=TIMEFRAMES["1-MINUTE"], ts=local(2024, 6, 6, 15, 59), zone=NY)
    assert (minute.duration, minute.end) == ("60 S", "20240606-20:00:00")
    hour = probe_request(timeframe=TIMEFRAMES["1-HOUR"], ts=local(2024, 6, 6, 15), zone=NY)
    assert (hour.duration, hour.window_start) == ("3600 S", local(2024, 6, 6, 15))
    second = probe_request(timeframe=TIMEFRAMES["1-SECOND"], ts=local(2024, 6, 6, 15), zone=NY)
    assert second.duration == "60 S"  # never less than a minute
    for name in ("DAILY", "WEEKLY", "MONTHLY"):  # the session of the bar's date
        day = probe_request(timeframe=TIMEFRAMES[name], ts=day_space(2024, 6, 7), zone=NY)
        assert (day.duration, day.end) == ("1 D", "20240608-04:00:00"), name
        assert (day.window_start, day.window_end) == (day_space(2024, 6, 7), day_space(2024, 6, 8))


def test_a_continuous_future_is_asked_without_an_end_date_and_not_paged_back():
    """CONTFUT refuses an end date (IBKR's 10339): one request ending now, as long as the bar
    size allows, and a note when older bars are left out."""
    contfut = Listing("CONTFUT", "CME", "", "US/Central")
    chicago = ZoneInfo("America/Chicago")
    daily = plan_of(listing=contfut, start=dt.date(2024, 5, 1))
    [request] = daily.requests
    assert (request.end, request.duration) == ("", "43 D")  # CME sessions, May 1 to June 28
    assert request.window_start == day_space(2024, 5, 1) and "10339" not in daily.note
    years = plan_of(listing=contfut, start=dt.date(2020, 1, 2))
    [request] = years.requests
    assert (request.end, request.duration) == ("", "365 D")
    assert years.note.endswith(
        "a continuous future takes no end date (IBKR 10339): the last 365 D only"
    )
    hours = plan_of(listing=contfut, timeframe="1-HOUR", start=dt.date(2024, 6, 27))
    [request] = hours.requests
    assert request.end == "" and request.window_end == NOW
    assert request.window_start <= int(dt.datetime(2024, 6, 27, tzinfo=chicago).timestamp())
    minutes = plan_of(listing=contfut, timeframe="1-MINUTE", start=dt.date(2024, 6, 20))
    # 1-minute bars: one session at most (1 D), which began at 17:00 in Chicago yesterday
    assert [r.duration for r in minutes.requests] == ["72000 S"]
    assert "the last 72000 S only" in minutes.note
    covered = [(daily.start, daily.end)]
    assert plan_of(listing=contfut, start=dt.date(2024, 5, 1), covered=covered).requests == []
