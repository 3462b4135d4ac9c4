"""The executor of one run on one gateway connection, in this process (fetch_run_execute): its
progress, a cancel, a dropped connection and an unexpected error, against the simulator."""

from __future__ import annotations

import pytest

from fetcher.domain.requests import FetchRequest
from fetcher.execution.executor import fetch_run_execute
from fetcher.models import Bar, ChunkStatus, FetchChunk, FetchRun, RequestedBy, RunStatus
from fetcher.services.fetch_runs import fetch_run_create
from fetcher.services.submit import fetch_submit
from ibsim.server import Faults
from tests.support import truth_times, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
# Nine sessions of 1-minute bars: nine requests of 390 bars.
NINE = {"instruments": "AAPL", "timeframe": "1-MINUTE", "start": "2024-01-02", "end": "2024-01-12"}


def stored_times() -> list[int]:
    return [int(ts.timestamp()) for ts in Bar.objects.order_by("ts").values_list("ts", flat=True)]


def test_progress_counts_every_request_and_bar_of_the_run(sim, point_at):
    point_at(sim)
    run = fetch_run_create(request=FetchRequest.parse(**NINE))
    events: list[dict] = []
    assert fetch_run_execute(run_id=run.pk, progress=events.append).status == RunStatus.SUCCEEDED
    assert [e["event"] for e in events].count("planned") == 1
    assert [e["event"] for e in events].count("chunk_done") == 9
    last = events[-1]
    assert (last["run_id"], last["chunks_planned"], last["chunks_done"]) == (run.pk, 9, 9)
    assert last["bars"] == 9 * 390 == Bar.objects.count()
    assert {e["instrument"] for e in events} == {"AAPL"}


def test_a_cancelled_run_ends_and_cancels_its_open_requests_on_the_gateway(sim_factory, point_at):
    sim = point_at(sim_factory(faults=Faults(stall_requests=3)))  # never answered until cancelled
    handle = fetch_submit(request=FetchRequest.parse(**NINE), requested_by=RequestedBy.CLI)
    wait_until(
        lambda: FetchRun.objects.get(pk=handle.run_id).chunks_done == 6, 30, "six answers stored"
    )
    handle.cancel()
    assert handle.wait(timeout_s=30).run.status == RunStatus.CANCELLED
    statuses = sorted(FetchChunk.objects.values_list("status", flat=True))
    assert statuses == [ChunkStatus.CANCELLED] * 3 + [ChunkStatus.DONE] * 6
    wait_until(lambda: sim.stats.counts["cancelled"] == 3, 10, "the gateway told to cancel")
    assert Bar.objects.count() == 6 * 390


def test_a_dropped_connection_is_reconnected_and_every_bar_stored_once(sim_factory, point_at):
    sim = point_at(sim_factory(faults=Faults(drop_after_requests=4)))
    run = fetch_run_create(request=FetchRequest.parse(**NINE))
    assert fetch_run_execute(run_id=run.pk).status == RunStatus.SUCCEEDED
    assert sim.stats.counts["dropped_connections"] == 1 and sim.stats.counts["connections"] == 2
    assert stored_times() == truth_times(sim, "AAPL", "1 min", "2024-01-02", "2024-01-12")


def test_an_unexpected_error_fails_the_run_with_one_line(sim, point_at, settings):
    point_at(sim)
    settings.DATA_DIR.mkdir(parents=True)
    (settings.DATA_DIR / "catalog").write_text("a file where the catalog folder belongs")
    run = fetch_run_create(request=FetchRequest.parse(**NINE))
    done = fetch_run_execute(run_id=run.pk)
    assert done.status == RunStatus.FAILED
    assert done.error.startswith("unexpected error: ") and "\n" not in done.error
