"""Trading sessions as the fetcher plans with them: real exchange calendars per instrument.

This is the client's own view of the market (it decides which windows to request). It is
kept apart from the gateway simulator's calendars on purpose: both read exchange_calendars,
but a mistake on one side must show up as a failing test, not be shared by both.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from .time import DAY, DEFAULT_ZONE, zone_name

CME_FAMILY = frozenset({"CME", "GLOBEX", "CBOT", "NYMEX", "COMEX"})
FIRST_YEAR, LAST_YEAR = 1980, 2031


@dataclass(frozen=True, eq=False)
class SessionTable:
    """Sessions sorted by date: int64 arrays (epoch seconds UTC; day = days since 1970-01-01)."""

    day: np.ndarray
    rth_open: np.ndarray
    rth_close: np.ndarray
    eth_open: np.ndarray
    eth_close: np.ndarray
    zone: str
    kind: str = ""  # XNYS, XNYS-RTH, CMES, FX or WEEKDAYS

    @property
    def holidays_known(self) -> bool:
        """Whether its sessions are the exchange's (WEEKDAYS: every weekday, whole days)."""
        return self.kind != "WEEKDAYS"

    @property
    def regular_hours_known(self) -> bool:
        """Whether rth_open/rth_close are the regular hours (a CME session is one block, a
        superset of them)."""
        return self.kind not in ("CMES", "WEEKDAYS")

    def between(
        self, start: int, end: int, use_rth: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(day, open, close) of the sessions that overlap [start, end)."""
        opens, closes = (
            (self.rth_open, self.rth_close) if use_rth else (self.eth_open, self.eth_close)
        )
        mask = (closes > start) & (opens < end)
        return self.day[mask], opens[mask], closes[mask]

    def gaps(self, start: int, end: int, use_rth: bool) -> tuple[np.ndarray, np.ndarray]:
        """(from, to) of the closed stretches between the sessions that overlap [start, end):
        nights, weekends, holidays (epoch seconds)."""
        _, opens, closes = self.between(start, end, use_rth)
        froms, tos = closes[:-1], opens[1:]
        closed = tos > froms
        return froms[closed], tos[closed]

    def days_between(self, first_day: int, last_day: int) -> np.ndarray:
        """Session days d with first_day <= d <= last_day."""
        lo, hi = np.searchsorted(self.day, [first_day, last_day + 1])
        return self.day[lo:hi]

    def traded(self, start: int, end: int, use_rth: bool, *, daily: bool) -> bool:
        """Whether a session lies in [start, end): by its hours, or for daily and larger bars
        (date space: 00:00 UTC of each date) by its date."""
        if daily:
            return len(self.days_between(-(-start // DAY), (end - 1) // DAY)) > 0
        return len(self.between(start, end, use_rth)[1]) > 0


def _epoch(index) -> np.ndarray:
    return (
        pd.DatetimeIndex(index)
        .tz_convert("UTC")
        .tz_localize(None)
        .values.astype("datetime64[s]")
        .astype(np.int64)
    )


def _at(days: pd.DatetimeIndex, zone: str, hours: float) -> np.ndarray:
    # a local time the clock skips or repeats (a midnight in Sao Paulo, Jerusalem) is its first
    # instant, as time.local_midnight takes it
    local = (days + pd.to_timedelta(hours, unit="h")).tz_localize(
        zone, ambiguous=True, nonexistent="shift_forward"
    )
    return _epoch(local)


@lru_cache(maxsize=8)
def _table(kind: str, zone: str) -> SessionTable:
    start, end = f"{FIRST_YEAR}-01-01", f"{LAST_YEAR}-12-31"
    if kind in ("XNYS", "XNYS-RTH", "CMES"):
        first = start if kind != "CMES" else "1997-01-01"
        sched = xcals.get_calendar(kind[:4], start=first, end=end).schedule
        days = pd.DatetimeIndex(sched.index)
        rth_open, rth_close = _epoch(sched["open"]), _epoch(sched["close"])
        if kind == "XNYS":  # US equities trade 04:00-20:00 ET; 17:00 after an early close
            eth_open = _at(days, zone, 4)
            eth_close = np.where(
                rth_close >= _at(days, zone, 16), rth_close + 4 * 3600, _at(days, zone, 17)
            )
        else:  # an index has no extended hours; a CME session is one block (a superset of RTH)
            eth_open, eth_close = rth_open, rth_close
    else:  # forex and anything without a known calendar: weekday sessions
        days = pd.bdate_range(start, end)
        if kind == "FX":  # 17:15 ET the day before to 17:00 ET (IBKR: 1715-1700)
            rth_open, rth_close = _at(days, zone, -6.75), _at(days, zone, 17)
        else:
            rth_open, rth_close = _at(days, zone, 0), _at(days, zone, 24)
        eth_open, eth_close = rth_open, rth_close
    return SessionTable(
        day=days.values.astype("datetime64[D]").astype(np.int64),
        rth_open=rth_open,
        rth_close=rth_close,
        eth_open=eth_open,
        eth_close=eth_close,
        zone=zone,
        kind=kind,
    )


def session_table(
    *, sec_type: str, exchange: str, primary_exchange: str, time_zone: str
) -> SessionTable:
    """The calendar an instrument trades on, chosen from what the gateway said about it."""
    zone = zone_name(time_zone)
    us = zone == DEFAULT_ZONE
    if sec_type == "STK" and us:
        return _table("XNYS", zone)
    if sec_type == "IND" and us:
        return _table("XNYS-RTH", zone)
    if sec_type in ("FUT", "CONTFUT") and (
        exchange in CME_FAMILY or primary_exchange in CME_FAMILY
    ):
        return _table("CMES", zone)
    if sec_type == "CASH":
        return _table("FX", DEFAULT_ZONE)
    return _table("WEEKDAYS", zone)


def listing_sessions(listing) -> SessionTable:
    """session_table of anything with a listing's fields (sec_type, exchange, primary_exchange,
    time_zone): a stored instrument, a planning Listing."""
    return session_table(
        sec_type=listing.sec_type,
        exchange=listing.exchange,
        primary_exchange=listing.primary_exchange,
        time_zone=listing.time_zone,
    )


def session_tables_preload() -> None:
    """Build the US equity calendar ahead of the first run (a fraction of a second of CPU, once
    per process): a worker that says it is ready plans its first run as fast as the next."""
    _table("XNYS", DEFAULT_ZONE)
