"""The Parquet catalog: bars as hive-partitioned files that pyarrow, DuckDB and polars can read."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import operator
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from fetcher.domain.bars import COLUMNS, BarBatch
from fetcher.domain.timeframes import TimeframeSpec

FILE_NAME = "part-0.parquet"
# Both start with "." so pyarrow.dataset ignores them, and neither ends in ".parquet" so the
# "**/*.parquet" globs of DuckDB and polars never pick them up.
LOCK_NAME = ".part-0.lock"
TEMP_PREFIX = f".{FILE_NAME}."
TEMP_SUFFIX = ".tmp"
# A series replaced whole (catalog_replacing): its new files wait under this name beside the old
# ones, which leave under the other; hidden, and not *.parquet, like the names above.
STAGED_NAME = f".{FILE_NAME}.new"
RETIRED_NAME = f".{FILE_NAME}.old"

# Parquet has no second-resolution timestamp, so files store milliseconds (always whole seconds).
FILE_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64(), nullable=False),
        pa.field("wap", pa.float64(), nullable=False),
        pa.field("bar_count", pa.int64(), nullable=False),
    ]
)
PARTITION_SCHEMA = pa.schema(
    [
        pa.field("what_to_show", pa.string()),
        pa.field("timeframe", pa.string()),
        pa.field("session", pa.string()),  # RTH (regular hours only) or ALL (extended too)
        pa.field("symbol", pa.string()),
        pa.field("exchange", pa.string()),  # the listing's venue: one symbol, several listings
        pa.field("currency", pa.string()),
        pa.field("year", pa.int32()),  # UTC year of the bar's start, for every timeframe
    ]
)
TS_TYPE = pa.timestamp("s", tz="UTC")
# Files as readers see them through pyarrow.dataset here: bar start back in whole seconds.
_BARS_SCHEMA = FILE_SCHEMA.set(0, pa.field("ts", TS_TYPE, nullable=False))
# What catalog_dataset() exposes: the bar columns, then the partition columns.
DATASET_SCHEMA = pa.unify_schemas([_BARS_SCHEMA, PARTITION_SCHEMA])


# In the catalog's root: which gateway kind wrote its bars (the catalog may outlive a database).
SOURCE_FILE = ".ibdata-source.json"


@dataclass(frozen=True)
class CatalogSeries:
    """Where one series of bars is filed: the catalog's identity of a series."""

    symbol: str
    exchange: str  # the listing's venue: one symbol, several listings
    currency: str
    timeframe: TimeframeSpec
    what_to_show: str
    use_rth: bool = True

    @classmethod
    def of_instrument(
        cls, instrument, *, timeframe: TimeframeSpec, what_to_show: str, use_rth: bool
    ) -> CatalogSeries:
        """A stored instrument's series: filed under its local symbol (a future's ESZ4) and the
        listing's primary exchange (AAPL: NASDAQ, even when routed through SMART), else its
        exchange (EUR.USD: IDEALPRO)."""
        return cls(
            symbol=instrument.local_symbol or instrument.symbol,
            exchange=instrument.primary_exchange or instrument.exchange,
            currency=instrument.currency,
            timeframe=timeframe,
            what_to_show=what_to_show,
            use_rth=use_rth,
        )

    def replacing(self, batch: BarBatch, *, root: Path | None = None):
        """A context in which the series' bars are about to become `batch`: see
        catalog_replacing."""
        return catalog_replacing(root=root, **self._identity(), batch=batch)

    def write(self, batch: BarBatch, *, root: Path | None = None) -> int:
        return catalog_write(root=root, **self._identity(), batch=batch)

    def read(
        self, *, root: Path | None = None, start: int | None = None, end: int | None = None
    ) -> BarBatch:
        return catalog_read(root=root, **self._identity(), start=start, end=end)

    def directory(self, root: Path | None = None) -> Path:
        return _series_dir(_root(root), **self._identity())

    def years(self, *, root: Path | None = None) -> list[int]:
        """The UTC years this series has a partition file for."""
        base = self.directory(root)
        if not base.is_dir():
            return []
        return sorted(
            int(part.parent.name.removeprefix("year="))
            for part in base.glob(f"year=*/{FILE_NAME}")
            if part.parent.name.removeprefix("year=").lstrip("-").isdigit()
        )

    def year_read(self, year: int, *, root: Path | None = None) -> BarBatch | None:
        """One partition file's rows exactly as stored (not sorted, repeats kept), None when
        there is no file: what a check compares with the database."""
        final = self.directory(root) / f"year={year}" / FILE_NAME
        if not final.exists():
            return None
        return _table_columns(pq.read_table(final))

    def year_replace(self, year: int, batch: BarBatch, *, root: Path | None = None) -> None:
        """Make one partition hold exactly `batch` (its bars of that UTC year), atomically;
        no bars removes the file. A rebuild from the database."""
        inside = batch.slice(_years(batch.ts) == year) if len(batch) else batch
        directory = self.directory(root) / f"year={year}"
        if not len(inside):
            if directory.is_dir():
                with _partition_lock(directory):
                    (directory / FILE_NAME).unlink(missing_ok=True)
                _fsync_dir(directory)
            return
        _partition_write(directory, BarBatch.concat([inside]), replace=True)

    def _identity(self) -> dict:
        return {
            "symbol": self.symbol,
            "exchange": self.exchange,
            "currency": self.currency,
            "timeframe": self.timeframe,
            "what_to_show": self.what_to_show,
            "use_rth": self.use_rth,
        }


