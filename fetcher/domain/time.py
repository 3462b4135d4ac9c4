"""Time as the fetcher counts it: epoch seconds UTC, session dates, IBKR's zone names and strings."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from .timeframes import TimeframeSpec

DAY = 86_400
EPOCH_DATE = dt.date(1970, 1, 1)
# IBKR reports legacy zone names; zoneinfo, pandas and exchange_calendars get the canonical ones.
ZONES = {"US/Eastern": "America/New_York", "US/Central": "America/Chicago"}
DEFAULT_ZONE = "America/New_York"
# Futures exchanges whose zone is known before the gateway says (IBKR reports CME Group's in
# US/Central, whatever the city).
EXCHANGE_ZONES = dict.fromkeys(
    ("CME", "GLOBEX", "CBOT", "NYMEX", "COMEX", "CFE"), "America/Chicago"
)


def zone_name(ibkr_zone: str) -> str:
    """'US/Eastern' -> 'America/New_York'; an empty zone is New York's (where most listings trade)."""
    return ZONES.get(ibkr_zone, ibkr_zone) or DEFAULT_ZONE


def zone_info(ibkr_zone: str) -> ZoneInfo:
    return ZoneInfo(zone_name(ibkr_zone))


def epoch(value: dt.datetime) -> int:
    return int(value.timestamp())


def from_epoch(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


def date_epoch(day: dt.date) -> int:
    """00:00 UTC of a date: where daily and larger bars are stored ("date space")."""
    return (day - EPOCH_DATE).days * DAY


def local_midnight(day: dt.date, zone: ZoneInfo) -> int:
    """Epoch seconds of 00:00 on `day` in `zone`."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


def day_start(day: dt.date, tf: TimeframeSpec, zone: ZoneInfo) -> int:
    """Where a date begins for bars of `tf`: 00:00 in the exchange's zone for intraday bars,
    the date itself (date space) for daily and larger ones."""
    return local_midnight(day, zone) if tf.intraday else date_epoch(day)


def dates_epochs(
    start: dt.date, end: dt.date, tf: TimeframeSpec, zone: ZoneInfo
) -> tuple[int, int]:
    """[first, last) epoch seconds of the dates start..end inclusive, in the space bars of `tf`
    are stored in (day_start): from the first date's start to the start of the day after end."""
    return day_start(start, tf, zone), day_start(end + dt.timedelta(days=1), tf, zone)


def ibkr_utc(value: int) -> str:
    """IBKR's UTC endDateTime, 'yyyymmdd-hh:mm:ss'."""
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y%m%d-%H:%M:%S")
