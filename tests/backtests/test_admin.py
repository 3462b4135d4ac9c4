"""The admin's backtest runs: a read-only list and detail of what `manage.py backtest` stored."""

from __future__ import annotations

import pytest
from django.urls import reverse

from backtests.models import BacktestRun

pytestmark = pytest.mark.django_db(transaction=True)


def test_backtest_runs_list_and_detail_read_only(admin_client, gateway, backtest):
    code, out, err = backtest("--symbols", "AAPL", "--start", "2024-01-01", "--end", "2024-12-31")
    assert code == 0, err
    run = BacktestRun.objects.get()
    listing = admin_client.get(reverse("admin:backtests_backtestrun_changelist"))
    assert listing.status_code == 200
    assert b"AAPL" in listing.content and b"Sharpe" in listing.content
    detail = admin_client.get(reverse("admin:backtests_backtestrun_change", args=[run.pk]))
    assert detail.status_code == 200
    assert b"Return [%]" in detail.content and b"EntryPrice" in detail.content
    assert b'name="_save"' not in detail.content  # nothing to change
    assert admin_client.get(reverse("admin:backtests_backtestrun_add")).status_code == 403
