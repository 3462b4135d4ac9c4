"""The price model of one simulated instrument: a daily walk, 1-minute paths per whole session,
1-second paths inside minutes, and what each whatToShow makes of them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ibsim.aggregate import Sums, day_sums_empty
from ibsim.cache import DAILY_CACHE
from ibsim.calendars import Sessions, sessions
from ibsim.hashing import Stream, halves, hash64, normal, round_to, stream_key
from ibsim.universe import Listing

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

    def __init__(self, spec: Listing, seed: int):
        self.spec = spec
        self.seed = seed
        self.sessions: Sessions = sessions(spec.calendar, spec.session_kind, spec.time_zone_id)
        s = self.sessions
        self.head = spec.head_timestamp
        self.first = int(np.searchsorted(s.ext_end, self.head, side="right"))
        self.width = s.max_minutes
        self.tick = spec.min_tick
        self.decimals = spec.price_decimals
        self.last = len(s) - 1  # the last session with bars: a future's last trading day
        if spec.expiry is not None:
            self.last = int(np.searchsorted(s.ext_start, spec.expiry, side="left")) - 1
        self._keys: dict[int, np.uint64] = {}
        self._build_splits()
        self._build_daily_walk()
        self._build_dividends()
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
        eps = spec.daily_vol * normal(hash64(self.key(Stream.DAY_RETURN), day))
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
        gap = GAP_VOL * spec.daily_vol * normal(hash64(self.key(Stream.DAY_GAP), day))
        self.log_open = np.concatenate(([self.log_close[0]], self.log_close[:-1])) + gap
        noise = normal(hash64(self.key(Stream.DAY_VOLUME), day))
        self.day_volume = spec.daily_volume * np.exp(0.3 * noise - 0.045)
        # The walk is split-adjusted as of the anchor; what traded is not: before a split the
        # price was the ratio higher and the volume the ratio lower, and on the day it drops.
        raw = self.shares[anchor] / self.shares
        self.log_open += np.log(raw)
        self.log_close += np.log(raw)
        self.day_volume /= raw

    def _build_splits(self) -> None:
        """Shares per share of the first session, per session: the product of the ratios of the
        splits on or before it (a split takes effect on its ex-date's session)."""
        s = self.sessions
        self.shares = np.ones(len(s))
        self.split_sessions: list[int] = []
        for date, ratio in self.spec.splits:
            first = int(np.searchsorted(s.date, int(date.replace("-", ""))))
            self.shares[first:] *= ratio
            self.split_sessions.append(first)

    def _build_dividends(self) -> None:
        """Quarterly ex-dividend dates, as the number of them after each session."""
        date = self.sessions.date
        self.quarterly = self.spec.dividend_yield / 4
        month, dom, ym = (date // 100) % 100, date % 100, date // 100
        candidates = np.flatnonzero(
            np.isin(month, (2, 5, 8, 11)) & (dom >= 8 + self.spec.con_id % 10)
        )
        first_in_month = candidates[np.r_[True, ym[candidates][1:] != ym[candidates][:-1]]]
        events = np.zeros(len(date))
        events[first_in_month] = 1.0
        self.ex_dates_after = events.sum() - np.cumsum(events)

    def present_session(self, now: float | None) -> int:
        """The last session started at `now` (every session when None): what has happened."""
        if now is None:
            return len(self.sessions) - 1
        return int(np.searchsorted(self.sessions.ext_start, now, side="right")) - 1

    def adjustment(
        self, what: str, session: np.ndarray, now: float | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """How history served at `now` differs from what traded, per session, as (price divisor,
        volume multiplier): the ratios of the splits since (IBKR: TRADES are 'adjusted for
        splits, but not dividends'; quotes too), and for ADJUSTED_LAST the dividends since as
        well, on prices only. None when nothing differs."""
        if what in FAMILY or (
            not self.spec.splits and not (what == "ADJUSTED_LAST" and self.quarterly)
        ):
            return None
        present = self.present_session(now)
        if present < 0:
            return None
        splits = self.shares[present] / self.shares[session]
        prices = splits
        if what == "ADJUSTED_LAST" and self.quarterly:
            since = self.ex_dates_after[session] - self.ex_dates_after[present]
            prices = splits / (1.0 - self.quarterly) ** np.maximum(since, 0)
        return prices, splits

    def _build_volatility(self) -> None:
        u = halves(hash64(self.key(Stream.VOLATILITY), np.arange(8)))[0]
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
        np.cumsum(normal(hash64(self.key(Stream.PATH), minute)) * sigma, axis=1, out=steps[:, 1:])
        frac = np.minimum(np.arange(width + 1)[None, :] / length[:, None], 1.0)
        log_open, log_close = self.log_open[i0:i1, None], self.log_close[i0:i1, None]
        end = steps[np.arange(rows), length][:, None]
        path = log_open + (log_close - log_open) * frac + steps - frac * end
        price = np.maximum(round_to(np.exp(path), tick, dec), tick)
        o, c = price[:, :-1], price[:, 1:]
        top, bottom = np.maximum(o, c), np.minimum(o, c)
        u_high, u_low = halves(hash64(self.key(Stream.HIGH_LOW), minute))
        wick = WICK * sigma  # a few basis points at most, so 1 + x stands in for exp(x)
        h = np.maximum(round_to(top * (1.0 - np.log(u_high) * wick), tick, dec), top)
        lo = np.minimum(round_to(bottom * (1.0 + np.log(u_low) * wick), tick, dec), bottom)
        lo = np.maximum(lo, tick)
        u_noise, u_wap = halves(hash64(self.key(Stream.VOLUME), minute))
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
        u_round, u_count = halves(hash64(self.key(Stream.VOLUME_AUX), minute))
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
        u_high, u_low = halves(hash64(self.key(Stream.HIGH_LOW), minute + (1 << 40)))
        h = np.maximum(np.round(top * (1 + 0.002 * u_high), VOL_DECIMALS), top)
        lo = np.minimum(np.round(bottom * (1 - 0.002 * u_low), VOL_DECIMALS), bottom)
        zero_i, zero_f = np.zeros(time.shape, np.int64), np.zeros(time.shape)
        return o, h, lo, c, zero_i, zero_i, zero_f

    # --- whatToShow --------------------------------------------------------------------------

    def show(self, what, o, h, lo, c, volume, count, wap, minute, session):
        """Turn base bars (what traded) into `what`'s bars; elementwise, any array shape.
        ADJUSTED_LAST is TRADES here: its adjustment depends on the present (adjustment())."""
        if what in (
            "TRADES",
            "ADJUSTED_LAST",
            "HISTORICAL_VOLATILITY",
            "OPTION_IMPLIED_VOLATILITY",
        ):
            return o, h, lo, c, volume, count, wap
        zero_i, zero_f = np.zeros(np.shape(o), np.int64), np.zeros(np.shape(o))
        if what == "MIDPOINT":
            return o, h, lo, c, zero_i, zero_i, zero_f
        tick, dec = self.tick, self.decimals
        half = tick * (1 + np.floor(3 * halves(hash64(self.key(Stream.SPREAD), minute))[0]))
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
        np.cumsum(normal(hash64(self.key(Stream.SEC_PATH), index)), axis=1, out=steps[:, 1:])
        frac = j / 60.0
        bridge = steps - frac * steps[:, 60:61]
        path = o[:, None] + (c - o)[:, None] * frac + bridge * ((h - lo) / 8.0)[:, None]
        path = np.clip(round_to(path, tick, dec), lo[:, None], h[:, None])
        path[:, 0], path[:, 60] = o, c
        so, sc = path[:, :60], path[:, 1:]
        sh, sl = np.maximum(so, sc), np.minimum(so, sc)
        u_high, u_low = halves(hash64(self.key(Stream.SEC_TOUCH), minute))
        r = np.arange(rows)
        sh[r, (u_high * 60).astype(np.int64)] = h
        sl[r, (u_low * 60).astype(np.int64)] = lo
        sv = np.zeros((rows, 60), np.int64)
        sn = np.zeros((rows, 60), np.int64)
        if volume.any():
            # Trades happen in `active` seconds only, as many as the minute's trade count allows.
            u_rank, u_vol = halves(hash64(self.key(Stream.SEC_ACTIVE), index))
            u_cnt = halves(hash64(self.key(Stream.SEC_COUNT), index))[0]
            n_active = np.minimum(np.minimum(count, 60), volume)
            rank = np.argsort(np.argsort(u_rank, axis=1), axis=1)
            active = (rank < n_active[:, None]).astype(np.int64)
            sv = active + _split(volume - n_active, u_vol * active)
            sn = active + _split(count - n_active, u_cnt * active)
        wap = np.clip(np.round((sh + sl + sc) / 3.0, dec + 2), sl, sh)
        return so, sh, sl, sc, sv, sn, wap

    # --- cached daily aggregates ---------------------------------------------------------------

    def daily(self, what: str, use_rth: bool, i0: int, i1: int) -> Sums:
        """Daily aggregates of sessions [i0, i1) that have bars (RTH or whole session)."""
        i0, i1 = max(i0, self.first), min(i1, self.last + 1)
        if i1 <= i0:
            return day_sums_empty()
        what = "TRADES" if what == "ADJUSTED_LAST" else what  # the same trades (show())
        parts = []
        for block in range(i0 // DAY_BLOCK, (i1 - 1) // DAY_BLOCK + 1):
            cached = DAILY_CACHE.get((self, what, block))
            if cached is None:
                cached = DAILY_CACHE.put((self, what, block), self._daily_block(what, block))
            day = cached[1 if use_rth else 0]
            parts.append(day.take((day.session >= i0) & (day.session < i1)))
        return Sums.concat(parts)

    def _daily_block(self, what: str, block: int) -> tuple[Sums, Sums]:
        i0 = max(block * DAY_BLOCK, self.first)
        i1 = min((block + 1) * DAY_BLOCK, len(self.sessions))
        # Small slices keep the temporaries in cache: twice as fast as one big grid.
        step = DAY_SLICE
        parts = [self._daily_rows(what, a, min(a + step, i1)) for a in range(i0, i1, step)]
        return Sums.concat([p[0] for p in parts]), Sums.concat([p[1] for p in parts])

    def _daily_rows(self, what: str, i0: int, i1: int) -> tuple[Sums, Sums]:
        grid, (o, h, lo, c, volume, count, wap) = self.shown_minutes(what, i0, i1)
        out = []
        for mask in (grid.valid, grid.valid & grid.rth):
            n = mask.sum(axis=1)
            has = n > 0
            rows = np.arange(len(n))
            first = np.argmax(mask, axis=1)
            last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
            v = np.where(mask, volume, 0)
            sums = Sums(
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


def _split(total: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Integers >= 0 per row, proportional to `weights`, that sum exactly to `total`."""
    cumulative = np.cumsum(weights, axis=1)
    last = cumulative[:, -1:]
    share = np.divide(cumulative, last, out=np.zeros_like(cumulative), where=last > 0)
    alloc = np.floor(total[:, None] * share).astype(np.int64)
    alloc[:, -1] = np.where(last[:, 0] > 0, total, 0)
    return np.diff(alloc, axis=1, prepend=0)


@lru_cache(maxsize=256)
def model(spec: Listing, seed: int = 0) -> InstrumentModel:
    return InstrumentModel(spec, seed)
