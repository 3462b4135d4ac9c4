"""Fetch schedules under a real `celery beat` (database scheduler), real workers and the simulator."""

from __future__ import annotations

import datetime as dt
import sys

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from fetcher.models import FetchRun, Incident, RequestedBy, RunStatus
from fetcher.services.schedules import ScheduledFetch, fetch_schedule_add
from tests.support import DEPLOYED_SHAPE, Process, deployed_env, wait_finished, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), *DEPLOYED_SHAPE]

SENT = "Scheduler: Sending due task {name} "
TICK = "beat: Waking up"


def start_beat(tmp_path) -> Process:
    beat = Process(deployed_env(tmp_path), tmp_path / "beat.log", "beat")
    beat.popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "ibdata_project",
            "beat",
            "-S",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "--max-interval",
            "1",
            "--pidfile",
            str(tmp_path / "beat.pid"),
            "-l",
            "DEBUG",
        ],
        output_to_log=True,
    )
    return beat


@pytest.fixture
def beat(tmp_path):
    started: list[Process] = []

    def start() -> Process:
        started.append(start_beat(tmp_path))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def schedule_runs(name: str) -> list[FetchRun]:
    return list(FetchRun.objects.filter(schedule=name).order_by("pk"))


def test_beat_fires_a_run_that_completes_and_starts_no_second_one_while_it_runs(sim, workers, beat):
    workers(sim)
    default = workers(sim, queues=("default",), name="default")
    task = fetch_schedule_add(
        name="every-second",
        fetch=ScheduledFetch(instruments="AAPL", timeframe="1-HOUR"),
        cron="* * * * *",
    )
    # every second rather than every minute, as it can be changed in the admin
    task.crontab, task.interval = (
        None,
        IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS),
    )
    task.save()
    sim.call(sim.connectivity_lost)  # the gateway holds its answers: the first run cannot end
    beat()

    first = wait_until(
        lambda: next((r for r in schedule_runs("every-second") if r.status == "running"), None),
        60,
        "a running scheduled run",
    )
    skipped = f"its previous run {first.pk} is still running; not starting another"
    default.wait_for(skipped, 60, count=2)  # beat fired twice more meanwhile
    assert [r.pk for r in schedule_runs("every-second")] == [first.pk]

    sim.call(sim.connectivity_restored)
    done = wait_finished(first.pk, 60)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.requested_by == RequestedBy.SCHEDULE and done.bars_stored > 0
    # the next firing starts the next run: from the last stored bar to now
    second = wait_until(lambda: schedule_runs("every-second")[1:2], 60, "a second run")[0]
    second = wait_finished(second.pk, 60)
    assert second.status == RunStatus.SUCCEEDED, second.error
    assert "after the last stored bar" in second.items.get().note
    runs = schedule_runs("every-second")
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert later.created_at >= earlier.finished_at, "two runs of one schedule overlapped"


def test_a_failing_schedule_is_mailed_once_and_once_when_a_run_succeeds(sim, workers, beat, smtp):
    """Beat fires a schedule every second; its runs fail (an unknown symbol), then its stored
    arguments are broken in the admin (no run starts): the admins get one mail through a real
    SMTP server, however many firings fail; fixed, its next run succeeds and one more mail says
    it is over."""
    mail = {"EMAIL_URL": smtp.url, "DJANGO_ADMINS": "Ops <ops@example.com>"}
    workers(sim, env=mail)
    default = workers(sim, queues=("default",), name="default", env=mail)
    task = fetch_schedule_add(
        name="every-second", fetch=ScheduledFetch(instruments="ZZZZ"), cron="* * * * *"
    )
    task.crontab = None
    task.interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    task.save()
    beat()
    wait_until(lambda: len(schedule_runs("every-second")) >= 3, 60, "three failed runs")
    assert {r.status for r in schedule_runs("every-second")[:2]} == {RunStatus.FAILED}
    task.kwargs = '{"instruments": "AAPL", "t": 1}'  # saved as the admin does: beat sees it
    task.save()
    default.wait_for("a fetch schedule takes", 60, count=2)  # two firings started nothing
    assert smtp.subjects() == ["[ibdata] Scheduled Run: every-second"]
    assert "ZZZZ: failed" in smtp.messages[0].get_content()

    task.kwargs = '{"instruments": "AAPL"}'
    task.save()
    wait_until(lambda: len(smtp.messages) == 2, 60, "the mail saying it is over")
    assert smtp.subjects()[1] == "[ibdata] over: Scheduled Run: every-second"
    assert Incident.objects.get().closed_at is not None


def test_firings_missed_while_beat_was_down_start_one_run_not_one_each(sim, workers, beat):
    default = workers(sim, queues=("default",), name="default")
    now = timezone.now()
    task = fetch_schedule_add(
        name="hourly",
        fetch=ScheduledFetch(instruments="AAPL", timeframe="1-HOUR"),
        cron=f"{(now.minute + 30) % 60} * * * *",  # hourly, next firing half an hour away
    )
    # beat was down for five hours: five firings were missed
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=now - dt.timedelta(hours=5))
    process = beat()

    sent = SENT.format(name="hourly")
    process.wait_for(sent, 60)
    at = process.text().index(sent)
    # two more ticks of the scheduler: it looked at the schedule again and sent nothing
    wait_until(lambda: process.text()[at:].count(TICK) >= 2, 30, "two more ticks")
    assert process.text().count(sent) == 1
    [run] = wait_until(lambda: schedule_runs("hourly"), 60, "the catch-up run")
    assert run.requested_by == RequestedBy.SCHEDULE
    default.wait_for("schedule 'hourly': started run", 30)
    assert "not starting another" not in default.text()


def test_a_firing_of_a_schedule_edited_wrong_or_gone_starts_nothing_and_says_why():
    from fetcher.exceptions import InvalidInput
    from fetcher.services.schedules import fetch_schedule_fire

    with pytest.raises(
        InvalidInput, match=r"a fetch schedule takes .*\(got instrument, timeframe\)"
    ):
        ScheduledFetch.from_json({"instrument": "AAPL", "timeframe": "DAILY"})  # admin typo
    fetch = ScheduledFetch(instruments="AAPL")
    with pytest.raises(InvalidInput, match="there is no schedule named 'gone'"):
        fetch_schedule_fire(schedule="gone", fetch=fetch)
    with pytest.raises(InvalidInput, match="beat names it"):
        fetch_schedule_fire(schedule="", fetch=fetch)
    fetch_schedule_add(name="bad", fetch=fetch, cron="0 18 * * *")
    with pytest.raises(InvalidInput, match="unknown timeframe"):
        fetch_schedule_fire(
            schedule="bad", fetch=ScheduledFetch(instruments="AAPL", timeframe="9-DAYS")
        )
    assert FetchRun.objects.count() == 0
