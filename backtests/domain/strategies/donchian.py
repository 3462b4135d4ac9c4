"""Donchian breakout: long when the close breaks above the highest high of the bars before it;
out (or short) when it breaks below the lowest low of the bars before it."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fetcher.domain.bars import BarBatch

from ..strategy import Parameter, Strategy


def channel(values: np.ndarray, window: int, side: str, cache: dict) -> np.ndarray:
    """At each bar, the highest (side "max": of the highs) or lowest ("min": of the lows) of the
    `window` values before it, the bar itself excluded; NaN for the first `window` bars. `cache`
    holds the bars' channels, one per side and window."""
    key = ("donchian", side, window)
    if key not in cache:
        values = np.asarray(values, dtype=np.float64)
        out = np.full(len(values), np.nan)
        if len(values) > window:
            windows = sliding_window_view(values[:-1], window)
            out[window:] = windows.max(axis=1) if side == "max" else windows.min(axis=1)
        cache[key] = out
    return cache[key]


class DonchianBreakout(Strategy):
    name = "donchian"
    description = (
        "Donchian breakout (close above the last `entry` bars' highest high: long; below the last "
        "`exit` bars' lowest low: flat, or short with --long-short)"
    )
    parameters = (
        Parameter("entry", 20, "bars whose highest high a close must break to go long", minimum=1),
        Parameter("exit", 10, "bars whose lowest low a close must break to get out", minimum=1),
    )

    def warmup(self, params: dict) -> int:
        return max(params["entry"], params["exit"])  # both channels have a value from here

    def signals(self, bars: BarBatch, params: dict, cache: dict) -> np.ndarray:
        upper = channel(bars.high, params["entry"], "max", cache)
        lower = channel(bars.low, params["exit"], "min", cache)
        with np.errstate(invalid="ignore"):
            return (bars.close > upper).astype(np.int8) - (bars.close < lower).astype(np.int8)
