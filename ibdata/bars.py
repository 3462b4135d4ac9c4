"""Stored bars as DataFrames for research (pandas, polars, backtesting.py, vectorbt), read from the
project's database through Django or from the Parquet catalog alone, without Django."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from fetcher.domain.bars import BarBatch
from fetcher.domain.instruments import InstrumentSpec, instrument_spec_parse, spec_time_zone
from fetcher.domain.requests import date_parse
from fetcher.domain.time import day_start, zone_name
from fetcher.domain.timeframes import BY_CODE, TimeframeSpec, WhatToShow, timeframe_parse
from fetcher.exceptions import InvalidInput
from fetcher.storage.catalog import (
    PARTITION_SCHEMA,
    CatalogRoot,
    CatalogSeries,
    catalog_dataset,
    catalog_filesystem,
    catalog_is_remote,
    session_name,
)

COLUMNS = ("Open", "High", "Low", "Close", "Volume")
# Quotes have no volume: IBKR sends -1, the store keeps 0; the frame says NaN (backtesting.py's
# "no volume").
QUOTES = frozenset({WhatToShow.MIDPOINT, WhatToShow.BID, WhatToShow.ASK, WhatToShow.BID_ASK})
SOURCES = ("db", "catalog")
DEFAULT_CATALOG = Path("data") / "catalog"
# No end: up to the last bar. The latest epoch second a datetime holds (9999-12-31 23:59:59 UTC),
# which the database's query takes as its bound.
LATEST = 253_402_300_799


class BarsError(ValueError):
    """What is wrong with a request for bars, in one line."""


@dataclass(frozen=True)
class _Query:
    spec: InstrumentSpec
    timeframe: TimeframeSpec
    what_to_show: WhatToShow
    rth: bool
    start: dt.date | None
    end: dt.date | None


@dataclass(frozen=True)
class _Found:
    """Bars read, and what the frame says of them."""

    batch: BarBatch
    zone: str  # IANA name; "" when unknown
    symbol: str
    exchange: str
    currency: str
    where: str  # the database, or the catalog's folder


def bars(
    symbol: str,
    timeframe: str = "DAILY",
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    *,
    what_to_show: str = "TRADES",
    rth: bool = True,
    source: str = "db",
    root: str | Path | None = None,
    tz: str | None = None,
) -> pd.DataFrame:
    """A stored series as a pandas DataFrame, as backtesting.py and vectorbt take it: columns
    Open, High, Low, Close, Volume (float64); a DatetimeIndex named "time" in the exchange's time
    zone, one row per bar, at the bar's start; for DAILY, WEEKLY and MONTHLY bars, midnight of
    the session's date in that zone. Missing values stay NaN (quotes, MIDPOINT, BID, ASK and
    BID_ASK, have no volume: NaN). `frame.attrs` says what was read (symbol, exchange, currency,
    timeframe, what_to_show, session, time_zone, source, where).

    `symbol` as `fetch --instruments` takes it (AAPL, SPY:ARCA, EUR.USD); `start`..`end` dates
    (YYYY-MM-DD or date), both included, in the exchange's zone; None: from the first or to the
    last stored bar. `source`: "db", the project's database (needs DJANGO_SETTINGS_MODULE, e.g.
    ibdata_project.settings; Django is set up when first needed), or "catalog", the Parquet
    catalog alone, no Django: `root` (a folder, or s3://bucket/prefix with the standard AWS_*
    variables), else $IBDATA_CATALOG, else the project's catalog (DATA_CATALOG_URL or
    DATA_DIR/catalog) when DJANGO_SETTINGS_MODULE is set, else $DATA_CATALOG_URL, else
    $DATA_DIR/catalog, else ./data/catalog.

    The zone: `tz` when given; else the zone IBKR reported for the stored instrument (db); from
    the catalog, the zone its listing's rules give (US listings, forex: New York; CME Group
    futures: Chicago). When it cannot tell (a non-US listing from the catalog), the index is in
    UTC, dates are UTC dates, and a warning says to pass `tz`.

    An empty range gives an empty frame; a series that is not stored raises BarsError, saying
    what is stored."""
    query = _query(symbol, timeframe, start, end, what_to_show, rth)
    zone = _zone_checked(tz) if tz else ""
    if source == "db":
        found = _in_thread_when_async(_from_database, query, zone)
    elif source == "catalog":
        found = _from_catalog(query, _catalog_root(root), zone)
    else:
        raise BarsError(f"source {source!r}: use one of {', '.join(SOURCES)}")
    return _frame(found, query, source)


def bars_polars(*args, **kwargs):
    """bars(...) as a polars DataFrame: a "time" column (Datetime in the same zone), then Open,
    High, Low, Close, Volume; the same arguments."""
    try:
        import polars as pl
    except ImportError:  # polars is optional for the rest of the API
        raise BarsError("bars_polars needs polars: pip install polars") from None
    frame = bars(*args, **kwargs)
    return pl.from_pandas(frame, include_index=True, nan_to_null=False)


def _query(symbol, timeframe, start, end, what_to_show, rth) -> _Query:
    try:
        spec = instrument_spec_parse(str(symbol))
        tf = timeframe_parse(str(timeframe))
        what = WhatToShow.parse(str(what_to_show))
        first, last = (
            date_parse(_date(value), name) for name, value in (("start", start), ("end", end))
        )
    except InvalidInput as exc:
        raise BarsError(str(exc)) from None
    if first and last and last < first:
        raise BarsError(f"empty range: end {last} is before start {first}")
    return _Query(spec, tf, what, bool(rth), first, last)


def _date(value):
    """A date (a datetime or pandas Timestamp: its date), or the text as it is."""
    if isinstance(value, dt.datetime):
        return value.date()
    return value


def _zone_checked(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BarsError(f"tz {name!r} is not a time zone: e.g. America/New_York") from None
    return name


def _epochs(query: _Query, zone: str) -> tuple[int | None, int | None]:
    """[first, last) epoch seconds of the query's dates, as bars of its timeframe are stored."""
    info = ZoneInfo(zone or "UTC")
    first = day_start(query.start, query.timeframe, info) if query.start else None
    last = day_start(query.end + dt.timedelta(days=1), query.timeframe, info) if query.end else None
    return first, last


