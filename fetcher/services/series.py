"""Stored series: claimed (with their source) when bars are written, counted when a fetch ends."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from fetcher.models import Series
from fetcher.selectors import series_stats

from .provenance import source_mismatch, sources_mix


def series_claim(
    *, instrument_id: int, timeframe: int, what_to_show: int, rth: bool, source: str, account: str
) -> None:
    """The Series bars are about to be written to, created with its source when new; refused
    when it holds bars of another kind (the same check as store_source_check, per series)."""
    key = {"instrument_id": instrument_id, "timeframe": timeframe, "what_to_show": what_to_show}
    claimed = Series.objects.filter(**key, rth=rth).values_list("source", "account").first()
    if claimed is not None:  # the common case: written to before, one plain read
        if not sources_mix(claimed[0], source):
            raise source_mismatch(claimed, (source, account), "This database")
        return
    with transaction.atomic():
        series, _ = Series.objects.get_or_create(
            **key, rth=rth, defaults={"source": source, "account": account}
        )
    if not sources_mix(series.source, source):
        raise source_mismatch((series.source, series.account), (source, account), "This database")


def series_refresh(*, instrument_id: int, timeframe: int, what_to_show: int, rth: bool) -> None:
    """Count a series' bars and note its first and last bar (one primary-key range scan)."""
    count, first, last = series_stats(
        instrument_id=instrument_id, timeframe=timeframe, what_to_show=what_to_show, rth=rth
    )
    Series.objects.filter(
        instrument_id=instrument_id, timeframe=timeframe, what_to_show=what_to_show, rth=rth
    ).update(bar_count=count, first_ts=first, last_ts=last, updated_at=timezone.now())


def series_key(series: Series) -> dict:
    """A Series' key as the Bar table and the selectors name it."""
    return {
        "instrument_id": series.instrument_id,
        "timeframe": series.timeframe,
        "what_to_show": series.what_to_show,
        "rth": series.rth,
    }
