"""Deterministic simulated bars: hashed 1-minute paths per whole session, and their aggregates."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

import numpy as np

from fetcher.ibkr.sim.calendars import Sessions, sessions
from fetcher.ibkr.sim.universe import InstrumentSpec

# ---------------------------------------------------------------------------------------------
# Counter-based randomness: splitmix64 of (seed, conId, stream) and a time index. The same
# inputs give the same numbers whatever else is computed, so no bar depends on the request.

_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_S11, _S27, _S30, _S31, _S32 = (np.uint64(n) for n in (11, 27, 30, 31, 32))
_LOGISTIC_SCALE = np.sqrt(3.0) / np.pi
_LOW32 = np.uint64(0xFFFFFFFF)


class Stream(IntEnum):
    DAY_RETURN = 1
    DAY_GAP = 2
    DAY_VOLUME = 3
    PATH = 10
    HIGH_LOW = 11
    VOLUME = 12
    VOLUME_AUX = 13
    SPREAD = 15
    VOLATILITY = 20
    SEC_PATH = 30
    SEC_TOUCH = 31
    SEC_ACTIVE = 32
    SEC_COUNT = 33


def _mix_int(x: int) -> int:
    x &= _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def stream_key(seed: int, con_id: int, stream: int) -> np.uint64:
    key = 0
    for part in (seed, con_id, stream):
        key = _mix_int(key + 0x9E3779B97F4A7C15 + (part & _MASK64))
    return np.uint64(key)


def hash64(key: np.uint64, index: np.ndarray) -> np.ndarray:
    """splitmix64 of key + index * golden, vectorised with uint64 wraparound."""
    z = np.asarray(index).astype(np.uint64)
    z *= _GOLDEN
    z += key
    z ^= z >> _S30
    z *= _MUL1
    z ^= z >> _S27
    z *= _MUL2
    z ^= z >> _S31
    return z


def _halves(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two uniforms in (0, 1) from the high and low 32 bits of each hash."""
    scale = 1.0 / 4294967296.0
    high = ((z >> _S32).view(np.int64).astype(np.float64) + 0.5) * scale
    low = ((z & _LOW32).view(np.int64).astype(np.float64) + 0.5) * scale
    return high, low