def _series_label(query: _Query) -> str:
    return (
        f"{query.timeframe.name} {query.what_to_show.name} {session_name(query.rth)} bars of "
        f"{query.spec.label}"
    )


# --- the database ------------------------------------------------------------------------------


def _in_thread_when_async(read, *args):
    """read(*args); on a thread of its own when this one runs an event loop (a notebook's
    cell), where Django refuses database calls."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return read(*args)

    def on_its_thread():
        try:
            return read(*args)
        finally:
            from django.db import connections

            connections.close_all()  # the thread ends: its connections with it

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(on_its_thread).result()


def _django_ready() -> None:
    """Django set up from DJANGO_SETTINGS_MODULE (once); BarsError when it is not set."""
    from django.apps import apps
    from django.conf import settings

    if apps.ready:
        return
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise BarsError(
            "source='db' reads the project's database through Django: set "
            "DJANGO_SETTINGS_MODULE=ibdata_project.settings (and DATABASE_URL, or the project's "
            ".env), or read the Parquet catalog with source='catalog'"
        )
    import django

    django.setup()


def _from_database(query: _Query, zone: str) -> _Found:
    _django_ready()
    from fetcher.selectors import bars_read, instrument_find, instrument_series

    spec = query.spec
    hint = (
        f"python manage.py fetch --instruments {spec.label} --timeframe "
        f"{query.timeframe.name} --what-to-show {query.what_to_show.name}"
    )
    instrument = instrument_find(spec=spec)
    if instrument is None:
        raise BarsError(f"no bars of {spec.label} are stored (never fetched): run `{hint}`")
    stored = [s for s in instrument_series(instrument_id=instrument.pk) if s.bar_count]
    if not any(
        (s.timeframe, s.what_to_show, s.rth)
        == (query.timeframe.code, int(query.what_to_show), query.rth)
        for s in stored
    ):
        held = ", ".join(
            f"{BY_CODE[s.timeframe].name} {WhatToShow(s.what_to_show).name} {session_name(s.rth)}"
            for s in stored
        )
        raise BarsError(
            f"no {_series_label(query)} in the database (stored: {held or 'none'}): run `{hint}`"
        )
    zone = zone or zone_name(instrument.time_zone)
    first, last = _epochs(query, zone)
    batch = bars_read(
        instrument_id=instrument.pk,
        timeframe=query.timeframe.code,
        what_to_show=int(query.what_to_show),
        rth=query.rth,
        start=0 if first is None else first,
        end=LATEST if last is None else last,
    )
    exchange = instrument.primary_exchange or instrument.exchange
    return _Found(batch, zone, spec.label, exchange, instrument.currency, "the database")


# --- the catalog -------------------------------------------------------------------------------


def _catalog_root(root: str | Path | None) -> CatalogRoot:
    if root is not None:
        return _named(root)
    if os.environ.get("IBDATA_CATALOG"):
        return _named(os.environ["IBDATA_CATALOG"])
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        from django.conf import settings  # the project's settings: its .env counts

        if settings.DATA_CATALOG_URL:
            return _named(settings.DATA_CATALOG_URL)
        return Path(settings.DATA_DIR) / "catalog"
    if os.environ.get("DATA_CATALOG_URL"):
        return _named(os.environ["DATA_CATALOG_URL"])
    if os.environ.get("DATA_DIR"):
        return Path(os.environ["DATA_DIR"]).expanduser() / "catalog"
    return DEFAULT_CATALOG


def _named(root: str | Path) -> CatalogRoot:
    """An object storage URL as it is; a folder, with ~ expanded."""
    return str(root) if catalog_is_remote(str(root)) else Path(root).expanduser()


def _catalog_symbol(spec: InstrumentSpec) -> str:
    """The symbol the catalog files the series under: a forex pair's local symbol (EUR.USD)."""
    return f"{spec.symbol}.{spec.currency}" if spec.sec_type == "CASH" else spec.symbol


