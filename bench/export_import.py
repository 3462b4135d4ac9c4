"""Export and import (docs/benchmarks.md): `bars export` and `bars import` against a bare pyarrow
write / read and a bare psycopg COPY of the same bars, in the same run.

The store: the simulator's ground truth for --symbols over one year of 1-minute bars, written into
a scratch PostgreSQL database as a fetch leaves it (bench/bars_check.py's build_store). Then, in
this process, for CSV and for Parquet:

- export: `bars_export` of every series into a folder (one file per series), pages read by keyset
  paging and written as read; the reference: each series' rows out of PostgreSQL by one binary
  COPY (bytes, not parsed) plus pyarrow writing the same bars, held whole, to one file;
- import: the store emptied (bars, series, coverage; a new catalog), then `bars_import` of each
  exported file (every row checked, stored, coverage, merged into the catalog); the reference:
  pyarrow reading each file whole plus psycopg's COPY of its rows into the empty table (rows
  prepared untimed, as bench/ingest.py's reference);
- `vs_bare` = our bars/s / the reference's (target >= 0.5).

Then the peak RSS (VmHWM) of a fresh process exporting the first 1, 2, ... N series to CSV
(`--rss-steps`), and before its export began (Django and the modules loaded): it should stay
flat as the export grows.

    .venv/bin/python bench/export_import.py [--year 2025] [--symbols AAPL,MSFT,NVDA,AMZN,GOOGL,META]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bars_check import build_store  # noqa: E402
from scratch import scratch_database  # noqa: E402

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META")
TARGET = 0.5
FORMATS = ("csv", "parquet")


def setup(workdir: Path, *, fresh: bool) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "ibdata_project.settings"
    if fresh:
        os.environ["DATABASE_URL"] = scratch_database(workdir, "ibdata_bench_io")
    os.environ["DATA_DIR"] = str(workdir / "data")
    os.environ["LOG_DIR"] = str(workdir / "logs")
    os.environ["REDIS_URL"] = ""
    import django

    django.setup()
    if fresh:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def export_ours(out: Path, fmt: str, symbols: list[str] | None = None) -> int:
    from fetcher.domain.timeframes import TIMEFRAMES, WhatToShow
    from fetcher.services.barfiles import bars_export

    files = bars_export(
        symbols=symbols,
        timeframe=TIMEFRAMES["1-MINUTE"],
        what_to_show=WhatToShow.TRADES,
        rth=True,
        start=None,
        end=None,
        fmt=fmt,
        out=out,
        tz="utc",
    )
    return sum(f.bars for f in files)


def export_bare(out: Path, fmt: str) -> tuple[float, int]:
    """Seconds of one binary COPY out per series plus pyarrow writing its bars whole."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from django.db import connection

    from fetcher.models import Series
    from fetcher.selectors import bars_read

    out.mkdir(parents=True, exist_ok=True)
    seconds, bars = 0.0, 0
    connection.ensure_connection()
    for s in Series.objects.all():
        key = {"instrument_id": s.instrument_id, "timeframe": s.timeframe}
        batch = bars_read(**key, what_to_show=s.what_to_show, rth=s.rth, start=0, end=2**35)
        query = (
            "COPY (SELECT ts, open, high, low, close, volume, wap, bar_count FROM fetcher_bar "
            f"WHERE instrument_id = {s.instrument_id} AND timeframe = {s.timeframe} AND "
            f"what_to_show = {s.what_to_show} AND rth = {s.rth} ORDER BY ts) "
            "TO STDOUT (FORMAT BINARY)"
        )
        began = time.perf_counter()
        with connection.cursor() as cursor, cursor.copy(query) as copy:
            for _ in copy:
                pass
        table = pa.table(
            {
                "time": pa.array(batch.ts, pa.timestamp("s", tz="UTC")),
                **{n: getattr(batch, n) for n in ("open", "high", "low", "close", "volume", "wap")},
                "bar_count": batch.bar_count,
            }
        )
        path = out / f"{s.instrument_id}.{fmt}"
        if fmt == "csv":
            pacsv.write_csv(table, path)
        else:
            pq.write_table(table, path, compression="zstd")
        seconds += time.perf_counter() - began
        bars += len(batch)
    return seconds, bars


def store_emptied() -> None:
    from fetcher.models import Bar, Coverage, FetchRun, Series

    for model in (Bar, Coverage, Series, FetchRun):
        model.objects.all().delete()


def import_ours(folder: Path, catalog: Path) -> int:
    from fetcher.domain.timeframes import TIMEFRAMES, WhatToShow
    from fetcher.models import Instrument
    from fetcher.services.barfiles import bars_import

    bars = 0
    for path in sorted(folder.iterdir()):
        instrument = Instrument.objects.get(symbol=path.name.split("_")[0])
        outcome = bars_import(
            path=path,
            instrument=instrument,
            timeframe=TIMEFRAMES["1-MINUTE"],
            what_to_show=WhatToShow.TRADES,
            rth=True,
            catalog_root=catalog,
        )
        bars += outcome.bars
    return bars


