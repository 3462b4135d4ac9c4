"""The Parquet catalog: bars as hive-partitioned files that pyarrow, DuckDB and polars can read,
in a local folder or on S3-compatible object storage (DATA_CATALOG_URL=s3://bucket/prefix)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import operator
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fetcher.domain.bars import COLUMNS, BarBatch
from fetcher.domain.timeframes import TimeframeSpec
from fetcher.exceptions import CatalogUnshared

# Where a catalog is: a local folder, or the URL of an object storage prefix ("s3://bucket/prefix").
CatalogRoot = Path | str
REMOTE_SCHEME = "s3"

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

    def replacing(self, batch: BarBatch, *, root: CatalogRoot | None = None):
        """A context in which the series' bars are about to become `batch`: see
        catalog_replacing."""
        return catalog_replacing(root=root, **self._identity(), batch=batch)

    def write(self, batch: BarBatch, *, root: CatalogRoot | None = None) -> int:
        return catalog_write(root=root, **self._identity(), batch=batch)

    def read(
        self, *, root: CatalogRoot | None = None, start: int | None = None, end: int | None = None
    ) -> BarBatch:
        return catalog_read(root=root, **self._identity(), start=start, end=end)

    def directory(self, root: CatalogRoot | None = None) -> str:
        """The series' folder, as a path in its catalog's file system."""
        return _series_dir(_place(root).base, **self._identity())

    def years(self, *, root: CatalogRoot | None = None) -> list[int]:
        """The UTC years this series has a partition file for."""
        place = _place(root)
        base = _series_dir(place.base, **self._identity())
        years = []
        for path in place.files(base):
            parts = path.split("/")
            if len(parts) == 2 and parts[1] == FILE_NAME and parts[0].startswith("year="):
                value = parts[0].removeprefix("year=")
                if value.lstrip("-").isdigit():
                    years.append(int(value))
        return sorted(years)

    def year_read(self, year: int, *, root: CatalogRoot | None = None) -> BarBatch | None:
        """One partition file's rows exactly as stored (not sorted, repeats kept), None when
        there is no file: what a check compares with the database."""
        place = _place(root)
        final = f"{_series_dir(place.base, **self._identity())}/year={year}/{FILE_NAME}"
        if not place.is_file(final):
            return None
        return _table_columns(pq.read_table(final, filesystem=place.fs))

    def year_replace(self, year: int, batch: BarBatch, *, root: CatalogRoot | None = None) -> None:
        """Make one partition hold exactly `batch` (its bars of that UTC year), atomically;
        no bars removes the file. A rebuild from the database."""
        place = _place(root)
        inside = batch.slice(_years(batch.ts) == year) if len(batch) else batch
        directory = f"{_series_dir(place.base, **self._identity())}/year={year}"
        if not len(inside):
            if place.is_dir(directory):
                with _partition_lock(place, directory):
                    place.delete(f"{directory}/{FILE_NAME}")
                place.sync(directory)
            return
        _partition_write(place, directory, BarBatch.concat([inside]), replace=True)

    def _identity(self) -> dict:
        return {
            "symbol": self.symbol,
            "exchange": self.exchange,
            "currency": self.currency,
            "timeframe": self.timeframe,
            "what_to_show": self.what_to_show,
            "use_rth": self.use_rth,
        }


def catalog_source(root: CatalogRoot | None = None) -> dict | None:
    """What the catalog recorded of who writes it: the gateway kind ({"source", "account"}) and
    the database it belongs to ("database": {"id", "label"}; absent in catalogs written before
    it was recorded); None when it has recorded nothing yet."""
    place = _place(root)
    marker = f"{place.base}/{SOURCE_FILE}"
    if not place.is_file(marker):
        return None
    with place.fs.open_input_stream(marker) as stream:
        return json.loads(stream.read())


def catalog_source_record(
    *, root: CatalogRoot | None = None, source: str, account: str, database: dict | None = None
) -> None:
    """Record (atomically) which gateway kind writes the catalog's bars, and from which
    database ({"id", "label"})."""
    place = _place(root)
    record = {"source": source, "account": account}
    if database is not None:
        record["database"] = database
    place.put(place.base, SOURCE_FILE, lambda stream: stream.write(json.dumps(record).encode()))


def catalog_series_keys(
    root: CatalogRoot | None = None,
) -> list[tuple[str, str, str, str, str, str]]:
    """(what_to_show, timeframe, session, symbol, exchange, currency) of every series folder
    holding at least one partition file, names decoded."""
    levels = [f"{name}=" for name in PARTITION_SCHEMA.names]  # the six of a series, then year
    keys = set()
    for path in _place(root).files():
        parts = path.split("/")
        if (
            len(parts) == len(levels) + 1
            and parts[-1] == FILE_NAME
            and all(part.startswith(level) for part, level in zip(parts, levels, strict=False))
        ):
            keys.add(tuple(unquote(folder.split("=", 1)[1]) for folder in parts[:6]))
    return sorted(keys)


def default_root() -> CatalogRoot:
    """The catalog a configured project reads and writes: settings.DATA_CATALOG_URL when set
    (s3://bucket/prefix, or a folder), else settings.DATA_DIR / "catalog"."""
    from django.conf import settings

    url = settings.DATA_CATALOG_URL
    if url:
        return url if catalog_is_remote(url) else Path(url)
    return Path(settings.DATA_DIR) / "catalog"


def catalog_is_remote(root: CatalogRoot) -> bool:
    """Whether `root` names object storage (s3://bucket/prefix) rather than a local folder."""
    return isinstance(root, str) and urlsplit(root).scheme == REMOTE_SCHEME


def catalog_filesystem(root: CatalogRoot | None = None) -> tuple[pafs.FileSystem, str]:
    """The catalog's file system (pyarrow's: local, or S3 with the standard AWS_* variables)
    and its root's path in it: what ds.dataset(path, filesystem=fs) and friends take."""
    place = _place(root)
    return place.fs, place.base


def catalog_write(
    *,
    root: CatalogRoot | None = None,
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
    it and atomically rename it over the old one (on object storage: upload it whole over the old
    one, under a lock every host sees).
    """
    place = _place(root)
    base = _series_dir(
        place.base,
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
        _partition_write(place, f"{base}/year={int(year)}", batch.slice(years == year))
    return len(batch)


@contextlib.contextmanager
def catalog_replacing(
    *,
    root: CatalogRoot | None = None,
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
    place = _place(root)
    base = _series_dir(
        place.base,
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
            directory = f"{base}/year={int(year)}"
            place.mkdir(directory)
            staged.append(f"{directory}/{STAGED_NAME}")
            _write_file(place, staged[-1], batch.slice(years == year))
        yield
    except BaseException:
        for path in staged:
            place.delete(path)
        raise
    directories = sorted(
        {
            f"{base}/{path.partition('/')[0]}"
            for path in place.files(base)
            if path.startswith("year=")
            and path.count("/") == 1
            and path.endswith((f"/{FILE_NAME}", f"/{STAGED_NAME}"))
        }
    )
    with contextlib.ExitStack() as locks:
        for directory in directories:
            locks.enter_context(_partition_lock(place, directory))
        for directory in directories:
            if place.is_file(f"{directory}/{FILE_NAME}"):
                place.move(f"{directory}/{FILE_NAME}", f"{directory}/{RETIRED_NAME}")
        for directory in directories:
            if place.is_file(f"{directory}/{STAGED_NAME}"):
                place.move(f"{directory}/{STAGED_NAME}", f"{directory}/{FILE_NAME}")
            place.delete(f"{directory}/{RETIRED_NAME}")
            place.sync(directory)


def catalog_read(
    *,
    root: CatalogRoot | None = None,
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
    place = _place(root)
    base = _series_dir(
        place.base,
        symbol=symbol,
        exchange=exchange,
        currency=currency,
        timeframe=timeframe,
        what_to_show=what_to_show,
        use_rth=use_rth,
    )
    if not place.is_dir(base):
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
        filesystem=place.fs,
        format="parquet",
        partitioning=ds.partitioning(year_schema, flavor="hive"),
        schema=pa.unify_schemas([_BARS_SCHEMA, year_schema]),
    )
    expression = functools.reduce(operator.and_, conditions) if conditions else None
    table = dataset.to_table(columns=list(COLUMNS), filter=expression)
    return _table_to_batch(table)


def catalog_dataset(root: CatalogRoot | None = None) -> ds.Dataset:
    """The whole catalog as one pyarrow dataset: bar columns plus what_to_show, timeframe,
    session, symbol, exchange, currency (strings) and year (int32)."""
    place = _place(root)
    return ds.dataset(
        place.base,
        filesystem=place.fs,
        format="parquet",
        partitioning=ds.partitioning(PARTITION_SCHEMA, flavor="hive"),
        schema=DATASET_SCHEMA,
    )


@dataclass(frozen=True)
class _Place:
    """Where a catalog lives: its file system (pyarrow's) and its root's path in it. A local
    folder keeps its files with fsync, renames and flock; object storage (S3) uploads each file
    whole (an object appears when its upload completes) and locks with PostgreSQL."""

    fs: pafs.FileSystem
    base: str

    @property
    def remote(self) -> bool:
        return not isinstance(self.fs, pafs.LocalFileSystem)

    def is_file(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def is_dir(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.Directory

    def files(self, under: str | None = None) -> list[str]:
        """Every file under `under` (the root by default), as paths relative to it."""
        top = (self.base if under is None else under).rstrip("/")
        selector = pafs.FileSelector(top, recursive=True, allow_not_found=True)
        return [
            info.path.removeprefix(f"{top}/")
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
        ]

    def mkdir(self, directory: str) -> None:
        if not self.remote:  # object storage has no folders: a key's prefix is one
            self.fs.create_dir(directory, recursive=True)

    def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(path)

    def move(self, source: str, target: str) -> None:
        if self.remote:
            self.fs.move(source, target)
        else:
            os.replace(source, target)

    def write(self, path: str, fill: Callable[[BinaryIO], object]) -> None:
        """A file `fill(stream)` writes: on disk (fsynced) when this returns, or uploaded."""
        if self.remote:
            with self.fs.open_output_stream(path) as stream:
                fill(stream)
            return
        with open(path, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())

    def put(self, directory: str, name: str, fill: Callable[[BinaryIO], object]) -> None:
        """Replace `name` in `directory` atomically: written whole beside it under a hidden name,
        then renamed over it (uploaded over it, on object storage)."""
        if self.remote:
            self.write(f"{directory}/{name}", fill)
            return
        self.mkdir(directory)
        hidden = "." + name.lstrip(".")
        temp = f"{directory}/{hidden}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            self.write(temp, fill)
            os.replace(temp, f"{directory}/{name}")
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        self.sync(directory)

    def sync(self, directory: str) -> None:
        """Make the renames in `directory` durable (object storage: they are)."""
        if not self.remote:
            _fsync_dir(directory)


def _place(root: CatalogRoot | None) -> _Place:
    root = default_root() if root is None else root
    if catalog_is_remote(root):
        parts = urlsplit(str(root))
        return _Place(_s3_filesystem(), f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/"))
    return _Place(_LOCAL, str(Path(root).expanduser()))


_LOCAL = pafs.LocalFileSystem()


def _s3_filesystem() -> pafs.S3FileSystem:
    """S3 (or an S3-compatible store) as the standard variables say: AWS_ENDPOINT_URL (its
    address, http:// or https://), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION,
    from the project's settings (its .env counts) or, without Django, the environment; unset,
    AWS's own defaults (~/.aws, the instance's role)."""
    return _s3_cached(*(_aws(name) or None for name in AWS_VARIABLES))


def _aws(name: str) -> str:
    from django.conf import settings

    if settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE"):
        return getattr(settings, name, "") or os.environ.get(name, "")
    return os.environ.get(name, "")


AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


@functools.cache
def _s3_cached(endpoint, region, access_key, secret_key) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=endpoint,
        region=region,
        access_key=access_key,
        secret_key=secret_key,
    )


def _escape(value: str) -> str:
    """Percent-encode all but letters, digits and "-._~": 'BRK B' -> 'BRK%20B', 'A/B' -> 'A%2FB'.

    urllib.parse.unquote reverses it, and hive readers (pyarrow, DuckDB, polars) URL-decode
    partition values, so they see 'BRK B' again.
    """
    return quote(value, safe="")


def session_name(use_rth: bool) -> str:
    return "RTH" if use_rth else "ALL"


def _series_dir(
    base: str,
    *,
    symbol: str,
    exchange: str,
    currency: str,
    timeframe: TimeframeSpec,
    what_to_show: str,
    use_rth: bool,
) -> str:
    for name, value in (
        ("symbol", symbol),
        ("exchange", exchange),
        ("currency", currency),
        ("what_to_show", what_to_show),
    ):
        if not value:
            raise ValueError(f"a catalog {name} cannot be empty")
    return "/".join(
        [
            base,
            f"what_to_show={_escape(what_to_show)}",
            f"timeframe={_escape(timeframe.name)}",
            f"session={session_name(use_rth)}",
            f"symbol={_escape(symbol)}",
            f"exchange={_escape(exchange)}",
            f"currency={_escape(currency)}",
        ]
    )


def _years(ts: np.ndarray) -> np.ndarray:
    """UTC calendar year of each epoch second."""
    return ts.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970


@contextlib.contextmanager
def _partition_lock(place: _Place, directory: str) -> Iterator[None]:
    """Hold the partition's lock: an exclusive flock on its lock file, which the OS drops if we
    die; on object storage, where writers may be on several hosts, a PostgreSQL lock."""
    if place.remote:
        with _shared_lock(f"{REMOTE_SCHEME}://{directory}"):
            yield
        return
    fd = os.open(f"{directory}/{LOCK_NAME}", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _shared_lock(name: str) -> Iterator[None]:
    """A lock every host sharing the database sees: a PostgreSQL advisory lock of this process's
    session, which the server drops if the process dies or its connection breaks."""
    from django.db import DatabaseError, connection

    if connection.vendor != "postgresql":
        raise CatalogUnshared(
            "a catalog on object storage (DATA_CATALOG_URL) is locked through PostgreSQL: set "
            "DATABASE_URL to the PostgreSQL database its writers share"
        )
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        yield
    finally:
        # a broken connection holds no lock any more: nothing to release
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _partition_write(place: _Place, directory: str, batch: BarBatch, *, replace=False) -> None:
    """Write one partition's file atomically, holding only this partition: `batch` merged into
    what the file holds (its bars win), or (`replace`) instead of it."""
    place.mkdir(directory)
    final = f"{directory}/{FILE_NAME}"
    with _partition_lock(place, directory):
        if not place.remote:
            # Under the lock no other writer is between temp file and rename, so any temp file
            # left here belongs to a writer that died.
            for stale in Path(directory).glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
                stale.unlink(missing_ok=True)
        if not replace and place.is_file(final):
            stored = _table_to_batch(pq.read_table(final, filesystem=place.fs))
            batch = BarBatch.concat([stored, batch])
        place.put(directory, FILE_NAME, functools.partial(_write_parquet, batch=batch))


def _write_file(place: _Place, path: str, batch: BarBatch) -> None:
    """A partition file of `batch` at `path`: on disk (fsynced), or uploaded, when this returns."""
    place.write(path, functools.partial(_write_parquet, batch=batch))


def _write_parquet(sink, *, batch: BarBatch) -> None:
    pq.write_table(
        _batch_to_table(batch),
        sink,
        compression="zstd",
        sorting_columns=[pq.SortingColumn(0)],
    )


def _fsync_dir(directory: str) -> None:
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
