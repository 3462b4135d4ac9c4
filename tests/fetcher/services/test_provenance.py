"""Where bars came from: every run, coverage row and series records the gateway kind that served
it, and simulator bars never mix with real ones in one store (database or catalog)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys

import pytest
from django.core.management import call_command

from fetcher.models import Bar, Coverage, FetchRun, GatewayKind, RunStatus, Series
from fetcher.storage.catalog import SOURCE_FILE
from tests.support import ROOT, manage

pytestmark = pytest.mark.django_db(transaction=True)

GUIDE = ["--start", "2024-01-01", "--end", "2024-01-31", "--timeframe", "DAILY"]


@pytest.fixture
def store(settings, tmp_path, in_process_tasks):
    settings.DATA_DIR = tmp_path
    return tmp_path


def point_at(settings, gateway) -> None:
    settings.IBKR_HOST, settings.IBKR_PORT = "127.0.0.1", gateway.port


def fetch(*args) -> int:
    try:
        call_command("fetch", *args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_a_fetch_records_which_gateway_served_it(sim, store, settings):
    point_at(settings, sim)
    assert fetch("--instruments", "AAPL", *GUIDE) == 0
    run = FetchRun.objects.get()
    assert (run.source, run.account) == (GatewayKind.SIMULATOR, "DU1234567")
    assert set(Coverage.objects.values_list("source", flat=True)) == {GatewayKind.SIMULATOR}
    series = Series.objects.get()
    assert (series.source, series.account, series.bar_count) == ("simulator", "DU1234567", 21)
    assert series.first_ts.date() == dt.date(2024, 1, 2)
    assert series.last_ts.date() == dt.date(2024, 1, 31)
    assert json.loads((store / "catalog" / SOURCE_FILE).read_text())["source"] == "simulator"


def test_a_gateway_that_does_not_name_itself_is_recorded_as_a_real_one(
    sim_factory, store, settings
):
    tws = sim_factory(identify=False, accounts=("U7654321",))  # stands in for a real TWS
    point_at(settings, tws)
    assert fetch("--instruments", "AAPL", *GUIDE) == 0
    run = FetchRun.objects.get()
    assert (run.source, run.account) == (GatewayKind.IBKR, "U7654321")
    assert Series.objects.get().source == GatewayKind.IBKR


@pytest.mark.parametrize("first_real", [False, True])
def test_simulator_and_real_bars_never_share_a_database(
    sim_factory, store, settings, capsys, first_real
):
    sim = sim_factory()
    tws = sim_factory(identify=False, accounts=("U7654321",))
    first, second = (tws, sim) if first_real else (sim, tws)
    point_at(settings, first)
    assert fetch("--instruments", "AAPL", *GUIDE) == 0
    bars_before = Bar.objects.count()
    capsys.readouterr()

    point_at(settings, second)
    assert fetch("--instruments", "AAPL,MSFT", *GUIDE) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    held, incoming = (
        ("TWS / IB Gateway (account U7654321)", "ibdata simulator (account DU1234567)")
        if first_real
        else ("ibdata simulator (account DU1234567)", "TWS / IB Gateway (account U7654321)")
    )
    assert f"This database holds bars from the {held}; this gateway is the {incoming}" in err
    assert FetchRun.objects.count() == 1 and Bar.objects.count() == bars_before
    assert second.stats.counts["historical_requests"] == 0


def test_the_catalog_remembers_its_source_when_the_database_is_new(
    sim_factory, store, settings, capsys
):
    tws = sim_factory(identify=False, accounts=("U7654321",))
    point_at(settings, tws)
    assert fetch("--instruments", "AAPL", *GUIDE) == 0
    # a new, empty database over the same catalog
    for model in (Bar, Coverage, Series, FetchRun):
        model.objects.all().delete()
    capsys.readouterr()
    point_at(settings, sim_factory())
    assert fetch("--instruments", "AAPL", *GUIDE) == 1
    err = capsys.readouterr().err
    assert f"The catalog {store / 'catalog'} holds bars from the TWS / IB Gateway" in err
    assert Bar.objects.count() == 0


def test_a_run_refused_on_the_worker_side_fails_with_the_reason(sim_factory, store, settings):
    """The queued path checks on the worker, when the run starts (no early probe there)."""
    from fetcher.domain.requests import FetchRequest
    from fetcher.execution.executor import fetch_run_execute
    from fetcher.services.fetch_runs import fetch_run_create

    point_at(settings, sim_factory())
    assert fetch("--instruments", "AAPL", *GUIDE) == 0
    point_at(settings, sim_factory(identify=False))
    run = fetch_run_create(
        request=FetchRequest.parse(instruments="MSFT", start="2024-01-02", end="2024-01-31")
    )
    done = fetch_run_execute(run_id=run.pk)
    assert done.status == RunStatus.FAILED
    assert "holds bars from the ibdata simulator" in done.error
    assert done.source == GatewayKind.IBKR
    assert not Bar.objects.filter(instrument__symbol="MSFT").exists()


def test_the_demo_keeps_its_own_store(tmp_path):
    """Whatever DATA_DIR and DATABASE_URL say, `manage.py demo` writes into data/demo only."""
    default_store = tmp_path / "default"
    env = {
        **os.environ,
        "DATA_DIR": str(default_store),
        "DATABASE_URL": f"sqlite:///{default_store / 'ibdata.sqlite3'}",
        "REDIS_URL": "",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # 21 bars the first time; a demo run again finds them stored and asks for nothing
    assert re.search(r"✅ AAPL: (21 bars fetched|0 bars fetched \(already stored\))", result.stdout)
    assert "ibdata simulator (DU1234567)" in result.stdout
    assert not (default_store / "catalog").exists()
    assert not (default_store / "ibdata.sqlite3").exists()
    demo = ROOT / "data" / "demo"
    assert json.loads((demo / "catalog" / SOURCE_FILE).read_text())["source"] == "simulator"
    # It ends with a backtest on the demo's bars, and its picture.
    assert "Backtest Results" in result.stdout and "Portfolio" in result.stdout
    assert (demo / "backtest.png").read_bytes()[:4] == b"\x89PNG"


def test_a_catalog_belongs_to_one_database(sim, store, settings, capsys):
    """A PostgreSQL store, then the embedded SQLite default on the same DATA_DIR: the second
    is refused with one line naming both databases, and writes nothing."""
    point_at(settings, sim)
    assert fetch("--instruments", "AAPL", *GUIDE) == 0
    recorded = json.loads((store / "catalog" / SOURCE_FILE).read_text())["database"]
    assert recorded["label"].startswith("PostgreSQL database test_")
    files = sorted(p.stat().st_mtime_ns for p in (store / "catalog").rglob("*.parquet"))
    env = {
        **os.environ,
        "DATA_DIR": str(store),
        "DATABASE_URL": f"sqlite:///{store / 'ibdata.sqlite3'}",
        "REDIS_URL": "",
        "IBKR_HOST": "127.0.0.1",
        "IBKR_PORT": str(sim.port),
    }
    assert manage(env, "migrate", "-v0").returncode == 0
    done = manage(env, "fetch", "--instruments", "MSFT", *GUIDE)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(
        f"❌ The catalog {store / 'catalog'} belongs to the {recorded['label']} (store "
        f"{recorded['id'][:8]}); this store's database is the SQLite file "
        f"{store / 'ibdata.sqlite3'} (store "
    )
    assert sorted(p.stat().st_mtime_ns for p in (store / "catalog").rglob("*.parquet")) == files
    assert not list((store / "catalog").rglob("symbol=MSFT"))


def test_imported_bars_share_a_store_with_real_ones_and_a_fetch_does_not_ask_for_them(
    sim_factory, store, settings, tmp_path
):
    """Imports are real bars from elsewhere: a store of a real gateway's bars takes them, and a
    fetch after them plans no request for what they cover."""
    tws = sim_factory(identify=False, accounts=("U7654321",))  # stands in for a real TWS
    point_at(settings, tws)
    assert fetch("--instruments", "AAPL,MSFT", *GUIDE) == 0
    exported = tmp_path / "aapl.parquet"
    call_command("bars", "export", "--instruments", "AAPL", "--out", str(exported))
    aapl = Series.objects.get(instrument__symbol="AAPL")
    bars = list(Bar.objects.filter(instrument=aapl.instrument_id).order_by("ts").values_list())
    for model in (Bar, Coverage):
        model.objects.filter(instrument=aapl.instrument_id).delete()
    aapl.delete()

    call_command("bars", "import", str(exported), "--instrument", "AAPL")
    assert Series.objects.get(instrument__symbol="AAPL").source == GatewayKind.IMPORT
    assert list(Bar.objects.filter(instrument=aapl.instrument_id).order_by("ts").values_list()) == (
        bars
    )
    asked = tws.stats.counts["historical_requests"]
    assert fetch("--instruments", "AAPL", *GUIDE) == 0
    run = FetchRun.objects.order_by("-pk").first()
    assert (run.status, run.chunks_planned) == (RunStatus.SUCCEEDED, 0)
    assert tws.stats.counts["historical_requests"] - asked <= 1  # the last stored bar, again
    assert json.loads((store / "catalog" / SOURCE_FILE).read_text())["source"] == "ibkr"
