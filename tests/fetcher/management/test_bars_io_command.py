"""`manage.py bars export` and `bars import` end to end against PostgreSQL (or SQLite), the catalog
and the simulator: an export imported into an empty store gives the same bars in the database and
the catalog (a year of daily bars, a year of 1-minute bars), `bars check` finds nothing after, a
later fetch plans no request for them; a file with a bad row imports nothing and names its line;
imports never join simulator bars."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from fetcher.domain.bars import COLUMNS, BarBatch
from fetcher.domain.requests import FetchRequest
from fetcher.domain.timeframes import timeframe_parse
from fetcher.models import Bar, Coverage, GatewayKind, Series
from fetcher.selectors import fetch_estimate
from fetcher.storage.catalog import SOURCE_FILE, catalog_dataset
from tests.support import free_port, simulator_truth, store_emptied

pytestmark = pytest.mark.django_db(transaction=True)

AAPL_CON_ID = "265598"
YEAR = ["--start", "2024-01-01", "--end", "2024-12-31"]


def command(name: str, *args) -> int:
    """A management command's exit code."""
    try:
        call_command(name, *args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def run(*args) -> int:
    return command("bars", *args)


def fetch(*args) -> int:
    return command("fetch", *args)


def stored(symbol: str, timeframe: str) -> BarBatch:
    rows = list(
        Bar.objects.filter(instrument__symbol=symbol, timeframe=timeframe_parse(timeframe).code)
        .order_by("ts")
        .values_list(*COLUMNS)
    )
    columns = list(zip(*rows, strict=True)) if rows else [[]] * len(COLUMNS)
    values = dict(zip(COLUMNS, columns, strict=True))
    values["ts"] = [int(t.timestamp()) for t in values["ts"]]
    return BarBatch.from_columns(**values)


def in_catalog(root, symbol: str = "AAPL") -> BarBatch:
    table = catalog_dataset(root).to_table(filter=pc.field("symbol") == symbol).sort_by("ts")
    values = {name: table.column(name).to_numpy() for name in COLUMNS[1:]}
    return BarBatch.from_columns(ts=table.column("ts").cast(pa.int64()).to_numpy(), **values)


def assert_same(got: BarBatch, want: BarBatch) -> None:
    assert len(got) == len(want)
    for name in COLUMNS:  # exactly: NaN where the other has NaN
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


def the_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    return lines[0]


def nothing_stored(root) -> None:
    assert not Bar.objects.exists()
    assert not Series.objects.exists()
    assert not Coverage.objects.exists()
    assert not list((root / "catalog").rglob("*.parquet"))


def test_a_year_of_daily_bars_exported_and_imported_into_an_empty_store(
    gateway, settings, tmp_path, capsys
):
    assert fetch("--instruments", "AAPL,MSFT", *YEAR) == 0
    truth, msft = stored("AAPL", "DAILY"), stored("MSFT", "DAILY")
    assert len(truth) == len(msft) == 252
    out = tmp_path / "out"
    aapl_csv = ["--instruments", "AAPL", "--out", str(out / "aapl.csv"), "--tz", "exchange"]
    assert run("export", *aapl_csv) == 0
    assert run("export", "--out", str(out / "both.csv")) == 0
    assert run("export", "--out", str(out / "parquet"), "--format", "parquet") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3].startswith("✅ AAPL DAILY TRADES RTH: 252 bars → ")
    assert lines[-3].endswith("AAPL_NASDAQ_USD_DAILY_TRADES_RTH.parquet")
    assert lines[-1].startswith("504 bars in 2 files, ")
    header, first = (out / "aapl.csv").read_text().splitlines()[:2]
    assert header == '"time","open","high","low","close","volume","wap","bar_count"'
    assert first.startswith("2024-01-02,")
    header, first = (out / "both.csv").read_text().splitlines()[:2]
    assert header.startswith('"symbol","exchange","currency","time","open"')
    assert first.startswith('"AAPL","NASDAQ","USD",2024-01-02,')

    # into an empty store: the instruments are not stored, the gateway qualifies them
    store_emptied(settings, tmp_path / "second")
    assert run("import", str(out / "aapl.csv"), "--instrument", "AAPL") == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("✅ AAPL DAILY TRADES RTH: 252 bars imported from 1 file (2024-01-02")
    assert_same(stored("AAPL", "DAILY"), truth)
    catalog = tmp_path / "second" / "catalog"
    assert_same(in_catalog(catalog), truth)
    series = Series.objects.get()
    assert (series.source, series.bar_count) == (GatewayKind.IMPORT, 252)
    assert set(Coverage.objects.values_list("source", flat=True)) == {GatewayKind.IMPORT}
    assert '"source": "import"' in (catalog / SOURCE_FILE).read_text()
    # the file of both series: MSFT's rows only
    assert run("import", str(out / "both.csv"), "--instrument", "MSFT") == 0
    assert_same(stored("MSFT", "DAILY"), msft)
    assert_same(in_catalog(catalog, "MSFT"), msft)
    assert_same(stored("AAPL", "DAILY"), truth)
    capsys.readouterr()
    assert run("check") == 0
    assert capsys.readouterr().out.strip().endswith("nothing wrong")
    # a later fetch asks for none of them
    request = FetchRequest.parse(instruments="AAPL,MSFT", start="2024-01-01", end="2024-12-31")
    assert fetch_estimate(request=request, now=time.time()).requests == 0

    # the Parquet export, imported again over them: the same bars, once
    [parquet] = (out / "parquet").glob("AAPL*.parquet")
    assert run("import", str(parquet), "--instrument", "AAPL") == 0
    assert_same(stored("AAPL", "DAILY"), truth)
    assert_same(in_catalog(catalog), truth)
    assert run("check") == 0


