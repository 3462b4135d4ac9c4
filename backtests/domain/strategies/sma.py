"""SMA crossover: long when the fast simple moving average crosses above the slow one."""

from __future__ import annotations

import numpy as np

from fetcher.domain.bars import BarBatch

from ..compiled import cross_events, rolling_mean_positive, rolling_means
from ..problems import InvalidRequest
from ..strategy import Parameter, Strategy


def sma(close: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` closes (NaN before), bit for bit as pandas' rolling mean:
    backtesting.py users compute their SMA with it, and ties must compare equal in both."""
    return smas(close, [window], {})[window]


def smas(close: np.ndarray, windows: list[int], cache: dict) -> dict[int, np.ndarray]:
    """The SMAs of several windows, those not in `cache` computed together in one pass."""
    missing = sorted({w for w in windows if ("sma", w) not in cache})
    if missing:
        values = np.ascontiguousarray(close, dtype=np.float64)
        if len(values) and np.isfinite(values).all() and values.min() > 0:
            rows = [rolling_mean_positive(values, w) for w in missing]  # prices: the fast path
        else:
            rows = rolling_means(values, np.asarray(missing, dtype=np.int64))
        for window, row in zip(missing, rows, strict=True):
            cache[("sma", window)] = row
    return {w: cache[("sma", w)] for w in windows}


def crossings(fast: np.ndarray, slow: np.ndarray) -> np.ndarray:
    """+1 where `fast` crosses above `slow` (below on the bar before, above on this one),
    -1 where it crosses below; strict on both bars, as backtesting.py's `crossover`."""
    return cross_events(
        np.ascontiguousarray(fast, dtype=np.float64), np.ascontiguousarray(slow, dtype=np.float64)
    )


class SmaCross(Strategy):
    name = "sma"
    description = "SMA crossover (fast above slow: long; below: flat, or short with --long-short)"
    parameters = (
        Parameter("fast", 10, "fast SMA window, in bars"),
        Parameter("slow", 30, "slow SMA window, in bars"),
    )

    def warmup(self, params: dict) -> int:
        return params["slow"] - 1  # the slow SMA's first value

    def signals(self, bars: BarBatch, params: dict, cache: dict) -> np.ndarray:
        averages = smas(bars.close, [params["fast"], params["slow"]], cache)
        return crossings(averages[params["fast"]], averages[params["slow"]])

    def check(self, params: dict) -> None:
        fast, slow = params["fast"], params["slow"]
        if fast < 1 or slow < 1:
            raise InvalidRequest.about(
                "fast" if fast < 1 else "slow",
                f"SMA windows must be at least 1 bar (got {{fast}} {fast} {{slow}} {slow})",
            )
        if fast >= slow:
            raise InvalidRequest.about(
                "fast", f"{{fast}} {fast} must be smaller than {{slow}} {slow}"
            )
