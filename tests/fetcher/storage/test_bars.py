"""bars_upsert on the configured database: COPY and upsert on PostgreSQL, bulk_create elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import IntegrityError, connection, transaction

from fetcher.domain.bars import COLUMNS, BarBatch
from fetcher.domain.timeframes import TIMEFRAMES, WhatToShow
from fetcher.models import Bar, Instrument
from fetcher.selectors import bars_read
from fetcher.storage.bars import bars_upsert
from tests.support import make_bars

M1, M5 = TIMEFRAMES["1-MINUTE"].code, TIMEFRAMES["5-MINUTE"].code

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
MINUTE = 60
needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only: checks its system columns"
)


@pytest.fixture(params=["autocommit", "in_transaction"])
def database(request) -> str:
    """Run a test twice: each write committing on its own, and inside one open transaction.

    The paths differ on PostgreSQL (bare COPY or BEGIN ... COMMIT, against savepoints and a
    staging table emptied by hand), so both must hold the same promises.
    """
    request.getfixturevalue("transactional_db" if request.param == "autocommit" else "db")
    return request.param


@pytest.fixture
def instrument(database) -> Instrument:
    return Instrument.objects.create(symbol="TEST")


def minutes(first: int, count: int) -> np.ndarray:
    return T0 + MINUTE * np.arange(first, first + count, dtype=np.int64)


def rows_of(batch: BarBatch) -> list[tuple]:
    return list(zip(*(getattr(batch, name).tolist() for name in COLUMNS), strict=True))


def stored(instrument: Instrument, **series) -> list[tuple]:
    """The series' bars as (epoch seconds, open, ..., bar_count), read back from the table."""
    key = {"timeframe": M1, "what_to_show": WhatToShow.TRADES, "rth": True} | series
    rows = Bar.objects.filter(instrument=instrument, **key).order_by("ts").values_list(*COLUMNS)
    return [(int(ts.timestamp()), *values) for ts, *values in rows]


def upsert(instrument: Instrument, batch: BarBatch, *, fresh: bool = False, **series) -> int:
    key = {"timeframe": M1, "what_to_show": WhatToShow.TRADES, "rth": True} | series
    return bars_upsert(instrument_id=instrument.id, batch=batch, fresh=fresh, **key)


@pytest.mark.parametrize("fresh", [True, False])
def test_a_write_stores_exactly_the_bars_given(instrument, fresh):
    batch = make_bars(minutes(0, 5))

    assert upsert(instrument, batch, fresh=fresh) == 5

    assert stored(instrument) == rows_of(batch)
    assert Bar.objects.count() == 5


def test_rewriting_a_window_updates_its_bars_in_place(instrument):
    upsert(instrument, make_bars(minutes(0, 4), price=100.0))
    changed = make_bars(minutes(0, 4), price=200.0)

    assert upsert(instrument, changed) == 4
    assert stored(instrument) == rows_of(changed)
    assert Bar.objects.count() == 4

    # Again in the same session (and, in_transaction, the same transaction): nothing staged
    # by the previous write may come back.
    changed_again = make_bars(minutes(0, 4), price=300.0)
    assert upsert(instrument, changed_again) == 4
    assert stored(instrument) == rows_of(changed_again)
    assert Bar.objects.count() == 4


def test_an_overlapping_window_adds_only_the_new_timestamps(instrument):
    first = make_bars(minutes(0, 5), price=100.0)
    second = make_bars(minutes(3, 5), price=500.0)  # minutes 3..7, of which 3 and 4 stored

    upsert(instrument, first, fresh=True)
    assert upsert(instrument, second) == 5

    assert stored(instrument) == rows_of(first)[:3] + rows_of(second)
    assert Bar.objects.count() == 8


def test_fresh_over_stored_bars_neither_fails_nor_duplicates(instrument):
    other = Instrument.objects.create(symbol="OTHER")
    upsert(instrument, make_bars(minutes(0, 5), price=100.0), fresh=True)
    upsert(other, make_bars(minutes(0, 2)), fresh=True)
    redelivered = make_bars(minutes(2, 6), price=400.0)  # 3 stored bars, 3 new ones

    assert upsert(instrument, redelivered, fresh=True) == 6

    expected = rows_of(make_bars(minutes(0, 5), price=100.0))[:2] + rows_of(redelivered)
    assert stored(instrument) == expected
    # The fallback left the rest of the transaction alone.
    assert stored(other) == rows_of(make_bars(minutes(0, 2)))
    assert Bar.objects.count() == 8 + 2


