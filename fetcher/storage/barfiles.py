"""Bars as CSV and Parquet files: written a page at a time through pyarrow's writers (the file
appears whole, or not at all), and read a block at a time, every row kept with its line."""

from __future__ import annotations

import contextlib
import csv
import functools
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fetcher.domain.barfiles import Rows
from fetcher.domain.bars import BarBatch
from fetcher.domain.time import DAY
from fetcher.exceptions import InvalidInput

FORMATS = ("csv", "parquet")
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# The export's layout: these columns, in this order (after SERIES_COLUMNS when one file holds
# several series).
BAR_COLUMNS = ("time", "open", "high", "low", "close", "volume", "wap", "bar_count")
SERIES_COLUMNS = ("symbol", "exchange", "currency")
REQUIRED = ("time", "open", "high", "low", "close")
# Other names a column goes by in files of other tools (matched without regard to case).
ALIASES = {
    "time": ("date", "datetime", "timestamp", "ts"),
    "volume": ("vol",),
    "wap": ("vwap", "average"),
    "bar_count": ("barcount", "count", "trades"),
}
METADATA_PREFIX = "ibdata."
CSV_BLOCK_BYTES = 8 << 20
PARQUET_BATCH_ROWS = 128 * 1024
_ZONE_AT_END = r"(Z|z|[+-]\d\d(:?\d\d)?)$"


def format_of(path: Path, given: str | None) -> str:
    """The format of a file: its suffix's, else the one given; InvalidInput when they differ."""
    by_suffix = SUFFIXES.get(path.suffix.lower())
    if given and by_suffix and given != by_suffix:
        raise InvalidInput(f"{path.name} is a {by_suffix} file by its name, not {given}")
    if not (given or by_suffix):
        raise InvalidInput(f"{path.name}: name a .csv or .parquet file, or give --format")
    return given or by_suffix


# --- writing -----------------------------------------------------------------------------------


def export_schema(*, intraday: bool, zone: str, with_series: bool, metadata: dict) -> pa.Schema:
    """The export's columns: time (a timestamp in `zone` for intraday bars, the session's date for
    daily and larger ones), prices, volume and wap (empty when missing), bar count."""
    time = pa.timestamp("s", tz=zone) if intraday else pa.date32()
    fields = [pa.field(name, pa.string()) for name in SERIES_COLUMNS] if with_series else []
    fields += [pa.field("time", time)]
    fields += [pa.field(name, pa.float64()) for name in BAR_COLUMNS[1:-1]]
    fields += [pa.field("bar_count", pa.int64())]
    return pa.schema(
        fields, metadata={f"{METADATA_PREFIX}{k}": str(v) for k, v in metadata.items()}
    )


class BarFileWriter:
    """One export file, written a batch at a time into a hidden temporary file beside it, which
    takes its name when the writer closes without an error (and is removed after one)."""

    def __init__(self, path: Path, fmt: str, schema: pa.Schema):
        self.path, self.fmt, self.schema = path, fmt, schema
        self.temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        self.rows = 0
        self._writer = None

    def __enter__(self) -> BarFileWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.fmt == "parquet":
                self._writer = pq.ParquetWriter(self.temp, self.schema, compression="zstd")
            else:
                self._writer = pacsv.CSVWriter(self.temp, self.schema)
        except OSError as exc:
            raise InvalidInput(f"cannot write {self.path}: {exc.strerror or exc}") from None
        return self

    def write(self, batch: BarBatch, series: tuple[str, str, str] | None = None) -> None:
        n = len(batch)
        if not n:
            return
        time_type = self.schema.field("time").type
        if pa.types.is_timestamp(time_type):
            time = pa.array(batch.ts, type=time_type)
        else:
            time = pa.array((batch.ts // DAY).astype(np.int32), type=pa.date32())
        columns = [pa.array(np.full(n, value, dtype=object), pa.string()) for value in series or ()]
        columns += [time]
        columns += [
            pa.array(getattr(batch, name), type=pa.float64(), from_pandas=True)  # NaN: empty
            for name in BAR_COLUMNS[1:-1]
        ]
        columns += [pa.array(batch.bar_count, type=pa.int64())]
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.schema))
        self.rows += n

    def __exit__(self, kind, value, traceback) -> None:
        try:
            self._writer.close()
        finally:
            if kind is None:
                os.replace(self.temp, self.path)
            else:
                self.temp.unlink(missing_ok=True)


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileColumns:
    """Which column of a file holds each of ours (None: not there)."""

    names: dict[str, str | None]
    series: dict[str, str]  # symbol, exchange, currency: the export's several-series layout