def _from_catalog(query: _Query, root: CatalogRoot, zone: str) -> _Found:
    filesystem, base = catalog_filesystem(root)
    if filesystem.get_file_info(base).type != pafs.FileType.Directory:
        raise BarsError(f"no catalog at {root}: pass root=, or set IBDATA_CATALOG or DATA_DIR")
    spec, symbol = query.spec, _catalog_symbol(query.spec)
    listings = _catalog_listings(root, query, symbol)
    venue = spec.text.partition(":")[2].strip().upper()
    if venue:
        listings = [(e, c) for e, c in listings if e == venue]
    if spec.sec_type == "CASH":
        listings = [(e, c) for e, c in listings if c == spec.currency]
    if not listings:
        held = _catalog_held(root, symbol)
        raise BarsError(
            f"no {_series_label(query)} in the catalog {root} (stored for {symbol}: "
            f"{held or 'nothing'})"
        )
    if len(listings) > 1:
        names = ", ".join(f"{symbol}:{e} ({c})" for e, c in listings)
        raise BarsError(f"{symbol} is in the catalog on several listings: name one of {names}")
    exchange, currency = listings[0]
    if not zone:
        listed = InstrumentSpec(
            spec.symbol, spec.sec_type, exchange, exchange, currency, text=spec.text
        )
        zone = spec_time_zone(listed) or ""
        if not zone:
            warnings.warn(
                f"the time zone of {spec.label} on {exchange} ({currency}) is not known from the "
                "catalog: the index is in UTC (pass tz=, a zone such as 'Europe/London', or read source='db')",
                stacklevel=3,
            )
    first, last = _epochs(query, zone)
    series = CatalogSeries(
        symbol=symbol,
        exchange=exchange,
        currency=currency,
        timeframe=query.timeframe,
        what_to_show=query.what_to_show.name,
        use_rth=query.rth,
    )
    batch = series.read(root=root, start=first, end=last)
    return _Found(batch, zone, spec.label, exchange, currency, str(root))


def _catalog_listings(root: CatalogRoot, query: _Query, symbol: str) -> list[tuple[str, str]]:
    """(exchange, currency) of each listing of `symbol` with the query's series: only the
    folder of that whatToShow, timeframe and session is listed (docs/catalog.md's layout)."""
    filesystem, base = catalog_filesystem(root)
    folder = (
        f"{base}/what_to_show={query.what_to_show.name}/timeframe={query.timeframe.name}"
        f"/session={session_name(query.rth)}"
    )
    if filesystem.get_file_info(folder).type != pafs.FileType.Directory:
        return []
    inner = pa.schema([PARTITION_SCHEMA.field(n) for n in ("symbol", "exchange", "currency")])
    dataset = ds.dataset(
        folder,
        filesystem=filesystem,
        format="parquet",
        partitioning=ds.partitioning(inner, flavor="hive"),
    )
    keys = [
        ds.get_partition_keys(fragment.partition_expression)
        for fragment in dataset.get_fragments(filter=ds.field("symbol") == symbol)
    ]
    return sorted({(k["exchange"], k["currency"]) for k in keys})


def _catalog_held(root: CatalogRoot, symbol: str) -> str:
    """What the catalog holds of `symbol`, from its folder names (no file opened)."""
    fragments = catalog_dataset(root).get_fragments(filter=ds.field("symbol") == symbol)
    keys = [ds.get_partition_keys(fragment.partition_expression) for fragment in fragments]
    names = sorted(
        {f"{k['timeframe']} {k['what_to_show']} {k['session']} on {k['exchange']}" for k in keys}
    )
    return ", ".join(names)


# --- the frame ---------------------------------------------------------------------------------


def _frame(found: _Found, query: _Query, source: str) -> pd.DataFrame:
    batch, zone = found.batch, found.zone or "UTC"
    if query.timeframe.intraday:
        index = pd.to_datetime(batch.ts, unit="s", utc=True).tz_convert(zone)
    else:  # stored at 00:00 UTC of the session's date: that date's midnight in the zone
        index = pd.to_datetime(batch.ts, unit="s").tz_localize(
            zone, nonexistent="shift_forward", ambiguous=False
        )
    index = pd.DatetimeIndex(index.as_unit("ns"), name="time")
    volume = np.full(len(batch), np.nan) if query.what_to_show in QUOTES else batch.volume.copy()
    frame = pd.DataFrame(
        {
            "Open": batch.open,
            "High": batch.high,
            "Low": batch.low,
            "Close": batch.close,
            "Volume": volume,
        },
        index=index,
        columns=list(COLUMNS),
    ).astype(np.float64)
    frame.attrs = {
        "symbol": found.symbol,
        "exchange": found.exchange,
        "currency": found.currency,
        "timeframe": query.timeframe.name,
        "what_to_show": query.what_to_show.name,
        "session": session_name(query.rth),
        "time_zone": zone,
        "source": source,
        "where": found.where,
    }
    return frame
