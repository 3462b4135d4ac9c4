"""`manage.py schedule add|list|remove`: what it records for beat, and one line for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from fetcher.models import Instrument
from fetcher.queues import TaskName
from tests.support import ROOT, worker_database_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def schedule(capsys):
    """Run the command: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        try:
            call_command("schedule", *args)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def recorded() -> tuple[int, int]:
    return PeriodicTask.objects.count(), CrontabSchedule.objects.count()


def test_add_records_a_cron_in_the_exchange_zone_for_beat_and_list_and_remove_show_it(schedule):
    code, out, err = schedule(
        "add", "--instruments", "AAPL,MSFT", "--timeframe", "daily", "--cron", "30 17 * * 1-5"
    )
    assert code == 0, err
    assert "AAPL,MSFT/DAILY" in out and "America/New_York" in out
    task = PeriodicTask.objects.get(name="AAPL,MSFT/DAILY")
    assert task.task == TaskName.FETCH_SCHEDULE and task.enabled
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week) == (
        "30",
        "17",
        "*",
        "*",
        "1-5",
    )
    assert str(cron.timezone) == "America/New_York"
    assert json.loads(task.kwargs) == {
        "instruments": "AAPL,MSFT",
        "timeframe": "DAILY",
        "what_to_show": "TRADES",
        "use_rth": True,
        "sec_type": "",
        "exchange": "",
        "currency": "",
    }
    # a CME future's cron is read on Chicago time
    code, out, err = schedule(
        "add", "--instruments", "ES:CME", "--timeframe", "1-HOUR", "--cron", "0 18 * * 0-4"
    )
    assert code == 0, err
    assert str(PeriodicTask.objects.get(name="ES:CME/1-HOUR").crontab.timezone) == "America/Chicago"

    code, out, _ = schedule("list")
    assert code == 0 and "AAPL,MSFT/DAILY" in out and "ES:CME/1-HOUR" in out
    assert "17:30" in out  # the next firing, on the exchange's clock

    code, out, err = schedule("remove", "--name", "ES:CME/1-HOUR")
    assert code == 0, err
    assert list(PeriodicTask.objects.values_list("name", flat=True)) == ["AAPL,MSFT/DAILY"]
    assert CrontabSchedule.objects.count() == 1  # its crontab went with it


