"""The catalog on S3-compatible object storage (DATA_CATALOG_URL=s3://bucket/prefix), against a
real server of the test's own: the same layout and reader calls as on disk, writers on several
hosts kept apart by PostgreSQL's locks."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from django.db import connections

import ibdata
from fetcher.domain.timeframes import TIMEFRAMES
from fetcher.models import Bar, RunStatus
from fetcher.storage import catalog
from fetcher.storage.catalog import (
    SOURCE_FILE,
    CatalogSeries,
    catalog_dataset,
    catalog_read,
    catalog_series_keys,
    catalog_source,
    catalog_source_record,
    catalog_write,
)
from tests.support import (
    DEPLOYED_SHAPE,
    deployed_env,
    enqueue,
    manage,
    truth_times,
    wait_finished,
)
from tests.support.catalog import (
    assert_same,
    bars,
    duckdb_with_s3,
    epoch,
    rows_by_duckdb,
    rows_by_polars,
    rows_by_pyarrow,
)

pytestmark = pytest.mark.django_db(transaction=True)

VENUE = {"exchange": "NASDAQ", "currency": "USD"}
DAILY, MINUTE = TIMEFRAMES["DAILY"], TIMEFRAMES["1-MINUTE"]
DAY = 86_400


def test_the_catalog_on_s3_has_the_layout_and_readers_of_the_one_on_disk(s3, tmp_path):
    """The same bars written to S3 and to a folder: the same files (no lock, no temp file on
    S3), the same series, and every reader sees the same rows in both."""
    url = s3.url("research/catalog")
    aapl = bars(epoch(2023, 12, 1) + DAY * np.arange(60))  # December and January
    minutes = bars(epoch(2024, 3, 4, 14, 30) + 60 * np.arange(390), version=2.0)
    disk = tmp_path / "catalog"
    brk = dict(symbol="BRK B", exchange="NYSE", currency="USD", timeframe=MINUTE)
    for root in (url, disk):
        catalog_write(
            root=root, symbol="AAPL", **VENUE, timeframe=DAILY, what_to_show="TRADES", batch=aapl
        )
        catalog_write(root=root, **brk, what_to_show="TRADES", batch=minutes)
        catalog_source_record(root=root, source="simulator", account="DU1234567")

    local = sorted(
        str(p.relative_to(disk)) for p in disk.rglob("*") if p.is_file() and ".lock" not in p.name
    )
    assert s3.keys("research/catalog") == local  # the same files, no lock file, no temp file
    assert catalog_source(url) == catalog_source(disk)
    assert SOURCE_FILE in local
    assert catalog_series_keys(url) == catalog_series_keys(disk)
    assert CatalogSeries("AAPL", timeframe=DAILY, what_to_show="TRADES", **VENUE).years(
        root=url
    ) == [2023, 2024]

    series = dict(symbol="AAPL", **VENUE, timeframe=DAILY, what_to_show="TRADES")
    assert_same(catalog_read(root=url, **series), aapl)
    window = catalog_read(root=url, **series, start=epoch(2024, 1, 1), end=epoch(2024, 1, 11))
    assert_same(window, aapl.slice((aapl.ts >= epoch(2024, 1, 1)) & (aapl.ts < epoch(2024, 1, 11))))
    assert catalog_dataset(url).to_table().num_rows == 60 + 390

    # the plain calls of docs/catalog.md, as a user makes them, on S3 and on disk alike
    on_disk = rows_by_pyarrow(str(disk))
    assert len(on_disk) == 450 and ("BRK B", epoch(2024, 3, 4, 14, 30), minutes.close[0]) in on_disk
    assert rows_by_pyarrow(f"{s3.BUCKET}/research/catalog", s3.filesystem()) == on_disk
    with duckdb_with_s3() as db:
        assert rows_by_duckdb(url, db) == on_disk
    assert rows_by_polars(url) == on_disk


def test_a_series_replaced_whole_on_s3_never_shows_both_versions(s3):
    url = s3.url("replaced")
    series = dict(root=url, symbol="NVDA", **VENUE, timeframe=DAILY, what_to_show="TRADES")
    old = bars(epoch(2023, 12, 1) + DAY * np.arange(60))
    catalog_write(**series, batch=old)
    new = bars(epoch(2024, 1, 2) + DAY * np.arange(20), version=3.0)
    with catalog.catalog_replacing(**series, batch=new):
        assert_same(catalog_read(**series), old)  # staged: hidden from every reader
        assert len(rows_by_polars(url)) == 60
    assert_same(catalog_read(**series), new)
    prefix = (
        "what_to_show=TRADES/timeframe=DAILY/session=RTH/symbol=NVDA/exchange=NASDAQ/currency=USD"
    )
    assert s3.keys("replaced") == [f"{prefix}/year=2024/part-0.parquet"]

    with pytest.raises(RuntimeError), catalog.catalog_replacing(**series, batch=old):
        raise RuntimeError("the database transaction failed")
    assert_same(catalog_read(**series), new)
    assert s3.keys("replaced") == [f"{prefix}/year=2024/part-0.parquet"]


def test_writers_sharing_an_s3_catalog_take_turns_and_lose_nothing(s3):
    """Two writers (each with its own database session, as on two hosts) merge small windows
    into one partition file, interleaved: PostgreSQL's lock keeps every read-merge-upload whole,
    so every bar of both is there at the end."""
    url, start = s3.url("shared"), threading.Barrier(2)
    series = dict(symbol="AAPL", **VENUE, timeframe=MINUTE, what_to_show="TRADES")
    errors = []

    def write_windows(offset: int) -> None:
        try:
            start.wait()
            for i in range(offset, 40, 2):
                ts = epoch(2024, 3, 4) + 60 * (10 * i + np.arange(10))
                catalog_write(root=url, **series, batch=bars(ts))
        except Exception as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connections.close_all()

    writers = [threading.Thread(target=write_windows, args=(offset,)) for offset in (0, 1)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert errors == []
    assert_same(catalog_read(root=url, **series), bars(epoch(2024, 3, 4) + 60 * np.arange(400)))


WEEKS = (("2024-03-04", "2024-03-08"), ("2024-03-11", "2024-03-15"))


@DEPLOYED_SHAPE[0]
@DEPLOYED_SHAPE[1]
def test_two_workers_on_two_hosts_write_one_catalog_on_s3(
    s3, sim_factory, workers, settings, tmp_path
):
    """Two ibkr workers, each with a DATA_DIR of its own (as on two hosts), one catalog on S3:
    two runs, one each, of the same series' 1-minute bars (two weeks of one year's file). The
    catalog holds every bar once, equal to the database, read by pyarrow, DuckDB, polars and
    ibdata.bars; `bars check` finds nothing wrong; nothing is written to either DATA_DIR's
    catalog."""
    url = s3.url("deployed/catalog")
    settings.DATA_CATALOG_URL = url
    sim = sim_factory(latency_s=0.5)  # each run lasts long enough for the other worker to take one
    hosts = {}
    for client_id, host in ((51, "a"), (52, "b")):
        hosts[host] = {"DATA_DIR": str(tmp_path / host / "data"), "DATA_CATALOG_URL": url}
        workers(sim, client_id=client_id, name=f"ibkr-{host}", env=hosts[host])
    runs = [enqueue("AAPL,MSFT", *week, "1-MINUTE") for week in WEEKS]
    for run in runs:
        done = wait_finished(run.pk, 180)
        assert done.status == RunStatus.SUCCEEDED, done.error

    logs = [(tmp_path / f"worker-{n}.log").read_text() for n in range(2)]
    assert [log.count("Task fetcher.fetch_run[") for log in logs] == [2, 2]  # received, succeeded
    stored = sorted(
        (symbol, int(ts.timestamp()), close)
        for symbol, ts, close in Bar.objects.values_list("instrument__symbol", "ts", "close")
    )
    truth = [
        t
        for symbol in ("AAPL", "MSFT")
        for week in WEEKS
        for t in truth_times(sim, symbol, "1 min", *week)
    ]
    assert sorted(ts for _, ts, _ in stored) == sorted(truth)
    assert rows_by_pyarrow(f"{s3.BUCKET}/deployed/catalog", s3.filesystem()) == stored
    with duckdb_with_s3() as db:
        assert rows_by_duckdb(url, db) == stored
    assert rows_by_polars(url) == stored
    from_catalog = ibdata.bars("AAPL", "1-MINUTE", source="catalog", root=url)
    pd.testing.assert_frame_equal(from_catalog, ibdata.bars("AAPL", "1-MINUTE", source="db"))
    assert len(from_catalog) == 10 * 390

    assert [key for key in s3.keys("deployed/catalog") if key.endswith(".parquet")] == [
        f"what_to_show=TRADES/timeframe=1-MINUTE/session=RTH/symbol={symbol}/exchange=NASDAQ"
        "/currency=USD/year=2024/part-0.parquet"
        for symbol in ("AAPL", "MSFT")
    ]
    assert not [path for host in "ab" for path in (tmp_path / host).rglob("*.parquet")]
    check = manage(deployed_env(tmp_path, sim, **hosts["a"]), "bars", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "nothing wrong" in check.stdout