def test_imports_never_join_simulator_bars(gateway, settings, tmp_path, capsys):
    assert fetch("--instruments", "AAPL", "--start", "2024-01-01", "--end", "2024-01-31") == 0
    assert run("export", "--out", str(tmp_path / "aapl.parquet")) == 0
    capsys.readouterr()
    before = stored("AAPL", "DAILY")
    assert run("import", str(tmp_path / "aapl.parquet"), "--instrument", "MSFT") != 0
    assert the_error(capsys) == (
        "❌ This database holds bars from the ibdata simulator (account DU1234567); imported bars "
        "never mix with them: import into another store (DATA_DIR and DATABASE_URL)"
    )
    assert_same(stored("AAPL", "DAILY"), before)
    assert not Bar.objects.filter(instrument__symbol="MSFT").exists()


# --- a year of 1-minute bars -------------------------------------------------------------------

START, END = dt.date(2025, 1, 1), dt.date(2025, 12, 31)


def test_a_year_of_minutes_imported_exported_and_imported_into_an_empty_store(
    settings, tmp_path, capsys
):
    """The simulator's year of AAPL minutes (its ground truth, no fetch) as another tool's CSV
    (Date, Open, ... in New York time, no zone stated): imported with --columns and --tz, exported
    to CSV and Parquet, each imported into an empty store: the same bars, database and catalog."""
    settings.DATA_DIR = tmp_path / "first"
    truth = simulator_truth("AAPL", "1 min", START, END)
    assert len(truth) > 95_000
    theirs = tmp_path / "theirs.csv"
    local = pa.array(truth.ts, pa.timestamp("s", tz="America/New_York"))
    naive = pc.local_timestamp(local)
    pacsv.write_csv(
        pa.table(
            {
                "Date": pc.strftime(naive, "%Y-%m-%d %H:%M:%S"),
                "Open": truth.open,
                "High": truth.high,
                "Low": truth.low,
                "Close": truth.close,
                "Volume": truth.volume,
                "VWAP": truth.wap,
                "Trades": truth.bar_count,
            }
        ),
        theirs,
    )
    minutes = ["--instrument", "AAPL", "--con-id", AAPL_CON_ID, "--timeframe", "1-MINUTE"]
    mapping = "time=Date,open=Open,high=High,low=Low,close=Close,volume=Volume"
    assert run("import", str(theirs), *minutes, "--columns", mapping, "--tz", "exchange") == 0
    assert_same(stored("AAPL", "1-MINUTE"), truth)
    assert_same(in_catalog(tmp_path / "first" / "catalog"), truth)

    out = tmp_path / "out"
    export = ["--timeframe", "1-MINUTE", "--instruments", "AAPL"]
    assert run("export", *export, "--out", str(out / "csv"), "--tz", "exchange") == 0
    assert run("export", *export, "--out", str(out / "aapl.parquet")) == 0
    [csv] = (out / "csv").glob("*.csv")
    assert csv.name == "AAPL_SMART_USD_1-MINUTE_TRADES_RTH.csv"
    assert csv.read_text().splitlines()[1].startswith("2025-01-02 09:30:00-0500,")
    metadata = pq.ParquetFile(out / "aapl.parquet").schema_arrow.metadata
    assert metadata[b"ibdata.source"] == b"import"

    for exported, where in ((csv, "second"), (out / "aapl.parquet", "third")):
        store_emptied(settings, tmp_path / where)
        assert run("import", str(exported), *minutes) == 0
        assert_same(stored("AAPL", "1-MINUTE"), truth)
        assert_same(in_catalog(tmp_path / where / "catalog"), truth)
        capsys.readouterr()
        assert run("check") == 0
        assert capsys.readouterr().out.strip().endswith("nothing wrong")