def test_the_zone_is_the_one_ibkr_reported_or_the_one_given(schedule):
    Instrument.objects.create(
        symbol="SAP", exchange="SMART", currency="EUR", con_id=14204, time_zone="MET"
    )
    code, _, err = schedule(
        "add", "--instruments", "SAP", "--currency", "EUR", "--cron", "0 18 * * *"
    )
    assert code == 0, err
    assert str(PeriodicTask.objects.get(name="SAP/DAILY").crontab.timezone) == "MET"
    code, _, err = schedule(
        "add",
        "--instruments",
        "AAPL,ES:CME",
        "--cron",
        "0 18 * * *",
        "--timezone",
        "UTC",
        "--name",
        "n",
    )
    assert code == 0, err
    assert str(PeriodicTask.objects.get(name="n").crontab.timezone) == "UTC"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "30 17 * *"], "bad --cron '30 17 * *': use 5 fields"),
        (["--cron", "61 17 * * 1-5"], "minute '61': Invalid end range: 61 > 59"),
        (["--cron", "30 17 * * mon-frx"], "day of week 'mon-frx'"),
        (["--cron", "0 0 31 2 *"], "day of month '31' never occurs in month '2', so it never"),
        (["--cron", "0 0 31 2,4 *"], "day of month '31' never occurs in month '2,4'"),
        (["--cron", "0 0 29 2 1"], "it does not fire within 5 years"),  # a Monday: in 2044
        (["--cron", "30 17 * * 1-5", "--timeframe", "3-DAYS"], "unknown timeframe '3-DAYS'"),
        (["--cron", "30 17 * * 1-5", "--timezone", "Mars/Olympus"], "unknown time zone"),
        (["--cron", "30 17 * * 1-5", "--instruments", "AAPL,ES:CME"], "different time zones"),
        (["--cron", "30 17 * * 1-5", "--instruments", "SAP", "--currency", "EUR"], "--timezone"),
        (["--cron", "30 17 * * 1-5", "--instruments", "AA PL!"], "malformed instrument"),
        (["--instruments", "AAPL"], "no --cron given"),
    ],
)
def test_a_bad_add_is_one_line_and_writes_nothing(schedule, args, message):
    if "--instruments" not in args:
        args = ["--instruments", "AAPL", *args]
    before = recorded()
    code, out, err = schedule("add", *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert recorded() == before


def test_29_february_is_a_cron_that_fires(schedule):
    code, out, err = schedule("add", "--instruments", "AAPL", "--cron", "0 18 29 2 *")
    assert code == 0, err
    assert "-02-29 18:00" in out  # the next leap day


def test_a_bad_row_is_one_line_of_the_list_and_adds_go_on(schedule):
    """Rows edited in the admin (or written before add refused them): an impossible cron,
    arguments that are not JSON, or that start no run. `list` says what is wrong with each on
    its line; the good one and later adds are unaffected."""
    assert schedule("add", "--instruments", "MSFT", "--cron", "0 18 * * *")[0] == 0
    impossible = CrontabSchedule.objects.create(
        minute="0", hour="0", day_of_month="31", month_of_year="2", timezone="UTC"
    )
    for name, kwargs in (
        ("feb31", json.dumps({"instruments": "AAPL"})),
        ("garbled", "{not json"),
        ("typo", json.dumps({"instruments": "AAPL", "timeframe": "3-DAYS"})),
    ):
        PeriodicTask.objects.create(
            name=name, task=TaskName.FETCH_SCHEDULE, crontab=impossible, kwargs=kwargs
        )
    PeriodicTask.objects.filter(name="typo").update(crontab=CrontabSchedule.objects.first())
    code, out, err = schedule("list")
    assert code == 0 and err == ""
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert sorted(lines) == ["MSFT/DAILY", "feb31", "garbled", "typo"]
    assert lines["MSFT/DAILY"].startswith("DAILY bars of MSFT at")
    assert "its cron '0 0 31 2 *' is invalid" in lines["feb31"]
    assert "its arguments are not JSON" in lines["garbled"]
    assert "unknown timeframe '3-DAYS'" in lines["typo"]
    for name in ("feb31", "garbled", "typo"):
        assert f"manage.py schedule remove '{name}'" in lines[name]
    code, out, err = schedule("add", "--instruments", "NVDA", "--cron", "0 18 * * *")
    assert code == 0, err
    assert "Schedule 'NVDA/DAILY' added" in out
    assert schedule("remove", "feb31")[0] == 0


def test_a_taken_name_or_an_unknown_one_is_one_line(schedule):
    args = ["add", "--instruments", "AAPL", "--cron", "0 18 * * *", "--name", "nightly"]
    assert schedule(*args)[0] == 0
    before = recorded()
    code, _, err = schedule(*args)
    assert code == 2 and "a schedule named 'nightly' already exists" in err
    assert recorded() == before
    code, _, err = schedule("remove", "weekly")
    assert code == 2 and "there is no schedule named 'weekly'" in err
    PeriodicTask.objects.create(
        name="cleanup", task="celery.backend_cleanup", crontab=CrontabSchedule.objects.get()
    )
    code, _, err = schedule("remove", "cleanup")
    assert code == 2 and "'cleanup' is not a fetch schedule" in err
    assert PeriodicTask.objects.filter(name="cleanup").exists()
    code, _, err = schedule("remove")
    assert code == 2 and "which schedule?" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--bogus"], "unrecognized arguments: --bogus"),
        (["frob"], "invalid choice: 'frob'"),
        (["add", "--instruments", "AAPL", "--cron", "1 2 3"], "bad --cron '1 2 3'"),
    ],
)
def test_the_command_line_gets_one_line_and_no_traceback(args, message):
    proc = subprocess.run(
        [sys.executable, "manage.py", "schedule", *args],
        cwd=ROOT,
        env={"DATABASE_URL": worker_database_url(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
