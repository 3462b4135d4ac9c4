"""The Parquet catalog: exact round trips, merges, layout, schema, crash safety and concurrency."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from urllib.parse import unquote

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from fetcher.domain.bars import COLUMNS, BarBatch
from fetcher.domain.timeframes import TIMEFRAMES
from fetcher.storage import catalog
from fetcher.storage.catalog import (
    FILE_SCHEMA,
    catalog_dataset,
    catalog_read,
    catalog_write,
)
from tests.support.catalog import DUCKDB_SQL, POLARS_HIVE_SCHEMA, assert_same, bars, epoch

VENUE = {"exchange": "NASDAQ", "currency": "USD"}
DAILY = TIMEFRAMES["DAILY"]
MINUTE = TIMEFRAMES["1-MINUTE"]
DAY = 86_400


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def test_write_then_read_back_exactly(tmp_path):
    batch = bars(epoch(2024, 1, 2) + DAY * np.arange(250))

    written = catalog_write(
        root=tmp_path, symbol="AAPL", **VENUE, timeframe=DAILY, what_to_show="TRADES", batch=batch
    )

    assert written == 250
    read = catalog_read(
        root=tmp_path, symbol="AAPL", **VENUE, timeframe=DAILY, what_to_show="TRADES"
    )
    assert_same(read, batch)
    assert parquet_files(tmp_path) == [
        tmp_path
        / "what_to_show=TRADES/timeframe=DAILY/session=RTH/symbol=AAPL"
        / "exchange=NASDAQ/currency=USD/year=2024/part-0.parquet"
    ]


def test_read_of_a_series_never_written_is_empty(tmp_path):
    read = catalog_read(
        root=tmp_path, symbol="AAPL", **VENUE, timeframe=DAILY, what_to_show="TRADES"
    )
    assert len(read) == 0


def test_empty_batch_writes_nothing(tmp_path):
    written = catalog_write(
        root=tmp_path,
        symbol="AAPL",
        **VENUE,
        timeframe=DAILY,
        what_to_show="TRADES",
        batch=BarBatch.empty(),
    )
    assert written == 0
    assert parquet_files(tmp_path) == []


def test_overlapping_write_replaces_changed_bars_and_adds_new_ones(tmp_path):
    first = bars(epoch(2024, 1, 1) + DAY * np.arange(0, 20))
    second = bars(epoch(2024, 1, 1) + DAY * np.arange(10, 30), version=7.0)
    series = dict(root=tmp_path, symbol="AAPL", **VENUE, timeframe=DAILY, what_to_show="TRADES")

    catalog_write(**series, batch=first)
    catalog_write(**series, batch=second)

    read = catalog_read(**series)
    expected = BarBatch.concat([first.slice(slice(0, 10)), second])
    assert_same(read, expected)
    assert len(read) == 30
    assert np.all(np.diff(read.ts) > 0)


def test_intraday_batch_spanning_a_year_boundary_lands_in_two_year_partitions(tmp_path):
    start = epoch(2023, 12, 31, 23, 0)
    batch = bars(start + 60 * np.arange(120))  # 23:00 on Dec 31 to 00:59 on Jan 1
    series = dict(root=tmp_path, symbol="AAPL", **VENUE, timeframe=MINUTE, what_to_show="TRADES")

    assert catalog_write(**series, batch=batch) == 120

    symbol_dir = (
        tmp_path
        / "what_to_show=TRADES/timeframe=1-MINUTE/session=RTH/symbol=AAPL/exchange=NASDAQ/currency=USD"
    )
    assert parquet_files(tmp_path) == [
        symbol_dir / "year=2023/part-0.parquet",
        symbol_dir / "year=2024/part-0.parquet",
    ]
    ts_2023 = catalog._table_to_batch(pq.read_table(symbol_dir / "year=2023/part-0.parquet")).ts
    ts_2024 = catalog._table_to_batch(pq.read_table(symbol_dir / "year=2024/part-0.parquet")).ts
    np.testing.assert_array_equal(ts_2023, batch.ts[:60])
    np.testing.assert_array_equal(ts_2024, batch.ts[60:])
    assert_same(catalog_read(**series), batch)


def test_read_window_is_start_inclusive_end_exclusive_across_years(tmp_path):
    batch = bars(epoch(2023, 12, 31, 23, 0) + 60 * np.arange(120))
    series = dict(root=tmp_path, symbol="AAPL", **VENUE, timeframe=MINUTE, what_to_show="TRADES")
    catalog_write(**series, batch=batch)

    window = catalog_read(**series, start=int(batch.ts[50]), end=int(batch.ts[70]))
    assert_same(window, batch.slice(slice(50, 70)))
    only_2024 = catalog_read(**series, start=epoch(2024, 1, 1))
    assert_same(only_2024, batch.slice(slice(60, None)))
    only_2023 = catalog_read(**series, end=epoch(2024, 1, 1))
    assert_same(only_2023, batch.slice(slice(0, 60)))
    assert len(catalog_read(**series, start=epoch(2024, 1, 1), end=epoch(2024, 1, 1))) == 0


CATALOG_WRITES = [
    ("AAPL", DAILY, "TRADES", bars(epoch(2020, 1, 2) + DAY * np.arange(1500))),
    ("BRK B", DAILY, "TRADES", bars(epoch(2024, 1, 2) + DAY * np.arange(30))),
    ("EUR.USD", DAILY, "MIDPOINT", bars(epoch(2024, 1, 2) + DAY * np.arange(30))),
    ("7203", DAILY, "TRADES", bars(epoch(2024, 1, 2) + DAY * np.arange(5))),
    ("AAPL", MINUTE, "TRADES", bars(epoch(2023, 12, 31, 20) + 60 * np.arange(600))),
    ("EUR.USD", MINUTE, "BID", bars(epoch(2024, 3, 1) + 60 * np.arange(90))),
    ("MSFT", TIMEFRAMES["WEEKLY"], "TRADES", bars(epoch(2024, 1, 1) + 7 * DAY * np.arange(9))),
]


def build_catalog(root: Path, kind: str = "both") -> int:
    """A catalog with daily and intraday series (or only one `kind`), several what_to_show,
    awkward symbols."""
    total = 0
    for symbol, timeframe, what_to_show, batch in CATALOG_WRITES:
        if kind == "both" or (kind == "intraday") == timeframe.intraday:
            total += catalog_write(
                root=root,
                symbol=symbol,
                **VENUE,
                timeframe=timeframe,
                what_to_show=what_to_show,
                batch=batch,
            )
    return total


def test_every_file_has_the_fixed_schema_zstd_sorted_unique_ts(tmp_path):
    build_catalog(tmp_path)

    files = parquet_files(tmp_path)
    assert len(files) == 12  # AAPL daily 2020-2024, AAPL 1-minute 2023-2024, 5 more
    for path in files:
        assert pq.read_schema(path).equals(FILE_SCHEMA, check_metadata=False), path
        metadata = pq.ParquetFile(path).metadata
        codecs = {
            metadata.row_group(g).column(c).compression
            for g in range(metadata.num_row_groups)
            for c in range(metadata.num_columns)
        }
        assert codecs == {"ZSTD"}, path
        ts = catalog._table_to_batch(pq.read_table(path)).ts
        raw = pq.read_table(path).column("ts").cast("int64").to_numpy()
        np.testing.assert_array_equal(raw, ts * 1000)  # stored order is already sorted
        assert np.all(np.diff(ts) > 0), path


ROW_ORDER = (
    "ts",
    *COLUMNS[1:],
    "what_to_show",
    "timeframe",
    "session",
    "symbol",
    "exchange",
    "currency",
    "year",
)


def rows_pyarrow(dataset: ds.Dataset) -> list[tuple]:
    """Every row as (epoch seconds, bar values..., partition values...), sorted."""
    table = dataset.to_table().select(list(ROW_ORDER))
    ts = table.column("ts").cast(pa.timestamp("s", tz="UTC")).cast(pa.int64()).to_pylist()
    others = [table.column(name).to_pylist() for name in ROW_ORDER[1:]]
    return sorted(zip(ts, *others, strict=True))


def as_typed(rows: list[tuple]) -> list[tuple]:
    """Rows read without partition types, with the types given: readers may guess that the
    symbol 7203 is a number."""
    symbol = ROW_ORDER.index("symbol")
    return sorted(row[:symbol] + (str(row[symbol]),) + row[symbol + 1 :] for row in rows)


@pytest.mark.parametrize("kind", ["daily", "intraday", "both"])
def test_whole_catalog_reads_as_one_dataset_in_pyarrow_duckdb_and_polars(tmp_path, kind):
    """The calls docs/catalog.md shows, typed and plain, on a catalog of daily series only,
    intraday only, or both: every reader sees every row with its partition values."""
    total = build_catalog(tmp_path, kind)
    via_catalog = rows_pyarrow(catalog_dataset(tmp_path))
    assert len(via_catalog) == total > 0

    plain_pyarrow = rows_pyarrow(ds.dataset(tmp_path, format="parquet", partitioning="hive"))
    assert as_typed(plain_pyarrow) == via_catalog

    columns = ", ".join(name for name in ROW_ORDER if name != "ts")
    typed_sql = DUCKDB_SQL.format(root=tmp_path)
    plain_sql = f"SELECT * FROM read_parquet('{tmp_path}/**/*.parquet', hive_partitioning = true)"
    for sql in (typed_sql, plain_sql):
        rows = duckdb.sql(f"SELECT epoch(ts)::BIGINT, {columns} FROM ({sql})").fetchall()
        assert as_typed(rows) == via_catalog, sql

    for schema in (POLARS_HIVE_SCHEMA, None):
        frame = (
            pl.scan_parquet(f"{tmp_path}/**/*.parquet", hive_partitioning=True, hive_schema=schema)
            .with_columns(pl.col("ts").dt.epoch("s"))
            .select(ROW_ORDER)
            .collect()
        )
        assert as_typed(frame.rows()) == via_catalog, schema

    years = {(row[ROW_ORDER.index("timeframe")], row[-1]) for row in via_catalog}
    daily = {("DAILY", y) for y in range(2020, 2025)} | {("WEEKLY", 2024)}
    intraday = {("1-MINUTE", 2023), ("1-MINUTE", 2024)}
    assert years == {"daily": daily, "intraday": intraday, "both": daily | intraday}[kind]


def test_one_symbol_on_two_venues_never_shares_a_file(tmp_path):
    """SHOP on NYSE in USD and on TSX in CAD are two series: two files, read apart."""
    nyse = bars(epoch(2024, 1, 2) + DAY * np.arange(10))
    tsx = bars(epoch(2024, 1, 2) + DAY * np.arange(10), version=7.0)
    common = dict(root=tmp_path, symbol="SHOP", timeframe=DAILY, what_to_show="TRADES")
    catalog_write(**common, exchange="NYSE", currency="USD", batch=nyse)
    catalog_write(**common, exchange="TSE", currency="CAD", batch=tsx)

    assert len(parquet_files(tmp_path)) == 2
    assert_same(catalog_read(**common, exchange="NYSE", currency="USD"), nyse)
    assert_same(catalog_read(**common, exchange="TSE", currency="CAD"), tsx)
    table = catalog_dataset(tmp_path).to_table(filter=ds.field("currency") == "CAD")
    assert table.num_rows == 10 and set(table.column("exchange").to_pylist()) == {"TSE"}


def test_catalog_dataset_prunes_by_partition_columns(tmp_path):
    build_catalog(tmp_path)
    dataset = catalog_dataset(tmp_path)

    fragments = list(
        dataset.get_fragments(
            filter=(ds.field("timeframe") == "1-MINUTE") & (ds.field("year") == 2024)
        )
    )
    assert len(fragments) == 2  # AAPL and EUR.USD, 2024 only
    table = dataset.to_table(filter=ds.field("symbol") == "BRK B")
    assert table.num_rows == 30


@pytest.mark.parametrize(
    ("symbol", "directory"),
    [
        ("BRK B", "symbol=BRK%20B"),
        ("EUR.USD", "symbol=EUR.USD"),
        ("BF/B", "symbol=BF%2FB"),
        ("50%", "symbol=50%25"),
    ],
)
def test_awkward_symbols_get_safe_reversible_directories_and_round_trip(
    tmp_path, symbol, directory
):
    batch = bars(epoch(2024, 1, 2) + DAY * np.arange(10))
    catalog_write(
        root=tmp_path, symbol=symbol, **VENUE, timeframe=DAILY, what_to_show="TRADES", batch=batch
    )

    symbol_dir = tmp_path / "what_to_show=TRADES/timeframe=DAILY/session=RTH" / directory
    assert (symbol_dir / "exchange=NASDAQ/currency=USD/year=2024/part-0.parquet").is_file()
    assert unquote(directory.removeprefix("symbol=")) == symbol
    read = catalog_read(
        root=tmp_path, symbol=symbol, **VENUE, timeframe=DAILY, what_to_show="TRADES"
    )
    assert_same(read, batch)
    assert set(catalog_dataset(tmp_path).to_table().column("symbol").to_pylist()) == {symbol}
    duck = duckdb.sql(f"SELECT DISTINCT symbol FROM ({DUCKDB_SQL.format(root=tmp_path)})")
    assert duck.fetchall() == [(symbol,)]
    polars_symbols = (
        pl.scan_parquet(
            f"{tmp_path}/**/*.parquet", hive_partitioning=True, hive_schema=POLARS_HIVE_SCHEMA
        )
        .select(pl.col("symbol").unique())
        .collect()
    )
    assert polars_symbols["symbol"].to_list() == [symbol]


def test_empty_symbol_is_refused(tmp_path):
    with pytest.raises(ValueError, match="symbol cannot be empty"):
        catalog_write(
            root=tmp_path,
            symbol="",
            **VENUE,
            timeframe=DAILY,
            what_to_show="TRADES",
            batch=bars([0]),
        )


def _write_then_crash_before_rename(root: str, ts: list[int]) -> None:
    """Child process: write a partition but die, as a killed worker would, just before the rename."""
    os.replace = lambda *args, **kwargs: os._exit(17)
    catalog_write(
        root=Path(root),
        symbol="AAPL",
        **VENUE,
        timeframe=DAILY,
        what_to_show="TRADES",
        batch=bars(ts, 9.0),
    )


def test_crash_before_rename_leaves_previous_file_intact_and_next_write_cleans_up(tmp_path):
    series = dict(root=tmp_path, symbol="AAPL", **VENUE, timeframe=DAILY, what_to_show="TRADES")
    before = bars(epoch(2024, 1, 2) + DAY * np.arange(20))
    catalog_write(**series, batch=before)
    partition = (
        tmp_path
        / "what_to_show=TRADES/timeframe=DAILY/session=RTH/symbol=AAPL/exchange=NASDAQ/currency=USD"
        / "year=2024"
    )

    child = multiprocessing.get_context("spawn").Process(
        target=_write_then_crash_before_rename,
        args=(str(tmp_path), (epoch(2024, 1, 2) + DAY * np.arange(10, 40)).tolist()),
    )
    child.start()
    child.join(60)

    assert child.exitcode == 17
    stale = sorted(p.name for p in partition.glob(".part-0.parquet.*.tmp"))
    assert len(stale) == 1  # the torn write is there, complete but never renamed
    assert_same(catalog_read(**series), before)
    assert catalog_dataset(tmp_path).to_table().num_rows == 20
    count = duckdb.sql(f"SELECT count(*) FROM ({DUCKDB_SQL.format(root=tmp_path)})")
    assert count.fetchall() == [(20,)]

    after = bars(epoch(2024, 1, 2) + DAY * np.arange(20, 25))
    catalog_write(**series, batch=after)

    assert not list(partition.glob(".part-0.parquet.*.tmp"))
    assert_same(catalog_read(**series), BarBatch.concat([before, after]))


def test_failed_rename_keeps_previous_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    series = dict(root=tmp_path, symbol="AAPL", **VENUE, timeframe=DAILY, what_to_show="TRADES")
    before = bars(epoch(2024, 1, 2) + DAY * np.arange(20))
    catalog_write(**series, batch=before)
    partition = (
        tmp_path
        / "what_to_show=TRADES/timeframe=DAILY/session=RTH/symbol=AAPL/exchange=NASDAQ/currency=USD"
        / "year=2024"
    )

    def replace_fails(src, dst):
        assert Path(src).stat().st_size > 0  # the new file was fully written first
        raise OSError("disk went away")

    monkeypatch.setattr(catalog.os, "replace", replace_fails)
    with pytest.raises(OSError, match="disk went away"):
        catalog_write(**series, batch=bars(before.ts, 5.0))
    monkeypatch.undo()

    assert_same(catalog_read(**series), before)
    assert sorted(p.name for p in partition.iterdir()) == [".part-0.lock", "part-0.parquet"]


def _write_windows(root: str, offset: int, barrier) -> None:
    """Child process: many small writes into one partition, interleaved with the other writer."""
    barrier.wait()
    for i in range(offset, 120, 2):
        ts = epoch(2024, 3, 4) + 60 * (10 * i + np.arange(10))
        catalog_write(
            root=Path(root),
            symbol="AAPL",
            **VENUE,
            timeframe=MINUTE,
            what_to_show="TRADES",
            batch=bars(ts),
        )


def test_concurrent_writers_to_one_partition_lose_nothing(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    writers = [
        context.Process(target=_write_windows, args=(str(tmp_path), offset, barrier))
        for offset in (0, 1)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)

    assert [writer.exitcode for writer in writers] == [0, 0]
    read = catalog_read(
        root=tmp_path, symbol="AAPL", **VENUE, timeframe=MINUTE, what_to_show="TRADES"
    )
    assert_same(read, bars(epoch(2024, 3, 4) + 60 * np.arange(1200)))
    assert len(parquet_files(tmp_path)) == 1


def test_a_series_replaced_whole_never_shows_both_versions(tmp_path):
    """After a split the series is swapped whole: its new files wait hidden beside the old ones
    (no reader sees them), then take their place; a failed replacement changes nothing."""
    series = dict(root=tmp_path, symbol="NVDA", **VENUE, timeframe=DAILY, what_to_show="TRADES")
    old = bars(epoch(2023, 12, 1) + DAY * np.arange(60))  # December and January
    catalog_write(**series, batch=old)
    new = bars(epoch(2024, 1, 2) + DAY * np.arange(20), version=3.0)  # January only
    with catalog.catalog_replacing(**series, batch=new):
        assert_same(catalog_read(**series), old)  # staged: hidden from every reader
        assert len(duckdb.sql(DUCKDB_SQL.format(root=tmp_path)).fetchall()) == 60
    assert_same(catalog_read(**series), new)
    assert [p.parent.name for p in parquet_files(tmp_path)] == ["year=2024"]
    assert not [p for p in tmp_path.rglob(".*") if p.name != catalog.LOCK_NAME]  # nothing left

    with pytest.raises(RuntimeError), catalog.catalog_replacing(**series, batch=old):
        raise RuntimeError("the database transaction failed")
    assert_same(catalog_read(**series), new)
    assert not [p for p in tmp_path.rglob(".*") if p.name != catalog.LOCK_NAME]
