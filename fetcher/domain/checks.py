"""What `bars check` looks for in one stored series, as pure functions of its bars: sessions of
the exchange calendar with no bars or far fewer than expected, OHLC rules, spikes, and the
database's bars against the catalog's."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from .bars import BarBatch
from .planning import intervals_merge
from .sessions import SessionTable
from .time import DAY
from .timeframes import TimeframeSpec

# A session is thin when it holds fewer bars than this fraction of the bar slots of its regular
# hours (within the checked range). Regular hours, not the whole extended session: before and
# after hours a stock may not trade every minute. An early close has fewer slots, so a half
# day is not thin.
THIN_FRACTION = 0.5
# A spike: a move (close to close inside a session, or a bar's high to low) larger than
# SPIKE_FACTOR times the series' usual one (the mean move of its year, leaving out the largest
# SPIKE_TRIM of them) and than SPIKE_FLOOR (log move) however quiet the series.
SPIKE_FACTOR = 25.0
SPIKE_TRIM = 0.01
SPIKE_FLOOR = 0.01
MIN_MOVES = 20  # fewer moves than this in a year: no usual move to compare with
# What a repair fetches again, and the gateway may confirm as it is.
REFETCHED = ("gap", "thin", "spike", "ohlc")


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a series: its line, and what a repair does about it."""

    kind: str  # gap, thin, spike, ohlc, outside, catalog, counters
    text: str
    refetch: tuple[tuple[int, int], ...] = ()  # windows to fetch again (epoch seconds)
    rebuild: tuple[int, ...] = ()  # catalog years to rebuild from the database


def inside(window: tuple[int, int], windows: list[tuple[int, int]]) -> bool:
    """Whether `window` lies within one of `windows` (merged, sorted)."""
    return any(lo <= window[0] and window[1] <= hi for lo, hi in windows)


def findings_unconfirmed(
    findings: list[Finding], confirmed: list[tuple[int, int]]
) -> tuple[list[Finding], int]:
    """The findings left once those the gateway confirmed are set aside (a gap, thin session,
    spike or broken bar every window of which a repair fetched again and found the same), and
    how many were set aside."""
    confirmed = intervals_merge(confirmed)
    kept = [
        f
        for f in findings
        if not (f.kind in REFETCHED and f.refetch and all(inside(w, confirmed) for w in f.refetch))
    ]
    return kept, len(findings) - len(kept)


def utc_text(ts: int) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def day_text(day: int) -> str:
    return (np.datetime64(int(day), "D")).astype(str)


