"""Store check (docs/benchmarks.md): `bars check` over a year of 1-minute bars for three
instruments, against reading the same rows from both stores.

The store: the simulator's ground truth (the bars a fetch stores) for AAPL, MSFT and NVDA over
one year, written into a scratch PostgreSQL database (the project's COPY path, with the
coverage and Series rows a fetch leaves) and exported to the catalog. Then, in this process:

- check: `bars_check` over the whole store (sessions against the calendar, OHLC, spikes, the
  database against the catalog, counters), best of `--repeat`; `check_first_s` the first of
  them, which also builds the exchange calendar (once per process, as `manage.py bars check`
  does every time);
- read: the reference, the same rows read bare: one binary COPY per series out of PostgreSQL
  (no parsing) and pyarrow reading every catalog file, best of `--repeat`;
- count: what a check that looks at counts only would cost: SELECT count(*) per series and
  the catalog files' row counts from their footers.

Figures: `bars` (database rows), `check_first_s`, `check_s`, `bars_per_s = bars / check_s`, `read_s`,
`ratio = check_s / read_s` (what the checks cost beyond reading both stores once), `count_s`,
`findings` (0 on this clean store).

    .venv/bin/python bench/bars_check.py [--year 2025] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scratch import scratch_database  # noqa: E402

SYMBOLS = ("AAPL", "MSFT", "NVDA")


def setup(workdir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "ibdata_project.settings"
    os.environ["DATABASE_URL"] = scratch_database(workdir, "ibdata_bench_check")
    os.environ["DATA_DIR"] = str(workdir / "data")
    os.environ["LOG_DIR"] = str(workdir / "logs")
    os.environ["REDIS_URL"] = ""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build_store(year: int, root: Path, symbols: tuple[str, ...] = SYMBOLS) -> int:
    """The series (a year of minutes of each symbol) as a fetch leaves them: bars, coverage,
    Series, catalog."""
    from fetcher.domain.bars import BarBatch
    from fetcher.domain.timeframes import TIMEFRAMES
    from fetcher.models import Coverage, GatewayKind, Instrument
    from fetcher.services.items import series_catalog_export
    from fetcher.services.provenance import store_source_check
    from fetcher.services.series import series_claim, series_refresh
    from fetcher.storage.bars import SeriesBatch, bars_upsert_many
    from ibsim.market import Market
    from ibsim.rules import BAR_SIZES

    minute = TIMEFRAMES["1-MINUTE"]
    market = Market(seed=0)
    store_source_check(source=GatewayKind.SIMULATOR, account="DU1234567", catalog_root=root)
    zone = dt.timezone(dt.timedelta(hours=-5))
    start = int(dt.datetime(year, 1, 1, tzinfo=zone).timestamp())
    end = int(dt.datetime(year + 1, 1, 1, tzinfo=zone).timestamp())
    total = 0
    for symbol in symbols:
        [listing] = market.find(symbol, "STK", "SMART", "USD")
        instrument = Instrument.objects.create(
            symbol=symbol,
            con_id=listing.con_id,
            primary_exchange=listing.primary_exchange,
            time_zone=listing.time_zone_id,
            long_name=listing.long_name,
        )
        b = market.bars(listing, BAR_SIZES["1 min"], "TRADES", True, start, end)
        batch = BarBatch.from_columns(
            ts=b.time, open=b.open, high=b.high, low=b.low, close=b.close,
            volume=b.volume, wap=b.wap, bar_count=b.count,
        )  # fmt: skip
        key = {"instrument_id": instrument.pk, "timeframe": minute.code, "what_to_show": 1}
        series_claim(**key, rth=True, source=GatewayKind.SIMULATOR, account="DU1234567")
        bars_upsert_many(series=[SeriesBatch(*key.values(), True, batch)], fresh=True)
        Coverage.objects.create(
            **key,
            rth=True,
            start=dt.datetime.fromtimestamp(start, dt.UTC),
            end=dt.datetime.fromtimestamp(end, dt.UTC),
            source=GatewayKind.SIMULATOR,
        )
        series_refresh(**key, rth=True)
        series_catalog_export(
            instrument=instrument,
            timeframe=minute.code,
            what_to_show=1,
            rth=True,
            windows=[(start, end)],
            catalog_root=root,
        )
        total += len(batch)
    return total


def bare_read(root: Path) -> int:
    """Every row out of PostgreSQL by binary COPY (series by series), every catalog file read."""
    import pyarrow.parquet as pq
    from django.db import connection

    from fetcher.models import Series

    rows = 0
    with connection.cursor() as cursor:
        for s in Series.objects.all():
            query = (
                "COPY (SELECT ts, open, high, low, close, volume, wap, bar_count FROM fetcher_bar "
                f"WHERE instrument_id = {s.instrument_id} AND timeframe = {s.timeframe} AND "
                f"what_to_show = {s.what_to_show} AND rth = {s.rth} ORDER BY ts) "
                "TO STDOUT (FORMAT BINARY)"
            )
            with cursor.copy(query) as copy:
                for _ in copy:
                    pass
    for path in root.rglob("*.parquet"):
        rows += pq.read_table(path).num_rows
    return rows


def count_only(root: Path) -> int:
    import pyarrow.parquet as pq

    from fetcher.models import Bar, Series

    n = 0
    for s in Series.objects.all():
        n += Bar.objects.filter(
            instrument_id=s.instrument_id, timeframe=s.timeframe, what_to_show=s.what_to_show
        ).count()
    for path in root.rglob("*.parquet"):
        n += pq.ParquetFile(path).metadata.num_rows
    return n


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """(first time, best time, result) of `repeat` calls."""
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return times[0], min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ibdata-bench-check-"))
    setup(workdir)
    from fetcher.services.checks import bars_check

    root = workdir / "data" / "catalog"
    began = time.perf_counter()
    bars = build_store(args.year, root)
    built = time.perf_counter() - began
    first_s, check_s, report = timed(lambda: bars_check(catalog_root=root), args.repeat)
    _, read_s, _ = timed(lambda: bare_read(root), args.repeat)
    _, count_s, _ = timed(lambda: count_only(root), args.repeat)
    for check in report.checks:
        for line in check.lines:
            print(line)
    print(
        f"store: {len(SYMBOLS)} series, {bars:,} 1-minute bars of {args.year} (built in {built:.1f} s)"
    )
    print(f"{'':<34} {'seconds':>8} {'bars/s':>12}")
    for name, seconds in (
        ("bars check, first (calendars built)", first_s),
        ("bars check (whole store)", check_s),
        ("read: COPY out + pyarrow read", read_s),
        ("count: count(*) + footers", count_s),
    ):
        print(f"{name:<34} {seconds:>8.3f} {bars / seconds:>12,.0f}")
    print(
        f"bars={bars} check_first_s={first_s:.3f} check_s={check_s:.3f} "
        f"bars_per_s={bars / check_s:.0f} read_s={read_s:.3f} "
        f"ratio={check_s / read_s:.2f} count_s={count_s:.3f} findings={report.findings}"
    )


if __name__ == "__main__":
    main()
