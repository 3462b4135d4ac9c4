"""Claims of a run's chunks by several gateways (services.sharing): at most `limit`, small-bar
runs' chunks apart (`small_limit`), never a chunk held by a live claim, a lapsed claim taken
over, a released chunk free at once; an answer that comes after its run was cancelled is not
stored."""

from __future__ import annotations

import datetime as dt

import pytest

from fetcher.domain.requests import FetchRequest
from fetcher.domain.time import epoch
from fetcher.models import Bar, ChunkStatus, FetchChunk, FetchRun, Instrument, RunStatus
from fetcher.services.chunks import chunk_fail, chunks_store
from fetcher.services.fetch_runs import fetch_run_cancel, fetch_run_create
from fetcher.services.sharing import chunk_release, chunks_claim
from tests.support import T0, make_bars

pytestmark = pytest.mark.django_db


def running_run(timeframe: str, chunks: int) -> FetchRun:
    Instrument.objects.get_or_create(symbol="AAPL", defaults={"con_id": 265598})
    run = fetch_run_create(request=FetchRequest.parse(instruments="AAPL", timeframe=timeframe))
    FetchRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    item = run.items.get()
    FetchChunk.objects.bulk_create(
        FetchChunk(
            run=run,
            item=item,
            instrument=item.instrument or Instrument.objects.get(symbol="AAPL"),
            window_start=T0 + dt.timedelta(hours=k),
            window_end=T0 + dt.timedelta(hours=k + 1),
            duration="3600 S",
            request_end="20240102-00:00:00",
        )
        for k in range(chunks)
    )
    return run


def test_small_bar_chunks_are_claimed_apart_and_claims_exclude_each_other():
    small = running_run("5-SECOND", 20)
    minutes = running_run("1-MINUTE", 60)

    first = chunks_claim(gateway="g1", claim_s=10, limit=45, small_limit=3)
    assert len(first) == 45
    assert sum(c.run_id == small.pk for c in first) == 3  # the small ones, at most 3
    assert {c.run_timeframe for c in first} == {small.timeframe, minutes.timeframe}

    second = chunks_claim(gateway="g2", claim_s=10, limit=45, small_limit=0)
    assert {c.run_id for c in second} == {minutes.pk}  # no small one at all
    assert len(second) == 60 - 42  # what g1 did not hold
    assert not {c.pk for c in first} & {c.pk for c in second}

    everything = chunks_claim(gateway="g3", claim_s=10, limit=100)  # no small limit
    assert [c.run_id for c in everything] == [small.pk] * 17
    held = FetchChunk.objects.filter(status=ChunkStatus.PENDING)
    assert dict(held.values_list("pk", "gateway")) == {
        **{c.pk: "g1" for c in first},
        **{c.pk: "g2" for c in second},
        **{c.pk: "g3" for c in everything},
    }


def test_a_released_or_lapsed_claim_is_free_for_another_gateway():
    running_run("1-MINUTE", 2)
    [a, b] = chunks_claim(gateway="g1", claim_s=10, limit=2)
    assert chunks_claim(gateway="g2", claim_s=10, limit=2) == []
    chunk_release(gateway="g1", chunk_id=a.pk)
    FetchChunk.objects.filter(pk=b.pk).update(claimed_until=T0)  # g1 went away long ago
    taken = chunks_claim(gateway="g2", claim_s=10, limit=2)
    assert sorted(c.pk for c in taken) == sorted([a.pk, b.pk])


def test_answers_that_come_after_their_run_was_cancelled_are_not_stored():
    """Another gateway's answers to chunks it claimed before the cancel: the run has ended
    and exported what it stored, so they are dropped (not stored behind the catalog's back), and
    a failure does not bring a cancelled chunk back to pending."""
    run = running_run("1-MINUTE", 3)
    [a, b, c] = chunks_claim(gateway="g2", claim_s=10, limit=3)
    chunks_store(results=[(a.pk, make_bars([epoch(a.window_start)]), epoch(a.window_end))])
    fetch_run_cancel(run_id=run.pk)

    late = make_bars([epoch(b.window_start) + 60 * k for k in range(5)])
    assert chunks_store(results=[(b.pk, late, epoch(b.window_end))], gateway="g2") == 0
    chunk_fail(chunk_id=c.pk, code=162, message="HMDS query returned no data", final=False)

    statuses = dict(FetchChunk.objects.filter(run=run).values_list("pk", "status"))
    assert statuses == {
        a.pk: ChunkStatus.DONE,
        b.pk: ChunkStatus.CANCELLED,
        c.pk: ChunkStatus.CANCELLED,
    }
    assert Bar.objects.count() == 1
    run.refresh_from_db()
    assert (run.status, run.chunks_done, run.bars_stored) == (RunStatus.CANCELLED, 1, 1)
