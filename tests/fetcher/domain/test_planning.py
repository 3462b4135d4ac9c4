"""Planning: the fewest requests, no bar twice, nothing already covered, no empty windows."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from fetcher.domain.planning import DAY, intervals_subtract, plan_requests
from fetcher.domain.sessions import session_table
from fetcher.domain.timeframes import timeframe_parse

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
