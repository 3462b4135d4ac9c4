"""The research API (ibdata.bars): stored bars as backtesting.py and vectorbt take them, from the
database (Django) or the catalog alone (no Django); fed to backtesting.py they give the trades
`backtest --json` gives; zones, missing values, polars, and one-line errors."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest

import ibdata
from fetcher.domain.bars import BarBatch
from fetcher.domain.timeframes import timeframe_parse
from fetcher.storage.catalog import CatalogSeries
from tests.support import ROOT
from tests.support.backtest_reference import DonchianBreakout, SmaCross

DAY = 86_400


def run_of(frame: pd.DataFrame, strategy, **params) -> pd.DataFrame:
    """backtesting.py's closed trades on `frame`, with the command's defaults."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Backtest(frame, strategy, cash=100_000, commission=0.0).run(**params)["_trades"]


def assert_same_trades(theirs: pd.DataFrame, ours: list[dict], daily: bool) -> None:
    """The same trades: entry and exit times (the session date for daily bars), prices, size,
    P&L within 1e-9."""
    assert len(theirs) == len(ours) > 0
    for t, o in zip(theirs.itertuples(), ours, strict=True):
        for when, text in ((t.EntryTime, o["EntryTime"]), (t.ExitTime, o["ExitTime"])):
            if daily:
                assert when.date().isoformat() == text[:10] and when.hour == 0
            else:
                assert when == pd.Timestamp(text, tz="UTC")
        assert (t.EntryPrice, t.ExitPrice, t.Size) == (o["EntryPrice"], o["ExitPrice"], o["Size"])
        assert t.PnL == pytest.approx(o["PnL"], rel=1e-9, abs=1e-9)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("source", ["db", "catalog"])
def test_the_frame_in_backtesting_py_trades_as_backtest_json(gateway, backtest, source):
    code, out, err = backtest(
        "--symbols", "AAPL", "--start", "2023-01-01", "--end", "2024-12-31", "--json"
    )
    assert code == 0, err
    frame = ibdata.bars("AAPL", "DAILY", "2023-01-01", "2024-12-31", source=source)
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert str(frame.index.tz) == "America/New_York" and frame.index.name == "time"
    assert (frame.index.hour == 0).all() and frame.index[0].date() == dt.date(2023, 1, 3)
    assert len(frame) == json.loads(out)["bars"] == 502  # the sessions of 2023 and 2024
    assert_same_trades(run_of(frame, SmaCross, fast=10, slow=30), json.loads(out)["trades"], True)
    code, out, err = backtest(
        "--symbols",
        "AAPL",
        "--start",
        "2023-01-01",
        "--end",
        "2024-12-31",
        "--strategy",
        "donchian",
        "--json",
        "--data-source",
        source,
    )
    assert code == 0, err
    theirs = run_of(frame, DonchianBreakout, entry=20, exit=10)
    assert_same_trades(theirs, json.loads(out)["trades"], True)


@pytest.mark.django_db(transaction=True)
def test_intraday_bars_are_in_the_exchanges_zone_and_trade_the_same(gateway, backtest):
    args = ("--symbols", "AAPL", "--start", "2024-03-01", "--end", "2024-05-31")
    code, out, err = backtest(*args, "--timeframe", "1-HOUR", "--strategy", "donchian", "--json")
    assert code == 0, err
    frame = ibdata.bars("AAPL", "1-HOUR", "2024-03-01", "2024-05-31", source="catalog")
    assert str(frame.index.tz) == "America/New_York"
    # 9:30 every session, before and after the change to summer time (March 10)
    assert frame.index[0] == pd.Timestamp("2024-03-01 09:30", tz="America/New_York")
    assert (frame.index[frame.index.day == 11][0].hour, frame.index[0].hour) == (9, 9)
    assert frame.Volume.gt(0).all()
    theirs = run_of(frame, DonchianBreakout, entry=20, exit=10)
    assert_same_trades(theirs, json.loads(out)["trades"], False)
    polars = ibdata.bars_polars("AAPL", "1-HOUR", "2024-03-01", "2024-05-31", source="db")
    assert polars.columns == ["time", "Open", "High", "Low", "Close", "Volume"]
    assert str(polars.schema["time"].time_zone) == "America/New_York"
    assert polars.drop("time").to_numpy().tolist() == frame.to_numpy().tolist()


