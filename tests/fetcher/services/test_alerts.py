"""Incidents told to the admins: once when opened, once when over, whoever opens them, through a
real SMTP server; scheduled runs that fail; the gateway watch's decisions on its own clock."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core import mail

from fetcher.domain.requests import FetchRequest
from fetcher.exceptions import InvalidInput
from fetcher.execution.worker import UnreachableWatch
from fetcher.models import FetchRun, Incident, IncidentKind, ItemStatus, RunStatus
from fetcher.services.alerts import incident_close, incident_open, scheduled_run_alert
from fetcher.services.fetch_runs import fetch_run_create
from fetcher.timings import ALERT_RETRY_S
from tests.support import ROOT, SmtpServer, free_port, worker_database_url

pytestmark = pytest.mark.django_db(transaction=True)

ADMINS = [("Ops", "ops@example.com"), ("Night desk", "night@example.com")]
KEY = "127.0.0.1:7497 (client id 10)"


@pytest.fixture
def mailed_to(settings, smtp):
    """The admins, mailed through the real SMTP server the test started."""
    settings.ADMINS = ADMINS
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
    return smtp


def open_unreachable(message: str = "connection refused") -> Incident:
    return incident_open(kind=IncidentKind.GATEWAY_UNREACHABLE, key=KEY, message=message)


def test_an_incident_is_mailed_once_and_once_more_when_over(mailed_to):
    first = open_unreachable("down for 15 minutes")
    for _ in range(3):
        again = open_unreachable("down for 16 minutes")
    assert again.pk == first.pk and again.occurrences == 4
    assert again.last_message == "down for 16 minutes" and again.message == "down for 15 minutes"
    assert mailed_to.subjects() == [f"[ibdata] Gateway Unreachable: {KEY}"]
    [sent] = mailed_to.messages
    assert sent["X-Envelope-To"] == "ops@example.com, night@example.com"
    assert "down for 15 minutes" in sent.get_content()
    assert Incident.objects.get().notified_at is not None

    closed = incident_close(kind="gateway_unreachable", key=KEY, message="connected again")
    assert closed.pk == first.pk and closed.closed_at is not None
    assert mailed_to.subjects()[1] == f"[ibdata] over: Gateway Unreachable: {KEY}"
    body = mailed_to.messages[1].get_content()
    assert "connected again" in body and "4 occurrences" in body
    # nothing open: closing again says nothing; a new outage is a new incident, mailed
    assert incident_close(kind="gateway_unreachable", key=KEY, message="again") is None
    assert len(mailed_to.messages) == 2
    assert open_unreachable().pk != first.pk
    assert len(mailed_to.messages) == 3
    # kinds and keys are incidents of their own
    incident_open(kind="competing_session", key=KEY, message="10197")
    incident_open(kind="gateway_unreachable", key="other:4002 (client id 10)", message="x")
    assert len(mailed_to.messages) == 5
    assert Incident.objects.filter(closed_at=None).count() == 3


def test_several_processes_opening_one_incident_mail_it_once(smtp, tmp_path):
    """Four processes open the same incident at once: one row, one mail."""
    script = (
        "from fetcher.services.alerts import incident_open\n"
        f"incident_open(kind='gateway_unreachable', key={KEY!r}, message='refused')\n"
    )
    env = {
        "DATABASE_URL": worker_database_url(),
        "DJANGO_ADMINS": "Ops <ops@example.com>",
        "EMAIL_URL": smtp.url,
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_DIR": str(tmp_path / "logs"),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    incident = Incident.objects.get()
    assert incident.occurrences == 4 and incident.notified_at is not None
    assert smtp.subjects() == [f"[ibdata] Gateway Unreachable: {KEY}"]


def test_a_mail_server_down_is_tried_again_by_the_next_call(settings, caplog):
    settings.ADMINS = ADMINS
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    incident = open_unreachable()
    assert incident.notified_at is None and "could not mail the admins" in caplog.text
    smtp = SmtpServer(port=settings.EMAIL_PORT).start()
    try:
        incident = open_unreachable()
        assert incident.notified_at is not None
        open_unreachable()
        assert len(smtp.messages) == 1
    finally:
        smtp.stop()


def test_an_incident_whose_opening_nobody_got_closes_without_a_mail(settings, caplog):
    settings.ADMINS = []
    incident = open_unreachable()
    assert "nobody to mail (DJANGO_ADMINS is empty)" in caplog.text
    assert "incident opened: gateway_unreachable" in caplog.text
    assert incident.notified_at is not None  # logged is all there is to do
    assert len(mail.outbox) == 0


def test_an_unknown_kind_is_refused_and_nothing_recorded():
    with pytest.raises(InvalidInput, match="unknown incident kind 'gateway_down': one of"):
        incident_open(kind="gateway_down", key=KEY, message="x")
    assert not Incident.objects.exists()


def scheduled_run(status: str, schedule: str = "AAPL/DAILY", error: str = "") -> FetchRun:
    run = fetch_run_create(request=FetchRequest.parse(instruments="AAPL,MSFT"), schedule=schedule)
    FetchRun.objects.filter(pk=run.pk).update(status=status, error=error)
    run.items.filter(spec="MSFT").update(
        status=ItemStatus.FAILED, error="No security definition has been found (IBKR error 200)"
    )
    return run


def test_a_failed_scheduled_run_is_told_once_until_one_succeeds(mailed_to):
    failed = scheduled_run(RunStatus.FAILED, error="Couldn't connect to TWS")
    scheduled_run_alert(run_id=failed.pk)
    [sent] = mailed_to.messages
    assert sent["Subject"] == "[ibdata] Scheduled Run: AAPL/DAILY"
    body = sent.get_content()
    assert f"Run {failed.pk} of schedule 'AAPL/DAILY' ended failed." in body
    assert "Couldn't connect to TWS" in body and "MSFT: failed, 0 bars: No security" in body
    assert f"manage.py fetch_status {failed.pk}" in body
    # the next firing is partial: the same incident, no second mail
    scheduled_run_alert(run_id=scheduled_run(RunStatus.PARTIAL).pk)
    assert len(mailed_to.messages) == 1
    # runs without a schedule, and other schedules' successes, are no incident of this one
    scheduled_run_alert(run_id=scheduled_run(RunStatus.FAILED, schedule="").pk)
    scheduled_run_alert(run_id=scheduled_run(RunStatus.SUCCEEDED, schedule="MSFT/DAILY").pk)
    assert len(mailed_to.messages) == 1
    succeeded = scheduled_run(RunStatus.SUCCEEDED)
    scheduled_run_alert(run_id=succeeded.pk)
    assert mailed_to.subjects()[1] == "[ibdata] over: Scheduled Run: AAPL/DAILY"
    assert f"Run {succeeded.pk} of schedule 'AAPL/DAILY' succeeded" in (
        mailed_to.messages[1].get_content()
    )
    incident = Incident.objects.get()
    assert incident.occurrences == 2 and incident.closed_at is not None


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_gateway_watch_opens_after_the_delay_once_and_closes_once():
    clock = Clock()
    watch = UnreachableWatch(after_s=900, clock=clock)
    assert watch.up()  # at start: an incident a previous process left open is closed
    watch.closed(done=True)
    assert not watch.up()  # connected, nothing open: nothing to do
    assert not watch.down()
    clock.now += 899
    assert not watch.down()
    clock.now += 1
    assert watch.down() and watch.down_for() == 900
    watch.opened(told=False)  # the database or the mail server would not take it
    clock.now += ALERT_RETRY_S - 1
    assert not watch.down()
    clock.now += 1
    assert watch.down()
    watch.opened(told=True)
    clock.now += 3600
    assert not watch.down()  # told once: never again while down
    assert watch.up()
    watch.closed(done=True)
    assert not watch.up()
    assert not watch.down()  # a new outage counts from its own start
    clock.now += 900
    assert watch.down()