# --- bad rows ----------------------------------------------------------------------------------

GOOD = [
    "time,open,high,low,close,volume",
    "2024-11-25T09:30:00-05:00,100,101,99,100.5,1000",
    "2024-11-25T09:31:00-05:00,100.5,101,100,100.8,900",
    "2024-11-25T09:32:00-05:00,100.8,101.2,100.1,101,800",
    "2024-11-25T09:33:00-05:00,101,101.5,100.9,101.2,700",
]


@pytest.mark.parametrize(
    ("line", "row", "problem"),
    [
        (3, "2024-11-25T09:31:00-05:00,100.5,98,99,100.8,900",
         "2024-11-25 14:31 UTC: high 98 below low 99"),
        (4, "2024-11-25T09:32:30-05:00,100.8,101.2,100.1,101,800",
         "2024-11-25 14:32:30 UTC is not where a 1-MINUTE bar starts"),
        (4, "2024-11-25T09:31:00-05:00,100.8,101.2,100.1,101,800",
         "2024-11-25 14:31 UTC repeats line 3"),
        (4, "2024-11-28T09:32:00-05:00,100.8,101.2,100.1,101,800",
         "2024-11-28 14:32 UTC is outside the sessions of the exchange's calendar"),
        (2, "2024-11-25 09:30:00,100,101,99,100.5,1000",
         "the time states no time zone: give --tz (utc, exchange, or a zone such as "
         "America/New_York)"),
    ],
    ids=["high-below-low", "off-the-grid", "repeated", "thanksgiving", "no-time-zone"],
)  # fmt: skip
def test_a_file_with_a_bad_row_imports_nothing_and_names_its_line(
    settings, tmp_path, capsys, line, row, problem
):
    settings.DATA_DIR = tmp_path
    rows = list(GOOD)
    rows[line - 1] = row
    path = tmp_path / "prices.csv"
    path.write_text("\n".join(rows) + "\n")
    args = [str(path), "--instrument", "AAPL", "--con-id", AAPL_CON_ID, "--timeframe", "1-MINUTE"]
    assert run("import", *args) == 2
    assert the_error(capsys) == (
        f"❌ prices.csv: 1 bad row of 4, nothing imported: prices.csv line {line}: {problem} "
        "(--skip-bad imports the others)"
    )
    nothing_stored(tmp_path)

    assert run("import", *args, "--skip-bad") == 0
    out = capsys.readouterr().out
    assert f"⏭️  prices.csv line {line}: {problem}" in out
    assert "3 bars imported from 1 file" in out and "1 bad row left out" in out
    assert Bar.objects.count() == 3


def test_bad_input_is_one_line(settings, tmp_path, capsys):
    settings.DATA_DIR = tmp_path
    settings.IBKR_HOST, settings.IBKR_PORT = "127.0.0.1", free_port()  # nothing listens
    path = tmp_path / "prices.csv"
    path.write_text("\n".join(GOOD) + "\n")
    aapl = ["--instrument", "AAPL", "--con-id", AAPL_CON_ID, "--timeframe", "1-MINUTE"]
    empty, fake, ragged = tmp_path / "empty.csv", tmp_path / "fake.parquet", tmp_path / "ragged.csv"
    empty.write_text("")
    fake.write_text("\n".join(GOOD))
    ragged.write_text("\n".join([*GOOD, "2024-11-25T09:34:00-05:00,101,101.5,100.9,101.2"]))
    cases = [
        (["import", str(path), "--instrument", "AAPL"], "AAPL is not stored, and the gateway"),
        (["import", str(tmp_path / "missing.csv"), *aapl], "missing.csv: no such file or folder"),
        (["import", str(path), *aapl, "--columns", "when=Date"], "--columns 'when=Date': use"),
        (["import", str(path), *aapl, "--columns", "time=Date"], "prices.csv has no column 'Date'"),
        (["import", str(path), *aapl, "--tz", "Mars/Olympus"], "--tz 'Mars/Olympus' is not a"),
        (["export", "--out", str(tmp_path / "x.csv")], "no DAILY TRADES RTH bars of any"),
        (["import", str(empty), *aapl], "empty.csv is not a readable csv file: Empty CSV file"),
        (["import", str(fake), *aapl], "fake.parquet is not a readable parquet file: "),
        (["import", str(ragged), *aapl], "ragged.csv line 6: 5 fields, the header has 6"),
    ]
    for args, start in cases:
        assert run(*args) != 0
        error = the_error(capsys)
        assert start in error, error
    nothing_stored(tmp_path)
