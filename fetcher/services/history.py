"""A series swapped whole after IBKR's history changed under it (a split), and what a run says of
it: old bars never stay beside new ones, in the database or the catalog."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from fetcher.domain.bars import BarBatch
from fetcher.domain.planning import intervals_merge
from fetcher.domain.time import from_epoch
from fetcher.domain.timeframes import BY_CODE, WhatToShow
from fetcher.models import Bar, Coverage, FetchRunItem, Instrument
from fetcher.storage.bars import SeriesBatch, bars_upsert_many
from fetcher.storage.catalog import CatalogSeries

from .progress import fetch_run_progress_add
from .series import series_claim, series_refresh

HISTORY_MAX_CHARS = 300


def series_replace(
    *,
    instrument_id: int,
    timeframe: int,
    what_to_show: int,
    rth: bool,
    batch: BarBatch,
    covered: list[tuple[int, int]],
    source: str,
    account: str,
    catalog_root: Path,
) -> int:
    """Make `batch` (the series fetched again) the series' bars, and `covered` its coverage: in
    the database in one transaction (bars, coverage, counts), in the catalog whole (the new
    files written first, put in place once the transaction has committed). Returns len(batch)."""
    key = {
        "instrument_id": instrument_id,
        "timeframe": timeframe,
        "what_to_show": what_to_show,
        "rth": rth,
    }
    catalog = CatalogSeries.of_instrument(
        Instrument.objects.get(pk=instrument_id),
        timeframe=BY_CODE[timeframe],
        what_to_show=WhatToShow(what_to_show).name,
        use_rth=rth,
    )
    with catalog.replacing(batch, root=catalog_root), transaction.atomic():
        series_claim(**key, source=source, account=account)
        Bar.objects.filter(**key).delete()
        Coverage.objects.filter(**key).delete()
        bars_upsert_many(series=[SeriesBatch(**key, batch=batch)], fresh=True)
        Coverage.objects.bulk_create(
            Coverage(**key, start=from_epoch(lo), end=from_epoch(hi), source=source)
            for lo, hi in intervals_merge(covered)
        )
        series_refresh(**key)
    return len(batch)


def item_history_record(
    *, run_id: int, item_id: int, text: str, bars: int = 0, requests: int = 0
) -> None:
    """What a run saw of the history under an item's stored bars and did about it, with the bars
    and requests that took."""
    with transaction.atomic():
        FetchRunItem.objects.filter(pk=item_id).update(history=text[:HISTORY_MAX_CHARS])
        fetch_run_progress_add(run_id=run_id, item_id=item_id, bars=bars, requests=requests)
