"""endDateTime and durationStr as the gateway reads them: from request strings to epoch windows."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .rules import Duration

_END_RE = re.compile(r"^(?:(\d{8})([ -]))?(\d{2}):(\d{2}):(\d{2})(?: ([A-Za-z][\w/+-]*))?$")


class BadEndDate(ValueError):
    """endDateTime is not in a format IBKR accepts (error 10314)."""


@dataclass(frozen=True)
class EndTime:
    epoch: int
    implied_zone: bool  # no time zone given: IBKR warns with 2174


def parse_end(text: str, *, now: float, local_zone: str) -> EndTime:
    """Read an endDateTime: '' (now), 'yyyymmdd hh:mm:ss <zone>', 'yyyymmdd-hh:mm:ss' (UTC),
    or a zone-less 'yyyymmdd hh:mm:ss' read in the gateway's own zone."""
    text = text.strip()
    if not text:
        return EndTime(int(now), False)
    m = _END_RE.match(text)
    if not m:
        raise BadEndDate(text)
    day, sep, hh, mm, ss, zone_name = m.groups()
    if sep == "-" and zone_name:
        raise BadEndDate(text)
    if sep == "-":
        zone = UTC
    else:
        try:
            zone = ZoneInfo(zone_name or local_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise BadEndDate(text) from exc
    try:
        if day:
            base = datetime(int(day[:4]), int(day[4:6]), int(day[6:8]))
        else:
            base = datetime.fromtimestamp(now, zone).replace(tzinfo=None)
        moment = base.replace(hour=int(hh), minute=int(mm), second=int(ss), tzinfo=zone)
    except ValueError as exc:
        raise BadEndDate(text) from exc
    return EndTime(int(moment.timestamp()), zone_name is None and sep != "-")


def calendar_start(end: int, duration: Duration, zone: str) -> int:
    """Start of a window of `duration` ending at `end` for the S, W, M and Y units
    (D counts sessions and is answered by the market)."""
    if duration.unit == "S":
        return end - duration.count
    if duration.unit == "W":
        return end - duration.count * 7 * 86_400
    local = datetime.fromtimestamp(end, ZoneInfo(zone))
    months = duration.count * (12 if duration.unit == "Y" else 1)
    year, month = divmod(local.year * 12 + local.month - 1 - months, 12)
    month += 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    start = local.replace(year=year, month=month, day=day, tzinfo=None)
    return int(start.replace(tzinfo=ZoneInfo(zone)).timestamp())


def format_bar_time(epoch: int, zone: str) -> str:
    """'20240102 09:30:00 US/Eastern', the intraday bar date with formatDate=1."""
    return datetime.fromtimestamp(epoch, ZoneInfo(zone)).strftime("%Y%m%d %H:%M:%S ") + zone


def format_utc(epoch: int) -> str:
    """'20240102-14:30:00', the head timestamp layout (UTC)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%d-%H:%M:%S")


def connection_time(now: float, zone: str) -> str:
    """'20240105 10:11:12 EST', the time a gateway reports in its handshake."""
    return datetime.fromtimestamp(now, ZoneInfo(zone)).strftime("%Y%m%d %H:%M:%S %Z")
