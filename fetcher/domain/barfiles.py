"""Bars in files (`bars export`, `bars import`), as pure functions of their columns: the problem of
each row a file holds (prices, the timeframe's grid, the exchange's sessions, repeats), the
windows imported bars cover, and the name of a series' file."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import quote

import numpy as np
import pandas as pd

from .bars import BarBatch
from .checks import bars_in_sessions, ohlc_broken
from .planning import intervals_merge
from .sessions import SessionTable
from .time import DAY
from .timeframes import TimeframeSpec

# Why a row is refused, in the order they are looked for (the first one names the row).
OK, TIME, PRICES, GRID, OUTSIDE, REPEAT = range(6)


@dataclass(frozen=True)
class Rows:
    """Rows of a file in its order: the bars they hold (ts in epoch seconds, not sorted) and the
    line (CSV) or row (Parquet) number of each; `time_problem` names the rows whose time could
    not be read ('' for the others: their ts is meaningful)."""

    lines: np.ndarray
    batch: BarBatch
    time_problem: np.ndarray  # object array of str


def when_text(ts: int, tf: TimeframeSpec) -> str:
    moment = dt.datetime.fromtimestamp(int(ts), dt.UTC)
    if not tf.intraday:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC").replace(":00 UTC", " UTC", 1)


def on_grid(ts: np.ndarray, tf: TimeframeSpec, sessions: SessionTable, use_rth: bool) -> np.ndarray:
    """Whether each bar starts where bars of `tf` start: daily and larger bars at 00:00 UTC of
    their date (date space); intraday bars on a multiple of their length from midnight in the
    exchange's zone, or at their session's open (IBKR's first hourly bar starts at 09:30)."""
    if not len(ts):
        return np.ones(0, dtype=bool)
    if not tf.intraday:
        return ts % DAY == 0
    local = ts
    if tf.seconds > 60:  # every zone's offset is whole minutes: only longer bars need it
        moments = pd.DatetimeIndex(pd.to_datetime(ts, unit="s", utc=True)).tz_convert(sessions.zone)
        local = moments.tz_localize(None).values.astype("datetime64[s]").astype(np.int64)
    ok = local % tf.seconds == 0
    opens = sessions.rth_open if use_rth else sessions.eth_open
    at = np.searchsorted(opens, ts, side="right") - 1
    return ok | ((at >= 0) & (opens[np.maximum(at, 0)] == ts))


def rows_check(
    rows: Rows, tf: TimeframeSpec, sessions: SessionTable, use_rth: bool, volume_signed: bool
) -> np.ndarray:
    """Each row's problem (OK, TIME, PRICES, GRID, OUTSIDE), the first one found; repeats are
    found across a whole file by TimesSeen."""
    codes = np.full(len(rows.lines), OK, dtype=np.int8)
    timed = rows.time_problem == ""
    codes[~timed] = TIME
    ts = rows.batch.ts
    prices = ohlc_broken(rows.batch, volume_signed)
    codes[(codes == OK) & prices] = PRICES
    grid = np.zeros(len(ts), dtype=bool)
    grid[timed] = ~on_grid(ts[timed], tf, sessions, use_rth)
    codes[(codes == OK) & grid] = GRID
    outside = np.zeros(len(ts), dtype=bool)
    outside[timed] = ~bars_in_sessions(ts[timed], tf, sessions, use_rth)
    codes[(codes == OK) & outside] = OUTSIDE
    return codes


def row_problem(code: int, rows: Rows, i: int, tf: TimeframeSpec, repeats: int = 0) -> str:
    """The words for one refused row."""
    b = rows.batch
    if code == TIME:
        return str(rows.time_problem[i])
    when = when_text(b.ts[i], tf)
    if code == PRICES:
        o, h, lo, c, v = (float(x[i]) for x in (b.open, b.high, b.low, b.close, b.volume))
        if not np.isfinite([o, h, lo, c]).all():
            return f"{when}: a price is missing or not a number"
        if h < lo:
            return f"{when}: high {h:g} below low {lo:g}"
        if h < max(o, c):
            return f"{when}: high {h:g} below the {'open' if o > c else 'close'} {max(o, c):g}"
        if lo > min(o, c):
            return f"{when}: low {lo:g} above the {'open' if o < c else 'close'} {min(o, c):g}"
        return f"{when}: volume {v:g} is not a volume"
    if code == GRID:
        return f"{when} is not where a {tf.name} bar starts"
    if code == OUTSIDE:
        what = "not a session" if not tf.intraday else "outside the sessions"
        return f"{when} is {what} of the exchange's calendar"
    return f"{when} repeats line {repeats}"


@dataclass
class TimesSeen:
    """The bar times met so far in an import (and the line of each): a repeat is found as its row
    comes, against every row before it (files sorted by time cost one comparison a chunk)."""

    _ts: list[np.ndarray] = field(default_factory=list)
    _lines: list[np.ndarray] = field(default_factory=list)
    _latest: int | None = None
    _sorted: tuple[np.ndarray, np.ndarray] | None = None

    def repeats(self, ts: np.ndarray, lines: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """For the rows `candidates` marks: the line of an earlier row with the same time (0:
        none); those rows then count as seen."""
        earlier = np.zeros(len(ts), dtype=np.int64)
        at = np.flatnonzero(candidates)
        if not len(at):
            return earlier
        t, ln = ts[at], lines[at]
        order = np.argsort(t, kind="stable")
        same = np.r_[False, t[order][1:] == t[order][:-1]]
        if same.any():  # within these rows: each repeat names the first of its time
            first = np.maximum.accumulate(np.where(~same, np.arange(len(order)), 0))
            earlier[at[order[same]]] = ln[order[first[same]]]
        if self._latest is not None and t.min() <= self._latest:
            seen_ts, seen_lines = self._seen()
            k = np.searchsorted(seen_ts, t)
            hit = (k < len(seen_ts)) & (seen_ts[np.minimum(k, len(seen_ts) - 1)] == t)
            earlier[at[hit]] = seen_lines[k[hit]]
        keep = earlier[at] == 0
        if keep.any():
            self._ts.append(t[keep])
            self._lines.append(ln[keep])
            latest = int(t[keep].max())
            self._latest = latest if self._latest is None else max(self._latest, latest)
            self._sorted = None
        return earlier

    def _seen(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None:
            ts, lines = np.concatenate(self._ts), np.concatenate(self._lines)
            order = np.argsort(ts, kind="stable")
            self._ts, self._lines = [ts[order]], [lines[order]]
            self._sorted = (self._ts[0], self._lines[0])
        return self._sorted


def bars_windows(
    ts: np.ndarray, tf: TimeframeSpec, sessions: SessionTable, use_rth: bool
) -> list[tuple[int, int]]:
    """The windows (epoch seconds) sorted bars cover, as coverage records them: the sessions they
    fall in (runs of consecutive sessions of the calendar merged), from the first bar to the end
    of the last one; a session missing from them is left out, so a fetch asks for it."""
    if not len(ts):
        return []
    first, last = int(ts[0]), int(ts[-1]) + (tf.seconds or DAY)
    if tf.intraday:
        opens, closes = (
            (sessions.rth_open, sessions.rth_close)
            if use_rth
            else (sessions.eth_open, sessions.eth_close)
        )
        at = np.unique(np.searchsorted(opens, ts, side="right") - 1)
        at = at[at >= 0]
        starts, ends = opens, closes
    elif tf.name == "DAILY":
        at = np.unique(np.searchsorted(sessions.day, ts // DAY))
        at = at[at < len(sessions.day)]
        starts, ends = sessions.day * DAY, (sessions.day + 1) * DAY
    else:
        return [(first, last)]
    if not len(at):
        return [(first, last)]
    breaks = np.flatnonzero(np.diff(at) > 1)
    lo = at[np.r_[0, breaks + 1]]
    hi = at[np.r_[breaks, len(at) - 1]]
    windows = [
        (max(int(starts[a]), first), min(int(ends[b]), last))
        for a, b in zip(lo.tolist(), hi.tolist(), strict=True)
    ]
    return intervals_merge([(a, b) for a, b in windows if a < b])


def series_file_name(
    *, symbol: str, exchange: str, currency: str, timeframe: str, what_to_show: str, session: str
) -> str:
    """'AAPL_NASDAQ_USD_1-MINUTE_TRADES_RTH' (names percent-encoded: 'BRK%20B'), without suffix."""
    parts = (symbol, exchange, currency, timeframe, what_to_show, session)
    return "_".join(quote(part, safe="-.") for part in parts)
