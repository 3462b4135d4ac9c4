"""Who may do what in the admin: viewing never lets a staff user start, update, cancel or retry a
fetch, or run or switch a schedule; `fetcher.fetch_bars` does. The chart is stored bars: it
needs `fetcher.view_bar`, like the Bars list."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from fetcher.domain.requests import FetchRequest
from fetcher.models import ChunkStatus, FetchChunk, FetchRun, Instrument, RunStatus
from fetcher.queues import TaskName
from fetcher.services.fetch_runs import fetch_run_create
from tests.support import DAILY, T0, store_bars

pytestmark = pytest.mark.django_db(transaction=True)

INSTRUMENTS = "admin:fetcher_instrument_changelist"
RUNS = "admin:fetcher_fetchrun_changelist"
SCHEDULES = "admin:django_celery_beat_periodictask_changelist"
REFUSED = "No action selected."  # Django's answer to an action the user is not offered


def staff(client, name: str, permissions) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.set(permissions)
    client.force_login(user)
    return user


def every_view_permission():
    return Permission.objects.filter(codename__startswith="view_")


def post_action(client, changelist: str, action: str, rows, **form) -> str:
    data = {"action": action, "_selected_action": [r.pk for r in rows], "index": 0, **form}
    return client.post(reverse(changelist), data, follow=True).content.decode()


@pytest.fixture
def world():
    """An instrument with stored bars, a going run, a finished run with a failed request, a
    fetch schedule."""
    aapl = Instrument.objects.create(symbol="AAPL", con_id=265598)
    store_bars(aapl, DAILY, 30)
    going = fetch_run_create(request=FetchRequest.parse(instruments="AAPL"))
    failed = fetch_run_create(request=FetchRequest.parse(instruments="AAPL"))
    FetchRun.objects.filter(pk=failed.pk).update(status=RunStatus.PARTIAL)
    FetchChunk.objects.create(
        run=failed,
        item=failed.items.get(),
        instrument=aapl,
        window_start=T0,
        window_end=T0 + dt.timedelta(days=1),
        duration="1 D",
        request_end="20240102-00:00:00",
        status=ChunkStatus.FAILED,
    )
    crontab = CrontabSchedule.objects.create(minute="30", hour="17", day_of_week="1-5")
    schedule = PeriodicTask.objects.create(
        name="AAPL/DAILY",
        task=TaskName.FETCH_SCHEDULE,
        crontab=crontab,
        kwargs=json.dumps({"instruments": "AAPL", "timeframe": "DAILY"}),
    )
    return aapl, going, failed, schedule


FETCH_HISTORY = {
    "apply": "1",
    "timeframe": "DAILY",
    "start": "2024-01-02",
    "end": "2024-01-31",
    "what_to_show": "TRADES",
    "use_rth": "on",
}


def test_a_view_only_staff_user_is_refused_every_action(client, world, clean_broker):
    aapl, going, failed, schedule = world
    staff(client, "viewer", every_view_permission())
    runs_before = FetchRun.objects.count()
    # with no action allowed, Django ignores the POST and shows the list
    for action, form in (("fetch_history", FETCH_HISTORY), ("update_to_latest", {})):
        post_action(client, INSTRUMENTS, action, [aapl], **form)
    for action in ("cancel_runs", "retry_failed_chunks"):
        post_action(client, RUNS, action, [going, failed])
    for action in ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks"):
        post_action(client, SCHEDULES, action, [schedule])
    assert FetchRun.objects.count() == runs_before  # no run started, updated or retried
    assert FetchRun.objects.get(pk=going.pk).status == RunStatus.PENDING  # none cancelled
    assert PeriodicTask.objects.get(pk=schedule.pk).enabled  # not switched
    assert clean_broker.llen("default") == 0 and clean_broker.llen("ibkr") == 0  # nothing sent
    # nor are they offered: no action in the lists, no button on a run's page
    for changelist in (INSTRUMENTS, RUNS, SCHEDULES):
        html = client.get(reverse(changelist)).content.decode()
        assert 'name="action"' not in html, changelist
    for run in (going, failed):
        html = client.get(reverse("admin:fetcher_fetchrun_change", args=[run.pk])).content
        assert b'id="cancel-run"' not in html and b'id="retry-run"' not in html


def test_the_fetch_permission_lets_a_staff_user_start_cancel_and_retry(client, world):
    aapl, going, failed, schedule = world
    fetch = Permission.objects.filter(codename="fetch_bars")
    staff(client, "operator", every_view_permission() | fetch)
    html = client.get(reverse("admin:fetcher_fetchrun_change", args=[going.pk])).content
    assert b'id="cancel-run"' in html
    assert f"Run {going.pk} cancelled." in post_action(client, RUNS, "cancel_runs", [going])
    assert FetchRun.objects.get(pk=going.pk).status == RunStatus.CANCELLED
    html = post_action(client, RUNS, "retry_failed_chunks", [failed])
    assert f"Failed requests of run {failed.pk} queued again" in html
    # switching a schedule is changing it: the fetch permission alone does not
    assert REFUSED in post_action(client, SCHEDULES, "disable_tasks", [schedule])
    assert PeriodicTask.objects.get(pk=schedule.pk).enabled


def test_a_superuser_switches_a_schedule(admin_client, world):
    *_, schedule = world
    html = post_action(admin_client, SCHEDULES, "disable_tasks", [schedule])
    assert "1 task was successfully disabled" in html
    assert not PeriodicTask.objects.get(pk=schedule.pk).enabled


def test_the_chart_needs_the_permission_to_read_bars(client, world):
    aapl, *_ = world
    page = reverse("admin:fetcher_instrument_change", args=[aapl.pk])
    user = staff(client, "clerk", Permission.objects.filter(codename="view_instrument"))
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="bars-chart-module"' not in html and "plotly" not in html
    assert client.get(reverse("admin:fetcher_plotly_js")).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_bar"))
    html = client.get(page).content.decode()
    assert 'id="bars-chart"' in html and '<span id="chart-shown">30</span>' in html
    assert client.get(reverse("admin:fetcher_plotly_js")).status_code == 200
