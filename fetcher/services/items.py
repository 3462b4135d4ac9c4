"""A run's items (one per instrument): their plan, their failure, and what they stored exported
to the catalog (whatever became of the run)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.db import transaction

from fetcher.domain.bars import BarBatch
from fetcher.domain.instruments import InstrumentSpec
from fetcher.domain.planning import FetchPlan, intervals_merge
from fetcher.domain.time import date_epoch, epoch, from_epoch
from fetcher.domain.timeframes import BY_CODE, WhatToShow
from fetcher.models import FetchChunk, FetchRunItem, Instrument, ItemStatus
from fetcher.selectors import bars_read, chunks_export_pending, fetch_run_items_export_pending
from fetcher.storage.catalog import CatalogSeries

from .fetch_runs import ERROR_MAX_CHARS
from .progress import fetch_run_progress_add
from .series import series_refresh

NOTE_MAX_CHARS = 200
CATALOG_SLICE_BARS = 500_000  # most bars read back from the database at a time


def item_plan(*, item_id: int, instrument_id: int, plan: FetchPlan) -> list[FetchChunk]:
    """Record an item's range and its planned requests; a redelivered item keeps its chunks."""
    with transaction.atomic():
        item = FetchRunItem.objects.select_for_update().get(pk=item_id)
        existing = list(FetchChunk.objects.filter(item=item).order_by("window_start"))
        if existing:
            return existing
        item.instrument_id = instrument_id
        item.start, item.end = from_epoch(plan.start), from_epoch(plan.end)
        item.note = plan.note[:NOTE_MAX_CHARS]
        item.status = ItemStatus.RUNNING if plan.requests else ItemStatus.SUCCEEDED
        item.save()
        chunks = FetchChunk.objects.bulk_create(
            FetchChunk(
                run_id=item.run_id,
                item=item,
                instrument_id=instrument_id,
                window_start=from_epoch(p.window_start),
                window_end=from_epoch(p.window_end),
                duration=p.duration,
                request_end=p.end,
            )
            for p in plan.requests
        )
        fetch_run_progress_add(
            run_id=item.run_id, item_id=item.pk, chunks_planned=len(plan.requests)
        )
    return chunks


def item_fail(*, item_id: int, message: str, code: int | None = None) -> None:
    """An item that cannot be fetched at all (unknown contract, no permissions...)."""
    item = FetchRunItem.objects.get(pk=item_id)
    with transaction.atomic():
        FetchRunItem.objects.filter(pk=item_id).update(
            status=ItemStatus.FAILED, error=message[:ERROR_MAX_CHARS], error_code=code
        )
        fetch_run_progress_add(run_id=item.run_id, errors=1)


def item_spec(item: FetchRunItem) -> InstrumentSpec:
    """The contract an item asks for, as the run recorded it."""
    return InstrumentSpec.from_contract_fields(item, text=item.spec)


def item_store_finish(*, item_id: int, catalog_root: Path) -> int:
    """After an item's requests: its series counted, and what it stored exported."""
    item = FetchRunItem.objects.select_related("run", "instrument").get(pk=item_id)
    if item.instrument is None:
        return 0
    run = item.run
    return series_store_finish(
        instrument=item.instrument,
        timeframe=run.timeframe,
        what_to_show=run.what_to_show,
        rth=run.use_rth,
        catalog_root=catalog_root,
    )


def fetch_run_store_finish(*, run_id: int, catalog_root: Path) -> int:
    """After a run, whatever became of it (succeeded, cancelled part way, failed, given up
    after its worker died): every item that stored bars not yet in the catalog finished as
    item_store_finish does. Nothing to do (one query) when each item finished on its own."""
    return sum(
        item_store_finish(item_id=item_id, catalog_root=catalog_root)
        for item_id in fetch_run_items_export_pending(run_id=run_id)
    )


def series_store_finish(
    *, instrument: Instrument, timeframe: int, what_to_show: int, rth: bool, catalog_root: Path
) -> int:
    """A series bars were stored into: its counts refreshed, and its stored requests not yet
    in the catalog (this run's, or any earlier run's that ended before exporting) merged into
    it from the database. Returns the bars written to the catalog."""
    series_refresh(
        instrument_id=instrument.pk, timeframe=timeframe, what_to_show=what_to_show, rth=rth
    )
    pending = chunks_export_pending(
        instrument_id=instrument.pk, timeframe=timeframe, what_to_show=what_to_show, rth=rth
    )
    if not pending:
        return 0
    written = series_catalog_export(
        instrument=instrument,
        timeframe=timeframe,
        what_to_show=what_to_show,
        rth=rth,
        windows=intervals_merge([(epoch(a), epoch(b)) for _, a, b in pending]),
        catalog_root=catalog_root,
    )
    FetchChunk.objects.filter(pk__in=[pk for pk, _, _ in pending]).update(exported=True)
    return written


def series_catalog_export(
    *,
    instrument: Instrument,
    timeframe: int,
    what_to_show: int,
    rth: bool,
    windows: list[tuple[int, int]],
    catalog_root: Path,
) -> int:
    """Merge a series' stored bars within `windows` (epoch seconds) into the Parquet catalog,
    from the database (the source of truth), one catalog partition (a UTC year) at a time: in
    each year the span from its first window to its last, read whole when it holds at most
    CATALOG_SLICE_BARS bars (one merge per file), else in slices of that many. Idempotent."""
    series = CatalogSeries.of_instrument(
        instrument,
        timeframe=BY_CODE[timeframe],
        what_to_show=WhatToShow(what_to_show).name,
        use_rth=rth,
    )
    spans: dict[int, tuple[int, int]] = {}
    for lo, hi in windows:
        cursor = lo
        while cursor < hi:  # a window across New Year counts in both years
            year_end = min(hi, _next_year(cursor))
            year = from_epoch(cursor).year
            low, high = spans.get(year, (cursor, year_end))
            spans[year] = (min(low, cursor), max(high, year_end))
            cursor = year_end
    written = 0
    for start, end in sorted(spans.values()):
        cursor = start
        while cursor < end:
            batch = bars_read(
                instrument_id=instrument.pk,
                timeframe=timeframe,
                what_to_show=what_to_show,
                rth=rth,
                start=cursor,
                end=end,
                first=CATALOG_SLICE_BARS,
            )
            if len(batch):
                written += series.write(batch, root=catalog_root)
            full = len(batch) == CATALOG_SLICE_BARS
            cursor = int(batch.ts[-1]) + 1 if full else end
    return written


def series_catalog_rebuild(
    *,
    catalog: CatalogSeries,
    years: list[int],
    catalog_root: Path,
    instrument_id: int | None = None,
    timeframe: int = 0,
    what_to_show: int = 0,
    rth: bool = True,
) -> int:
    """Make a series' catalog files of these UTC years hold exactly the database's bars
    (`instrument_id` None: a series the database does not have, its files removed), each
    partition replaced atomically. Returns the bars written."""
    written = 0
    for year in sorted(set(years)):
        start = date_epoch(dt.date(year, 1, 1))
        batch = (
            bars_read(
                instrument_id=instrument_id,
                timeframe=timeframe,
                what_to_show=what_to_show,
                rth=rth,
                start=start,
                end=_next_year(start),
            )
            if instrument_id is not None
            else BarBatch.empty()
        )
        catalog.year_replace(year, batch, root=catalog_root)
        written += len(batch)
    return written


def _next_year(ts: int) -> int:
    """The start of the UTC year after the one `ts` falls in (epoch seconds)."""
    return date_epoch(dt.date(from_epoch(ts).year + 1, 1, 1))