@pytest.mark.django_db(transaction=True)
def test_quotes_have_no_volume_and_forex_trades_in_new_york(gateway):
    from django.core.management import call_command

    call_command(
        "fetch",
        "--instruments",
        "EUR.USD",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-31",
        "--what-to-show",
        "MIDPOINT",
    )
    frame = ibdata.bars("EUR.USD", "DAILY", "2024-01-01", "2024-01-31", what_to_show="MIDPOINT")
    assert len(frame) > 15 and frame.Volume.isna().all() and frame.Close.notna().all()
    assert frame.attrs["exchange"] == "IDEALPRO" and frame.attrs["what_to_show"] == "MIDPOINT"
    catalog = ibdata.bars("EUR.USD", "DAILY", what_to_show="MIDPOINT", source="catalog")
    pd.testing.assert_frame_equal(frame, catalog, check_freq=False)
    with pytest.raises(ibdata.BarsError) as raised:
        ibdata.bars("EUR.USD", "DAILY")
    assert str(raised.value).startswith(
        "no DAILY TRADES RTH bars of EUR.USD in the database (stored: DAILY MIDPOINT RTH)"
    )


@pytest.mark.django_db(transaction=True)
def test_from_a_running_event_loop_as_in_a_notebook(gateway, backtest):
    assert backtest("--symbols", "AAPL", "--start", "2024-01-01", "--end", "2024-03-31")[0] == 0

    async def cell():
        return ibdata.bars("AAPL", "DAILY", "2024-01-01", "2024-03-31")

    frame = asyncio.run(cell())  # Django refuses database calls on a thread running a loop
    assert len(frame) == 61


def write_series(root, symbol, exchange, currency, timeframe="DAILY", what="TRADES", ts=None):
    ts = np.array([19723, 19724, 19725]) * DAY if ts is None else np.asarray(ts)
    n = len(ts)
    close = 100.0 + np.arange(n)
    volume = 1000.0 + np.arange(n)
    volume[1] = np.nan  # a bar whose volume is missing
    batch = BarBatch.from_columns(
        ts=ts,
        open=close - 0.5,
        high=close + 1,
        low=close - 1,
        close=close,
        volume=volume,
        wap=close,
        bar_count=np.ones(n),
    )
    series = CatalogSeries(symbol, exchange, currency, timeframe_parse(timeframe), what)
    series.write(batch, root=root)
    return batch


