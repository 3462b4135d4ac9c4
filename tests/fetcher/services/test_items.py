"""What a run stored merged into the catalog from the database: one partition (a UTC year) at a
time, a year too large for one read taken in slices, every bar once; and the catalog equal to
the database whatever became of the run (cancelled part way, then completed), whatever windows
its requests covered, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from django.db import connection

from fetcher.domain.instruments import instrument_specs_parse
from fetcher.domain.requests import FetchRequest
from fetcher.domain.time import epoch
from fetcher.domain.timeframes import TIMEFRAMES
from fetcher.models import FetchRunItem, Instrument
from fetcher.selectors import bars_read
from fetcher.services import items
from fetcher.services.fetch_runs import fetch_run_create
from fetcher.storage.bars import bars_upsert
from fetcher.storage.catalog import catalog_dataset, catalog_read
from ibsim.server import Faults
from tests.support import ROOT, make_bars, manage, truth_times, wait_until, worker_database_url

pytestmark = pytest.mark.django_db
M1 = TIMEFRAMES["1-MINUTE"]
NEW_YEAR = int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp())


@pytest.mark.parametrize("slice_bars", [1_000, 7, 5])
def test_an_item_is_exported_a_year_at_a_time_in_slices_every_bar_once(
    monkeypatch, tmp_path, slice_bars
):
    monkeypatch.setattr(items, "CATALOG_SLICE_BARS", slice_bars)
    run = fetch_run_create(
        request=FetchRequest(
            instruments=instrument_specs_parse("AAPL"),
            timeframe=M1,
            start=dt.date(2024, 12, 31),
            end=dt.date(2025, 1, 1),
            today=dt.date(2025, 6, 1),
        )
    )
    inst = Instrument.objects.create(
        symbol="AAPL", con_id=265598, primary_exchange="NASDAQ", currency="USD"
    )
    item = FetchRunItem.objects.get(run=run)
    item.instrument = inst
    item.start = dt.datetime(2024, 12, 31, tzinfo=dt.UTC)
    item.end = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    item.save()
    # 12 bars before new year, 10 after: slices of 5 end exactly where a year does, of 7 not
    times = np.concatenate([NEW_YEAR - 60 * np.arange(12, 0, -1), NEW_YEAR + 60 * np.arange(10)])
    key = {"instrument_id": inst.pk, "timeframe": M1.code, "what_to_show": run.what_to_show}
    bars_upsert(**key, batch=make_bars(times), fresh=True)

    written = items.series_catalog_export(
        instrument=inst,
        timeframe=M1.code,
        what_to_show=run.what_to_show,
        rth=True,
        windows=[(epoch(item.start), epoch(item.end))],
        catalog_root=tmp_path,
    )

    assert written == len(times)
    stored = bars_read(**key, rth=True, start=NEW_YEAR - 86_400, end=NEW_YEAR + 86_400)
    read = catalog_read(
        root=tmp_path,
        symbol="AAPL",
        exchange="NASDAQ",
        currency="USD",
        timeframe=M1,
        what_to_show="TRADES",
    )
    assert read.ts.tolist() == times.tolist() == stored.ts.tolist()
    assert read.close.tolist() == stored.close.tolist()
    years = sorted(p.parent.name for p in tmp_path.rglob("*.parquet"))
    assert years == ["year=2024", "year=2025"]


# --- the catalog equals the database, whatever became of the run, on SQLite and PostgreSQL ----


class Store:
    """A store the commands run on in processes of their own (`manage.py`, tasks in-process):
    the embedded default's SQLite file, or the test's PostgreSQL database."""

    def __init__(self, vendor: str, tmp_path):
        self.vendor = vendor
        self.data = tmp_path / "data"
        url = (
            f"sqlite:///{tmp_path / 'ibdata.sqlite3'}"
            if vendor == "sqlite"
            else worker_database_url()
        )
        self.env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "",
            "CELERY_RESULT_BACKEND": "",
            "DATA_DIR": str(self.data),
            "LOG_DIR": str(tmp_path / "logs"),
        }
        self.path = tmp_path / "ibdata.sqlite3"
        if vendor == "sqlite":
            done = manage(self.env, "migrate", "-v0")
            assert done.returncode == 0, done.stderr

    def at(self, sim) -> dict:
        return self.env | {"IBKR_HOST": "127.0.0.1", "IBKR_PORT": str(sim.port)}

    def query(self, sql: str) -> list[tuple]:
        if self.vendor == "sqlite":
            with sqlite3.connect(self.path, timeout=30) as db:
                return db.execute(sql).fetchall()
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def bars(self) -> list[tuple[int, float]]:
        """(bar start, close) of every stored bar, in time order."""
        rows = self.query("SELECT ts, close FROM fetcher_bar ORDER BY ts")
        return [(_epoch(ts), close) for ts, close in rows]

    def catalog(self) -> list[tuple[int, float]]:
        if not (self.data / "catalog").exists():
            return []
        table = catalog_dataset(self.data / "catalog").to_table(columns=["ts", "close"])
        ts = table.column("ts").cast(pa.int64()).to_pylist()
        return sorted(zip(ts, table.column("close").to_pylist(), strict=True))


def _epoch(value) -> int:
    if isinstance(value, str):  # SQLite keeps UTC text
        value = dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    return int(value.timestamp())


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    return Store(request.param, tmp_path)


GOOGL_MINUTES = ["--instruments", "GOOGL", "--timeframe", "1-MINUTE"]
TEN_SESSIONS = ["--start", "2024-03-04", "--end", "2024-03-15"]


@pytest.mark.django_db(transaction=True)
def test_a_run_cancelled_part_way_then_completed_leaves_the_catalog_equal_to_the_database(
    store, sim_factory
):
    stalled = sim_factory(faults=Faults(stall_requests=3))  # three answers never come
    fetching = subprocess.Popen(
        [sys.executable, "manage.py", "fetch", *GOOGL_MINUTES, *TEN_SESSIONS],
        cwd=ROOT,
        env=store.at(stalled),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        [(run_id, _)] = wait_until(
            lambda: store.query(
                "SELECT id, chunks_done FROM fetcher_fetchrun WHERE chunks_done = 7"
            ),
            60,
            "seven of ten sessions stored",
        )
        cancel = manage(store.env, "fetch", "--cancel", str(run_id))
        assert cancel.returncode == 0, cancel.stderr
        assert fetching.wait(60) == 1
    finally:
        fetching.kill()
    assert store.query(f"SELECT status FROM fetcher_fetchrun WHERE id = {run_id}") == [
        ("cancelled",)
    ]
    stored = store.bars()
    assert len(stored) == 7 * 390
    assert store.catalog() == stored

    sim = sim_factory()
    done = manage(store.at(sim), "fetch", *GOOGL_MINUTES, *TEN_SESSIONS)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    stored = store.bars()
    assert [ts for ts, _ in stored] == truth_times(
        sim, "GOOGL", "1 min", "2024-03-04", "2024-03-15"
    )
    assert store.catalog() == stored
    check = manage(store.env, "bars", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "nothing wrong" in check.stdout


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "args, bars",
    [
        # the first day of a month of daily bars: [start, end) on SQLite too
        (["--instruments", "AAPL", "--start", "2024-02-01", "--end", "2024-02-29"], 20),
        # forex sessions open at 17:00 New York the evening before: the first request starts
        # before the range asked for, and its bars are stored (and exported) too
        (
            [
                "--instruments", "EUR.USD", "--start", "2024-11-01", "--end", "2024-11-05",
                "--timeframe", "1-HOUR", "--what-to-show", "MIDPOINT", "--no-rth",
            ],
            79,
        ),
    ],
    ids=["daily", "forex-hours"],
)  # fmt: skip
def test_the_catalog_holds_every_bar_stored(store, sim, args, bars):
    done = manage(store.at(sim), "fetch", *args)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    stored = store.bars()
    assert len(stored) == bars
    assert store.catalog() == stored


@pytest.mark.django_db(transaction=True)
def test_a_damaged_store_is_found_and_repaired_on_either_database(store, sim):
    """`bars check --repair` on the embedded SQLite default as on PostgreSQL: a bar deleted
    from the database and the catalog's file removed, both put back."""
    month = ["--instruments", "AAPL", "--start", "2024-02-01", "--end", "2024-02-29"]
    assert manage(store.at(sim), "fetch", *month).returncode == 0
    stored = store.bars()
    store.query("DELETE FROM fetcher_bar WHERE close = (SELECT min(close) FROM fetcher_bar)")
    [year] = store.data.rglob("year=2024/part-0.parquet")
    year.unlink()
    check = manage(store.at(sim), "bars", "check")
    assert check.returncode == 1
    assert "catalog year=2024: no file; the database has 19 bars" in check.stdout
    repair = manage(store.at(sim), "bars", "check", "--repair")
    assert repair.returncode == 0, repair.stdout[-2000:] + repair.stderr
    assert repair.stdout.strip().endswith("nothing wrong")
    assert store.bars() == stored
    assert store.catalog() == stored