def _uniform(z: np.ndarray) -> np.ndarray:
    """A uniform in (0, 1) from the top 53 bits of each hash."""
    return ((z >> _S11).view(np.int64).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def _normal(z: np.ndarray) -> np.ndarray:
    """Unit-variance logistic variates: bell-shaped with fat tails, like returns, and cheap."""
    u = _uniform(z)
    return np.log(u / (1.0 - u)) * _LOGISTIC_SCALE


def round_to(x: np.ndarray, tick: float, decimals: int) -> np.ndarray:
    return np.round(np.round(x / tick) * tick, decimals)


# ---------------------------------------------------------------------------------------------
# The bars handed to the server.


@dataclass(frozen=True, eq=False)
class BarArrays:
    """Parallel arrays, one row per bar, sorted by time."""

    time: np.ndarray  # int64 epoch seconds UTC of the bar start (day+: first session's open)
    dates: np.ndarray | None  # day/week/month bars: first session date as YYYYMMDD
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # int64
    wap: np.ndarray
    count: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def empty(cls, daily: bool) -> BarArrays:
        f, i = np.empty(0, np.float64), np.empty(0, np.int64)
        return cls(i, i if daily else None, f, f, f, f, i, f, i)


# ---------------------------------------------------------------------------------------------
# Price model parameters.

EXT_VOL_WEIGHT = 0.35  # minute volatility outside RTH relative to inside
EXT_VOLUME_WEIGHT = 0.05  # minute volume weight outside RTH (inside: 1..4, U-shaped)
WICK = 0.5  # minute high/low excursion, in minute standard deviations
OU_PHI = 1.0 - 1.0 / 750.0  # mean reversion of the daily walk around its trend
GAP_VOL = 0.25  # overnight gap, in daily standard deviations
ANCHOR_DAY = int(np.datetime64("2024-01-02", "D").astype(np.int64))
DAY_BLOCK = 128  # sessions per cached block of daily aggregates
DAY_SLICE = 8  # sessions computed at once inside a block
VOL_DECIMALS = 6  # HISTORICAL_VOLATILITY / OPTION_IMPLIED_VOLATILITY values

PRICE_FAMILY, HV_FAMILY, IV_FAMILY = "price", "hv", "iv"
FAMILY = {
    "HISTORICAL_VOLATILITY": HV_FAMILY,
    "OPTION_IMPLIED_VOLATILITY": IV_FAMILY,
}


@dataclass
class _Sums:
    """Bars with the running sums that make aggregation associative."""

    label: np.ndarray  # int64 start time
    session: np.ndarray  # int64 index of the first session
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    count: np.ndarray
    vw: np.ndarray  # sum of volume * wap
    w: np.ndarray  # sum of wap (for the plain mean when there is no volume)
    o: np.ndarray  # sum of opens (BID_ASK time averages)
    c: np.ndarray  # sum of closes
    n: np.ndarray  # number of 1-minute (or 1-second) bars

    def take(self, keep: np.ndarray) -> _Sums:
        return _Sums(*(getattr(self, f)[keep] for f in _SUM_FIELDS))

    @staticmethod
    def concat(parts: list[_Sums]) -> _Sums:
        return _Sums(*(np.concatenate([getattr(p, f) for p in parts]) for f in _SUM_FIELDS))

    def reduce(self, starts: np.ndarray) -> _Sums:
        """Aggregate consecutive rows: one output row per group starting at `starts`."""
        if len(starts) == 0:
            return self.take(starts)
        ends = np.append(starts[1:], len(self.label)) - 1
        add = np.add.reduceat
        return _Sums(
            label=self.label[starts],
            session=self.session[starts],
            open=self.open[starts],
            high=np.maximum.reduceat(self.high, starts),
            low=np.minimum.reduceat(self.low, starts),
            close=self.close[ends],
            volume=add(self.volume, starts),
            count=add(self.count, starts),
            vw=add(self.vw, starts),
            w=add(self.w, starts),
            o=add(self.o, starts),
            c=add(self.c, starts),
            n=add(self.n, starts),
        )

    def bars(self, time_averaged: bool, dates: np.ndarray | None) -> BarArrays:
        n = np.maximum(self.n, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            wap = np.where(self.volume > 0, self.vw / np.maximum(self.volume, 1), self.w / n)
        open_, close = self.open, self.close
        if time_averaged:  # a mean of equal values can land an ulp outside [low, high]
            open_ = np.clip(self.o / n, self.low, self.high)
            close = np.clip(self.c / n, self.low, self.high)
        return BarArrays(
            time=self.label,
            dates=dates,
            open=open_,
            high=self.high,
            low=self.low,
            close=close,
            volume=self.volume,
            wap=wap,
            count=self.count,
        )


_SUM_FIELDS = tuple(_Sums.__dataclass_fields__)


def _unit_sums(label, session, o, h, lo, c, v, cnt, wap) -> _Sums:
    """Single 1-minute or 1-second bars as _Sums (any shape, flattened)."""
    v = v.ravel()
    wap = wap.ravel()
    return _Sums(
        label=label.ravel(),
        session=session.ravel(),
        open=o.ravel(),
        high=h.ravel(),
        low=lo.ravel(),
        close=c.ravel(),
        volume=v,
        count=cnt.ravel(),
        vw=v * wap,
        w=wap,
        o=o.ravel(),
        c=c.ravel(),
        n=np.ones(len(v), np.int64),
    )


# ---------------------------------------------------------------------------------------------
# Per-instrument model: session table, daily walk, cached daily aggregates.


@dataclass
class _Minutes:
    """Minute bars of whole sessions [i0, i1), rows = sessions, columns = minute of session."""

    i0: int
    time: np.ndarray  # (S, L) int64
    minute: np.ndarray  # (S, L) int64 epoch minute, the hash counter
    valid: np.ndarray  # (S, L) a minute of the session at or after the head timestamp
    rth: np.ndarray  # (S, L) inside regular hours
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    count: np.ndarray
    wap: np.ndarray


class InstrumentModel:
    """Everything about one instrument's simulated prices that does not depend on a request."""

    def __init__(self, spec: InstrumentSpec, seed: int):
        self.spec = spec
        self.seed = seed
        self.sessions: Sessions = sessions(spec.calendar, spec.session_kind, spec.time_zone_id)
        s = self.sessions
        self.head = spec.head_timestamp
        self.first = int(np.searchsorted(s.ext_end, self.head, side="right"))
        self.width = s.max_minutes
        self.tick = spec.min_tick
        self.decimals = spec.price_decimals
        self._keys: dict[int, np.uint64] = {}
        self._build_daily_walk()
        self._build_adjustment()
        self._build_volatility()

    def key(self, stream: int) -> np.uint64:
        k = self._keys.get(stream)
        if k is None:
            k = self._keys[stream] = stream_key(self.seed, self.spec.con_id, stream)
        return k

    # --- daily level -------------------------------------------------------------------------

    def _build_daily_walk(self) -> None:
        """Log open/close of every session: trend + mean-reverting walk, anchored in Jan 2024."""
        spec, day = self.spec, self.sessions.day
        eps = spec.daily_vol * _normal(hash64(self.key(Stream.DAY_RETURN), day))
        walk = np.empty(len(day))
        prev, chunk = 0.0, 1024
        for lo in range(0, len(day), chunk):  # x_i = phi x_{i-1} + eps_i, a chunk at a time
            e = eps[lo : lo + chunk]
            j = np.arange(1, len(e) + 1)
            walk[lo : lo + chunk] = OU_PHI**j * (prev + np.cumsum(e * OU_PHI ** (-j)))
            prev = walk[lo + len(e) - 1]
        anchor = min(int(np.searchsorted(day, ANCHOR_DAY)), len(day) - 1)
        years = (day - day[anchor]) / 365.25
        self.log_close = np.log(spec.anchor_price) + spec.annual_drift * years + walk - walk[anchor]
        gap = GAP_VOL * spec.daily_vol * _normal(hash64(self.key(Stream.DAY_GAP), day))
        self.log_open = np.concatenate(([self.log_close[0]], self.log_close[:-1])) + gap
        noise = _normal(hash64(self.key(Stream.DAY_VOLUME), day))
        self.day_volume = spec.daily_volume * np.exp(0.3 * noise - 0.045)

    def _build_adjustment(self) -> None:
        """ADJUSTED_LAST factor per session: a quarterly dividend step for each later ex-date."""
        date = self.sessions.date
        quarterly = self.spec.dividend_yield / 4
        month, dom, ym = (date // 100) % 100, date % 100, date // 100
        candidates = np.flatnonzero(
            np.isin(month, (2, 5, 8, 11)) & (dom >= 8 + self.spec.con_id % 10)
        )
        first_in_month = candidates[np.r_[True, ym[candidates][1:] != ym[candidates][:-1]]]
        events = np.zeros(len(date))
        events[first_in_month] = 1.0
        later = events.sum() - np.cumsum(events)  # ex-dates after each session
        self.adjustment = (1.0 - quarterly) ** later

    def _build_volatility(self) -> None:
        u = _halves(hash64(self.key(Stream.VOLATILITY), np.arange(8)))[0]
        self.vol_base = {HV_FAMILY: 0.18 + 0.14 * u[0], IV_FAMILY: (0.18 + 0.14 * u[0]) * 1.12}
        self.vol_phases = {HV_FAMILY: 2 * np.pi * u[1:4], IV_FAMILY: 2 * np.pi * u[4:7]}

    def volatility(self, family: str, t: np.ndarray) -> np.ndarray:
        """A smooth positive series of epoch time (values around 0.15-0.45)."""
        periods = np.array([97.0, 23.0, 3.3]) * 86400.0
        amplitudes = (0.3, 0.12, 0.04)
        x = np.zeros(t.shape)
        for period, amplitude, phase in zip(
            periods, amplitudes, self.vol_phases[family], strict=True
        ):
            x += amplitude * np.sin(2 * np.pi * t / period + phase)
        return np.round(self.vol_base[family] * np.exp(x), VOL_DECIMALS)

    # --- minute level ------------------------------------------------------------------------

    def minutes(self, family: str, i0: int, i1: int) -> _Minutes:
        """1-minute base bars of whole sessions [i0, i1): they never depend on a request window."""
        s, width = self.sessions, self.width
        k = np.arange(width)
        start = s.ext_start[i0:i1, None]
        length = (s.ext_end[i0:i1] - s.ext_start[i0:i1]) // 60
        time = start + 60 * k
        inside = k < length[:, None]
        valid = inside & (time >= self.head)
        rth = inside & (time >= s.rth_start[i0:i1, None]) & (time < s.rth_end[i0:i1, None])
        minute = time // 60
        if family == PRICE_FAMILY:
            bars = self._price_minutes(i0, i1, time, minute, inside, rth, length)
        else:
            bars = self._volatility_minutes(family, time, minute)
        return _Minutes(i0, time, minute, valid, rth, *bars)

    def _price_minutes(self, i0, i1, time, minute, inside, rth, length):
        s, spec, tick, dec = self.sessions, self.spec, self.tick, self.decimals
        rows, width = time.shape
        weight = np.where(rth, 1.0, EXT_VOL_WEIGHT) * inside
        sigma = weight * (spec.daily_vol / np.sqrt((weight**2).sum(axis=1)))[:, None]
        # Bridge from the session's open to its close over its minutes (log prices).
        steps = np.zeros((rows, width + 1))
        np.cumsum(_normal(hash64(self.key(Stream.PATH), minute)) * sigma, axis=1, out=steps[:, 1:])
        frac = np.minimum(np.arange(width + 1)[None, :] / length[:, None], 1.0)
        log_open, log_close = self.log_open[i0:i1, None], self.log_close[i0:i1, None]
        end = steps[np.arange(rows), length][:, None]
        path = log_open + (log_close - log_open) * frac + steps - frac * end
        price = np.maximum(round_to(np.exp(path), tick, dec), tick)
        o, c = price[:, :-1], price[:, 1:]
        top, bottom = np.maximum(o, c), np.minimum(o, c)
        u_high, u_low = _halves(hash64(self.key(Stream.HIGH_LOW), minute))
        wick = WICK * sigma  # a few basis points at most, so 1 + x stands in for exp(x)
        h = np.maximum(round_to(top * (1.0 - np.log(u_high) * wick), tick, dec), top)
        lo = np.minimum(round_to(bottom * (1.0 + np.log(u_low) * wick), tick, dec), bottom)
        lo = np.maximum(lo, tick)
        u_noise, u_wap = _halves(hash64(self.key(Stream.VOLUME), minute))
        wap = np.clip(
            np.round((o + h + lo + c) / 4 + (u_wap - 0.5) * (h - lo) * 0.5, dec + 2), lo, h
        )
        if spec.daily_volume <= 0:
            zero = np.zeros(time.shape, np.int64)
            return o, h, lo, c, zero, zero, wap
        # U-shaped volume over RTH, a trickle outside it.
        span = np.maximum(s.rth_end[i0:i1] - s.rth_start[i0:i1], 60)[:, None]
        pos = (time - s.rth_start[i0:i1, None]) / span
        late = np.square(np.square(np.square(pos)))  # the closing auction's rise
        shape = np.where(rth, 1.0 + 2.0 * np.square(2 * pos - 1) + 1.5 * late, EXT_VOLUME_WEIGHT)
        shape *= inside
        shape *= (self.day_volume[i0:i1] / shape.sum(axis=1))[:, None]
        u_round, u_count = _halves(hash64(self.key(Stream.VOLUME_AUX), minute))
        shape *= 0.4 + 1.2 * u_noise
        shape += u_round
        volume = np.floor(shape).astype(np.int64)
        volume *= inside
        count = np.rint(volume / 100.0 * (0.75 + 0.5 * u_count)).astype(np.int64)
        count = np.where(volume > 0, np.clip(count, 1, np.maximum(volume, 1)), 0)
        return o, h, lo, c, volume, count, wap

    def _volatility_minutes(self, family, time, minute):
        points = self.volatility(family, np.concatenate([time, time[:, -1:] + 60], axis=1))
        o, c = points[:, :-1], points[:, 1:]
        top, bottom = np.maximum(o, c), np.minimum(o, c)
        u_high, u_low = _halves(hash64(self.key(Stream.HIGH_LOW), minute + (1 << 40)))
        h = np.maximum(np.round(top * (1 + 0.002 * u_high), VOL_DECIMALS), top)
        lo = np.minimum(np.round(bottom * (1 - 0.002 * u_low), VOL_DECIMALS), bottom)
        zero_i, zero_f = np.zeros(time.shape, np.int64), np.zeros(time.shape)
        return o, h, lo, c, zero_i, zero_i, zero_f

    # --- whatToShow --------------------------------------------------------------------------

    def show(self, what, o, h, lo, c, volume, count, wap, minute, session):
        """Turn base bars (TRADES path) into `what`'s bars; elementwise, any array shape."""
        if what in ("TRADES", "HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY"):
            return o, h, lo, c, volume, count, wap
        if what == "ADJUSTED_LAST":
            f, dec = self.adjustment[session], self.decimals + 2
            return (
                *(np.round(x * f, dec) for x in (o, h, lo, c)),
                volume,
                count,
                np.round(wap * f, dec),
            )
        zero_i, zero_f = np.zeros(np.shape(o), np.int64), np.zeros(np.shape(o))
        if what == "MIDPOINT":
            return o, h, lo, c, zero_i, zero_i, zero_f
        tick, dec = self.tick, self.decimals
        half = tick * (1 + np.floor(3 * _halves(hash64(self.key(Stream.SPREAD), minute))[0]))
        if what in ("BID", "ASK"):
            sign = -1.0 if what == "BID" else 1.0
            shifted = (np.maximum(np.round(x + sign * half, dec), tick) for x in (o, h, lo, c))
            return *shifted, zero_i, zero_i, zero_f
        if what == "BID_ASK":  # IBKR: avg bid, max ask, min bid, avg ask
            mid = (o + c) / 2  # may fall on a half tick: one more decimal keeps it exact
            return (
                np.maximum(np.round(mid - half, dec + 1), tick),
                np.round(h + half, dec),
                np.maximum(np.round(lo - half, dec), tick),
                np.round(mid + half, dec + 1),
                zero_i,
                zero_i,
                zero_f,
            )
        raise ValueError(f"unknown whatToShow {what}")

    def shown_minutes(self, what: str, i0: int, i1: int) -> tuple[_Minutes, tuple]:
        grid = self.minutes(FAMILY.get(what, PRICE_FAMILY), i0, i1)
        session = np.arange(i0, i1)[:, None]
        shown = self.show(
            what,
            grid.open,
            grid.high,
            grid.low,
            grid.close,
            grid.volume,
            grid.count,
            grid.wap,
            grid.minute,
            session,
        )
        return grid, shown

    # --- seconds ------------------------------------------------------------------------------

    def seconds(self, family, minute, o, h, lo, c, volume, count):
        """60 one-second bars per base minute bar that aggregate exactly back to it. (M, 60)."""
        rows = len(minute)
        if family == PRICE_FAMILY:
            tick, dec = self.tick, self.decimals
        else:
            tick, dec = 10.0**-VOL_DECIMALS, VOL_DECIMALS
        j = np.arange(61)
        index = minute[:, None] * 64 + j[None, :60]
        steps = np.zeros((rows, 61))
        np.cumsum(_normal(hash64(self.key(Stream.SEC_PATH), index)), axis=1, out=steps[:, 1:])
        frac = j / 60.0
        bridge = steps - frac * steps[:, 60:61]
        path = o[:, None] + (c - o)[:, None] * frac + bridge * ((h - lo) / 8.0)[:, None]
        path = np.clip(round_to(path, tick, dec), lo[:, None], h[:, None])
        path[:, 0], path[:, 60] = o, c
        so, sc = path[:, :60], path[:, 1:]
        sh, sl = np.maximum(so, sc), np.minimum(so, sc)
        u_high, u_low = _halves(hash64(self.key(Stream.SEC_TOUCH), minute))
        r = np.arange(rows)
        sh[r, (u_high * 60).astype(np.int64)] = h
        sl[r, (u_low * 60).astype(np.int64)] = lo
        sv = np.zeros((rows, 60), np.int64)
        sn = np.zeros((rows, 60), np.int64)
        if volume.any():
            # Trades happen in `active` seconds only, as many as the minute's trade count allows.
            u_rank, u_vol = _halves(hash64(self.key(Stream.SEC_ACTIVE), index))
            u_cnt = _halves(hash64(self.key(Stream.SEC_COUNT), index))[0]
            n_active = np.minimum(np.minimum(count, 60), volume)
            rank = np.argsort(np.argsort(u_rank, axis=1), axis=1)
            active = (rank < n_active[:, None]).astype(np.int64)
            sv = active + _split(volume - n_active, u_vol * active)
            sn = active + _split(count - n_active, u_cnt * active)
        wap = np.clip(np.round((sh + sl + sc) / 3.0, dec + 2), sl, sh)
        return so, sh, sl, sc, sv, sn, wap

    # --- cached daily aggregates ---------------------------------------------------------------

    def daily(self, what: str, use_rth: bool, i0: int, i1: int) -> _Sums:
        """Daily aggregates of sessions [i0, i1) that have bars (RTH or whole session)."""
        i0, i1 = max(i0, self.first), min(i1, len(self.sessions))
        if i1 <= i0:
            return _day_sums_empty()
        parts = []
        for block in range(i0 // DAY_BLOCK, (i1 - 1) // DAY_BLOCK + 1):
            cached = _DAILY_CACHE.get((self, what, block))
            if cached is None:
                cached = _DAILY_CACHE.put((self, what, block), self._daily_block(what, block))
            day = cached[1 if use_rth else 0]
            parts.append(day.take((day.session >= i0) & (day.session < i1)))
        return _Sums.concat(parts)

    def _daily_block(self, what: str, block: int) -> tuple[_Sums, _Sums]:
        i0 = max(block * DAY_BLOCK, self.first)
        i1 = min((block + 1) * DAY_BLOCK, len(self.sessions))
        # Small slices keep the temporaries in cache: twice as fast as one big grid.
        step = DAY_SLICE
        parts = [self._daily_rows(what, a, min(a + step, i1)) for a in range(i0, i1, step)]
        return _Sums.concat([p[0] for p in parts]), _Sums.concat([p[1] for p in parts])

    def _daily_rows(self, what: str, i0: int, i1: int) -> tuple[_Sums, _Sums]:
        grid, (o, h, lo, c, volume, count, wap) = self.shown_minutes(what, i0, i1)
        out = []
        for mask in (grid.valid, grid.valid & grid.rth):
            n = mask.sum(axis=1)
            has = n > 0
            rows = np.arange(len(n))
            first = np.argmax(mask, axis=1)
            last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
            v = np.where(mask, volume, 0)
            sums = _Sums(
                label=grid.time[rows, first],
                session=np.arange(i0, i1),
                open=o[rows, first],
                high=np.where(mask, h, -np.inf).max(axis=1),
                low=np.where(mask, lo, np.inf).min(axis=1),
                close=c[rows, last],
                volume=v.sum(axis=1),
                count=np.where(mask, count, 0).sum(axis=1),
                vw=(v * wap).sum(axis=1),
                w=np.where(mask, wap, 0.0).sum(axis=1),
                o=np.where(mask, o, 0.0).sum(axis=1),
                c=np.where(mask, c, 0.0).sum(axis=1),
                n=n.astype(np.int64),
            )
            out.append(sums.take(has))
        return out[0], out[1]


def _day_sums_empty() -> _Sums:
    f, i = np.empty(0), np.empty(0, np.int64)
    return _Sums(i, i, f, f, f, f, i, i, f, f, f, f, i)


def _split(total: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Integers >= 0 per row, proportional to `weights`, that sum exactly to `total`."""
    cumulative = np.cumsum(weights, axis=1)
    last = cumulative[:, -1:]
    share = np.divide(cumulative, last, out=np.zeros_like(cumulative), where=last > 0)
    alloc = np.floor(total[:, None] * share).astype(np.int64)
    alloc[:, -1] = np.where(last[:, 0] > 0, total, 0)
    return np.diff(alloc, axis=1, prepend=0)


class _BlockCache:
    """Least-recently-used daily aggregate blocks, shared by all instruments (bounded memory)."""

    def __init__(self, max_blocks: int):
        self.max_blocks = max_blocks
        self._blocks: OrderedDict[tuple, tuple[_Sums, _Sums]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[_Sums, _Sums] | None:
        with self._lock:
            value = self._blocks.get(key)
            if value is not None:
                self._blocks.move_to_end(key)
            return value

    def put(self, key: tuple, value: tuple[_Sums, _Sums]) -> tuple[_Sums, _Sums]:
        with self._lock:
            self._blocks[key] = value
            while len(self._blocks) > self.max_blocks:
                self._blocks.popitem(last=False)
        return value


# About 27 kB a block: 4096 blocks hold the whole daily history of ~40 instrument/what pairs.
_DAILY_CACHE = _BlockCache(max_blocks=4096)


@lru_cache(maxsize=256)
def model(spec: InstrumentSpec, seed: int = 0) -> InstrumentModel:
    return InstrumentModel(spec, seed)


# ---------------------------------------------------------------------------------------------
# Requests.


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
        sums = _unit_sums(
            (time[:, None] + np.arange(60)[None, :]).ravel(),
            np.repeat(session, 60),
            *shown,
        )
        if bar_seconds > 1:
            sums = sums.reduce(np.arange(0, len(sums.label), bar_seconds))
        keep = (sums.label >= start) & (sums.label < end)
        return sums.take(keep).bars(time_averaged, None)
    shown = m.show(what, *base, minute, session)
    sums = _unit_sums(time, session, *shown)
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
