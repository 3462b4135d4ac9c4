"""Fetch schedules: beat's periodic tasks that fetch instruments from their last stored bar to now."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import ParseException, crontab, crontab_parser
from django.db import IntegrityError, transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from fetcher.domain.instruments import InstrumentSpec, spec_time_zone
from fetcher.domain.requests import FetchRequest
from fetcher.domain.time import zone_name
from fetcher.exceptions import InvalidInput
from fetcher.models import RequestedBy
from fetcher.queues import TaskName
from fetcher.selectors import crontab_next_fire, fetch_schedule_run_going, instrument_time_zone

from .submit import FetchHandle, fetch_submit

log = logging.getLogger("ibdata.schedule")

NAME_MAX_CHARS = 200  # PeriodicTask.name
# The five cron fields: label, celery's parser bounds (size, first value), CrontabSchedule field.
CRON_FIELDS = (
    ("minute", 60, 0, "minute"),
    ("hour", 24, 0, "hour"),
    ("day of month", 31, 1, "day_of_month"),
    ("month", 12, 1, "month_of_year"),
    ("day of week", 7, 0, "day_of_week"),
)
CRON_HELP = 'use 5 fields "minute hour day-of-month month day-of-week", e.g. "30 17 * * 1-5"'


@dataclass(frozen=True)
class ScheduledFetch:
    """What a schedule fetches: its periodic task's arguments (JSON, editable in the admin), the
    options of `manage.py fetch` without dates: each firing fetches from the last stored bar."""

    instruments: str
    timeframe: str = "DAILY"
    what_to_show: str = ""  # TRADES, or MIDPOINT for forex
    use_rth: bool = True
    sec_type: str = ""
    exchange: str = ""
    currency: str = ""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ScheduledFetch:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown or "instruments" not in data:
            raise InvalidInput(
                f"a fetch schedule takes {', '.join(sorted(known))} (got {', '.join(sorted(data))})"
            )
        for f in dataclasses.fields(cls):  # the arguments may have been edited in the admin
            kind, said = (bool, "true or false") if f.type == "bool" else (str, "text")
            if f.name in data and not isinstance(data[f.name], kind):
                raise InvalidInput(
                    f"a fetch schedule's {f.name} must be {said} (got {data[f.name]!r})"
                )
        return cls(**data)

    def request(self) -> FetchRequest:
        """The fetch one firing asks for (checked when the schedule is added, and again when
        it fires: the stored arguments may have been edited in the admin)."""
        return FetchRequest.parse(
            instruments=self.instruments,
            timeframe=self.timeframe,
            what_to_show=self.what_to_show,
            use_rth=self.use_rth,
            sec_type=self.sec_type,
            exchange=self.exchange,
            currency=self.currency,
        )


def cron_fields(text: str) -> dict[str, str]:
    """'30 17 * * 1-5' as CrontabSchedule fields, checked by the parser beat uses, and refused
    when it never fires (31 February) or not within 5 years ('0 0 29 2 1': celery's crontab
    needs day of month, month and day of week to meet)."""
    values = text.split()
    if len(values) != len(CRON_FIELDS):
        raise InvalidInput(f"bad --cron {text!r}: {CRON_HELP}")
    fields = {}
    for value, (label, size, first, field) in zip(values, CRON_FIELDS, strict=True):
        try:
            crontab_parser(size, first).parse(value)
        except (ValueError, ParseException) as exc:
            reason = str(exc).rstrip(".") or "not understood"
            raise InvalidInput(
                f"bad --cron {text!r}: {label} {value!r}: {reason}; {CRON_HELP}"
            ) from None
        fields[field] = value
    try:
        schedule = crontab(**fields)
    except ValueError:  # "day_of_month '31' never occurs in month_of_year '2'"
        raise InvalidInput(
            f"bad --cron {text!r}: day of month {fields['day_of_month']!r} never occurs in "
            f"month {fields['month_of_year']!r}, so it never fires"
        ) from None
    if crontab_next_fire(schedule, ZoneInfo("UTC")) is None:
        raise InvalidInput(
            f"bad --cron {text!r}: it does not fire within 5 years (its day of month, month "
            "and day of week must all match)"
        )
    return fields


def fetch_schedule_zone(*, specs: list[InstrumentSpec], time_zone: str = "") -> str:
    """The time zone a schedule's cron is read in: the one given, else the exchange's (as IBKR
    reported it for instruments fetched before, else as the spec tells), the same for all."""
    if time_zone:
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(
                f"unknown time zone {time_zone!r}: use a name like America/New_York"
            ) from None
        return time_zone
    zones: dict[str, str] = {}
    for spec in specs:
        reported = instrument_time_zone(
            symbol=spec.symbol,
            sec_type=spec.sec_type,
            exchange=spec.exchange,
            currency=spec.currency,
        )
        zone = zone_name(reported) if reported else spec_time_zone(spec)
        if zone is None:
            raise InvalidInput(
                f"cannot tell which time zone {spec.label} trades in before it is fetched once: "
                "give --timezone (e.g. Europe/Berlin)"
            )
        zones.setdefault(zone, spec.label)
    if len(zones) > 1:
        listed = ", ".join(f"{label} in {zone}" for zone, label in zones.items())
        raise InvalidInput(
            f"the instruments trade in different time zones ({listed}): "
            "make one schedule per exchange, or give --timezone"
        )
    return next(iter(zones))


def fetch_schedule_add(
    *, name: str = "", fetch: ScheduledFetch, cron: str, time_zone: str = ""
) -> PeriodicTask:
    """Record a schedule for beat (django-celery-beat's database scheduler): `cron` in the
    exchange's time zone. Everything is checked before anything is written."""
    request = fetch.request()  # checked now, not when it fires
    specs, tf = list(request.instruments), request.timeframe
    fields = cron_fields(cron)
    zone = fetch_schedule_zone(specs=specs, time_zone=time_zone)
    fetch = dataclasses.replace(
        fetch,
        instruments=",".join(s.label for s in specs),
        timeframe=tf.name,
        what_to_show=request.what_to_show.name,
    )
    name = name.strip() or f"{fetch.instruments}/{tf.name}"
    if len(name) > NAME_MAX_CHARS:
        raise InvalidInput(f"schedule name is longer than {NAME_MAX_CHARS} characters: give --name")
    taken = InvalidInput(
        f"a schedule named {name!r} already exists: choose another --name, or "
        f"remove it first (manage.py schedule remove {name!r})"
    )
    if PeriodicTask.objects.filter(name=name).exists():
        raise taken
    try:
        with transaction.atomic():
            crontab, _ = CrontabSchedule.objects.get_or_create(**fields, timezone=ZoneInfo(zone))
            return PeriodicTask.objects.create(
                name=name,
                task=TaskName.FETCH_SCHEDULE,
                crontab=crontab,
                kwargs=json.dumps(fetch.to_json()),
                description=f"fetch {fetch.instruments} {tf.name} from the last stored bar to now",
            )
    except IntegrityError:  # added meanwhile by someone else
        raise taken from None


def fetch_schedule_args_problem(*, kwargs: dict) -> str:
    """Why a schedule's stored arguments (editable in the admin) would start no run; '' when
    they would."""
    try:
        ScheduledFetch.from_json(kwargs).request()
    except InvalidInput as exc:
        return str(exc)
    return ""


def _schedule_locked(name: str) -> PeriodicTask | None:
    """The periodic task of that name, locked until the transaction ends."""
    return PeriodicTask.objects.select_for_update().filter(name=name).first()


def fetch_schedule_remove(*, name: str) -> None:
    """Delete a fetch schedule (and its crontab when no other task uses it)."""
    with transaction.atomic():
        task = _schedule_locked(name)
        if task is None:
            raise InvalidInput(f"there is no schedule named {name!r}: see manage.py schedule list")
        if task.task != TaskName.FETCH_SCHEDULE:
            raise InvalidInput(
                f"{name!r} is not a fetch schedule (it runs {task.task}): change it in the admin"
            )
        crontab = task.crontab
        task.delete()
        if crontab is not None and not crontab.periodictask_set.exists():
            crontab.delete()


def fetch_schedule_fire(*, schedule: str, fetch: ScheduledFetch) -> FetchHandle | None:
    """Start a schedule's run, queued for the ibkr worker: every instrument from its last stored
    bar to now. None (and a log line saying why) while the schedule's previous run is going."""
    if not schedule:
        raise InvalidInput("no schedule named: beat names it (the periodic_task_name header)")
    request = fetch.request()
    with transaction.atomic():
        # The schedule's row is the lock: two firings (beat's and a redelivery, or the admin's
        # "Run selected tasks") cannot both find no run going and start one each.
        if _schedule_locked(schedule) is None:
            raise InvalidInput(
                f"there is no schedule named {schedule!r}: see manage.py schedule list"
            )
        going = fetch_schedule_run_going(schedule=schedule)
        if going is not None:
            log.info(
                "schedule %r: its previous run %s is still %s; not starting another",
                schedule,
                going.pk,
                going.status,
            )
            return None
        handle = fetch_submit(request=request, requested_by=RequestedBy.SCHEDULE, schedule=schedule)
    log.info(
        "schedule %r: started run %s (%s %s)",
        schedule,
        handle.run_id,
        fetch.instruments,
        request.timeframe.name,
    )
    return handle
