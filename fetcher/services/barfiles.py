"""Bars out to files and in from files: `bars export` streams stored series into CSV or Parquet a
page at a time; `bars import` checks every row of a file, then stores its bars as imported
(provenance `import`), as coverage, and in the catalog, or stores nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from django.db import transaction

from fetcher.domain.barfiles import (
    OK,
    REPEAT,
    TimesSeen,
    bars_windows,
    row_problem,
    rows_check,
    series_file_name,
)
from fetcher.domain.bars import BarBatch
from fetcher.domain.planning import intervals_merge
from fetcher.domain.sessions import listing_sessions
from fetcher.domain.time import dates_epochs, from_epoch, zone_info, zone_name
from fetcher.domain.timeframes import TimeframeSpec, WhatToShow
from fetcher.exceptions import InvalidInput
from fetcher.models import Coverage, GatewayKind, Instrument, Series
from fetcher.selectors import bars_count, bars_read, series_listed
from fetcher.storage.barfiles import (
    SUFFIXES,
    BarFileWriter,
    columns_map,
    export_schema,
    file_columns,
    format_of,
    rows_read,
)
from fetcher.storage.bars import bars_upsert
from fetcher.storage.catalog import CatalogSeries, session_name

from .checks import TRADED, catalog_series, series_label
from .items import series_catalog_export
from .provenance import store_source_check
from .series import series_claim, series_key, series_refresh

EXPORT_PAGE_BARS = 100_000  # bars read from the database at a time (keyset paging)
TZ_MODES = ("utc", "exchange")
SHOWN_PROBLEMS = 3  # bad rows a refused import names
FAR_FUTURE = 2**35  # 3058: after any bar, inside every datetime

Progress = Callable[[int, int | None], None]  # (done, total) bars or rows; total None: unknown


# --- export ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedFile:
    path: Path
    labels: tuple[str, ...]  # the series it holds
    bars: int


def bars_export(
    *,
    symbols: list[str] | None,
    timeframe: TimeframeSpec,
    what_to_show: WhatToShow,
    rth: bool,
    start: dt.date | None,
    end: dt.date | None,
    fmt: str | None,
    out: Path,
    tz: str,
    on_progress: Progress | None = None,
) -> list[ExportedFile]:
    """Write stored series (every one of the timeframe, or those of `symbols`) to `out`: a file
    (.csv or .parquet: every series in it, with symbol, exchange and currency columns when there
    are several), or a folder with one file per series. Times in UTC or the exchange's zone
    (`tz`); `start`..`end` dates in the exchange's zone, both included. Read a page at a time
    (keyset paging on the primary key) and written as read: memory stays flat however many
    bars. Each file appears whole, or not at all."""
    if tz not in TZ_MODES:
        raise InvalidInput(f"--tz {tz!r}: use one of {', '.join(TZ_MODES)}")
    if start and end and end < start:
        raise InvalidInput(f"--end {end} is before --start {start}")
    series = _export_series(symbols, timeframe, what_to_show, rth)
    single = out.suffix.lower() in SUFFIXES and not out.is_dir()
    fmt = format_of(out, fmt) if single else (fmt or "csv")
    ranges = {s.pk: _export_range(s.instrument, timeframe, start, end) for s in series}
    total = sum(
        bars_count(**series_key(s), start=a, end=b) for s in series for a, b in [ranges[s.pk]]
    )
    progress = _ExportProgress(total, on_progress)
    groups = [(out, series)] if single else [(out / _file_name(s, fmt), [s]) for s in series]
    files = []
    for path, members in groups:
        zones = {_zone(s.instrument, tz) for s in members}
        if len(zones) > 1:
            raise InvalidInput(
                f"{path.name} would hold series in several time zones ({', '.join(sorted(zones))}):"
                " give --tz utc, or a folder (one file per series)"
            )
        schema = export_schema(
            intraday=timeframe.intraday,
            zone=zones.pop(),
            with_series=len(members) > 1,
            metadata=_metadata(members, timeframe, what_to_show, rth, tz),
        )
        with BarFileWriter(path, fmt, schema) as writer:
            for s in members:
                _series_write(writer, s, ranges[s.pk], len(members) > 1, progress)
        labels = tuple(series_label(catalog_series(s)) for s in members)
        files.append(ExportedFile(path, labels, writer.rows))
    return files


def _export_series(symbols, timeframe: TimeframeSpec, what_to_show: WhatToShow, rth: bool):
    """The stored series to export (those of `symbols`, or all), or one line saying there are
    none and what is stored."""
    series = [
        s
        for s in series_listed(symbols=symbols, timeframe=timeframe.code)
        if s.what_to_show == what_to_show and s.rth == rth and s.bar_count
    ]
    if not series:
        wanted = f"{timeframe.name} {what_to_show.name} {session_name(rth)}"
        stored = ", ".join(sorted({series_label(catalog_series(s)) for s in series_listed()}))
        raise InvalidInput(
            f"no {wanted} bars of {', '.join(symbols) if symbols else 'any instrument'} are "
            f"stored (stored: {stored or 'nothing'})"
        )
    return series


@dataclass
class _ExportProgress:
    total: int
    on_progress: Progress | None
    done: int = 0

    def __post_init__(self) -> None:
        if self.on_progress:
            self.on_progress(0, self.total)

    def add(self, bars: int) -> None:
        self.done += bars
        if self.on_progress:
            self.on_progress(self.done, self.total)


def _series_write(writer, s: Series, bounds, named: bool, progress: _ExportProgress) -> None:
    """One series' bars within `bounds` into `writer`, a page at a time (keyset paging), with
    its symbol, exchange and currency in each row when the file holds several (`named`)."""
    catalog = catalog_series(s)
    names = (catalog.symbol, catalog.exchange, s.instrument.currency) if named else None
    cursor, stop = bounds
    while cursor < stop:
        page = bars_read(**series_key(s), start=cursor, end=stop, first=EXPORT_PAGE_BARS)
        writer.write(page, names)
        progress.add(len(page))
        if len(page) < EXPORT_PAGE_BARS:
            break
        cursor = int(page.ts[-1]) + 1


def _export_range(
    instrument: Instrument, tf: TimeframeSpec, start: dt.date | None, end: dt.date | None
) -> tuple[int, int]:
    zone = zone_info(instrument.time_zone)
    lo = dates_epochs(start, start, tf, zone)[0] if start else 0
    hi = dates_epochs(end, end, tf, zone)[1] if end else FAR_FUTURE
    return lo, hi


def _zone(instrument: Instrument, tz: str) -> str:
    return "UTC" if tz == "utc" else zone_name(instrument.time_zone)


def _file_name(series: Series, fmt: str) -> str:
    catalog = catalog_series(series)
    return (
        series_file_name(
            symbol=catalog.symbol,
            exchange=catalog.exchange,
            currency=catalog.currency,
            timeframe=catalog.timeframe.name,
            what_to_show=catalog.what_to_show,
            session=session_name(catalog.use_rth),
        )
        + f".{fmt}"
    )


def _metadata(members, tf, what_to_show, rth, tz) -> dict:
    """What a Parquet export says of its bars in its metadata (ibdata.*)."""
    data = {
        "timeframe": tf.name,
        "what_to_show": what_to_show.name,
        "session": session_name(rth),
        "tz": tz,
    }
    if len(members) == 1:
        s = members[0]
        catalog = catalog_series(s)
        data |= {
            "symbol": catalog.symbol,
            "exchange": catalog.exchange,
            "currency": catalog.currency,
            "con_id": s.instrument.con_id or "",
            "time_zone": zone_name(s.instrument.time_zone),
            "source": s.source,
        }
    return data


# --- import ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOutcome:
    label: str  # the series: 'AAPL 1-MINUTE TRADES RTH'
    files: int
    rows: int  # rows of the instrument read from the files
    bars: int  # bars stored
    skipped: int  # bad rows left out (--skip-bad)
    problems: tuple[str, ...]  # the first bad rows, with their lines
    first: dt.datetime | None
    last: dt.datetime | None
    catalog_bars: int


def import_zone(tz: str | None, instrument: Instrument) -> str | None:
    """The zone of times a file states none for: --tz utc, exchange (the instrument's), or a
    zone's name; None when not given."""
    if tz is None:
        return None
    if tz.lower() == "utc":
        return "UTC"
    if tz.lower() == "exchange":
        return zone_name(instrument.time_zone)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"--tz {tz!r} is not a time zone: utc, exchange, or a name such as America/New_York"
        ) from None
    return tz


