"""At the scale users run: a year of 1-minute bars for three instruments (750 requests, about
290,000 bars) through `manage.py fetch` and a real ibkr worker, Redis pacer, PostgreSQL and
the simulator in a process of its own; every bar equals the simulator's ground truth, also
through a daily restart, a farm outage and the nightly reset's false 200s. Then `bars check`
on that store, and a damage repaired by `bars check --repair`."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from fetcher.admin.instruments import CHART_BARS
from fetcher.models import Bar, FetchRun, Instrument, RunStatus, Series
from fetcher.storage.catalog import catalog_dataset
from tests.support import (
    DEPLOYED_SHAPE,
    NEW_YORK,
    ROOT,
    link,
    manage,
    minute_truth,
    rows,
    worker_database_url,
)

pytestmark = [pytest.mark.django_db(transaction=True), *DEPLOYED_SHAPE, pytest.mark.slow]

SYMBOLS = ("AAPL", "MSFT", "NVDA")
START, END = dt.date(2025, 1, 1), dt.date(2025, 12, 31)


@pytest.fixture
def sim_process(sim_processes):
    """The simulator in a process of its own, as `python -m ibsim` runs it."""
    return sim_processes()


def truth(symbol: str):
    return minute_truth(symbol, START, END)


def fetch_a_year(port: int, workers, tmp_path) -> tuple[FetchRun, dict]:
    """A year of 1-minute bars of SYMBOLS, as a user asks for it: `manage.py fetch` through a
    real ibkr worker (Redis, PostgreSQL) on the simulator at `port`; the run once it has ended,
    and the environment of the project's commands on that store."""

    class Sim:  # what the workers fixture needs to know of the gateway
        pass

    Sim.port = port
    workers(Sim)
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "IBKR_HOST": "127.0.0.1",
        "IBKR_PORT": str(port),
        "DATA_DIR": str(tmp_path / "data"),
    }
    args = ["--start", START.isoformat(), "--end", END.isoformat(), "--timeframe", "1-MINUTE"]
    done = subprocess.run(
        [sys.executable, "manage.py", "fetch", "--instruments", ",".join(SYMBOLS), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return FetchRun.objects.get(), env


def assert_every_bar_once(run: FetchRun, tmp_path) -> int:
    """Each series equals the simulator's ground truth, bar for bar; the catalog holds them.
    Returns how many bars that is."""
    total = 0
    for symbol in SYMBOLS:
        want = truth(symbol)
        stored = Bar.objects.filter(instrument__symbol=symbol, timeframe=run.timeframe)
        rows = np.array(
            [
                (ts.timestamp(), close, volume)
                for ts, close, volume in stored.order_by("ts").values_list("ts", "close", "volume")
            ]
        )
        np.testing.assert_array_equal(rows[:, 0].astype(np.int64), want.time)
        np.testing.assert_allclose(rows[:, 1], want.close, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(rows[:, 2], want.volume)
        series = Series.objects.get(instrument__symbol=symbol, timeframe=run.timeframe)
        assert series.bar_count == len(want.time)
        total += len(want.time)
    assert run.bars_stored == total > 250_000
    catalog = catalog_dataset(tmp_path / "data" / "catalog").to_table()
    assert catalog.num_rows == total
    return total


def test_a_year_of_minutes_for_three_instruments_through_the_worker(
    sim_process, workers, tmp_path, admin_client
):
    run, env = fetch_a_year(sim_process, workers, tmp_path)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.requests_made == len(SYMBOLS) * 250  # one request per session, none twice
    total = assert_every_bar_once(run, tmp_path)
    admin_at_scale(admin_client, run)
    check_at_scale(env, tmp_path / "data" / "catalog", total)


def check_at_scale(env: dict, catalog, total: int) -> None:
    """`bars check` on these 290,880 bars finds nothing; then a session of AAPL deleted from the
    database and MSFT's catalog file removed: found, and `--repair` (through the ibkr worker)
    puts both back, every bar equal to the ground truth."""
    check = manage(env, "bars", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().endswith("nothing wrong")
    assert f"3 series checked: {total:,} bars in the database, {total:,} in the catalog" in (
        check.stdout
    )

    aapl = Bar.objects.filter(instrument__symbol="AAPL")
    day = dt.datetime(2025, 6, 10, tzinfo=dt.UTC)
    assert aapl.filter(ts__gte=day, ts__lt=day + dt.timedelta(days=1)).delete()[0] == 390
    [msft] = catalog.glob("**/symbol=MSFT/**/year=2025/part-0.parquet")
    msft.unlink()
    check = manage(env, "bars", "check")
    assert check.returncode == 1
    lines = check.stdout.strip().splitlines()
    assert "❌ AAPL 1-MINUTE TRADES RTH: 2025-06-10: 1 session with no bars (fetched before: " in (
        check.stdout
    )
    assert (
        "❌ MSFT 1-MINUTE TRADES RTH: catalog year=2025: no file; the database has" in check.stdout
    )
    assert "4 findings in 2 series" in lines[-1]  # and AAPL's catalog and Series counters

    repair = manage(env, "bars", "check", "--repair", timeout=600)
    assert repair.returncode == 0, repair.stdout[-3000:] + repair.stderr
    for symbol in SYMBOLS:
        want = truth(symbol)
        stored = Bar.objects.filter(instrument__symbol=symbol).order_by("ts")
        times = [int(ts.timestamp()) for ts in stored.values_list("ts", flat=True)]
        np.testing.assert_array_equal(times, want.time)
    table = catalog_dataset(catalog).to_table(columns=["ts", "close", "symbol"])
    assert table.num_rows == total


def test_a_year_of_minutes_through_a_daily_restart_a_farm_outage_and_false_200s(
    sim_processes, workers, tmp_path
):
    """The same year, the gateway in its own process going through a daily restart (the port
    refusing connections for 2 s), its historical farm broken for 2 s and the nightly reset's
    false 200s for 2 s, a few hundred requests apart: the run succeeds with every bar once."""
    stats = tmp_path / "sim-stats.json"
    port = sim_processes(
        "--restart-after-requests", "150", "--restart-down-s", "2",
        "--farm-outage-after-requests", "350", "--farm-outage-s", "2",
        "--spurious-200-after-requests", "550", "--spurious-200-s", "2",
        "--stats-file", str(stats),
    )  # fmt: skip
    run, env = fetch_a_year(port, workers, tmp_path)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert_every_bar_once(run, tmp_path)
    check = manage(env, "bars", "check")  # the store checks itself: nothing wrong either
    assert check.returncode == 0 and check.stdout.strip().endswith("nothing wrong"), check.stdout
    counts = json.loads(stats.read_text())  # written every second: long after the faults
    assert counts["restarts"] == 1 and counts["connections"] >= 2
    assert counts["farm_outages"] == 1 and counts["errors"]["2106"] >= 2  # at connect, and back
    assert counts["errors"]["200"] >= 1
    assert run.requests_made > len(SYMBOLS) * 250  # what the faults cost was asked again


def admin_at_scale(client, run: FetchRun) -> None:
    """What a user opens in the admin after such a fetch, on these 290,880 bars and 750
    requests: the run's page, its requests' list, the Bars list at its first page and deep
    inside a series, and an instrument's chart (the last CHART_BARS of a year of minutes)."""
    page = client.get(reverse("admin:fetcher_fetchrun_change", args=[run.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "750/750 requests" in html and "done: 750" in html
    assert html.count("<td>250/250</td>") == len(SYMBOLS)  # each instrument's requests
    chunks = client.get(reverse("admin:fetcher_fetchchunk_changelist"), {"run__id__exact": run.pk})
    assert chunks.status_code == 200 and "done" in chunks.content.decode()

    aapl = Instrument.objects.get(symbol="AAPL")
    want = truth("AAPL").time
    bars = reverse("admin:fetcher_bar_changelist")
    query = {"instrument": aapl.pk, "timeframe": run.timeframe}
    html = client.get(bars, query).content.decode()
    assert f"{len(want)} bars in the matching series" in html
    assert [t for _, _, t in rows(html)] == [when(t) for t in want[::-1][:100]]
    # deep inside the series: the hundred bars before the 50,000th, newest first
    cursor = f"{aapl.pk}.{run.timeframe}.{run.what_to_show}.1.{int(want[50_000])}"
    html = client.get(bars, {**query, "older": cursor}).content.decode()
    assert [t for _, _, t in rows(html)] == [when(t) for t in want[49_900:50_000][::-1]]
    assert link(html, "older") and link(html, "newer")

    page = client.get(reverse("admin:fetcher_instrument_change", args=[aapl.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert f'<span id="chart-stored">{len(want)}</span>' in html
    assert f'<span id="chart-shown">{CHART_BARS}</span>' in html
    # the chart ends at the last bar, drawn in the exchange's zone
    last = dt.datetime.fromtimestamp(int(want[-1]), NEW_YORK).strftime("%Y-%m-%d %H:%M:%S")
    assert f'"{last}"' in html


def when(ts) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