def fresh_python(code: str, cwd, **env: str) -> subprocess.CompletedProcess:
    """`code` in a new interpreter without Django's settings (DJANGO_SETTINGS_MODULE unset)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATA_DIR")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_catalog_alone_needs_no_django(tmp_path):
    root = tmp_path / "data" / "catalog"
    write_series(root, "AAPL", "NASDAQ", "USD")
    code = (
        "import sys, ibdata\n"
        "frame = ibdata.bars('AAPL', 'DAILY', '2024-01-01', '2024-01-02', source='catalog')\n"
        "print(len(frame), frame.index[0], frame.Volume.isna().tolist(), frame.attrs['where'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))\n"
    )
    default = fresh_python(code, cwd=tmp_path)  # ./data/catalog
    assert default.returncode == 0, default.stderr
    assert default.stdout.splitlines() == [
        "2 2024-01-01 00:00:00-05:00 [False, True] data/catalog",
        "[]",
    ]
    for env in ({"IBDATA_CATALOG": str(root)}, {"DATA_DIR": str(tmp_path / "data")}):
        elsewhere = fresh_python(code, cwd=ROOT, **env)
        assert elsewhere.returncode == 0, elsewhere.stderr
        assert elsewhere.stdout.splitlines() == [
            f"2 2024-01-01 00:00:00-05:00 [False, True] {root}",
            "[]",
        ]


def test_the_database_without_django_settings_is_one_clear_error(tmp_path):
    result = fresh_python(
        "import ibdata\ntry:\n    ibdata.bars('AAPL')\nexcept ibdata.BarsError as exc:\n"
        "    print(exc)\n",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "source='db' reads the project's database through Django: set "
        "DJANGO_SETTINGS_MODULE=ibdata_project.settings (and DATABASE_URL, or the project's "
        ".env), or read the Parquet catalog with source='catalog'"
    )


def test_zones_the_catalog_cannot_tell_and_the_ones_given(tmp_path):
    hours = 1704205800 + 3600 * np.arange(3)  # 2024-01-02 14:30 UTC: 9:30 in New York
    write_series(tmp_path, "AAPL", "NASDAQ", "USD", "1-HOUR", ts=hours)
    write_series(tmp_path, "SHOP", "TSX", "CAD", "1-HOUR", ts=hours)
    aapl = ibdata.bars("AAPL", "1-HOUR", source="catalog", root=tmp_path)
    assert aapl.index[0] == pd.Timestamp("2024-01-02 09:30", tz="America/New_York")
    with pytest.warns(UserWarning, match=r"time zone of SHOP:TSX on TSX \(CAD\) is not known"):
        shop = ibdata.bars("SHOP:TSX", "1-HOUR", source="catalog", root=tmp_path)
    assert str(shop.index.tz) == "UTC" and shop.index[0].hour == 14
    given = ibdata.bars("SHOP", "1-HOUR", source="catalog", root=tmp_path, tz="America/Toronto")
    assert str(given.index.tz) == "America/Toronto" and given.index[0].hour == 9
    assert (given.index == shop.index).all()  # the same instants


def test_errors_name_what_is_stored(tmp_path):
    write_series(tmp_path, "SHOP", "TSX", "CAD")
    write_series(tmp_path, "SHOP", "NYSE", "USD")
    for args, kwargs, message in (
        (
            ("MSFT",),
            {},
            f"no DAILY TRADES RTH bars of MSFT in the catalog {tmp_path} (stored "
            "for MSFT: nothing)",
        ),
        (
            ("SHOP", "WEEKLY"),
            {},
            "(stored for SHOP: DAILY TRADES RTH on NYSE, DAILY TRADES RTH on TSX)",
        ),
        (
            ("SHOP",),
            {},
            "SHOP is in the catalog on several listings: name one of SHOP:NYSE (USD), "
            "SHOP:TSX (CAD)",
        ),
        (("SHOP", "7-DAY"), {}, "unknown timeframe '7-DAY'"),
        (("SHOP",), {"start": "2024-02-01", "end": "2024-01-01"}, "empty range: end 2024-01-01"),
        (("SHOP",), {"start": "01/02/2024"}, "'01/02/2024' is not a date: use YYYY-MM-DD"),
        (("SHOP",), {"source": "csv"}, "source 'csv': use one of db, catalog"),
        (("SHOP:NYSE",), {"tz": "Mars/Olympus"}, "tz 'Mars/Olympus' is not a time zone"),
    ):
        kwargs = {"source": "catalog", "root": tmp_path, **kwargs}
        with pytest.raises(ibdata.BarsError) as raised:
            ibdata.bars(*args, **kwargs)
        assert message in str(raised.value) and "\n" not in str(raised.value)
    assert len(ibdata.bars("SHOP:NYSE", source="catalog", root=tmp_path)) == 3
    write_series(tmp_path, "BRK B", "NYSE", "USD")  # filed as symbol=BRK%20B
    assert ibdata.bars("BRK B", source="catalog", root=tmp_path).attrs["exchange"] == "NYSE"
    empty = ibdata.bars(
        "SHOP:NYSE", "DAILY", "2020-01-01", "2020-12-31", source="catalog", root=tmp_path
    )
    assert empty.empty and list(empty.columns) == ["Open", "High", "Low", "Close", "Volume"]
    with pytest.raises(ibdata.BarsError, match="no catalog at"):
        ibdata.bars("SHOP", source="catalog", root=tmp_path / "nowhere")
