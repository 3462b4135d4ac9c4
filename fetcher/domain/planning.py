"""Plan a fetch: split the missing parts of a range into the fewest IBKR requests, no bar twice.

Each planned request names its exact window [start, end): the bars the gateway returns for
it are the bars whose start lies in that window. Windows never overlap, so no bar is
fetched twice, and windows with no trading session are never requested.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from .ranges import resolve_range
from .sessions import SessionTable, listing_sessions
from .time import DAY, EPOCH_DATE, ibkr_utc, local_midnight, zone_info
from .timeframes import TimeframeSpec

MAX_SECONDS_DURATION = 86_400  # IBKR accepts 'N S' up to one day
MAX_SESSIONS_PER_DAILY_REQUEST = 250  # about a year, under IBKR's 365-day cap for 'N D'
MAX_DAYS_IN_DAYS = 365  # IBKR reads no more days: longer durations must be asked in years
CONTINUOUS_FUTURE = "CONTFUT"


@dataclass(frozen=True)
class PlannedRequest:
    window_start: int  # epoch seconds UTC (for daily and larger bars: 00:00 UTC of the first date)
    window_end: int
    duration: str  # IBKR durationStr
    end: str  # IBKR endDateTime ('yyyymmdd-hh:mm:ss', UTC)


@dataclass(frozen=True)
class Listing:
    """Where an instrument trades, as far as planning needs it (a qualified contract and a
    stored instrument have these fields too)."""

    sec_type: str
    exchange: str
    primary_exchange: str
    time_zone: str


@dataclass(frozen=True)
class FetchPlan:
    """One instrument's part of a fetch: the range [start, end) and why it was chosen, and the
    requests that fetch what of it is not stored yet (none: nothing to fetch)."""

    start: int
    end: int
    note: str
    requests: list[PlannedRequest]
    sessions: SessionTable  # the instrument's, which the requests were planned on


def fetch_plan(
    *,
    listing,
    timeframe: TimeframeSpec,
    use_rth: bool,
    start: date | None,
    end: date | None,
    since_head: bool,
    head: datetime | None,
    covered: list[tuple[int, int]],
    now: float,
    retry: list[tuple[int, int]] = (),
) -> FetchPlan:
    """The one planning recipe, for a fetch and for the question "is this range stored":
    the range (ranges.resolve_range), the instrument's sessions, then the requests.

    `listing` is what the gateway said of the instrument (sec_type, exchange,
    primary_exchange, time_zone: a qualified contract, or the stored instrument). `retry`:
    windows once answered empty although they traded, which an update (no start date) asks
    for again wherever they lie; the range then starts at the first of them."""
    first, last, note = resolve_range(
        start=start,
        end=end,
        since_head=since_head,
        tf=timeframe,
        zone=zone_info(listing.time_zone),
        head=head,
        covered=covered,
        now=now,
    )
    sessions = listing_sessions(listing)
    window = {
        "sessions": sessions,
        "timeframe": timeframe,
        "use_rth": use_rth,
        "start": first,
        "end": last,
        "covered": covered,
    }
    if listing.sec_type == CONTINUOUS_FUTURE:
        requests, cut = plan_continuous(**window, now=now)
        note += cut
    else:
        requests = plan_requests(**window)
        again = (
            sorted((lo, min(hi, first)) for lo, hi in retry if lo < first) if start is None else []
        )
        if again:  # windows once answered empty although they traded: an update asks again
            requests = sorted(
                [
                    *requests,
                    *(
                        r
                        for lo, hi in again
                        for r in plan_requests(**window | {"start": lo, "end": hi})
                    ),
                ],
                key=lambda r: r.window_start,
            )
            first = again[0][0]
            note += f"; {len(again)} window(s) once answered empty asked again"
    return FetchPlan(first, last, note, requests, sessions)


def plan_continuous(
    *,
    sessions: SessionTable,
    timeframe: TimeframeSpec,
    use_rth: bool,
    start: int,
    end: int,
    covered: list[tuple[int, int]],
    now: float,
) -> tuple[list[PlannedRequest], str]:
    """A continuous future takes no end date (IBKR's 10339), so it cannot be paged back: one
    request ending now (endDateTime ''), as long as the bar size allows, from the first bar not
    stored; and, when that leaves older bars out, a note that says so."""
    gaps = intervals_subtract(start, end, list(covered))
    if not gaps:
        return [], ""
    wanted, now_s, tf = gaps[0][0], int(now), timeframe
    if tf.intraday:
        count, unit = tf.max_duration.split()
        if unit == "S":
            reach = now_s - int(count)
        elif unit == "D":
            _, opens, _ = sessions.between(wanted - 7 * DAY * int(count), now_s, use_rth)
            begun = opens[opens < now_s]
            reach = int(begun[-int(count)]) if len(begun) >= int(count) else wanted
        elif unit == "W":
            reach = now_s - 7 * DAY * int(count)
        else:
            reach = months_before(now_s, int(count), sessions.zone)
        cut, first = reach > wanted, max(wanted, reach)
        if now_s - first <= MAX_SECONDS_DURATION:
            n = -(-(now_s - first) // tf.seconds) * tf.seconds
            request = PlannedRequest(now_s - n, end, f"{n} S", "")
        else:
            request = PlannedRequest(reach, end, tf.max_duration, "")
    else:
        today = datetime.fromtimestamp(now_s, ZoneInfo(sessions.zone)).date()
        days = sessions.days_between(-(-wanted // DAY), (today - EPOCH_DATE).days)
        if not len(days):
            return [], ""
        cut, days = len(days) > MAX_DAYS_IN_DAYS, days[-MAX_DAYS_IN_DAYS:]
        first = wanted if not cut else int(days[0]) * DAY
        request = PlannedRequest(first, end, f"{len(days)} D", "")
    note = f"; a continuous future takes no end date (IBKR 10339): the last {request.duration} only"
    return [request], note if cut else ""


def probe_request(*, timeframe: TimeframeSpec, ts: int, zone: ZoneInfo) -> PlannedRequest:
    """The smallest request that answers the bar starting at `ts` again (date space for daily
    and larger bars: the session of that date holds a day's open, a week's last day and a
    month's first): a minute of seconds at least, or one session."""
    if timeframe.intraday:
        end = ts + timeframe.seconds
        return PlannedRequest(ts, end, f"{max(timeframe.seconds, 60)} S", ibkr_utc(end))
    after = EPOCH_DATE + timedelta(days=ts // DAY + 1)
    return PlannedRequest(ts, ts + DAY, "1 D", ibkr_utc(local_midnight(after, zone)))


def intervals_subtract(
    start: int, end: int, covered: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Parts of [start, end) not covered by any interval in `covered`."""
    gaps, cursor = [], start
    for lo, hi in sorted(covered):
        if hi <= cursor:
            continue
        if lo >= end:
            break
        if lo > cursor:
            gaps.append((cursor, min(lo, end)))
        cursor = max(cursor, hi)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def intervals_merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def plan_requests(
    *,
    sessions: SessionTable,
    timeframe: TimeframeSpec,
    use_rth: bool,
    start: int,
    end: int,
    covered: list[tuple[int, int]] = (),
) -> list[PlannedRequest]:
    """The requests that fetch every bar in [start, end) not already covered, oldest first."""
    plan: list[PlannedRequest] = []
    for lo, hi in intervals_subtract(start, end, list(covered)):
        if timeframe.intraday:
            plan += _plan_intraday(sessions, timeframe, use_rth, lo, hi)
        else:
            plan += _plan_daily(sessions, lo, hi)
    return sorted(plan, key=lambda r: r.window_start)


def _plan_daily(sessions: SessionTable, lo: int, hi: int) -> list[PlannedRequest]:
    """Daily and larger bars live in date space: ts = 00:00 UTC of the session date."""
    days = sessions.days_between(-(-lo // DAY), (hi - 1) // DAY)
    zone = ZoneInfo(sessions.zone)
    plan = []
    for i in range(len(days), 0, -MAX_SESSIONS_PER_DAILY_REQUEST):
        group = days[max(0, i - MAX_SESSIONS_PER_DAILY_REQUEST) : i]
        first, last = int(group[0]), int(group[-1])
        # ask up to local midnight after the last session date, n sessions back
        after = EPOCH_DATE + timedelta(days=last + 1)
        plan.append(
            PlannedRequest(
                window_start=max(lo, first * DAY),
                window_end=min(hi, (last + 1) * DAY),
                duration=f"{len(group)} D",
                end=ibkr_utc(local_midnight(after, zone)),
            )
        )
    return plan


def _plan_intraday(
    sessions: SessionTable, tf: TimeframeSpec, use_rth: bool, lo: int, hi: int
) -> list[PlannedRequest]:
    _, opens, closes = sessions.between(lo, hi, use_rth)
    if not len(opens):
        return []
    count, unit = tf.max_duration.split()
    count = int(count)
    if unit == "S":
        return [
            r
            for o, c in zip(opens, closes, strict=True)
            for r in _chain_seconds(tf, max(lo, o), min(hi, c), count)
        ]
    if unit == "D":
        return _plan_sessions(tf, opens, closes, lo, hi, count)
    return _chain_calendar(tf, sessions, opens, closes, lo, hi, count, unit)


def _seconds_request(tf: TimeframeSpec, lo: int, hi: int) -> PlannedRequest:
    """'N S' ending at hi, N rounded up to whole bars."""
    n = -(-(hi - lo) // tf.seconds) * tf.seconds
    return PlannedRequest(hi - n, hi, f"{n} S", ibkr_utc(hi))


def _chain_seconds(tf: TimeframeSpec, lo: int, hi: int, step: int) -> list[PlannedRequest]:
    plan, cursor = [], hi
    while cursor > lo:
        plan.append(_seconds_request(tf, max(lo, cursor - step), cursor))
        cursor -= step
    return plan


def _plan_sessions(tf, opens, closes, lo, hi, per_request) -> list[PlannedRequest]:
    """Bar sizes whose largest duration counts sessions ('1 D', '2 D'): whole sessions are
    grouped; a session cut by the range (a resumed or still running day) goes by seconds."""
    plan, group = [], []

    def flush():
        if group:
            plan.append(
                PlannedRequest(
                    int(group[0][0]),
                    int(group[-1][1]),
                    f"{len(group)} D",
                    ibkr_utc(int(group[-1][1])),
                )
            )
            group.clear()

    for o, c in zip(opens.tolist(), closes.tolist(), strict=True):
        a, b = max(lo, o), min(hi, c)
        if a == o and b == c:
            group.append((o, c))
            if len(group) == per_request:
                flush()
            continue
        flush()
        if b - a <= MAX_SECONDS_DURATION:
            plan.append(_seconds_request(tf, a, b))
        else:  # a session longer than a day cut by the range: fetch it whole
            plan.append(PlannedRequest(o, c, "1 D", ibkr_utc(c)))
    flush()
    return plan


def months_before(epoch: int, months: int, zone: str) -> int:
    """The same local wall time `months` earlier (day clamped to the month's length)."""
    local = datetime.fromtimestamp(epoch, ZoneInfo(zone))
    year, month = divmod(local.year * 12 + local.month - 1 - months, 12)
    month += 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    moved = local.replace(year=year, month=month, day=day, tzinfo=None)
    return int(moved.replace(tzinfo=ZoneInfo(zone)).timestamp())


def _chain_calendar(tf, sessions, opens, closes, lo, hi, count, unit) -> list[PlannedRequest]:
    """Bar sizes whose largest duration is calendar time ('1 W', '1 M'): windows chained back
    from the end, skipping windows with no session; the oldest, partial one counts sessions
    (or seconds when short)."""
    first_open = max(lo, int(opens[0]))
    cursor = min(hi, int(closes[-1]))
    duration = f"{count} {unit}"
    plan = []
    while cursor > first_open:
        if unit == "W":
            start = cursor - 7 * DAY * count
        else:
            start = months_before(cursor, count * (12 if unit == "Y" else 1), sessions.zone)
        if start < first_open:
            if cursor - first_open <= MAX_SECONDS_DURATION:
                plan.append(_seconds_request(tf, first_open, cursor))
            else:
                inside = (opens < cursor) & (closes > first_open)
                window_start = min(first_open, int(opens[inside][0]))
                plan.append(
                    PlannedRequest(window_start, cursor, f"{int(inside.sum())} D", ibkr_utc(cursor))
                )
            break
        if np.any((opens < cursor) & (closes > start)):
            plan.append(PlannedRequest(start, cursor, duration, ibkr_utc(cursor)))
        cursor = start
    return plan
