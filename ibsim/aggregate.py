"""Bars as the server hands them out, and the running sums that make aggregation associative."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    def without_volume(self) -> BarArrays:
        """The bars with volume, WAP and count -1, as IBKR sends quote bars (MIDPOINT, BID, ASK,
        BID_ASK): there were no trades to count."""
        minus = np.full(len(self.time), -1, np.int64)
        return BarArrays(
            self.time, self.dates, self.open, self.high, self.low, self.close, minus,
            minus.astype(np.float64), minus,
        )  # fmt: skip

    @classmethod
    def empty(cls, daily: bool) -> BarArrays:
        f, i = np.empty(0, np.float64), np.empty(0, np.int64)
        return cls(i, i if daily else None, f, f, f, f, i, f, i)


@dataclass
class Sums:
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

    def take(self, keep: np.ndarray) -> Sums:
        return Sums(*(getattr(self, f)[keep] for f in SUM_FIELDS))

    @staticmethod
    def concat(parts: list[Sums]) -> Sums:
        return Sums(*(np.concatenate([getattr(p, f) for p in parts]) for f in SUM_FIELDS))

    def reduce(self, starts: np.ndarray) -> Sums:
        """Aggregate consecutive rows: one output row per group starting at `starts`."""
        if len(starts) == 0:
            return self.take(starts)
        ends = np.append(starts[1:], len(self.label)) - 1
        add = np.add.reduceat
        return Sums(
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

    def adjusted(self, prices: np.ndarray, volumes: np.ndarray) -> Sums:
        """Prices divided by `prices` and volumes multiplied by `volumes`, row by row (a split
        of that ratio since: both the ratio, and volume times price stays what it was)."""
        return Sums(
            label=self.label,
            session=self.session,
            open=self.open / prices,
            high=self.high / prices,
            low=self.low / prices,
            close=self.close / prices,
            volume=np.rint(self.volume * volumes).astype(np.int64),
            count=self.count,
            vw=self.vw * (volumes / prices),
            w=self.w / prices,
            o=self.o / prices,
            c=self.c / prices,
            n=self.n,
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


SUM_FIELDS = tuple(Sums.__dataclass_fields__)


def unit_sums(label, session, o, h, lo, c, v, cnt, wap) -> Sums:
    """Single 1-minute or 1-second bars as Sums (any shape, flattened)."""
    v = v.ravel()
    wap = wap.ravel()
    return Sums(
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


def day_sums_empty() -> Sums:
    f, i = np.empty(0), np.empty(0, np.int64)
    return Sums(i, i, f, f, f, f, i, i, f, f, f, f, i)
