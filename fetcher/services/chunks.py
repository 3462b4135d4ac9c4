"""A run's chunks (one per planned request): answers stored (bars, coverage, suspect empty
windows), attempts that failed; coverage forgotten where a repair fetches again."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from fetcher.domain.bars import BarBatch
from fetcher.domain.planning import intervals_merge, intervals_subtract
from fetcher.domain.sessions import listing_sessions
from fetcher.domain.time import epoch, from_epoch
from fetcher.domain.timeframes import BY_CODE
from fetcher.models import ChunkStatus, Coverage, FetchChunk, Instrument
from fetcher.storage.bars import SeriesBatch, bars_upsert_many

from .fetch_runs import ERROR_MAX_CHARS
from .progress import fetch_run_progress_add
from .series import series_claim

FINISHED_CHUNK = (ChunkStatus.DONE, ChunkStatus.EMPTY)
# Not stored: a chunk stored already, or one of a run cancelled meanwhile. Its answer came too
# late: the run has ended, and what it stored has gone to the catalog (with several gateways,
# another gateway's answer can come after the run's last export).
NOT_STORED = (*FINISHED_CHUNK, ChunkStatus.CANCELLED)


def chunks_store(*, results: list[tuple[int, BarBatch, int]], gateway: str = "") -> int:
    """Store answered requests, each given as (chunk id, its bars, covered until): their bars
    (one COPY for all of them), coverage and chunk states (and the gateway that answered them),
    in one transaction.

    Safe to repeat: bars are upserted, and a chunk already stored is not counted again (its
    row is locked while it is stored, so a redelivered run waits and then skips it). A chunk
    its run's cancel marked cancelled is not stored either (NOT_STORED)."""
    given = {pk: (batch, until) for pk, batch, until in results}
    with transaction.atomic():
        chunks = [
            c
            for c in FetchChunk.objects.select_related("run")
            .select_for_update(of=("self",))
            .filter(pk__in=given)
            .order_by("pk")
            if c.status not in NOT_STORED
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
        _coverage_add(run, chunks, given)
        received = {c.pk: len(given[c.pk][0]) for c in chunks}
        _chunks_answered(received, gateway)
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


def _coverage_add(run, chunks, given) -> None:
    """The windows these answers cover: each up to its end, or up to the last complete bar
    when still open; those answered empty where a session traded are suspect."""
    covered_end = {c.pk: min(epoch(c.window_end), given[c.pk][1]) for c in chunks}
    answered = [c for c in chunks if covered_end[c.pk] > epoch(c.window_start)]
    suspects = _suspects_answered(run, answered, given, covered_end)
    Coverage.objects.bulk_create(
        Coverage(
            instrument_id=c.instrument_id,
            timeframe=run.timeframe,
            what_to_show=run.what_to_show,
            rth=run.use_rth,
            start=c.window_start,
            end=from_epoch(covered_end[c.pk]),
            source=run.source,
            **suspects.get(c.pk, {}),
        )
        for c in answered
    )


def _chunks_answered(received: dict[int, int], gateway: str) -> None:
    """Chunks answered ({id: bars received}): done, or empty when no bars came (one UPDATE)."""
    FetchChunk.objects.filter(pk__in=received).update(
        status=Case(
            *(When(pk=pk, then=Value(ChunkStatus.EMPTY)) for pk, n in received.items() if not n),
            default=Value(ChunkStatus.DONE),
        ),
        bars_received=Case(*(When(pk=pk, then=Value(n)) for pk, n in received.items())),
        attempts=F("attempts") + 1,
        updated_at=timezone.now(),  # update() leaves auto_now fields as they were
        **({"gateway": gateway} if gateway else {}),
    )


def _suspects_answered(run, chunks, given, covered_end) -> dict[int, dict]:
    """The suspect coverage of these answers: {chunk id: its fields} for those answered empty
    although the instrument's calendar says a session traded in the window, first seen and
    counted across fetches. The suspect windows these answers cover are replaced (healed by
    bars, or answered empty once more)."""
    series = Coverage.objects.filter(
        instrument_id__in={c.instrument_id for c in chunks},
        timeframe=run.timeframe,
        what_to_show=run.what_to_show,
        rth=run.use_rth,
    )
    earlier = list(series.filter(empty_since__isnull=False))
    instruments = Instrument.objects.in_bulk({c.instrument_id for c in chunks})
    daily = not BY_CODE[run.timeframe].intraday
    now, suspects, replaced = timezone.now(), {}, []
    for c in chunks:
        lo, hi = epoch(c.window_start), covered_end[c.pk]
        inside = [
            e
            for e in earlier
            if e.instrument_id == c.instrument_id and lo <= epoch(e.start) and epoch(e.end) <= hi
        ]
        replaced += [e.pk for e in inside]
        if len(given[c.pk][0]) or not _traded(instruments[c.instrument_id], lo, hi, run, daily):
            continue
        suspects[c.pk] = {
            "empty_since": min([now, *(e.empty_since for e in inside)]),
            "empty_tries": max([0, *(e.empty_tries for e in inside)]) + 1,
        }
    series.filter(pk__in=replaced).delete()
    return suspects


def _traded(instrument: Instrument, start: int, end: int, run, daily: bool) -> bool:
    sessions = listing_sessions(instrument)
    return sessions.traded(start, end, run.use_rth, daily=daily)


def chunk_fail(*, chunk_id: int, code: int | None, message: str, final: bool) -> None:
    """Record a failed attempt; `final` when no retry will follow. A chunk of a cancelled run
    stays cancelled."""
    chunk = FetchChunk.objects.get(pk=chunk_id)
    with transaction.atomic():
        FetchChunk.objects.filter(pk=chunk_id).exclude(status=ChunkStatus.CANCELLED).update(
            status=ChunkStatus.FAILED if final else ChunkStatus.PENDING,
            attempts=F("attempts") + 1,
            last_error_code=code,
            last_error=message[:ERROR_MAX_CHARS],
            updated_at=timezone.now(),
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
            Coverage(
                **key,
                start=from_epoch(a),
                end=from_epoch(b),
                source=row.source,
                empty_since=row.empty_since,  # what is left of a suspect window stays one
                empty_tries=row.empty_tries,
            )
            for row in overlapping
            for a, b in intervals_subtract(epoch(row.start), epoch(row.end), windows)
        )
    return len(overlapping)
