"""`manage.py bars check` end to end against the simulator, PostgreSQL and the catalog: what it
finds after damage done to either store, `--repair` putting both back, a split noticed, bad
input, the schedule, the task and the admin's column."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from django.core.management import call_command
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from fetcher.domain.requests import FetchRequest
from fetcher.domain.timeframes import timeframe_parse
from fetcher.models import Bar, FetchRun, Instrument, RequestedBy, Series
from fetcher.services.fetch_runs import fetch_run_create
from fetcher.storage.catalog import SOURCE_FILE, CatalogSeries, catalog_dataset
from fetcher.tasks import bars_check_task
from tests.support import make_bars, manage, truth_times, worker_database_url

pytestmark = pytest.mark.django_db(transaction=True)

NY = dt.timezone(dt.timedelta(hours=-5))  # New York in November and February
# Four sessions: Thanksgiving (the 28th) has none, the 29th closes at 13:00 (210 minutes).
THANKSGIVING_WEEK = ["--start", "2024-11-25", "--end", "2024-11-29"]
MINUTES = ["--instruments", "AAPL", "--timeframe", "1-MINUTE"]


def run(command: str, *args) -> int:
    try:
        call_command(command, *args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def out_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line.strip()]


def stored(symbol: str, timeframe: str) -> list[tuple]:
    return list(
        Bar.objects.filter(instrument__symbol=symbol, timeframe=timeframe_parse(timeframe).code)
        .order_by("ts")
        .values_list("ts", "open", "high", "low", "close", "volume", "wap", "bar_count")
    )


def catalog_rows(root) -> list[tuple]:
    table = catalog_dataset(root).to_table().sort_by("ts")
    names = ("ts", "open", "high", "low", "close", "volume", "wap", "bar_count")
    return list(zip(*(table.column(n).to_pylist() for n in names), strict=True))


def at_ny(day: str, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=NY)


def test_check_finds_bars_deleted_and_a_catalog_file_removed_and_repair_restores_both(
    gateway, settings, capsys
):
    assert run("fetch", *MINUTES, *THANKSGIVING_WEEK) == 0
    truth = stored("AAPL", "1-MINUTE")
    assert [int(t[0].timestamp()) for t in truth] == truth_times(
        gateway, "AAPL", "1 min", "2024-11-25", "2024-11-29"
    )
    catalog = settings.DATA_DIR / "catalog"
    assert catalog_rows(catalog) == truth
    capsys.readouterr()
    # a clean store, the early close and the holiday included
    assert run("bars", "check") == 0
    [line] = out_lines(capsys)
    assert line.startswith("✅ 1 series checked: 1,380 bars in the database, 1,380 in the catalog")
    assert line.endswith("nothing wrong")

    bars = Bar.objects.filter(instrument__symbol="AAPL")
    bars.filter(ts__gte=at_ny("2024-11-26", 9, 30), ts__lt=at_ny("2024-11-26", 16)).delete()
    bars.filter(ts__gte=at_ny("2024-11-27", 11), ts__lt=at_ny("2024-11-27", 16)).delete()
    [year] = catalog.rglob("year=2024/part-0.parquet")
    year.unlink()
    assert run("bars", "check") == 1
    lines = out_lines(capsys)
    label = "❌ AAPL 1-MINUTE TRADES RTH: "
    assert lines[:-1] == [
        f"{label}Series counters say 1,380 bars 2024-11-25 14:30 UTC..2024-11-29 17:59 UTC; "
        "the rows: 690 bars 2024-11-25 14:30 UTC..2024-11-29 17:59 UTC",
        f"{label}catalog year=2024: no file; the database has 690 bars",
        f"{label}2024-11-26: 1 session with no bars "
        "(fetched before: the gateway had none, or they were deleted)",
        f"{label}2024-11-27: 90 of 390 bars",
    ]
    assert lines[-1].startswith("❌ 1 series checked: 690 bars in the database, 0 in the catalog")
    assert "4 findings in 1 series" in lines[-1]
    assert Series.objects.get().check_findings == 4

    requests_before = gateway.stats.counts["historical_requests"]
    assert run("bars", "check", "--repair") == 0
    lines = out_lines(capsys)
    assert "🔧 AAPL 1-MINUTE TRADES RTH: catalog rebuilt from the database (year 2024)" in lines
    assert lines[-1].startswith("✅ 1 series checked: 1,380 bars in the database, 1,380")
    # the two damaged sessions, and the last complete one to compare prices with
    assert gateway.stats.counts["historical_requests"] - requests_before == 3
    assert FetchRun.objects.filter(requested_by=RequestedBy.REPAIR).count() == 1
    assert stored("AAPL", "1-MINUTE") == truth
    assert catalog_rows(catalog) == truth
    series = Series.objects.get()
    assert (series.bar_count, series.check_findings) == (1380, 0)


def test_a_spike_and_a_broken_bar_are_found_and_fetched_again(gateway, settings, capsys):
    year = ["--instruments", "AAPL", "--start", "2024-01-01", "--end", "2024-12-31"]
    assert run("fetch", *year) == 0
    truth = stored("AAPL", "DAILY")
    bars = Bar.objects.filter(instrument__symbol="AAPL")
    spike = bars.get(ts=dt.datetime(2024, 6, 12, tzinfo=dt.UTC))
    spike.close, spike.high = spike.close * 1.6, spike.close * 1.6
    spike.save()
    broken = bars.get(ts=dt.datetime(2024, 9, 3, tzinfo=dt.UTC))
    broken.high = broken.low - 1
    broken.save()
    capsys.readouterr()
    assert run("bars", "check") == 1
    lines = out_lines(capsys)
    assert any("catalog year=2024: 252 bars, database 252: 2 with other values" in x for x in lines)
    assert any("1 bar breaks the OHLC rules (first at 2024-09-03:" in x for x in lines)
    assert any("spike at 2024-06-12: close " in x for x in lines)
    assert run("bars", "check", "--repair") == 0
    assert stored("AAPL", "DAILY") == truth
    assert catalog_rows(settings.DATA_DIR / "catalog") == truth


def test_a_split_since_the_bars_were_stored_refetches_the_whole_series(gateway, settings, capsys):
    """The store holds prices from before a 2:1 split; the gateway now answers adjusted ones.
    Fetching only the missing day would leave the series on two scales: the repair's run finds
    the history changed and swaps the series whole."""
    month = ["--instruments", "AAPL", "--start", "2024-02-01", "--end", "2024-02-29"]
    assert run("fetch", *month) == 0
    truth = stored("AAPL", "DAILY")
    bars = Bar.objects.filter(instrument__symbol="AAPL")
    for bar in bars:
        for name in ("open", "high", "low", "close", "wap"):
            setattr(bar, name, getattr(bar, name) * 2)
        bar.save()
    bars.filter(ts=dt.datetime(2024, 2, 12, tzinfo=dt.UTC)).delete()
    capsys.readouterr()
    assert run("bars", "check", "--repair") == 0
    lines = out_lines(capsys)
    assert any(
        x.startswith("🔧 AAPL DAILY TRADES RTH: AAPL: history changed ") and "series refetched" in x
        for x in lines
    ), lines
    # the series fetched again from its first bar up to now, every bar on the gateway's scale
    after = stored("AAPL", "DAILY")
    assert [bar for bar in after if bar[0] < dt.datetime(2024, 3, 1, tzinfo=dt.UTC)] == truth
    assert catalog_rows(settings.DATA_DIR / "catalog") == after
    assert lines[-1].endswith("nothing wrong")


def test_a_series_only_in_the_catalog_is_found_and_removed(gateway, settings, capsys):
    assert (
        run("fetch", "--instruments", "AAPL", "--start", "2024-01-02", "--end", "2024-01-31") == 0
    )
    root = settings.DATA_DIR / "catalog"
    stray = CatalogSeries("MSFT", "NASDAQ", "USD", timeframe_parse("DAILY"), "TRADES")
    stray.write(make_bars([1704153600, 1704240000]), root=root)
    capsys.readouterr()
    assert run("bars", "check") == 1
    lines = out_lines(capsys)
    assert lines[0] == (
        "❌ MSFT DAILY TRADES RTH: in the catalog only (2 bars in years 2024); the database has "
        "no such series"
    )
    requests = gateway.stats.counts["historical_requests"]
    assert run("bars", "check", "--repair") == 0
    assert gateway.stats.counts["historical_requests"] == requests  # nothing to fetch
    assert stray.years(root=root) == []
    assert catalog_rows(root) == stored("AAPL", "DAILY")


def test_a_series_a_run_is_storing_into_is_skipped(gateway, capsys):
    assert (
        run("fetch", "--instruments", "AAPL", "--start", "2024-01-02", "--end", "2024-01-31") == 0
    )
    going = fetch_run_create(request=FetchRequest.parse(instruments="AAPL", start="2024-02-01"))
    capsys.readouterr()
    assert run("bars", "check") == 0
    lines = out_lines(capsys)
    assert lines[0] == f"⏭️  AAPL DAILY TRADES RTH: skipped, run {going.pk} is storing into it"
    assert lines[1].startswith("✅ 0 series checked")


def test_a_catalog_of_another_database_is_refused_with_one_line(gateway, settings, capsys):
    assert (
        run("fetch", "--instruments", "AAPL", "--start", "2024-01-02", "--end", "2024-01-31") == 0
    )
    marker = settings.DATA_DIR / "catalog" / SOURCE_FILE
    record = json.loads(marker.read_text())
    record["database"] = {"id": "0b7e3c1e-0000-4000-8000-000000000000", "label": "SQLite file x"}
    marker.write_text(json.dumps(record))
    capsys.readouterr()
    assert run("bars", "check") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert line.startswith(
        f"❌ The catalog {settings.DATA_DIR / 'catalog'} belongs to the SQLite file x (store "
        "0b7e3c1e); this store's database is the PostgreSQL database test_"
    )
    # a fetch into that catalog is refused the same way, before anything is written
    bars = Bar.objects.count()
    assert (
        run("fetch", "--instruments", "MSFT", "--start", "2024-01-02", "--end", "2024-01-31") == 1
    )
    assert "belongs to the SQLite file x" in capsys.readouterr().err
    assert Bar.objects.count() == bars


@pytest.mark.parametrize(
    "args, message",
    [
        (["bars"], "the following arguments are required: SUBCOMMAND"),
        (["bars", "export"], "the following arguments are required: --out"),
        (["bars", "vacuum"], "invalid choice: 'vacuum'"),
        (["bars", "check", "--timeframe", "FORTNIGHTLY"], "unknown timeframe 'FORTNIGHTLY'"),
        (["bars", "check", "--instruments", "ZZZZ"], "no stored series of ZZZZ"),
        (["bars", "check", "--cron", "61 2 * * *"], "bad --cron '61 2 * * *': minute '61'"),
        (["bars", "check", "--cron", "0 2 * * *", "--timezone", "Mars/Olympus"], "unknown time"),
        (["bars", "check", "--verbose-findings"], "unrecognized arguments: --verbose-findings"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, args, message):
    env = {"DATABASE_URL": worker_database_url(), "REDIS_URL": "", "DATA_DIR": str(tmp_path)}
    done = manage({**os.environ, **env}, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("❌ ") and message in line, line
    assert "Traceback" not in done.stderr
    assert not PeriodicTask.objects.filter(name="bars check").exists()


def test_beat_runs_the_check_and_the_admin_shows_each_series_last_check(
    gateway, capsys, admin_client, settings, smtp
):
    """The task beat sends keeps each series' result (the admin shows it) and tells the admins
    of findings once (an incident, mailed), and that they are over once the store is clean."""
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
    assert (
        run("fetch", "--instruments", "AAPL", "--start", "2024-01-02", "--end", "2024-01-31") == 0
    )
    assert run("bars", "check", "--cron", "0 2 * * *", "--instruments", "AAPL") == 0
    task = PeriodicTask.objects.get(name="bars check")
    assert (task.task, task.crontab.hour, str(task.crontab.timezone)) == (
        "fetcher.bars_check",
        "2",
        "UTC",
    )
    assert json.loads(task.kwargs) == {"instruments": "AAPL", "timeframe": ""}
    # what beat sends: the task with the schedule's arguments
    result = bars_check_task.apply(kwargs=json.loads(task.kwargs)).get()
    assert result == "1 series, 21 bars: 0 findings"
    series = Series.objects.get()
    assert series.check_findings == 0 and series.checked_at is not None
    html = admin_client.get(reverse("admin:fetcher_instrument_changelist")).content.decode()
    assert "DAILY TRADES RTH: ✅ nothing wrong at " in html
    Bar.objects.filter(ts=dt.datetime(2024, 1, 16, tzinfo=dt.UTC)).delete()
    bars_check_task.apply(kwargs=json.loads(task.kwargs))
    aapl = Instrument.objects.get(symbol="AAPL")
    page = admin_client.get(reverse("admin:fetcher_instrument_change", args=[aapl.pk]))
    html = page.content.decode()
    assert "❌ 3 findings" in html
    assert "AAPL DAILY TRADES RTH: 2024-01-16: 1 session with no bars" in html
    bars_check_task.apply(kwargs=json.loads(task.kwargs))  # still wrong: mailed once only
    assert smtp.subjects() == ["[ibdata] Store Check: bars check AAPL"]
    assert "2024-01-16: 1 session with no bars" in smtp.messages[0].get_content()
    assert run("bars", "check", "--repair") == 0
    bars_check_task.apply(kwargs=json.loads(task.kwargs))
    assert smtp.subjects()[1:] == ["[ibdata] over: Store Check: bars check AAPL"]
    assert run("bars", "check", "--unschedule") == 0
    assert not PeriodicTask.objects.filter(name="bars check").exists()


def test_the_usual_move_is_measured_inside_sessions(gateway, capsys):
    """A year of the simulator's minutes has overnight gaps and quiet days, and no spike."""
    assert run("fetch", *MINUTES, "--start", "2024-03-04", "--end", "2024-03-28") == 0
    capsys.readouterr()
    assert run("bars", "check") == 0
    [line] = out_lines(capsys)
    assert line.endswith("nothing wrong")


