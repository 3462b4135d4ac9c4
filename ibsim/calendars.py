"""Exchange sessions of the simulated market, built from exchange_calendars as epoch-second arrays."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import numpy as np
import pandas as pd

# IBKR reports legacy zone names; pandas and zoneinfo are given the canonical ones.
IANA_ZONES = {
    "US/Eastern": "America/New_York",
    "US/Central": "America/Chicago",
}

# Sessions are built from these dates, which come before every head timestamp in the universe,
# up to the end of CALENDAR_END.
CALENDAR_START = {"XNYS": "1980-01-01", "CMES": "1997-01-01", "FX24X5": "2000-01-01"}
CALENDAR_END = "2031-12-31"

FOREX_CALENDAR = "FX24X5"  # not an exchange_calendars code: the rule is built here


class SessionKind(StrEnum):
    """How a calendar's sessions become extended and regular trading hours."""

    US_EQUITY = "us_equity"  # RTH from the calendar; 04:00-20:00 ET (17:00 on early closes)
    RTH_ONLY = "rth_only"  # an index: no extended hours
    CME_FUTURE = "cme_future"  # the calendar's 17:00-16:00 CT session; RTH 08:30-15:00 CT
    FOREX = "forex"  # 17:15 ET to 17:00 ET (IBKR's 1715-1700), Monday to Friday session dates