def test_timestamps_round_trip_exactly_as_utc(instrument):
    moments = [
        -86_400,  # 1969-12-31, before the Unix epoch
        631_152_000,  # 1990-01-01, before PostgreSQL's own epoch
        946_684_799,  # 1999-12-31T23:59:59Z
        946_684_800,  # 2000-01-01T00:00:00Z, PostgreSQL's epoch
        T0,
        1_710_054_000,  # 2024-03-10T07:00:00Z, New York's clocks go forward
        1_730_613_600,  # 2024-11-03T06:00:00Z, New York's clocks go back
        4_102_444_800,  # 2100-01-01, past the 32-bit limit
    ]
    upsert(instrument, make_bars(moments), fresh=True)

    rows = Bar.objects.filter(instrument=instrument).order_by("ts").values_list("ts", flat=True)
    assert [ts.utcoffset().total_seconds() for ts in rows] == [0] * len(moments)
    assert [int(ts.timestamp()) for ts in rows] == moments
    # And in the column itself, not only as Django converts it.
    epoch = (
        "extract(epoch FROM ts)::bigint"
        if connection.vendor == "postgresql"
        else "CAST(strftime('%s', ts) AS INTEGER)"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {epoch} FROM fetcher_bar ORDER BY ts")
        assert [row[0] for row in cursor.fetchall()] == moments


def awkward_bars(ts) -> BarBatch:
    """Six bars of values that do not survive a decimal round trip, and the largest count."""
    values = [0.1 + 0.2, 1e-300, 123_456_789.123_456_79, -1.0, 0.0, 5e15]
    return BarBatch.from_columns(
        ts=ts,
        open=values,
        high=values[::-1],
        low=values,
        close=values[::-1],
        volume=values,
        wap=values,
        bar_count=[0, 1, 2**31 - 1, 3, 4, 5],
    )


def test_prices_round_trip_bit_for_bit(instrument):
    batch = awkward_bars(minutes(0, 6))

    upsert(instrument, batch, fresh=True)

    assert stored(instrument) == rows_of(batch)


@pytest.mark.parametrize("fresh", [True, False])
def test_an_empty_batch_writes_nothing(instrument, fresh):
    assert upsert(instrument, BarBatch.empty(), fresh=fresh) == 0
    assert Bar.objects.count() == 0


@pytest.mark.parametrize("fresh", [True, False])
def test_a_write_in_a_rolled_back_transaction_leaves_nothing(instrument, fresh):
    with pytest.raises(RuntimeError, match="caller failed"), transaction.atomic():
        upsert(instrument, make_bars(minutes(0, 5)), fresh=fresh)
        assert Bar.objects.count() == 5
        raise RuntimeError("caller failed")

    assert Bar.objects.count() == 0


def test_series_of_one_instrument_are_kept_apart(instrument):
    ts = minutes(0, 3)
    upsert(instrument, make_bars(ts, price=1.0))
    upsert(instrument, make_bars(ts, price=2.0), timeframe=M5)
    upsert(instrument, make_bars(ts, price=3.0), what_to_show=WhatToShow.MIDPOINT)
    upsert(instrument, make_bars(ts, price=4.0), rth=False, fresh=True)

    assert Bar.objects.count() == 12
    assert stored(instrument) == rows_of(make_bars(ts, price=1.0))
    assert stored(instrument, timeframe=M5) == rows_of(make_bars(ts, price=2.0))
    assert stored(instrument, what_to_show=WhatToShow.MIDPOINT) == rows_of(make_bars(ts, 3.0))
    assert stored(instrument, rth=False) == rows_of(make_bars(ts, price=4.0))


def test_an_unsorted_batch_is_refused(instrument):
    batch = make_bars(minutes(0, 3))
    unsorted = batch.slice(np.array([2, 0, 1]))

    with pytest.raises(ValueError, match="strictly increasing"):
        upsert(instrument, unsorted)
    assert Bar.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fresh", [True, False])
def test_bars_of_an_unknown_instrument_are_refused(fresh):
    missing = Instrument(id=999_999, symbol="GONE")

    with pytest.raises(IntegrityError):
        upsert(missing, make_bars(minutes(0, 3)), fresh=fresh)
    assert Bar.objects.count() == 0


@needs_postgresql
def test_an_unchanged_refetch_leaves_stored_rows_untouched(instrument):
    upsert(instrument, make_bars(minutes(0, 4), price=100.0), fresh=True)

    def row_versions() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT ctid::text FROM fetcher_bar ORDER BY ts")
            return [row[0] for row in cursor.fetchall()]

    before = row_versions()
    refetch = rows_of(make_bars(minutes(0, 4), price=100.0))
    changed = make_bars(minutes(0, 4), price=100.0)
    changed.close[1] += 0.01  # one bar revised by the gateway

    upsert(instrument, make_bars(minutes(0, 4), price=100.0))
    assert row_versions() == before
    assert stored(instrument) == refetch

    upsert(instrument, changed)
    after = row_versions()
    assert [a == b for a, b in zip(before, after, strict=True)] == [True, False, True, True]
    assert stored(instrument) == rows_of(changed)


@pytest.mark.parametrize("fresh", [True, False])
def test_many_windows_of_several_series_in_one_call(instrument, fresh):
    from fetcher.storage.bars import SeriesBatch, bars_upsert_many

    other = Instrument.objects.create(symbol="OTHER")
    m1, tr = M1, WhatToShow.TRADES
    series = [
        SeriesBatch(instrument.id, m1, tr, True, make_bars(minutes(0, 3), price=10.0)),
        SeriesBatch(instrument.id, m1, tr, True, make_bars(minutes(3, 2), price=20.0)),
        SeriesBatch(other.id, m1, tr, True, make_bars(minutes(0, 4), price=30.0)),
        SeriesBatch(other.id, m1, tr, False, make_bars(minutes(0, 1), price=40.0)),
        SeriesBatch(other.id, m1, tr, False, BarBatch.empty()),
    ]
    assert bars_upsert_many(series=series, fresh=fresh) == 10
    assert Bar.objects.filter(instrument=instrument).count() == 5
    assert Bar.objects.filter(instrument=other, rth=True).count() == 4
    assert list(Bar.objects.filter(instrument=other, rth=False).values_list("open", flat=True)) == [
        40.0
    ]
    first = Bar.objects.filter(instrument=instrument).order_by("ts")
    assert [b.open for b in first][:4] == [10.0, 11.0, 12.0, 20.0]
    # again, as a redelivered write: nothing doubles
    assert bars_upsert_many(series=series, fresh=True) == 10
    assert Bar.objects.count() == 10


def test_many_windows_refuse_an_unknown_instrument(instrument):
    from fetcher.storage.bars import SeriesBatch, bars_upsert_many

    series = [
        SeriesBatch(instrument.id, M1, WhatToShow.TRADES, True, make_bars(minutes(0, 2))),
        SeriesBatch(999_999, M1, WhatToShow.TRADES, True, make_bars(minutes(0, 2))),
    ]
    with pytest.raises(IntegrityError):
        bars_upsert_many(series=series, fresh=True)
    assert Bar.objects.count() == 0


def test_bars_read_returns_the_stored_bars_bit_for_bit(instrument):
    """bars_read (one binary COPY on PostgreSQL) equals what the ORM reads: every column, the
    range's bounds, the `last` ones of a range, and nothing for an empty range."""
    batch = awkward_bars(np.concatenate([minutes(0, 3), minutes(10_000, 3)]))
    upsert(instrument, batch, fresh=True)
    upsert(instrument, make_bars(minutes(0, 2)), timeframe=M5)  # another series, not read
    key = {"instrument_id": instrument.id, "timeframe": M1, "what_to_show": WhatToShow.TRADES}

    whole = bars_read(**key, rth=True, start=int(T0), end=int(minutes(10_003, 1)[0]))
    assert rows_of(whole) == stored(instrument)
    assert whole.ts.dtype == np.int64 and whole.bar_count.dtype == np.int64

    inner = bars_read(**key, rth=True, start=int(minutes(1, 1)[0]), end=int(minutes(10_001, 1)[0]))
    assert rows_of(inner) == stored(instrument)[1:4]
    last = bars_read(**key, rth=True, start=int(T0), end=int(minutes(20_000, 1)[0]), last=2)
    assert rows_of(last) == stored(instrument)[-2:]
    assert (
        len(bars_read(**key, rth=True, start=int(minutes(5, 1)[0]), end=int(minutes(9, 1)[0]))) == 0
    )
    assert len(bars_read(**key, rth=False, start=int(T0), end=int(minutes(20_000, 1)[0]))) == 0


@pytest.mark.parametrize("fresh", [True, False])
def test_missing_volume_and_wap_are_stored_missing(instrument, fresh):
    """Quote bars have no volume or WAP (IBKR sends -1): stored as missing, never as a number."""
    batch = make_bars(minutes(0, 3))
    quotes = BarBatch(**{name: getattr(batch, name) for name in COLUMNS} | {
        "volume": np.full(3, np.nan), "wap": np.full(3, np.nan)
    })  # fmt: skip
    upsert(instrument, quotes, fresh=fresh)
    upsert(instrument, quotes)  # again: nothing changes, nothing fails
    read = bars_read(
        instrument_id=instrument.id, timeframe=M1, what_to_show=WhatToShow.TRADES, rth=True,
        start=T0, end=T0 + 3 * MINUTE,
    )  # fmt: skip
    assert np.isnan(read.volume).all() and np.isnan(read.wap).all()
    np.testing.assert_array_equal(read.close, batch.close)
