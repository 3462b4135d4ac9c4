"""Bars for one request: whole-session minutes cut to the window and to the present, aggregated to
the bar size, then adjusted for what happened since (splits, dividends) as IBKR serves them."""

from __future__ import annotations

import numpy as np

from ibsim.aggregate import BarArrays, Sums, unit_sums
from ibsim.model import FAMILY, PRICE_FAMILY, InstrumentModel


def _overlapping(m: InstrumentModel, start: int, end: int) -> tuple[int, int]:
    """Sessions whose extended hours overlap [start, end)."""
    s = m.sessions
    i0 = max(int(np.searchsorted(s.ext_end, start, side="right")), m.first)
    i1 = min(int(np.searchsorted(s.ext_start, end, side="left")), m.last + 1)
    return i0, max(i0, i1)


def _minutes(
    m: InstrumentModel, what: str, use_rth: bool, i0: int, i1: int, head: int, now: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """The 1-minute base bars of sessions [i0, i1) from `head` on that have begun at `now`, as
    (time, session, minute, (open, high, low, close, volume, count, wap)), sorted by time."""
    grid = m.minutes(FAMILY.get(what, PRICE_FAMILY), i0, i1)
    mask = grid.valid & grid.rth if use_rth else grid.valid
    mask &= grid.time >= head
    if now is not None:
        mask &= grid.time < now
    rows, cols = np.nonzero(mask)
    base = tuple(
        x[rows, cols]
        for x in (grid.open, grid.high, grid.low, grid.close, grid.volume, grid.count, grid.wap)
    )
    return grid.time[rows, cols], rows + i0, grid.minute[rows, cols], base


def _second_sums(m: InstrumentModel, what: str, time, session, minute, base) -> Sums:
    """The 1-second bars of base minutes, as Sums (60 rows a minute, in time order)."""
    secs = m.seconds(FAMILY.get(what, PRICE_FAMILY), minute, *base[:6])
    shown = m.show(what, *secs, minute[:, None], session[:, None])
    return unit_sums(
        (time[:, None] + np.arange(60)[None, :]).ravel(), np.repeat(session, 60), *shown
    )


def _minute_sums(
    m: InstrumentModel, what: str, use_rth: bool, i0: int, i1: int, head: int, now: float | None
) -> Sums:
    """1-minute Sums of sessions [i0, i1) up to `now`: the minute in progress holds the seconds
    before `now` only (IBKR answers the bar containing the present partial, up to now)."""
    time, session, minute, base = _minutes(m, what, use_rth, i0, i1, head, now)
    sums = unit_sums(time, session, *m.show(what, *base, minute, session))
    if now is None or not len(time) or time[-1] + 60 <= now:
        return sums
    # the minute in progress is the last one: its seconds before now, as one minute's row
    last = slice(len(time) - 1, None)
    seconds = _second_sums(m, what, time[last], session[last], minute[last], _slice(base, last))
    seconds = seconds.take(seconds.label < now)
    partial = seconds.reduce(np.zeros(1, np.int64))
    n = partial.n.astype(np.float64)
    partial.w, partial.o, partial.c = partial.w / n, partial.o / n, partial.c / n
    partial.n = np.ones(1, np.int64)
    return Sums.concat([sums.take(slice(0, len(time) - 1)), partial])


def _slice(base: tuple, part) -> tuple:
    return tuple(x[part] for x in base)


def _starts(*keys: np.ndarray) -> np.ndarray:
    """Where each group of consecutive rows begins: the first row, and where any key changes."""
    new = np.ones(len(keys[0]), bool)
    new[1:] = np.any([key[1:] != key[:-1] for key in keys], axis=0)
    return np.flatnonzero(new)


def intraday_bars(
    m: InstrumentModel,
    what: str,
    use_rth: bool,
    bar_seconds: int,
    start: int,
    end: int,
    *,
    head: int | None = None,
    now: float | None = None,
) -> BarArrays:
    """Bars of `bar_seconds` (1 s to 8 h) whose start is in [start, end), from `head` on (the
    instrument's first data point by default), with what has happened at `now` (None: all of
    history)."""
    head = m.head if head is None else head
    i0, i1 = _overlapping(m, start, end)
    if i1 <= i0:
        return BarArrays.empty(daily=False)
    time_averaged = what == "BID_ASK"
    if bar_seconds < 60:
        time, session, minute, base = _minutes(m, what, use_rth, i0, i1, head, now)
        keep = (time < end) & (time + 60 > start)
        sums = _second_sums(m, what, time[keep], session[keep], minute[keep], _slice(base, keep))
        if now is not None:
            sums = sums.take(sums.label < now)
        sums = sums.reduce(_starts(sums.label // bar_seconds))
    else:
        sums = _minute_sums(m, what, use_rth, i0, i1, head, now)
        if bar_seconds > 60:
            local = sums.label + m.sessions.utc_offset[sums.session]
            sums = sums.reduce(_starts(sums.session, local // bar_seconds))
    sums = sums.take((sums.label >= start) & (sums.label < end))
    return _served(m, what, sums, now).bars(time_averaged, None)


def period_bars(
    m: InstrumentModel,
    what: str,
    use_rth: bool,
    unit: str,
    start: int,
    end: int,
    *,
    head: int | None = None,
    now: float | None = None,
) -> BarArrays:
    """Daily, weekly ('week') or monthly ('month') bars, with what has happened at `now`.

    A day or a month is the request's when its first session opens in [start, end); a week
    when its last session that has begun does, and IBKR dates it by the week's last trading
    day (Thursday in a holiday week), the week in progress too."""
    head = m.head if head is None else head
    s = m.sessions
    opens = np.maximum(s.rth_start if use_rth else s.ext_start, head)
    a = int(np.searchsorted(opens, start, side="left"))
    b = int(np.searchsorted(opens, end, side="left"))
    margin = 0 if unit == "day" else 27  # a month has at most 23 sessions
    days = m.daily(what, use_rth, a - margin, b + margin)
    days = days.take(s.ext_start[days.session] >= _session_floor(m, head))
    if now is not None:
        days = _up_to(m, what, use_rth, days, head, now)
    days.label = opens[days.session]
    days = _served(m, what, days, now)
    if unit == "week" and len(days.label):
        monday = _monday(s.day)
        key = monday[days.session]
        firsts = _starts(key)
        lasts = np.append(firsts[1:], len(key)) - 1
        label = days.label[lasts]  # the last session that has begun
        days = days.reduce(firsts)
        days.label = label
        dates = s.date[np.searchsorted(monday, key[firsts], side="right") - 1]
    elif unit == "month" and len(days.label):
        days = days.reduce(_starts(s.date[days.session] // 100))
        dates = s.date[days.session]
    else:
        dates = s.date[days.session]
    keep = (days.label >= start) & (days.label < end)
    days = days.take(keep)
    return days.bars(what == "BID_ASK", dates[keep])


def _monday(day: np.ndarray) -> np.ndarray:
    """Day number (since 1970-01-01) of the Monday of each day's week (1970-01-01 a Thursday)."""
    return day - (day + 3) % 7


def _session_floor(m: InstrumentModel, head: int) -> int:
    """The start of the first session with bars of a whatToShow whose history begins at `head`."""
    s = m.sessions
    first = int(np.searchsorted(s.ext_end, head, side="right"))
    return int(s.ext_start[min(first, len(s) - 1)])


def _up_to(m: InstrumentModel, what: str, use_rth: bool, days: Sums, head: int, now: float) -> Sums:
    """Daily rows as they are at `now`: none for a session not begun, and the session in
    progress from its minutes up to now."""
    starts, ends = m.sessions.bounds(use_rth)
    days = days.take(starts[days.session] < now)
    if not len(days.session) or ends[days.session[-1]] <= now:
        return days
    current = int(days.session[-1])
    before = days.take(slice(0, len(days.session) - 1))
    minutes = _minute_sums(m, what, use_rth, current, current + 1, head, now)
    if not len(minutes.label):
        return before
    return Sums.concat([before, minutes.reduce(np.zeros(1, np.int64))])


def _served(m: InstrumentModel, what: str, sums: Sums, now: float | None) -> Sums:
    """Sums as IBKR serves them at `now`: adjusted for the splits (and, for ADJUSTED_LAST, the
    dividends) since each row's session."""
    factors = m.adjustment(what, sums.session, now) if len(sums.session) else None
    if factors is None or (np.all(factors[0] == 1) and np.all(factors[1] == 1)):
        return sums
    return sums.adjusted(*factors)
