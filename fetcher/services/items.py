"""A run's items (one per instrument): their plan, their failure, their catalog export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.db import transaction

from fetcher.domain.instruments import InstrumentSpec
from fetcher.domain.planning import FetchPlan
from fetcher.domain.time import date_epoch, epoch, from_epoch
from fetcher.domain.timeframes import BY_CODE, WhatToShow
from fetcher.models import FetchChunk, FetchRunItem, ItemStatus
from fetcher.selectors import bars_read
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
    """After an item's requests: its series' counts, and its bars merged into the catalog."""
    item = FetchRunItem.objects.select_related("run", "instrument").get(pk=item_id)
    if item.instrument is None or item.start is None or item.end is None:
        return 0
    run = item.run
    series_refresh(
        instrument_id=item.instrument_id,
        timeframe=run.timeframe,
        what_to_show=run.what_to_show,
        rth=run.use_rth,
    )
    return item_catalog_export(item=item, catalog_root=catalog_root)


def item_catalog_export(*, item: FetchRunItem, catalog_root: Path) -> int:
    """Merge an item's stored bars into the Parquet catalog, from the database (the source of
    truth), one catalog partition (a UTC year) at a time: a year read whole when it holds at
    most CATALOG_SLICE_BARS bars (one merge per file), else in slices of that many. Idempotent:
    after a crash the next run of the item writes it again."""
    run, instrument = item.run, item.instrument
    series = CatalogSeries.of_instrument(
        instrument,
        timeframe=BY_CODE[run.timeframe],
        what_to_show=WhatToShow(run.what_to_show).name,
        use_rth=run.use_rth,
    )
    start, end = epoch(item.start), epoch(item.end)
    written = 0
    cursor = start
    while cursor < end:
        year_end = min(end, _next_year(cursor))
        batch = bars_read(
            instrument_id=instrument.pk,
            timeframe=run.timeframe,
            what_to_show=run.what_to_show,
            rth=run.use_rth,
            start=cursor,
            end=year_end,
            first=CATALOG_SLICE_BARS,
        )
        if len(batch):
            written += series.write(batch, root=catalog_root)
        full = len(batch) == CATALOG_SLICE_BARS
        cursor = int(batch.ts[-1]) + 1 if full else year_end
    return written


def _next_year(ts: int) -> int:
    """The start of the UTC year after the one `ts` falls in (epoch seconds)."""
    return date_epoch(dt.date(from_epoch(ts).year + 1, 1, 1))
