"""BarBatch: the project's own columnar bar type, passed between the IBKR layer, storage and catalog."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLUMNS = ("ts", "open", "high", "low", "close", "volume", "wap", "bar_count")


@dataclass(frozen=True)
class BarBatch:
    """Bars of one instrument, timeframe and what_to_show as parallel numpy columns, sorted by ts.

    ts is int64 epoch seconds (UTC) of the bar's start; prices, volume and wap are float64;
    bar_count is int64.
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    wap: np.ndarray
    bar_count: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> BarBatch:
        f = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), f, f, f, f, f, f, np.empty(0, dtype=np.int64))

    @classmethod
    def from_columns(cls, **columns) -> BarBatch:
        """Build from any sequences; sorts by ts and keeps the last of duplicate timestamps."""
        ts = np.asarray(columns["ts"], dtype=np.int64)
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        keep = np.ones(len(ts), dtype=bool)
        if len(ts) > 1:
            keep[:-1] = ts[1:] != ts[:-1]
        idx = order[keep]
        return cls(
            ts=ts[keep],
            **{
                name: np.asarray(
                    columns[name], dtype=np.int64 if name == "bar_count" else np.float64
                )[idx]
                for name in COLUMNS[1:]
            },
        )

    def slice(self, mask_or_slice) -> BarBatch:
        return BarBatch(**{name: getattr(self, name)[mask_or_slice] for name in COLUMNS})

    @staticmethod
    def concat(batches: list[BarBatch]) -> BarBatch:
        """Join batches and re-sort, keeping the later batch's bar where timestamps repeat."""
        batches = [b for b in batches if len(b)]
        if not batches:
            return BarBatch.empty()
        return BarBatch.from_columns(
            **{name: np.concatenate([getattr(b, name) for b in batches]) for name in COLUMNS}
        )