def import_files(path: Path) -> list[Path]:
    """A file, or the .csv and .parquet files of a folder (by name)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
        if not files:
            raise InvalidInput(f"{path} holds no .csv or .parquet file")
        return files
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file or folder")
    return [path]


@dataclass
class _ImportTally:
    """What an import has read and stored so far, across its files."""

    rows: int = 0
    written: int = 0
    bad: int = 0
    problems: list[str] = field(default_factory=list)
    windows: list[tuple[int, int]] = field(default_factory=list)
    first: int | None = None
    last: int | None = None

    def refused(self, codes: np.ndarray, chunk, earlier, timeframe, where: str) -> None:
        """Count a checked block's rows, and name its first bad ones (up to SHOWN_PROBLEMS)."""
        self.rows += len(codes)
        refused = np.flatnonzero(codes != OK)
        for i in refused[: max(0, SHOWN_PROBLEMS - len(self.problems))].tolist():
            text = row_problem(int(codes[i]), chunk, i, timeframe, int(earlier[i]))
            self.problems.append(f"{where} {chunk.lines[i]}: {text}")
        self.bad += len(refused)

    def stored(self, written: int, good: BarBatch, windows: list[tuple[int, int]]) -> None:
        self.written += written
        self.windows = intervals_merge(self.windows + windows)
        lo, hi = int(good.ts[0]), int(good.ts[-1])
        self.first = lo if self.first is None else min(self.first, lo)
        self.last = hi if self.last is None else max(self.last, hi)

    def refusal(self, names: str, symbol: str, skip_bad: bool) -> str | None:
        """The one line refusing the import, if it is refused."""
        bad, problems = self.bad, self.problems
        if bad and not skip_bad:
            return (
                f"{names}: {bad:,} bad row{'s' if bad > 1 else ''} of {self.rows:,}, nothing "
                "imported: " + "; ".join(problems) + (" ..." if bad > len(problems) else "")
                + " (--skip-bad imports the others)"
            )  # fmt: skip
        if not self.written:
            return f"{names}: no bars of {symbol} to import" + (
                f" ({bad:,} bad rows left out: {'; '.join(problems)})" if bad else ""
            )
        return None