def columns_map(present: list[str], mapping: dict[str, str], where: str) -> FileColumns:
    """Our columns found among the file's: as --columns maps them, else by their names (any
    case) or a usual alias; InvalidInput naming what is missing."""
    by_lower = {name.lower(): name for name in present}
    names: dict[str, str | None] = {}
    for ours in BAR_COLUMNS:
        if ours in mapping:
            theirs = mapping[ours]
            if theirs not in present:
                raise InvalidInput(
                    f"{where} has no column {theirs!r} (--columns {ours}={theirs}); its columns: "
                    f"{', '.join(present)}"
                )
            names[ours] = theirs
            continue
        found = [by_lower[n] for n in (ours, *ALIASES.get(ours, ())) if n in by_lower]
        names[ours] = found[0] if found else None
    missing = [ours for ours in REQUIRED if names[ours] is None]
    if missing:
        raise InvalidInput(
            f"{where} has no {', '.join(missing)} column: its columns are {', '.join(present)} "
            "(map them with --columns time=Date,open=Open,...)"
        )
    series = {name: by_lower[name] for name in SERIES_COLUMNS if name in by_lower}
    return FileColumns(names, series)


def file_columns(path: Path, fmt: str) -> list[str]:
    """The file's column names; InvalidInput when it is not a readable file of its format."""
    try:
        if fmt == "parquet":
            return list(pq.ParquetFile(path).schema_arrow.names)
        with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)) as reader:
            return list(reader.schema.names)
    except (pa.ArrowException, OSError) as exc:
        ragged = _ragged(path) if fmt == "csv" else ""
        raise InvalidInput(
            ragged or f"{path.name} is not a readable {fmt} file: {_arrow_message(exc)}"
        ) from None


def file_metadata(path: Path, fmt: str) -> dict[str, str]:
    """What an export wrote of its series in a Parquet file's metadata (nothing for CSV)."""
    if fmt != "parquet":
        return {}
    raw = pq.ParquetFile(path).schema_arrow.metadata or {}
    return {
        key.decode()[len(METADATA_PREFIX) :]: value.decode()
        for key, value in raw.items()
        if key.decode().startswith(METADATA_PREFIX)
    }


def rows_read(
    path: Path,
    fmt: str,
    columns: FileColumns,
    *,
    zone: str | None,
    exchange_zone: str,
    daily: bool,
    series: tuple[str, str] | None = None,
) -> Iterator[Rows]:
    """The file's rows a block at a time, each with its line (CSV: the header is line 1) or row
    number (Parquet), its time in epoch seconds (`zone` for times that state none; daily bars on
    their date in `exchange_zone`), rows of another series left out (`series`: (symbol,
    exchange) in a file of several)."""
    wanted = [n for n in columns.names.values() if n] + list(columns.series.values())
    first_line = 2 if fmt == "csv" else 1
    for table in _blocks(path, fmt, columns, wanted):
        n = table.num_rows
        lines = np.arange(first_line, first_line + n, dtype=np.int64)
        first_line += n
        if series is not None and "symbol" in columns.series:
            keep = pc.equal(table.column(columns.series["symbol"]), series[0])
            if "exchange" in columns.series:
                keep = pc.and_(keep, pc.equal(table.column(columns.series["exchange"]), series[1]))
            keep = pc.fill_null(keep, False)
            table, lines = table.filter(keep), lines[keep.to_numpy(zero_copy_only=False)]
            n = table.num_rows
            if not n:
                continue
        ts, problem = _times(
            table.column(columns.names["time"]), lines, zone, exchange_zone, daily, fmt
        )

        numbers = functools.partial(_numbers, table, columns, lines, fmt)
        batch = BarBatch(
            ts=ts,
            open=numbers("open"),
            high=numbers("high"),
            low=numbers("low"),
            close=numbers("close"),
            volume=numbers("volume"),
            wap=numbers("wap"),
            bar_count=numbers("bar_count", np.int64, 0),
        )
        yield Rows(lines=lines, batch=batch, time_problem=problem)


def _numbers(
    table, columns: FileColumns, lines, fmt: str, ours: str, kind=np.float64, missing=np.nan
):
    """One of our number columns as numpy (`missing` where the file has no value or no column)."""
    theirs = columns.names[ours]
    if theirs is None:
        return np.full(table.num_rows, missing, dtype=kind)
    column = table.column(theirs)
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        column = _numbers_cast(column, lines, theirs, fmt)
    values = column.to_numpy(zero_copy_only=False)
    if kind is np.int64:
        return np.nan_to_num(values.astype(np.float64), nan=missing).astype(np.int64)
    return values.astype(np.float64)


def _blocks(path: Path, fmt: str, columns: FileColumns, wanted: list[str]) -> Iterator[pa.Table]:
    if fmt == "parquet":
        try:
            handle = pq.ParquetFile(path)
            for batch in handle.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
                yield pa.Table.from_batches([batch])
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInput(f"{path.name}: {_arrow_message(exc)}") from None
        return
    time = columns.names["time"]
    convert = pacsv.ConvertOptions(
        include_columns=wanted,
        column_types={time: pa.string(), **{name: pa.string() for name in columns.series.values()}},
        strings_can_be_null=True,
    )
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            convert_options=convert,
        )
        with contextlib.closing(reader):
            for batch in reader:
                yield pa.Table.from_batches([batch])
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(_ragged(path) or f"{path.name}: {_arrow_message(exc)}") from None