def import_bare(folder: Path, fmt: str) -> tuple[float, int]:
    """Seconds of pyarrow reading each file whole plus psycopg's COPY of its rows (prepared
    untimed) into the empty table."""
    import numpy as np
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from django.db import connection
    from ingest import _rows, bare_copy_rows

    from fetcher.domain.bars import BarBatch
    from fetcher.models import Instrument

    connection.ensure_connection()
    pg = connection.connection
    seconds, bars = 0.0, 0
    for path in sorted(folder.iterdir()):
        instrument = Instrument.objects.get(symbol=path.name.split("_")[0])
        began = time.perf_counter()
        table = pacsv.read_csv(path) if fmt == "csv" else pq.read_table(path)
        seconds += time.perf_counter() - began
        columns = {n: table.column(n).to_numpy() for n in ("open", "high", "low", "close")}
        batch = BarBatch(
            ts=table.column("time").cast("int64").to_numpy() // _unit(table),
            volume=np.nan_to_num(table.column("volume").to_numpy(zero_copy_only=False)),
            wap=np.nan_to_num(table.column("wap").to_numpy(zero_copy_only=False)),
            bar_count=table.column("bar_count").to_numpy(),
            **columns,
        )
        rows = list(_rows(instrument.pk, batch))
        seconds += bare_copy_rows(pg, rows)
        bars += len(rows)
    return seconds, bars


def _unit(table) -> int:
    """Ticks of the time column per second."""
    return {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[
        table.column("time").type.unit
    ]


def peak_rss_mb() -> float:
    """This process's resident set high-water mark: VmHWM, which starts again at exec (ru_maxrss
    keeps the forking parent's through exec on Linux, so a child started by a big parent would
    report the parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(symbols: list[str], out: Path) -> None:
    """In a fresh process: export these series to CSV, print the peak RSS (MB) as JSON."""
    setup(out.parent, fresh=False)
    import fetcher.services.barfiles  # noqa: F401  (what the export loads, before it starts)

    before = peak_rss_mb()
    bars = export_ours(out, "csv", symbols)
    peak = peak_rss_mb()
    print(json.dumps({"bars": bars, "before_mb": before, "peak_rss_mb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--symbols", default=",".join(SYMBOLS))
    parser.add_argument("--rss-steps", default="1,2,4,6", help="series in each RSS run")
    parser.add_argument("--child-export", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_export:
        rss_child(args.child_export.split(","), Path(args.out))
        return
    symbols = tuple(args.symbols.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="ibdata-bench-io-"))
    setup(workdir, fresh=True)
    began = time.perf_counter()
    bars = build_store(args.year, workdir / "data" / "catalog", symbols)
    print(
        f"store: {len(symbols)} series, {bars:,} 1-minute bars of {args.year} "
        f"(built in {time.perf_counter() - began:.1f} s)"
    )
    figures: dict[str, float] = {"bars": bars}
    rows = []
    for fmt in FORMATS:
        folder = workdir / "export" / fmt
        began = time.perf_counter()
        assert export_ours(folder, fmt) == bars
        ours = time.perf_counter() - began
        bare, n = export_bare(workdir / "bare" / fmt, fmt)
        assert n == bars
        rows.append((f"export {fmt}", ours, bare))
    print("peak RSS (VmHWM) of a fresh process exporting to CSV:")
    peaks = []
    for step in [int(n) for n in args.rss_steps.split(",") if int(n) <= len(symbols)]:
        out = workdir / f"rss-{step}"
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child-export",
                ",".join(symbols[:step]),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        child = json.loads(done.stdout.strip().splitlines()[-1])
        peaks.append(child["peak_rss_mb"])
        print(
            f"  {step} series, {child['bars']:>9,} bars: {child['peak_rss_mb']:7.1f} MB "
            f"(before the export: {child['before_mb']:.1f} MB)"
        )
        figures[f"rss_{step}_mb"] = round(child["peak_rss_mb"], 1)
    figures["rss_growth_mb"] = round(peaks[-1] - peaks[0], 1)
    for fmt in FORMATS:
        folder = workdir / "export" / fmt
        store_emptied()
        catalog = workdir / f"catalog-{fmt}"
        began = time.perf_counter()
        assert import_ours(folder, catalog) == bars
        ours = time.perf_counter() - began
        store_emptied()
        bare, n = import_bare(folder, fmt)
        assert n == bars
        store_emptied()
        rows.append((f"import {fmt}", ours, bare))
    print(f"{'':<16} {'ours s':>8} {'bars/s':>12} {'bare s':>8} {'bars/s':>12} {'vs_bare':>8}")
    for name, ours, bare in rows:
        ratio = bare / ours
        print(
            f"{name:<16} {ours:>8.2f} {bars / ours:>12,.0f} {bare:>8.2f} {bars / bare:>12,.0f} "
            f"{ratio:>8.2f}{'' if ratio >= TARGET else '  (below the target)'}"
        )
        key = name.replace(" ", "_")
        figures[f"{key}_bars_per_s"] = round(bars / ours)
        figures[f"{key}_vs_bare"] = round(ratio, 2)
    shutil.rmtree(workdir, ignore_errors=True)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
