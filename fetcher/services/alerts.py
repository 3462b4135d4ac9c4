"""Telling the admins: incidents, each mailed once when it opens and once when it is over.

The API other code calls (any process, any thread without a running event loop):

``incident_open(*, kind, key, message) -> Incident``
    Something is wrong. ``kind`` is an ``IncidentKind`` (or its value: "scheduled_run",
    "gateway_unreachable", "logged_off", "competing_session"); ``key`` names what it concerns
    (a schedule's name, a gateway's "host:port"); ``message`` says what happened and what to
    do, in plain text. The first call while no incident of that kind and key is open records
    one and mails the admins (``mail_admins``: DJANGO_ADMINS, through EMAIL_URL); later calls
    only count it and keep the latest message. The open incident is a database row (one per
    kind and key: a unique constraint), so several processes, redeliveries and restarts never
    mail it twice. A mail that could not be sent is tried again by the next call.

``incident_close(*, kind, key, message) -> Incident | None``
    It is over: the open incident of that kind and key is closed and, if its opening was
    mailed, one more mail says so (with ``message``). None when none was open, so it is cheap
    to call on every success.

Without DJANGO_ADMINS nobody is mailed; every incident is logged (ibdata.alerts) either way.
The admin lists them (Incidents).
"""

from __future__ import annotations

import logging
import smtplib

from django.conf import settings
from django.core.mail import mail_admins
from django.db import IntegrityError, transaction
from django.utils import timezone

from fetcher.exceptions import InvalidInput
from fetcher.models import FetchRun, Incident, IncidentKind, RunStatus
from fetcher.selectors import fetch_run_summary

log = logging.getLogger("ibdata.alerts")

SUBJECT_MAX_CHARS = 150
ITEMS_LISTED = 20  # a failed scheduled run's mail lists this many instruments at most


def _kind(kind: str) -> IncidentKind:
    try:
        return IncidentKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in IncidentKind)
        raise InvalidInput(f"unknown incident kind {kind!r}: one of {known}") from None


def _subject(kind: IncidentKind, key: str, over: bool = False) -> str:
    subject = f"{'over: ' if over else ''}{kind.label}: {key}"
    return " ".join(subject.split())[:SUBJECT_MAX_CHARS]  # a header: one line


def _mail(subject: str, body: str) -> bool:
    """Mail the admins; False (and a log line) when the mail server would not take it."""
    if not settings.ADMINS:
        log.warning("nobody to mail (DJANGO_ADMINS is empty): %s", subject)
        return True
    try:
        mail_admins(subject, body, fail_silently=False)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("could not mail the admins (%s): %s", exc, subject)
        return False
    return True


def incident_open(*, kind: str, key: str, message: str) -> Incident:
    """Record that something is wrong and tell the admins once (see the module's docstring)."""
    kind = _kind(kind)
    try:
        with transaction.atomic():
            return _incident_open_locked(kind, key, message)
    except IntegrityError:
        # another process opened it between our read and our insert: it is open now
        with transaction.atomic():
            return _incident_open_locked(kind, key, message)


def _incident_open_locked(kind: IncidentKind, key: str, message: str) -> Incident:
    # The row lock makes a second opener wait while the first one mails; a concurrent insert
    # waits on the unique constraint, then fails and reads the row (incident_open loops).
    incident = (
        Incident.objects.select_for_update().filter(kind=kind, key=key, closed_at=None).first()
    )
    if incident is None:
        incident = Incident.objects.create(kind=kind, key=key, message=message)
        log.warning("incident opened: %s %s: %s", kind.value, key, message)
    else:
        incident.occurrences += 1
    incident.last_message = message
    if incident.notified_at is None:
        body = (
            f"{message}\n\nOpened at {incident.opened_at:%Y-%m-%d %H:%M:%S} UTC. ibdata mails "
            "once more when it is over; the admin lists open incidents under Incidents."
        )
        if _mail(_subject(kind, key), body):
            incident.notified_at = timezone.now()
    incident.save()
    return incident


def incident_close(*, kind: str, key: str, message: str) -> Incident | None:
    """Close the open incident of this kind and key, telling the admins if they were told it
    opened; None when none was open."""
    kind = _kind(kind)
    with transaction.atomic():
        incident = (
            Incident.objects.select_for_update().filter(kind=kind, key=key, closed_at=None).first()
        )
        if incident is None:
            return None
        incident.closed_at, incident.close_message = timezone.now(), message
        incident.save()
        log.warning("incident over: %s %s: %s", kind.value, key, message)
        if incident.notified_at is not None:
            lasted = incident.closed_at - incident.opened_at
            body = (
                f"{message}\n\nIt began at {incident.opened_at:%Y-%m-%d %H:%M:%S} UTC and lasted "
                f"{_duration(lasted.total_seconds())} ({incident.occurrences} occurrences): "
                f"{incident.message}"
            )
            _mail(_subject(kind, key, over=True), body)
    return incident


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02}m" if hours else f"{minutes}m{seconds:02}s"


def scheduled_run_alert(*, run_id: int) -> None:
    """A schedule's run has ended: failed or partial opens the schedule's incident (one mail
    until one of its runs succeeds), succeeded closes it. Other runs are no incident."""
    run = FetchRun.objects.filter(pk=run_id).first()
    if run is None or not run.schedule:
        return
    if run.status == RunStatus.SUCCEEDED:
        incident_close(
            kind=IncidentKind.SCHEDULED_RUN,
            key=run.schedule,
            message=f"Run {run.pk} of schedule {run.schedule!r} succeeded "
            f"({run.bars_stored} bars).",
        )
    elif run.status in (RunStatus.FAILED, RunStatus.PARTIAL):
        incident_open(
            kind=IncidentKind.SCHEDULED_RUN, key=run.schedule, message=_run_failure_text(run)
        )


def _run_failure_text(run: FetchRun) -> str:
    lines = [f"Run {run.pk} of schedule {run.schedule!r} ended {run.status}."]
    if run.error:
        lines.append(run.error)
    items = fetch_run_summary(run_id=run.pk).items
    for item in items[:ITEMS_LISTED]:
        error = f": {item.error}" if item.error else ""
        lines.append(f"  {item.spec}: {item.status}, {item.bars_stored} bars{error}")
    if len(items) > ITEMS_LISTED:
        lines.append(f"  ... and {len(items) - ITEMS_LISTED} more instruments")
    lines.append(
        f"Details: manage.py fetch_status {run.pk}, or the admin's fetch run {run.pk}; "
        f"failed requests can be fetched again with its Retry failed chunks action."
    )
    return "\n".join(lines)


def fetch_schedule_broken(*, schedule: str, error: str) -> None:
    """A schedule's firing could not start a run (its stored arguments are wrong): tell the
    admins (the schedule's incident, closed by its next run that succeeds)."""
    incident_open(
        kind=IncidentKind.SCHEDULED_RUN,
        key=schedule or "(unnamed)",
        message=f"Schedule {schedule!r} could not start a run: {error}. Fix its arguments "
        "in the admin (Periodic tasks) or remove it (manage.py schedule remove).",
    )
