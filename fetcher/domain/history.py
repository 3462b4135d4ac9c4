"""Whether IBKR's history changed under stored bars: a split rescales every bar before it (IBKR
serves TRADES 'adjusted for splits' as of the day they are asked), so the last stored bar, asked
for again, comes back divided by the split's ratio."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .bars import BarBatch
from .time import from_epoch

# A history that moved by less than this is the same history (prices are rounded on the wire).
SAME_WITHIN = 0.01
# The four prices of a bar must agree this closely on one ratio: a revised bar is no split.
AGREE_WITHIN = 0.002


@dataclass(frozen=True)
class HistoryChange:
    """The stored bars are `ratio` times what the gateway serves for them now (10 after a 10:1
    split); `since` is the stored bar compared (epoch seconds; date space for daily bars)."""

    ratio: float
    since: int

    @property
    def ratio_label(self) -> str:
        """'10:1', '3:2', or '1:4' for a reverse split."""
        fraction = Fraction(self.ratio).limit_denominator(20)
        return f"{fraction.numerator}:{fraction.denominator}"

    def describe(self, symbol: str, daily: bool) -> str:
        """'NVDA: history changed 10:1 after 2024-06-06'."""
        moment = from_epoch(self.since)
        when = f"{moment:%Y-%m-%d}" if daily else f"{moment:%Y-%m-%d %H:%M} UTC"
        return f"{symbol}: history changed {self.ratio_label} after {when}"


def history_change(stored: BarBatch, served: BarBatch) -> HistoryChange | None:
    """The one ratio between bars as stored and the same bars as served now, when their prices
    all moved by it (a split); None when they did not move, or not together (a correction, a
    partial bar), or no bar is in both."""
    common, mine, theirs = np.intersect1d(stored.ts, served.ts, return_indices=True)
    if not len(common):
        return None
    prices = ("open", "high", "low", "close")
    old = np.stack([getattr(stored, p)[mine] for p in prices])
    new = np.stack([getattr(served, p)[theirs] for p in prices])
    if not (np.all(np.isfinite(old)) and np.all(np.isfinite(new)) and np.all(new > 0)):
        return None
    ratios = old / new
    ratio = float(np.median(ratios))
    if abs(ratio - 1) <= SAME_WITHIN or not np.all(np.abs(ratios / ratio - 1) <= AGREE_WITHIN):
        return None
    return HistoryChange(ratio=ratio, since=int(common[-1]))
