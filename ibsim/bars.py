"""Bars for one request: whole-session minutes cut to the window, aggregated to the bar size."""

from __future__ import annotations

import numpy as np

from ibsim.aggregate import BarArrays, unit_sums
from ibsim.model import FAMILY, PRICE_FAMILY, InstrumentModel


def _overlapping(m: InstrumentModel, start: int, end: int) -> tuple[int, int]:
    """Sessions whose extended hours overlap [start, end)."""
    s = m.sessions
    i0 = max(int(np.searchsorted(s.ext_end, start, side="right")), m.first)
    i1 = int(np.searchsorted(s.ext_start, end, side="left"))
    return i0, max(i0, i1)


def intraday_bars(
    m: InstrumentModel, what: str, use_rth: bool, bar_seconds: int, start: int, end: int
) -> BarArrays:
    """Bars of `bar_seconds` (1 s to 8 h) whose start is in [start, end)."""
    i0, i1 = _overlapping(m, start, end)
    if i1 <= i0:
        return BarArrays.empty(daily=False)
    grid = m.minutes(FAMILY.get(what, PRICE_FAMILY), i0, i1)
    mask = grid.valid & grid.rth if use_rth else grid.valid
    rows, cols = np.nonzero(mask)
    time = grid.time[rows, cols]
    session = rows + i0
    minute = grid.minute[rows, cols]
    base = tuple(
        x[rows, cols]
        for x in (grid.open, grid.high, grid.low, grid.close, grid.volume, grid.count, grid.wap)
    )
    time_averaged = what == "BID_ASK"
    if bar_seconds < 60:
        keep = (time < end) & (time + 60 > start)
        time, session, minute = time[keep], session[keep], minute[keep]
        family = FAMILY.get(what, PRICE_FAMILY)
        secs = m.seconds(family, minute, *(x[keep] for x in base[:6]))
        shown = m.show(what, *secs, minute[:, None], session[:, None])
        sums = unit_sums(
            (time[:, None] + np.arange(60)[None, :]).ravel(),
            np.repeat(session, 60),
            *shown,
        )
        if bar_seconds > 1:
            sums = sums.reduce(np.arange(0, len(sums.label), bar_seconds))
        keep = (sums.label >= start) & (sums.label < end)
        return sums.take(keep).bars(time_averaged, None)
    shown = m.show(what, *base, minute, session)
    sums = unit_sums(time, session, *shown)
    if bar_seconds > 60:
        local = time + m.sessions.utc_offset[session]
        bucket = local // bar_seconds
        new = np.ones(len(time), bool)
        new[1:] = (session[1:] != session[:-1]) | (bucket[1:] != bucket[:-1])
        sums = sums.reduce(np.flatnonzero(new))
    keep = (sums.label >= start) & (sums.label < end)
    return sums.take(keep).bars(time_averaged, None)


def period_bars(
    m: InstrumentModel, what: str, use_rth: bool, unit: str, start: int, end: int
) -> BarArrays:
    """Daily, weekly ('week') or monthly ('month') bars whose first session starts in [start, end)."""
    s = m.sessions
    opens = np.maximum(s.rth_start if use_rth else s.ext_start, m.head)
    a = int(np.searchsorted(opens, start, side="left"))
    b = int(np.searchsorted(opens, end, side="left"))
    margin = 0 if unit == "day" else 27  # a month has at most 23 sessions
    days = m.daily(what, use_rth, a - margin, b + margin)
    days.label = opens[days.session]
    if unit != "day" and len(days.label):
        day_number = s.day[days.session]
        monday = day_number - (day_number + 3) % 7  # 1970-01-01 was a Thursday
        key = monday if unit == "week" else s.date[days.session] // 100
        new = np.ones(len(key), bool)
        new[1:] = key[1:] != key[:-1]
        days = days.reduce(np.flatnonzero(new))
    days = days.take((days.label >= start) & (days.label < end))
    return days.bars(what == "BID_ASK", s.date[days.session])