def bars_import(
    *,
    path: Path,
    instrument: Instrument,
    timeframe: TimeframeSpec,
    what_to_show: WhatToShow,
    rth: bool,
    fmt: str | None = None,
    columns: dict[str, str] | None = None,
    tz: str | None = None,
    skip_bad: bool = False,
    catalog_root: Path,
    on_progress: Progress | None = None,
) -> ImportOutcome:
    """Import the bars of a file (or of each file of a folder) into one series of `instrument`.

    Every row is checked: its time read (stated with its zone, or in `tz`), prices that keep the
    OHLC rules, a start on the timeframe's grid and inside the exchange calendar's sessions, no
    time twice. A bad row refuses the whole import (InvalidInput naming the first bad rows by
    line; nothing is stored), unless `skip_bad`. The bars are stored as imported (provenance
    `import`: refused in a store of simulator bars), in one transaction, with the windows they
    cover as coverage (a fetch does not ask for them again); then merged into the catalog."""
    files = import_files(path)
    zone = import_zone(tz, instrument)
    source = GatewayKind.IMPORT
    store_source_check(source=source, account="", catalog_root=catalog_root, record=False)
    key = {
        "instrument_id": instrument.pk,
        "timeframe": timeframe.code,
        "what_to_show": int(what_to_show),
        "rth": rth,
    }
    catalog = CatalogSeries.of_instrument(
        instrument, timeframe=timeframe, what_to_show=what_to_show.name, use_rth=rth
    )
    sessions = listing_sessions(instrument)
    blocks = _import_blocks(files, fmt, columns, zone, not timeframe.intraday, instrument, catalog)
    tally, seen = _ImportTally(), TimesSeen()
    with transaction.atomic():
        series_claim(**key, source=source, account="")
        for file, where, chunk in blocks:
            codes, earlier = _rows_checked(chunk, timeframe, sessions, rth, what_to_show, seen)
            tally.refused(codes, chunk, earlier, timeframe, f"{file.name} {where}")
            if on_progress:
                on_progress(tally.rows, None)
            if tally.bad and not skip_bad:
                continue  # nothing will be stored: the rest is only read for the count
            good = chunk.batch.slice(codes == OK)
            if len(good):
                written = bars_upsert(**key, batch=good, fresh=True)
                tally.stored(written, good, bars_windows(good.ts, timeframe, sessions, rth))
        names = files[0].name if len(files) == 1 else f"{len(files)} files of {path}"
        refusal = tally.refusal(names, catalog.symbol, skip_bad)
        if refusal:
            raise InvalidInput(refusal)
        Coverage.objects.bulk_create(
            Coverage(**key, start=from_epoch(a), end=from_epoch(b), source=source)
            for a, b in tally.windows
        )
        series_refresh(**key)
    store_source_check(source=source, account="", catalog_root=catalog_root)
    catalog_bars = series_catalog_export(
        instrument=instrument,
        timeframe=timeframe.code,
        what_to_show=int(what_to_show),
        rth=rth,
        windows=tally.windows,
        catalog_root=catalog_root,
    )
    return ImportOutcome(
        label=series_label(catalog),
        files=len(files),
        rows=tally.rows,
        bars=tally.written,
        skipped=tally.bad,
        problems=tuple(tally.problems),
        first=from_epoch(tally.first),
        last=from_epoch(tally.last),
        catalog_bars=catalog_bars,
    )


def _import_blocks(files, fmt, columns, zone, daily: bool, instrument, catalog: CatalogSeries):
    """(file, 'line' or 'row', block of rows) for each block of each file, in order; every
    file's columns are mapped before any row is read."""
    formats = [format_of(f, fmt) for f in files]
    layouts = [
        columns_map(file_columns(f, ff), columns or {}, f.name)
        for f, ff in zip(files, formats, strict=True)
    ]
    for file, ff, layout in zip(files, formats, layouts, strict=True):
        for chunk in rows_read(
            file,
            ff,
            layout,
            zone=zone,
            exchange_zone=zone_name(instrument.time_zone),
            daily=daily,
            series=(catalog.symbol, catalog.exchange),
        ):
            yield file, "line" if ff == "csv" else "row", chunk


def _rows_checked(chunk, timeframe, sessions, rth, what_to_show, seen: TimesSeen):
    """Each row's check code (OK or why not), and the line of an earlier row of the same time."""
    codes = rows_check(chunk, timeframe, sessions, rth, volume_signed=what_to_show not in TRADED)
    earlier = seen.repeats(chunk.batch.ts, chunk.lines, codes == OK)
    codes[earlier > 0] = REPEAT
    return codes, earlier
