"""A run's chunks (one per planned request): answers stored, attempts that failed; coverage
forgotten where a repair fetches again."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Case, F, Value, When

from fetcher.domain.bars import BarBatch
from fetcher.domain.planning import intervals_merge, intervals_subtract
from fetcher.domain.time import epoch, from_epoch
from fetcher.models import ChunkStatus, Coverage, FetchChunk
from fetcher.storage.bars import SeriesBatch, bars_upsert_many

from .fetch_runs import ERROR_MAX_CHARS
from .progress import fetch_run_progress_add
from .series import series_claim

FINISHED_CHUNK = (ChunkStatus.DONE, ChunkStatus.EMPTY)


def chunks_store(*, results: list[tuple[int, BarBatch, int]]) -> int:
    """Store answered requests, each given as (chunk id, its bars, covered until): their bars
    (one COPY for all of them), coverage and chunk states, in one transaction.

    Safe to repeat: bars are upserted, and a chunk already stored is not counted again (its
    row is locked while it is stored, so a redelivered run waits and then skips it)."""
    given = {pk: (batch, until) for pk, batch, until in results}
    with transaction.atomic():
        chunks = [
            c
            for c in FetchChunk.objects.select_related("run")
            .select_for_update(of=("self",))
            .filter(pk__in=given)
            .order_by("pk")
            if c.status not in FINISHED_CHUNK
        ]
        if not chunks:
            return 0
        run = chunks[0].run
        for instrument_id in {c.instrument_id for c in chunks}:
            series_claim(
                instrument_id=instrument_id,
                timeframe=run.timeframe,
                what_to_show=run.what_to_show,
                rth=run.use_rth,
                source=run.source,
                account=run.account,
            )
        written = bars_upsert_many(
            series=[
                SeriesBatch(
                    c.instrument_id, run.timeframe, run.what_to_show, run.use_rth, given[c.pk][0]
                )
                for c in chunks
            ],
            fresh=True,
        )
        # a window is covered up to its end, or up to the last complete bar when still open
        covered_end = {c.pk: min(epoch(c.window_end), given[c.pk][1]) for c in chunks}
        Coverage.objects.bulk_create(
            Coverage(
                instrument_id=c.instrument_id,
                timeframe=run.timeframe,
                what_to_show=run.what_to_show,
                rth=run.use_rth,
                start=c.window_start,
                end=from_epoch(covered_end[c.pk]),
                source=run.source,
            )
            for c in chunks
            if covered_end[c.pk] > epoch(c.window_start)
        )
        received = {c.pk: len(given[c.pk][0]) for c in chunks}
        FetchChunk.objects.filter(pk__in=received).update(
            status=Case(
                *(
                    When(pk=pk, then=Value(ChunkStatus.EMPTY))
                    for pk, n in received.items()
                    if not n
                ),
                default=Value(ChunkStatus.DONE),
            ),
            bars_received=Case(*(When(pk=pk, then=Value(n)) for pk, n in received.items())),
            attempts=F("attempts") + 1,
        )
        per_item: dict[int, list[int]] = {}
        for c in chunks:
            counts = per_item.setdefault(c.item_id, [0, 0])
            counts[0] += received[c.pk]
            counts[1] += 1
        for item_id, (bars, done) in per_item.items():
            fetch_run_progress_add(
                run_id=run.pk, item_id=item_id, chunks_done=done, bars=bars, requests=done
            )
    return written


def chunk_fail(*, chunk_id: int, code: int | None, message: str, final: bool) -> None:
    """Record a failed attempt; `final` when no retry will follow."""
    chunk = FetchChunk.objects.get(pk=chunk_id)
    with transaction.atomic():
        FetchChunk.objects.filter(pk=chunk_id).update(
            status=ChunkStatus.FAILED if final else ChunkStatus.PENDING,
            attempts=F("attempts") + 1,
            last_error_code=code,
            last_error=message[:ERROR_MAX_CHARS],
        )
        fetch_run_progress_add(run_id=chunk.run_id, requests=1, errors=1)


def coverage_forget(
    *,
    instrument_id: int,
    timeframe: int,
    what_to_show: int,
    rth: bool,
    windows: list[tuple[int, int]],
) -> int:
    """Stop counting these windows (epoch seconds) of a series as stored, so a fetch asks for
    them again: coverage rows overlapping them are cut (what lies outside them stays covered).
    Returns the rows cut."""
    windows = intervals_merge(windows)
    if not windows:
        return 0
    key = {
        "instrument_id": instrument_id,
        "timeframe": timeframe,
        "what_to_show": what_to_show,
        "rth": rth,
    }
    with transaction.atomic():
        overlapping = [
            row
            for row in Coverage.objects.select_for_update()
            .filter(**key, start__lt=from_epoch(windows[-1][1]), end__gt=from_epoch(windows[0][0]))
            .order_by("start")
            if any(a < epoch(row.end) and epoch(row.start) < b for a, b in windows)
        ]
        if not overlapping:
            return 0
        Coverage.objects.filter(pk__in=[row.pk for row in overlapping]).delete()
        Coverage.objects.bulk_create(
            Coverage(**key, start=from_epoch(a), end=from_epoch(b), source=row.source)
            for row in overlapping
            for a, b in intervals_subtract(epoch(row.start), epoch(row.end), windows)
        )
    return len(overlapping)