def catalog_source(root: Path | None = None) -> dict | None:
    """What the catalog recorded of who writes it: the gateway kind ({"source", "account"}) and
    the database it belongs to ("database": {"id", "label"}; absent in catalogs written before
    it was recorded); None when it has recorded nothing yet."""
    marker = _root(root) / SOURCE_FILE
    return json.loads(marker.read_text()) if marker.exists() else None


def catalog_source_record(
    *, root: Path | None = None, source: str, account: str, database: dict | None = None
) -> None:
    """Record (atomically) which gateway kind writes the catalog's bars, and from which
    database ({"id", "label"})."""
    marker = _root(root) / SOURCE_FILE
    marker.parent.mkdir(parents=True, exist_ok=True)
    temp = marker.with_name(f"{SOURCE_FILE}.{os.getpid()}.tmp")
    record = {"source": source, "account": account}
    if database is not None:
        record["database"] = database
    temp.write_text(json.dumps(record))
    os.replace(temp, marker)


def catalog_series_keys(root: Path | None = None) -> list[tuple[str, str, str, str, str, str]]:
    """(what_to_show, timeframe, session, symbol, exchange, currency) of every series folder
    holding at least one partition file, names decoded."""
    base = _root(root)
    keys = set()
    for part in base.glob(
        f"what_to_show=*/timeframe=*/session=*/symbol=*/exchange=*/currency=*/year=*/{FILE_NAME}"
    ):
        folders = part.relative_to(base).parts[:6]
        keys.add(tuple(unquote(folder.split("=", 1)[1]) for folder in folders))
    return sorted(keys)


def default_root() -> Path:
    """settings.DATA_DIR / "catalog": the catalog a configured project reads and writes."""
    from django.conf import settings

    return Path(settings.DATA_DIR) / "catalog"


def catalog_write(
    *,
    root: Path | None = None,
    symbol: str,
    exchange: str,
    currency: str,
    timeframe: TimeframeSpec,
    what_to_show: str,
    batch: BarBatch,
    use_rth: bool = True,
) -> int:
    """Merge bars into their partition files; returns the number of bars in the batch written.

    Each affected partition (one per UTC year) is updated under its own lock: read the existing
    file, let the batch's bars win where timestamps repeat, sort, write a temporary file, fsync
    it and atomically rename it over the old one.
    """
    base = _series_dir(
        _root(root),
        symbol=symbol,
        exchange=exchange,
        currency=currency,
        timeframe=timeframe,
        what_to_show=what_to_show,
        use_rth=use_rth,
    )
    batch = BarBatch.concat([batch])  # sorted, one bar per ts, last one kept
    if not len(batch):
        return 0
    years = _years(batch.ts)
    for year in np.unique(years):
        _partition_merge(base / f"year={int(year)}", batch.slice(years == year))
    return len(batch)


