"""The fetch runs admin: progress and errors on the run page, cancel, and retry as a new run."""

from __future__ import annotations

import pytest
from django.urls import reverse

from fetcher.domain.requests import FetchRequest
from fetcher.domain.timeframes import TIMEFRAMES
from fetcher.models import Bar, ChunkStatus, FetchRun, Instrument, RunStatus
from fetcher.services.fetch_runs import fetch_run_create
from ibsim.server import Faults
from tests.support import settled

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "admin:fetcher_fetchrun_changelist"


def run_action(client, name: str, runs):
    data = {"action": name, "_selected_action": [r.pk for r in runs], "index": 0}
    return client.post(reverse(CHANGELIST), data, follow=True).content.decode()


def pending_run() -> FetchRun:
    return fetch_run_create(request=FetchRequest.parse(instruments="AAPL"))


@pytest.fixture
def going_and_done() -> tuple[FetchRun, FetchRun]:
    """A run still pending, and one that succeeded (with no failed request)."""
    going, done = pending_run(), pending_run()
    FetchRun.objects.filter(pk=done.pk).update(status=RunStatus.SUCCEEDED)
    return going, done


def test_a_going_run_page_reloads_itself_and_a_finished_one_does_not(admin_client):
    run = pending_run()
    page = reverse("admin:fetcher_fetchrun_change", args=[run.pk])
    html = admin_client.get(page).content.decode()
    assert '<meta http-equiv="refresh"' in html and 'id="cancel-run"' in html
    assert 'name="_save"' not in html  # read-only: a run is a record
    FetchRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    html = admin_client.get(page).content.decode()
    assert '<meta http-equiv="refresh"' not in html and 'id="cancel-run"' not in html
    assert 'id="retry-run"' not in html  # nothing failed: nothing to retry
    assert admin_client.get(reverse(CHANGELIST)).status_code == 200


def test_cancel_stops_a_pending_run_and_says_why_it_cannot_stop_a_finished_one(
    admin_client, going_and_done
):
    run, done = going_and_done
    html = run_action(admin_client, "cancel_runs", [run, done])
    assert f"Run {run.pk} cancelled." in html
    assert f"Run {done.pk} is already succeeded: nothing to cancel" in html
    assert FetchRun.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_retry_refuses_a_going_run_and_one_without_failures(admin_client, going_and_done):
    going, done = going_and_done
    html = run_action(admin_client, "retry_failed_chunks", [going, done])
    assert f"Run {going.pk} is still pending: wait for it to end, or cancel it" in html
    assert f"Run {done.pk} has no failed requests: nothing to retry" in html
    assert FetchRun.objects.count() == 2


def test_retry_fetches_the_failed_requests_again_in_a_new_run(
    admin_client, sim_factory, settings, tmp_path, in_process_tasks
):
    # the gateway never answers the first 6 requests: every attempt of one request times out
    sim = sim_factory(faults=Faults(stall_requests=6))
    settings.IBKR_HOST, settings.IBKR_PORT, settings.DATA_DIR = "127.0.0.1", sim.port, tmp_path
    settings.IBKR_REQUEST_TIMEOUT = 0.5
    aapl = Instrument.objects.create(symbol="AAPL", con_id=265598)
    admin_client.post(
        reverse("admin:fetcher_instrument_changelist"),
        {
            "action": "fetch_history",
            "_selected_action": [aapl.pk],
            "apply": "1",
            "timeframe": "1-MINUTE",
            "start": "2024-01-03",
            "end": "2024-01-03",
            "what_to_show": "TRADES",
            "use_rth": "on",
        },
    )
    failed = settled(FetchRun.objects.get())
    assert failed.status == RunStatus.FAILED
    [chunk] = failed.chunks.all()
    assert chunk.status == ChunkStatus.FAILED and chunk.attempts == 6
    page = admin_client.get(reverse("admin:fetcher_fetchrun_change", args=[failed.pk]))
    html = page.content.decode()
    assert "failed: 1" in html and chunk.last_error in html and 'id="retry-run"' in html
    requests_before = sim.stats.counts["historical_requests"]

    html = run_action(admin_client, "retry_failed_chunks", [failed])
    retry = settled(FetchRun.objects.exclude(pk=failed.pk).get())
    assert f"Failed requests of run {failed.pk} queued again" in html
    assert retry.status == RunStatus.SUCCEEDED, retry.error
    assert (str(retry.start), str(retry.end), retry.timeframe) == (
        "2024-01-03",
        "2024-01-03",
        TIMEFRAMES["1-MINUTE"].code,
    )
    assert sim.stats.counts["historical_requests"] == requests_before + 1
    assert Bar.objects.filter(instrument=aapl).count() == 390
    failed.refresh_from_db()
    assert failed.status == RunStatus.FAILED  # the first run's record stays as it ended
    chunks = admin_client.get(
        reverse("admin:fetcher_fetchchunk_changelist"), {"run__id__exact": failed.pk}
    )
    assert chunks.status_code == 200 and "1 fetch chunk" in chunks.content.decode()
