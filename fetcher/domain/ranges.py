"""Which range to fetch for one instrument, and up to when stored bars are complete."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from .time import date_epoch, day_start, from_epoch
from .timeframes import SMALL_BARS_DAYS, TimeframeSpec

# With no start date and nothing stored yet, intraday fetches go this far back.
INTRADAY_DEFAULT_DAYS = 30


def complete_until(tf: TimeframeSpec, now: float, zone: ZoneInfo) -> int:
    """Bars starting before this instant are complete: later ones are fetched again next time."""
    if tf.intraday:
        # bars start on the exchange's clock (a 4-hour bar at 08:00 or 12:00 New York time):
        # round down there, whatever the zone's offset from UTC
        offset = int(dt.datetime.fromtimestamp(now, zone).utcoffset().total_seconds())
        return (int(now) + offset) // tf.seconds * tf.seconds - offset
    today = dt.datetime.fromtimestamp(now, zone).date()
    if tf.name == "MONTHLY":  # dated by its first session
        today = today.replace(day=1)
    # a day's bar, and a week's (dated by its last trading day, as IBKR dates it), is complete
    # once its date has passed
    return date_epoch(today)


def last_day(day: dt.date, tf: TimeframeSpec) -> dt.date:
    """The last date a range ending on `day` reaches: for weekly bars, the Friday of its week
    (the latest a week's bar is dated, by its last trading day); `day` otherwise."""
    if tf.name == "WEEKLY":
        return day + dt.timedelta(days=max(0, 4 - day.weekday()))
    return day


def resolve_range(
    *,
    start: dt.date | None,
    end: dt.date | None,
    since_head: bool,
    tf: TimeframeSpec,
    zone: ZoneInfo,
    head: dt.datetime | None,
    covered: list[tuple[int, int]],
    now: float,
) -> tuple[int, int, str]:
    """[start, end) to fetch for one instrument (epoch; date space for daily bars) and why.

    `start` and `end` are the dates asked for (inclusive, in the exchange's zone), None when
    not given: no start means after the last stored bar, or from the gateway's first data
    point (daily and larger bars, or `since_head`), or the last INTRADAY_DEFAULT_DAYS days."""
    today = dt.datetime.fromtimestamp(now, zone).date()
    # the first data point where bars of `tf` live: the instant (intraday), or its date in the
    # exchange's zone (date space), so the first day's bar is asked for too
    head_day = head.astimezone(zone).date() if head else None
    head_space = None
    if head is not None:
        head_space = int(head.timestamp()) if tf.intraday else day_start(head_day, tf, zone)
    upto = day_start(last_day(end or today, tf) + dt.timedelta(days=1), tf, zone)
    if tf.intraday:
        upto = min(upto, int(now))
    if start:
        first, note = day_start(start, tf, zone), f"{start} to {end or today}"
    elif since_head or not covered:
        if since_head or not tf.intraday:
            first_day = head_day or today
            first = head_space if head_space is not None else day_start(today, tf, zone)
            note = f"since the gateway's first data ({first_day})"
        else:
            first = day_start(today - dt.timedelta(days=INTRADAY_DEFAULT_DAYS), tf, zone)
            note = f"last {INTRADAY_DEFAULT_DAYS} days (nothing stored yet)"
    else:
        first = covered[-1][1]
        note = f"update after the last stored bar ({from_epoch(first):%Y-%m-%d %H:%M} UTC)"
    if head_space is not None and first < head_space:
        first = head_space
        note += f"; clamped to the gateway's first data ({head_day})"
    if tf.small:
        oldest = day_start(today - dt.timedelta(days=SMALL_BARS_DAYS), tf, zone)
        if first < oldest:
            first = oldest
            note += f"; bars of 30 s or less: the last {SMALL_BARS_DAYS} days only"
    return first, max(first, upto), note