@contextlib.contextmanager
def catalog_replacing(
    *,
    root: Path | None = None,
    symbol: str,
    exchange: str,
    currency: str,
    timeframe: TimeframeSpec,
    what_to_show: str,
    batch: BarBatch,
    use_rth: bool = True,
) -> Iterator[None]:
    """Replace a series' bars by `batch`, whole (after IBKR's history changed under them: a
    split). On entering, the new partition files are written beside the old ones under a hidden
    name; when the block ends without an error they take the old ones' place: every old file
    leaves first, then every new one arrives (each a rename, under the partitions' locks), so a
    reader sees old bars or new ones, never both scales. An error in the block leaves the
    series as it was."""
    base = _series_dir(
        _root(root),
        symbol=symbol,
        exchange=exchange,
        currency=currency,
        timeframe=timeframe,
        what_to_show=what_to_show,
        use_rth=use_rth,
    )
    batch = BarBatch.concat([batch])
    years = _years(batch.ts)
    staged = []
    try:
        for year in np.unique(years):
            directory = base / f"year={int(year)}"
            directory.mkdir(parents=True, exist_ok=True)
            staged.append(directory / STAGED_NAME)
            _write_file(staged[-1], batch.slice(years == year))
        yield
    except BaseException:
        for path in staged:
            path.unlink(missing_ok=True)
        raise
    directories = sorted(p for p in base.glob("year=*") if p.is_dir())
    with contextlib.ExitStack() as locks:
        for directory in directories:
            locks.enter_context(_partition_lock(directory))
        for directory in directories:
            if (directory / FILE_NAME).exists():
                os.replace(directory / FILE_NAME, directory / RETIRED_NAME)
        for directory in directories:
            if (directory / STAGED_NAME).exists():
                os.replace(directory / STAGED_NAME, directory / FILE_NAME)
            (directory / RETIRED_NAME).unlink(missing_ok=True)
            _fsync_dir(directory)


def catalog_read(
    *,
    root: Path | None = None,
    symbol: str,
    exchange: str,
    currency: str,
    timeframe: TimeframeSpec,
    what_to_show: str,
    start: int | None = None,
    end: int | None = None,
    use_rth: bool = True,
) -> BarBatch:
    """Stored bars with start <= ts < end (epoch seconds, either bound optional), sorted by ts."""
    base = _series_dir(
        _root(root),
        symbol=symbol,
        exchange=exchange,
        currency=currency,
        timeframe=timeframe,
        what_to_show=what_to_show,
        use_rth=use_rth,
    )
    if not base.is_dir():
        return BarBatch.empty()
    if start is not None and end is not None and start >= end:
        return BarBatch.empty()
    conditions = []
    if start is not None:
        conditions.append(ds.field("ts") >= pa.scalar(start, TS_TYPE))
    if end is not None:
        conditions.append(ds.field("ts") < pa.scalar(end, TS_TYPE))
    # Years outside the window are pruned by their directory names, before any file is opened.
    if start is not None:
        conditions.append(ds.field("year") >= int(_years(np.array([start]))[0]))
    if end is not None:
        conditions.append(ds.field("year") <= int(_years(np.array([end - 1]))[0]))
    year_schema = pa.schema([PARTITION_SCHEMA.field("year")])
    dataset = ds.dataset(
        base,
        format="parquet",
        partitioning=ds.partitioning(year_schema, flavor="hive"),
        schema=pa.unify_schemas([_BARS_SCHEMA, year_schema]),
    )
    expression = functools.reduce(operator.and_, conditions) if conditions else None
    table = dataset.to_table(columns=list(COLUMNS), filter=expression)
    return _table_to_batch(table)


def catalog_dataset(root: Path | None = None) -> ds.Dataset:
    """The whole catalog as one pyarrow dataset: bar columns plus what_to_show, timeframe,
    session, symbol, exchange, currency (strings) and year (int32)."""
    return ds.dataset(
        _root(root),
        format="parquet",
        partitioning=ds.partitioning(PARTITION_SCHEMA, flavor="hive"),
        schema=DATASET_SCHEMA,
    )


