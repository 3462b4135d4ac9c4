"""Whether IBKR's history changed under stored bars (fetcher.domain.history): one ratio in every
price of the bars both hold is a split; anything else is not."""

from __future__ import annotations

import numpy as np
import pytest

from fetcher.domain.bars import BarBatch
from fetcher.domain.history import HistoryChange, history_change
from tests.support import make_bars

DAY = 86_400
STORED = make_bars(19_880 * DAY + DAY * np.arange(5), price=490.0)


def served(ratio: float, batch: BarBatch = STORED, **changes) -> BarBatch:
    """`batch` as a gateway serves it after a split of `ratio` (to the 4 decimals it sends)."""
    columns = {
        "ts": batch.ts,
        **{p: np.round(getattr(batch, p) / ratio, 4) for p in ("open", "high", "low", "close")},
        "volume": batch.volume * ratio,
        "wap": np.round(batch.wap / ratio, 6),
        "bar_count": batch.bar_count,
    }
    return BarBatch.from_columns(**(columns | changes))


@pytest.mark.parametrize(
    ("ratio", "label"), [(10, "10:1"), (4, "4:1"), (1.5, "3:2"), (0.25, "1:4")]
)
def test_a_split_is_one_ratio_in_every_price(ratio, label):
    change = history_change(STORED, served(ratio))
    assert change == HistoryChange(ratio=pytest.approx(ratio, rel=1e-6), since=int(STORED.ts[-1]))
    assert change.ratio_label == label


def test_the_same_history_rounded_or_partly_compared_is_no_change():
    assert history_change(STORED, served(1)) is None
    assert history_change(STORED, served(1.004)) is None  # rounding, a dividend: not a split
    assert history_change(STORED, served(10).slice(slice(3, 4))) == HistoryChange(
        ratio=pytest.approx(10, rel=1e-6), since=int(STORED.ts[3])
    )
    assert history_change(STORED, BarBatch.empty()) is None  # nothing to compare


def test_prices_that_moved_apart_are_no_split():
    revised = served(10, close=STORED.close / 10 * 1.05)  # the close revised, not the rest
    assert history_change(STORED, revised) is None
    missing = served(10, open=np.full(len(STORED), np.nan))
    assert history_change(STORED, missing) is None


def test_a_change_says_what_and_since_when():
    change = HistoryChange(ratio=10.0, since=19_880 * DAY)  # 2024-06-06
    assert change.describe("NVDA", daily=True) == "NVDA: history changed 10:1 after 2024-06-06"
    minute = HistoryChange(ratio=4.0, since=19_880 * DAY + 14 * 3600)
    assert (
        minute.describe("AAPL", daily=False)
        == "AAPL: history changed 4:1 after 2024-06-06 14:00 UTC"
    )