@dataclass(frozen=True, eq=False)
class Sessions:
    """All sessions of one calendar, sorted, as parallel int64 arrays (epoch seconds UTC)."""

    calendar: str
    kind: SessionKind
    time_zone: str  # IANA name
    day: np.ndarray  # session date as days since 1970-01-01
    date: np.ndarray  # session date as YYYYMMDD
    ext_start: np.ndarray
    ext_end: np.ndarray
    rth_start: np.ndarray  # rth_end <= rth_start means the session has no regular hours
    rth_end: np.ndarray
    utc_offset: np.ndarray  # local time minus UTC at the session's extended start, seconds

    def __len__(self) -> int:
        return len(self.day)

    @property
    def max_minutes(self) -> int:
        """Length of the longest extended session in minutes."""
        return int(((self.ext_end - self.ext_start) // 60).max())

    def bounds(self, use_rth: bool) -> tuple[np.ndarray, np.ndarray]:
        if use_rth:
            return self.rth_start, self.rth_end
        return self.ext_start, self.ext_end


def _epoch(values: pd.DatetimeIndex | pd.Series) -> np.ndarray:
    """Aware timestamps -> int64 epoch seconds."""
    index = pd.DatetimeIndex(values)
    return index.tz_convert("UTC").tz_localize(None).values.astype("datetime64[s]").astype(np.int64)


def _local(days: pd.DatetimeIndex, time_zone: str, hours: float) -> np.ndarray:
    """Epoch seconds of `hours` after local midnight on each day (no trading day has a DST gap)."""
    naive = days + pd.to_timedelta(hours, unit="h")
    return _epoch(naive.tz_localize(time_zone, ambiguous="raise", nonexistent="raise"))


def _utc_offsets(epochs: np.ndarray, time_zone: str) -> np.ndarray:
    aware = pd.to_datetime(epochs, unit="s", utc=True).tz_convert(time_zone)
    naive = aware.tz_localize(None).values.astype("datetime64[s]").astype(np.int64)
    return naive - epochs


def _build(calendar: str, kind: SessionKind, time_zone: str) -> Sessions:
    start, end = CALENDAR_START[calendar], CALENDAR_END
    if calendar == FOREX_CALENDAR:
        days = pd.bdate_range(start, end)
        days = days[
            ~((days.month == 12) & (days.day == 25)) & ~((days.month == 1) & (days.day == 1))
        ]
        ext_start = _local(days, time_zone, -6.75)  # 17:15 the day before
        ext_end = _local(days, time_zone, 17.0)
        rth_start, rth_end = ext_start, ext_end
    else:
        with warnings.catch_warnings():  # exchange_calendars 4.13 on pandas 3.1
            warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
            schedule = xcals.get_calendar(calendar, start=start, end=end).schedule
        if schedule["break_start"].notna().any():
            raise ValueError(f"{calendar}: sessions with breaks are not modelled")
        days = pd.DatetimeIndex(schedule.index)
        open_, close = _epoch(schedule["open"]), _epoch(schedule["close"])
        if kind is SessionKind.US_EQUITY:
            rth_start, rth_end = open_, close
            ext_start = _local(days, time_zone, 4.0)
            full_day = close >= _local(days, time_zone, 16.0)
            ext_end = np.where(full_day, close + 4 * 3600, _local(days, time_zone, 17.0))
        elif kind is SessionKind.RTH_ONLY:
            rth_start, rth_end = open_, close
            ext_start, ext_end = open_, close
        elif kind is SessionKind.CME_FUTURE:
            # exchange_calendars runs CME sessions to 17:00 CT; Globex halts from 16:00.
            ext_start = open_
            ext_end = np.minimum(close, _local(days, time_zone, 16.0))
            rth_start = _local(days, time_zone, 8.5)
            rth_end = np.minimum(_local(days, time_zone, 15.0), ext_end)
        else:
            raise ValueError(f"session kind {kind} does not apply to {calendar}")
    day = days.values.astype("datetime64[D]").astype(np.int64)
    return Sessions(
        calendar=calendar,
        kind=kind,
        time_zone=time_zone,
        day=day,
        date=(days.year * 10000 + days.month * 100 + days.day).to_numpy(np.int64),
        ext_start=np.ascontiguousarray(ext_start, dtype=np.int64),
        ext_end=np.ascontiguousarray(ext_end, dtype=np.int64),
        rth_start=np.ascontiguousarray(rth_start, dtype=np.int64),
        rth_end=np.ascontiguousarray(rth_end, dtype=np.int64),
        utc_offset=_utc_offsets(np.asarray(ext_start, dtype=np.int64), time_zone),
    )


@cache
def sessions(calendar: str, kind: SessionKind, time_zone_id: str) -> Sessions:
    """The sessions of `calendar` under `kind`, built once per process."""
    return _build(calendar, SessionKind(kind), IANA_ZONES.get(time_zone_id, time_zone_id))


def _hhmm(epoch: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch, zone).strftime("%Y%m%d:%H%M")


def _hours(
    starts: np.ndarray, ends: np.ndarray, day: np.ndarray, zone: ZoneInfo, first: date, days: int
) -> str:
    """IBKR's hours string: each session under its date; a day with none and no start is CLOSED."""
    first_day = (first - date(1970, 1, 1)).days
    held = [i for i in range(len(day)) if ends[i] > starts[i]]
    start_dates = {i: datetime.fromtimestamp(int(starts[i]), zone).date() for i in held}
    parts: list[str] = []
    for offset in range(days):
        current = first + timedelta(days=offset)
        today = [i for i in held if day[i] == first_day + offset]
        if not today and current not in start_dates.values():
            parts.append(f"{current:%Y%m%d}:CLOSED")
        parts.extend(f"{_hhmm(int(starts[i]), zone)}-{_hhmm(int(ends[i]), zone)}" for i in today)
    return ";".join(parts)


def trading_hours(s: Sessions, time_zone_id: str, around: int, days: int = 7) -> tuple[str, str]:
    """IBKR's (tradingHours, liquidHours) strings for `days` local calendar days from `around`."""
    zone = ZoneInfo(IANA_ZONES.get(time_zone_id, time_zone_id))
    first = datetime.fromtimestamp(around, zone).date()
    first_day = (first - date(1970, 1, 1)).days
    window = slice(
        int(np.searchsorted(s.day, first_day - 1)), int(np.searchsorted(s.day, first_day + days))
    )
    day = s.day[window]
    trading = _hours(s.ext_start[window], s.ext_end[window], day, zone, first, days)
    liquid = _hours(s.rth_start[window], s.rth_end[window], day, zone, first, days)
    return trading, liquid