def bar_when(ts: int, tf: TimeframeSpec) -> str:
    return utc_text(ts) if tf.intraday else day_text(int(ts) // DAY)


# --- the calendar ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slots:
    """The periods a series should have bars in: sessions for intraday and daily bars, weeks or
    months for weekly and monthly ones; one row each, in order."""

    label: np.ndarray  # the session day (days since 1970-01-01) naming each period
    start: np.ndarray  # the bars' window of each period, epoch seconds, clipped to the range
    end: np.ndarray
    expected: np.ndarray  # bars expected in it
    thin_below: np.ndarray  # fewer bars than this: thin


def calendar_slots(
    sessions: SessionTable, tf: TimeframeSpec, use_rth: bool, lo: int, hi: int
) -> Slots:
    """Where bars of [lo, hi) belong: each session (or week, month) overlapping it."""
    if tf.intraday:
        opens, closes = (
            (sessions.rth_open, sessions.rth_close)
            if use_rth
            else (sessions.eth_open, sessions.eth_close)
        )
        mask = (closes > lo) & (opens < hi)
        start = np.maximum(opens[mask], lo)
        end = np.minimum(closes[mask], hi)
        # regular hours inside the clipped session: what "far fewer" is measured against
        rth_start = np.maximum(sessions.rth_open[mask], start)
        rth_end = np.minimum(sessions.rth_close[mask], end)
        expected = -(-np.maximum(end - start, 0) // tf.seconds)
        rth_slots = -(-np.maximum(rth_end - rth_start, 0) // tf.seconds)
        thin_below = rth_slots * THIN_FRACTION
        if use_rth and not sessions.regular_hours_known:  # a session with a bar is not thin
            thin_below = np.where(expected > 0, 0.5, 0.0)
        return Slots(sessions.day[mask], start, end, expected, thin_below)
    days = sessions.days_between(-(-lo // DAY), (hi - 1) // DAY)
    if tf.name == "DAILY":
        ones = np.ones(len(days), dtype=np.int64)
        return Slots(days, days * DAY, (days + 1) * DAY, ones, ones * 0.5)
    period = _period(days, tf)
    first = np.flatnonzero(np.r_[True, period[1:] != period[:-1]]) if len(days) else days
    last = np.r_[first[1:] - 1, len(days) - 1] if len(days) else days
    ones = np.ones(len(first), dtype=np.int64)
    return Slots(days[first], days[first] * DAY, (days[last] + 1) * DAY, ones, ones * 0.5)


def _period(days: np.ndarray, tf: TimeframeSpec) -> np.ndarray:
    """The week (Monday first) or month each day falls in, as a number."""
    if tf.name == "WEEKLY":
        return (days + 3) // 7  # 1970-01-01 was a Thursday
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def bars_per_slot(slots: Slots, ts: np.ndarray, tf: TimeframeSpec) -> np.ndarray:
    """How many of the (sorted) bar times fall in each slot."""
    if tf.intraday or tf.name == "DAILY":
        return np.searchsorted(ts, slots.end) - np.searchsorted(ts, slots.start)
    # weekly and monthly bars carry a date somewhere in their period (IBKR: its last session)
    slot_period = _period(slots.label, tf)
    bar_period = _period(ts // DAY, tf)
    return np.searchsorted(bar_period, slot_period, side="right") - np.searchsorted(
        bar_period, slot_period
    )


def calendar_findings(
    *,
    sessions: SessionTable,
    tf: TimeframeSpec,
    use_rth: bool,
    ts: np.ndarray,
    lo: int,
    hi: int,
    covered: list[tuple[int, int]],
) -> list[Finding]:
    """Sessions (weeks, months) of [lo, hi) with no bars, a run of them one finding; sessions
    with far fewer bars than expected; bars outside every session. Nothing when the calendar
    is not the exchange's (`sessions.holidays_known`)."""
    if not sessions.holidays_known:
        return []
    slots = calendar_slots(sessions, tf, use_rth, lo, hi)
    counts = bars_per_slot(slots, ts, tf)
    findings: list[Finding] = []
    # a slice of extended hours only (the range's first or last, a session still going before
    # its regular hours) may have no trades yet: not a gap
    empty = (counts == 0) & (slots.thin_below > 0)
    is_covered = _covered(slots.start, slots.end, covered)
    unit = "session" if tf.intraday or tf.name == "DAILY" else tf.name.lower()[:-2]
    i = 0
    while i < len(slots.label):
        if not empty[i]:
            if 0 < counts[i] < slots.thin_below[i]:
                findings.append(
                    Finding(
                        "thin",
                        f"{day_text(slots.label[i])}: {counts[i]:,} of {slots.expected[i]:,} bars",
                        refetch=((int(slots.start[i]), int(slots.end[i])),),
                    )
                )
            i += 1
            continue
        j = i
        while j + 1 < len(slots.label) and empty[j + 1] and is_covered[j + 1] == is_covered[i]:
            j += 1
        n = j - i + 1
        when = day_text(slots.label[i]) + (f"..{day_text(slots.label[j])}" if n > 1 else "")
        why = (
            "fetched before: the gateway had none, or they were deleted"
            if is_covered[i]
            else "never fetched"
        )
        findings.append(
            Finding(
                "gap",
                f"{when}: {n:,} {unit}{'s' if n > 1 else ''} with no bars ({why})",
                refetch=tuple(
                    (int(a), int(b))
                    for a, b in zip(slots.start[i : j + 1], slots.end[i : j + 1], strict=True)
                ),
            )
        )
        i = j + 1
    inside = bars_in_sessions(ts, tf, sessions, use_rth)
    if not inside.all():
        out = ts[~inside]
        findings.append(
            Finding(
                "outside",
                f"{len(out):,} bar{'s' if len(out) > 1 else ''} outside the exchange's sessions "
                f"(first at {bar_when(out[0], tf)}; a refetch does not remove them)",
            )
        )
    return findings


def _covered(start: np.ndarray, end: np.ndarray, covered: list[tuple[int, int]]) -> np.ndarray:
    """Whether each window [start, end) lies inside one of the (merged, sorted) covered ones."""
    if not covered:
        return np.zeros(len(start), dtype=bool)
    los, his = np.array(covered, dtype=np.int64).T
    at = np.searchsorted(los, start, side="right") - 1
    return (at >= 0) & (his[np.maximum(at, 0)] >= end)


def bars_in_sessions(
    ts: np.ndarray, tf: TimeframeSpec, sessions: SessionTable, use_rth: bool
) -> np.ndarray:
    """Whether each bar lies in a session of the calendar (any session: not only the range's)."""
    if not len(ts):
        return np.ones(0, dtype=bool)
    if tf.intraday:
        opens, closes = (
            (sessions.rth_open, sessions.rth_close)
            if use_rth
            else (sessions.eth_open, sessions.eth_close)
        )
        at = np.searchsorted(opens, ts, side="right") - 1
        return (at >= 0) & (ts < closes[np.maximum(at, 0)])
    if tf.name == "DAILY":
        days = ts // DAY
        at = np.searchsorted(sessions.day, days)
        return (at < len(sessions.day)) & (
            sessions.day[np.minimum(at, len(sessions.day) - 1)] == days
        )
    periods = np.unique(_period(sessions.day, tf))
    bar_period = _period(ts // DAY, tf)
    at = np.searchsorted(periods, bar_period)
    return (at < len(periods)) & (periods[np.minimum(at, len(periods) - 1)] == bar_period)


# --- one year of bars --------------------------------------------------------------------------


def session_window(ts: int, tf: TimeframeSpec, sessions: SessionTable, use_rth: bool):
    """The session (or for daily and larger bars, the date) a bar belongs to: the window a
    repair fetches again; for weekly and monthly bars, the sessions of their week or month."""
    day = int(ts) // DAY
    if tf.name == "DAILY":
        return (day * DAY, (day + 1) * DAY)
    if not tf.intraday:
        days = sessions.day[_period(sessions.day, tf) == _period(np.array([day]), tf)[0]]
        if not len(days):
            return (day * DAY, (day + 1) * DAY)
        return (int(days[0]) * DAY, (int(days[-1]) + 1) * DAY)
    opens, closes = (
        (sessions.rth_open, sessions.rth_close)
        if use_rth
        else (sessions.eth_open, sessions.eth_close)
    )
    at = int(np.searchsorted(opens, ts, side="right")) - 1
    if at < 0 or ts >= closes[at]:
        return (int(ts), int(ts) + tf.seconds)
    return (int(opens[at]), int(closes[at]))


def ohlc_broken(batch: BarBatch, volume_signed: bool) -> np.ndarray:
    """Which bars break the rules every bar keeps (see ohlc_findings), as a mask."""
    prices = np.stack([batch.open, batch.high, batch.low, batch.close])
    bad = ~np.isfinite(prices).all(axis=0)
    bad |= (batch.low > np.minimum(batch.open, batch.close)) | (
        batch.high < np.maximum(batch.open, batch.close)
    )
    bad |= batch.low > batch.high
    volume_floor = -1 if volume_signed else 0
    return bad | np.isinf(batch.volume) | (batch.volume < volume_floor)


def ohlc_findings(
    batch: BarBatch, tf: TimeframeSpec, sessions: SessionTable, use_rth: bool, volume_signed: bool
) -> list[Finding]:
    """Bars that break the rules every bar keeps: finite prices, low <= open, close <= high;
    no negative volume (quote bars report -1: `volume_signed`; a missing volume, NaN, is no
    volume, not a wrong one)."""
    if not len(batch):
        return []
    bad = ohlc_broken(batch, volume_signed)
    if not bad.any():
        return []
    at = np.flatnonzero(bad)
    i = at[0]
    windows = intervals_merge(
        [session_window(batch.ts[k], tf, sessions, use_rth) for k in at.tolist()]
    )
    return [
        Finding(
            "ohlc",
            f"{len(at):,} {'bars break' if len(at) > 1 else 'bar breaks'} the OHLC rules (first "
            f"at {bar_when(batch.ts[i], tf)}: open {batch.open[i]:g} high {batch.high[i]:g} "
            f"low {batch.low[i]:g} close {batch.close[i]:g} volume {batch.volume[i]:,.0f})",
            refetch=tuple(windows),
        )
    ]


def usual_move(moves: np.ndarray) -> float:
    """The mean of the moves, the largest SPIKE_TRIM of them left out (0: not enough moves)."""
    if len(moves) < MIN_MOVES:
        return 0.0
    keep = max(1, int(len(moves) * (1 - SPIKE_TRIM)))
    return float(np.partition(moves, keep - 1)[:keep].mean())


def spike_findings(
    batch: BarBatch,
    tf: TimeframeSpec,
    sessions: SessionTable,
    use_rth: bool,
    before: float | None = None,
) -> list[Finding]:
    """Moves many times the series' usual one: close to close between bars of one session (for
    daily and larger bars, between consecutive bars; `before` is the close before the batch),
    and a bar's own range (high to low). One finding per session."""
    n = len(batch)
    if n < 2:
        return []
    close, high, low = batch.close, batch.high, batch.low
    prev = np.r_[np.nan if before is None else before, close[:-1]]
    logs = bool((close > 0).all() and (low > 0).all() and (before is None or before > 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        move = np.abs(np.log(close / prev)) if logs else np.abs(close - prev)
        span = np.log(high / low) if logs else high - low
    linked = np.isfinite(move)
    if tf.intraday:  # the first bar of a session follows the night: not a move of the session
        opens = sessions.rth_open if use_rth else sessions.eth_open
        session = np.searchsorted(opens, batch.ts, side="right")
        linked &= np.r_[False, session[1:] == session[:-1]]
    spanned = np.isfinite(span)
    floor = SPIKE_FLOOR if logs else 0.0
    ratios = []
    for values, ok in ((move, linked), (span, spanned)):
        usual = usual_move(values[ok])
        ratio = np.zeros(n)
        if usual > 0:
            ratio[ok] = values[ok] / usual
            ratio[~ok | (values <= floor)] = 0.0
        ratios.append(ratio)
    by_close, by_span = ratios
    spikes = np.flatnonzero((by_close > SPIKE_FACTOR) | (by_span > SPIKE_FACTOR))
    by_window: dict[tuple[int, int], list[int]] = {}
    for k in spikes.tolist():
        by_window.setdefault(session_window(batch.ts[k], tf, sessions, use_rth), []).append(k)
    findings = []
    for window, at in by_window.items():
        k = max(at, key=lambda i: max(by_close[i], by_span[i]))
        if by_close[k] >= by_span[k]:
            size = f"close {close[k]:g} after {prev[k]:g}, {by_close[k]:,.0f}x"
        else:
            size = f"high {high[k]:g} low {low[k]:g}, {by_span[k]:,.0f}x"
        windows = [window]
        if not tf.intraday and k > 0:  # the bar before may be the wrong one
            windows.append(session_window(batch.ts[k - 1], tf, sessions, use_rth))
        findings.append(
            Finding(
                "spike",
                f"spike at {bar_when(batch.ts[k], tf)}: {size} the usual move"
                + (f" ({len(at)} in this session)" if len(at) > 1 else ""),
                refetch=tuple(intervals_merge(windows)),
            )
        )
    return findings


def stores_compare(database: BarBatch, catalog: BarBatch | None, year: int) -> Finding | None:
    """One catalog partition (a UTC year) against the database's bars of that year: the same
    bars, with the same values, each once, in order."""
    if catalog is None:
        if not len(database):
            return None
        return Finding(
            "catalog",
            f"catalog year={year}: no file; the database has {len(database):,} bars",
            rebuild=(year,),
        )
    problems = []
    if len(catalog) > 1 and not (np.diff(catalog.ts) > 0).all():
        problems.append("bars repeated or out of order")
    cat = BarBatch.concat([catalog])
    only_db = np.setdiff1d(database.ts, cat.ts, assume_unique=True)
    only_cat = np.setdiff1d(cat.ts, database.ts, assume_unique=True)
    if len(only_db):
        problems.append(f"{len(only_db):,} missing from the catalog (first {utc_text(only_db[0])})")
    if len(only_cat):
        problems.append(f"{len(only_cat):,} not in the database (first {utc_text(only_cat[0])})")
    common, in_db, in_cat = np.intersect1d(
        database.ts, cat.ts, assume_unique=True, return_indices=True
    )
    differ = np.zeros(len(common), dtype=bool)
    for name in ("open", "high", "low", "close", "volume", "wap", "bar_count"):
        ours, theirs = getattr(database, name)[in_db], getattr(cat, name)[in_cat]
        differ |= (ours != theirs) & ~(np.isnan(ours) & np.isnan(theirs))  # missing on both
    if differ.any():
        first = common[np.flatnonzero(differ)[0]]
        problems.append(f"{int(differ.sum()):,} with other values (first {utc_text(first)})")
    if not problems:
        return None
    return Finding(
        "catalog",
        f"catalog year={year}: {len(catalog):,} bars, database {len(database):,}: "
        + "; ".join(problems),
        rebuild=(year,),
    )