def test_a_session_the_gateway_has_no_bars_for_is_confirmed_once_and_not_reported_again(
    gateway, capsys
):
    """The fetcher's forex calendar has a session on Christmas Day; IDEALPRO (and the
    simulator) has no bars then. The repair asks again, the gateway answers the same: kept."""
    week = ["--instruments", "EUR.USD", "--timeframe", "1-HOUR", "--what-to-show", "MIDPOINT"]
    assert run("fetch", *week, "--start", "2024-12-23", "--end", "2024-12-27") == 0
    capsys.readouterr()
    assert run("bars", "check") == 1
    [finding, _] = out_lines(capsys)
    assert finding.startswith("❌ EUR.USD 1-HOUR MIDPOINT RTH: 2024-12-25: 1 session with no bars")
    assert run("bars", "check", "--repair") == 0
    lines = out_lines(capsys)
    assert any("asked again, the gateway answered the same; kept" in line for line in lines)
    assert run("bars", "check") == 0
    [line] = out_lines(capsys)
    assert "(1 confirmed by the gateway before: not counted): nothing wrong" in line
    # a session deleted later is a finding again: only the confirmed window is set aside
    Bar.objects.filter(ts__gte=dt.datetime(2024, 12, 26, tzinfo=dt.UTC)).delete()
    assert run("bars", "check") == 1


def test_missing_volumes_are_not_findings(gateway, settings, capsys):
    """Quote bars may carry no volume or WAP (NaN): not a broken bar, and equal in both stores."""
    from fetcher.services.checks import catalog_series
    from fetcher.services.items import series_catalog_rebuild

    week = ["--instruments", "EUR.USD", "--what-to-show", "MIDPOINT", "--timeframe", "1-HOUR"]
    assert run("fetch", *week, "--start", "2024-01-08", "--end", "2024-01-12") == 0
    Bar.objects.update(volume=float("nan"), wap=float("nan"))
    series = Series.objects.select_related("instrument").get()
    series_catalog_rebuild(
        catalog=catalog_series(series),
        years=[2024],
        catalog_root=settings.DATA_DIR / "catalog",
        instrument_id=series.instrument_id,
        timeframe=series.timeframe,
        what_to_show=series.what_to_show,
        rth=series.rth,
    )
    capsys.readouterr()
    assert run("bars", "check") == 0, capsys.readouterr().out