def _ragged(path: Path) -> str:
    """The first line of a CSV file whose fields are not as many as its header's, in words (''
    when there is none): pyarrow's parse error does not say where."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            rows = csv.reader(handle)
            header = next(rows, None)
            for row in rows:
                if row and header and len(row) != len(header):
                    return (
                        f"{path.name} line {rows.line_num}: {len(row)} fields, the header has "
                        f"{len(header)}"
                    )
    except (OSError, csv.Error):
        pass
    return ""


def _arrow_message(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0].rstrip(".")


def _numbers_cast(column, lines: np.ndarray, name: str, fmt: str):
    """A column read as text (a value in it is not a number): the first such value's line."""
    try:
        return pc.cast(column, pa.float64())
    except pa.ArrowInvalid:
        values = column.to_pylist()
        for i, value in enumerate(values):
            try:
                float(value) if value not in (None, "") else None
            except ValueError:
                word = "line" if fmt == "csv" else "row"
                raise InvalidInput(f"{word} {lines[i]}: {name} {value!r} is not a number") from None
        raise


def _times(
    column, lines: np.ndarray, zone: str | None, exchange_zone: str, daily: bool, fmt: str
) -> tuple[np.ndarray, np.ndarray]:
    """(epoch seconds, problem per row) of a time column: timestamps that state their zone, or
    `zone`'s local times; dates (daily and larger bars: the date itself)."""
    n = len(column)
    problem = np.full(n, "", dtype=object)
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = column.type
    if pa.types.is_date(kind):
        days = pc.cast(column, pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False)
        ts = np.nan_to_num(days.astype(np.float64)).astype(np.int64) * DAY
        if not daily:
            problem[:] = "a date without a time of day: this timeframe's bars need their time"
        problem[column.is_null().to_numpy(zero_copy_only=False)] = "no time"
        return ts, problem
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            if zone is None:
                problem[:] = _no_zone_text()
                return np.zeros(n, dtype=np.int64), problem
            column = pc.assume_timezone(column, zone, ambiguous="earliest", nonexistent="earliest")
        return _epochs(column, problem, exchange_zone, daily)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        problem[:] = f"time of type {kind} is not a date and time"
        return np.zeros(n, dtype=np.int64), problem
    if daily:
        with contextlib.suppress(pa.ArrowInvalid):
            return _times(pc.cast(column, pa.date32()), lines, zone, exchange_zone, daily, fmt)
    with contextlib.suppress(pa.ArrowInvalid):
        return _epochs(pc.cast(column, pa.timestamp("ns", tz="UTC")), problem, exchange_zone, daily)
    return _times_one_by_one(column, problem, zone, exchange_zone, daily, fmt)


def _no_zone_text() -> str:
    return (
        "the time states no time zone: give --tz (utc, exchange, or a zone such as "
        "America/New_York)"
    )


def _times_one_by_one(column, problem, zone, exchange_zone, daily, fmt):
    """The slow path of a block whose times are not all alike: each row's on its own."""
    values = column.to_pylist()
    ts = np.zeros(len(values), dtype=np.int64)
    zoned = re.compile(_ZONE_AT_END)
    for i, text in enumerate(values):
        if text is None or not text.strip():
            problem[i] = "no time"
            continue
        text = text.strip()
        stated = bool(zoned.search(text)) and len(text) > 10
        if not stated and zone is None and not (daily and len(text) == 10):
            problem[i] = _no_zone_text()
            continue
        try:
            if daily and len(text) == 10:
                ts[i] = (
                    int(pc.cast(pa.array([text]), pa.date32()).cast(pa.int32())[0].as_py()) * DAY
                )
                continue
            if stated:
                one = pc.cast(pa.array([text]), pa.timestamp("ns", tz="UTC"))
            else:
                one = pc.assume_timezone(
                    pc.cast(pa.array([text]), pa.timestamp("ns")),
                    zone,
                    ambiguous="earliest",
                    nonexistent="earliest",
                )
        except pa.ArrowInvalid:
            problem[i] = f"time {text!r} is not a date and time"
            continue
        value, bad = _epochs(one, np.full(1, "", dtype=object), exchange_zone, daily)
        ts[i], problem[i] = value[0], bad[0]
    return ts, problem


def _epochs(column, problem: np.ndarray, exchange_zone: str, daily: bool):
    """Epoch seconds of a zoned timestamp column; for daily bars its date in the exchange's zone
    (a time other than midnight there is a problem), in date space."""
    nanos = pc.cast(column, pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    nulls = nanos.is_null().to_numpy(zero_copy_only=False)
    ns = nanos.fill_null(0).to_numpy(zero_copy_only=False)
    ts = ns // 1_000_000_000
    fraction = ns % 1_000_000_000 != 0
    problem[fraction & (problem == "")] = "the time has a fraction of a second"
    if daily:
        local = pc.local_timestamp(pc.cast(column, pa.timestamp("s", tz=exchange_zone)))
        seconds = local.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        ts = seconds // DAY * DAY
        midnight = seconds % DAY == 0
        problem[~midnight & (problem == "")] = (
            f"a daily bar's time is not midnight in the exchange's zone ({exchange_zone})"
        )
    problem[nulls] = "no time"
    return ts, problem
