"""BarBatch: sorted columns, the last of duplicate timestamps kept, slices and joins."""

from __future__ import annotations

import numpy as np

from fetcher.domain.bars import COLUMNS, BarBatch


def batch(ts, close) -> BarBatch:
    """Bars at `ts` whose every price is `close` (so a bar shows where it came from)."""
    close = np.asarray(close, dtype=np.float64)
    return BarBatch.from_columns(
        ts=ts,
        open=close,
        high=close + 1,
        low=close - 1,
        close=close,
        volume=close * 10,
        wap=close,
        bar_count=np.arange(len(close)),
    )


def test_from_columns_sorts_every_column_by_ts():
    bars = batch([300, 100, 200], [3.0, 1.0, 2.0])
    assert bars.ts.tolist() == [100, 200, 300]
    assert bars.close.tolist() == [1.0, 2.0, 3.0]
    assert bars.high.tolist() == [2.0, 3.0, 4.0]
    assert bars.volume.tolist() == [10.0, 20.0, 30.0]
    assert bars.bar_count.tolist() == [1, 2, 0]  # moved with their bars


def test_from_columns_keeps_the_last_of_duplicate_timestamps():
    bars = batch([100, 200, 100, 100], [1.0, 2.0, 3.0, 4.0])
    assert bars.ts.tolist() == [100, 200]
    assert bars.close.tolist() == [4.0, 2.0]
    assert bars.bar_count.tolist() == [3, 1]


def test_columns_have_the_documented_types():
    bars = batch([1, 2], [1, 2])  # ints in, floats out for prices
    assert bars.ts.dtype == np.int64 and bars.bar_count.dtype == np.int64
    for name in ("open", "high", "low", "close", "volume", "wap"):
        assert getattr(bars, name).dtype == np.float64, name
    assert len(bars) == 2


def test_empty_has_every_column_and_no_bars():
    empty = BarBatch.empty()
    assert len(empty) == 0
    assert all(len(getattr(empty, name)) == 0 for name in COLUMNS)
    assert empty.ts.dtype == np.int64 and empty.close.dtype == np.float64


def test_concat_keeps_the_later_batch_bar_where_timestamps_repeat():
    old = batch([100, 200, 300], [1.0, 2.0, 3.0])
    new = batch([300, 200, 400], [30.0, 20.0, 40.0])
    joined = BarBatch.concat([old, new])
    assert joined.ts.tolist() == [100, 200, 300, 400]
    assert joined.close.tolist() == [1.0, 20.0, 30.0, 40.0]
    assert joined.low.tolist() == [0.0, 19.0, 29.0, 39.0]
    assert BarBatch.concat([new, old]).close.tolist() == [1.0, 2.0, 3.0, 40.0]


def test_concat_of_nothing_or_empty_batches_is_empty():
    assert len(BarBatch.concat([])) == 0
    assert len(BarBatch.concat([BarBatch.empty(), BarBatch.empty()])) == 0
    one = batch([100], [1.0])
    assert BarBatch.concat([BarBatch.empty(), one, BarBatch.empty()]).ts.tolist() == [100]


def test_slice_by_mask_or_slice_takes_every_column_alike():
    bars = batch([100, 200, 300, 400], [1.0, 2.0, 3.0, 4.0])
    middle = bars.slice(slice(1, 3))
    assert middle.ts.tolist() == [200, 300] and middle.close.tolist() == [2.0, 3.0]
    window = bars.slice((bars.ts >= 200) & (bars.ts < 400))
    for name in COLUMNS:
        assert getattr(window, name).tolist() == getattr(middle, name).tolist(), name
    assert len(bars.slice(bars.ts > 400)) == 0
