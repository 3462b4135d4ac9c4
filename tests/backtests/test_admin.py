"""The admin's backtest runs: a read-only list and detail of what `manage.py backtest` stored,
and each run's trades and equity curve as CSV downloads."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Permission, User
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
    assert b"Return [%]" in detail.content and b"entry price" in detail.content
    assert b'id="equity-chart"' in detail.content
    assert b'name="_save"' not in detail.content  # nothing to change
    assert admin_client.get(reverse("admin:backtests_backtestrun_add")).status_code == 403


def test_a_runs_trades_and_equity_download_as_csv(admin_client, client, gateway, backtest):
    code, out, err = backtest("--symbols", "AAPL", "--start", "2024-01-01", "--end", "2024-12-31")
    assert code == 0, err
    run = BacktestRun.objects.get()
    detail = admin_client.get(reverse("admin:backtests_backtestrun_change", args=[run.pk]))
    trades_url = reverse("admin:backtests_backtestrun_trades_csv", args=[run.pk])
    equity_url = reverse("admin:backtests_backtestrun_equity_csv", args=[run.pk])
    assert trades_url.encode() in detail.content and equity_url.encode() in detail.content
    response = admin_client.get(trades_url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert f"backtest-{run.pk}-trades.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == len(run.trades) > 0
    assert {r["Symbol"] for r in rows} == {"AAPL"}
    assert [float(r["PnL"]) for r in rows] == [t["PnL"] for t in run.trades]
    curve = list(csv.DictReader(io.StringIO(admin_client.get(equity_url).content.decode())))
    assert [(r["Time"], float(r["Equity"])) for r in curve][0] == ("2024-01-02 00:00:00", 100_000)
    assert len(curve) == len(run.equity) == 252
    # Whoever may view backtest runs may download them; others may not, nor anyone logged out.
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(viewer)
    assert client.get(trades_url).status_code == 403
    viewer.user_permissions.add(Permission.objects.get(codename="view_backtestrun"))
    assert client.get(trades_url).status_code == 200
    assert (
        client.get(reverse("admin:backtests_backtestrun_equity_csv", args=[999999])).status_code
        == 404
    )
    client.logout()
    assert client.get(equity_url).status_code == 302  # to the login page
