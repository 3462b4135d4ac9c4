"""The Django admin: pages render, and a fetch can be started from the instrument list."""

from __future__ import annotations

import pytest
from django.urls import reverse

from fetcher.models import FetchRun, Instrument, RequestedBy, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_pages_render(admin_client):
    Instrument.objects.create(symbol="AAPL", con_id=265598)
    for name in ("instrument", "fetchrun", "fetchchunk"):
        response = admin_client.get(reverse(f"admin:fetcher_{name}_changelist"))
        assert response.status_code == 200, name


def test_admin_action_fetches_daily_bars(admin_client, sim, settings, tmp_path, in_process_tasks):
    settings.IBKR_HOST, settings.IBKR_PORT, settings.DATA_DIR = "127.0.0.1", sim.port, tmp_path
    aapl = Instrument.objects.create(symbol="AAPL", con_id=265598)
    response = admin_client.post(
        reverse("admin:fetcher_instrument_changelist"),
        {"action": "fetch_daily_update", "_selected_action": [aapl.pk]},
        follow=True,
    )
    assert response.status_code == 200
    run = FetchRun.objects.get()
    assert run.requested_by == RequestedBy.ADMIN
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.bars_stored > 6000  # since AAPL's first data
    response = admin_client.get(reverse("admin:fetcher_fetchrun_change", args=[run.pk]))
    assert response.status_code == 200 and b"AAPL" in response.content