def _root(root: Path | str | None) -> Path:
    return default_root() if root is None else Path(root)


def _escape(value: str) -> str:
    """Percent-encode all but letters, digits and "-._~": 'BRK B' -> 'BRK%20B', 'A/B' -> 'A%2FB'.

    urllib.parse.unquote reverses it, and hive readers (pyarrow, DuckDB, polars) URL-decode
    partition values, so they see 'BRK B' again.
    """
    return quote(value, safe="")


def session_name(use_rth: bool) -> str:
    return "RTH" if use_rth else "ALL"


def _series_dir(
    root: Path,
    *,
    symbol: str,
    exchange: str,
    currency: str,
    timeframe: TimeframeSpec,
    what_to_show: str,
    use_rth: bool,
) -> Path:
    for name, value in (
        ("symbol", symbol),
        ("exchange", exchange),
        ("currency", currency),
        ("what_to_show", what_to_show),
    ):
        if not value:
            raise ValueError(f"a catalog {name} cannot be empty")
    return (
        root
        / f"what_to_show={_escape(what_to_show)}"
        / f"timeframe={_escape(timeframe.name)}"
        / f"session={session_name(use_rth)}"
        / f"symbol={_escape(symbol)}"
        / f"exchange={_escape(exchange)}"
        / f"currency={_escape(currency)}"
    )


def _years(ts: np.ndarray) -> np.ndarray:
    """UTC calendar year of each epoch second."""
    return ts.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970


@contextlib.contextmanager
def _partition_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive flock on the partition's lock file; the OS drops it if we die."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _partition_merge(directory: Path, batch: BarBatch) -> None:
    """Merge one partition's bars into its file, atomically, holding only this partition."""
    _partition_write(directory, batch, replace=False)


def _partition_write(directory: Path, batch: BarBatch, *, replace: bool) -> None:
    """Write one partition's file atomically, holding only this partition: `batch` merged into
    what the file holds (its bars win), or (`replace`) instead of it."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / FILE_NAME
    with _partition_lock(directory):
        # Under the lock no other writer is between temp file and rename, so any temp file
        # left here belongs to a writer that died.
        for stale in directory.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
        if final.exists() and not replace:
            batch = BarBatch.concat([_table_to_batch(pq.read_table(final)), batch])
        temp = directory / f"{TEMP_PREFIX}{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            _write_file(temp, batch)
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(directory)


def _write_file(path: Path, batch: BarBatch) -> None:
    """A partition file of `batch`, on disk (fsynced) when this returns."""
    with open(path, "wb") as handle:
        pq.write_table(
            _batch_to_table(batch),
            handle,
            compression="zstd",
            sorting_columns=[pq.SortingColumn(0)],
        )
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _batch_to_table(batch: BarBatch) -> pa.Table:
    arrays = [pa.array(batch.ts * 1000, type=FILE_SCHEMA.field("ts").type)]
    arrays += [
        pa.array(getattr(batch, name), type=FILE_SCHEMA.field(name).type) for name in COLUMNS[1:]
    ]
    return pa.Table.from_arrays(arrays, schema=FILE_SCHEMA)


def _table_to_batch(table: pa.Table) -> BarBatch:
    """Any table with the bar columns (ts as a timestamp of any unit) -> BarBatch."""
    return BarBatch.from_columns(**_columns(table))


def _table_columns(table: pa.Table) -> BarBatch:
    """The table's bars in its own order, repeats kept."""
    columns = _columns(table)
    return BarBatch(
        **{
            name: np.asarray(values, dtype=np.int64 if name in ("ts", "bar_count") else np.float64)
            for name, values in columns.items()
        }
    )


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    ts = pc.cast(table.column("ts"), TS_TYPE).cast(pa.int64())
    columns = {"ts": ts.to_numpy()}
    for name in COLUMNS[1:]:
        columns[name] = table.column(name).to_numpy()
    return columns
