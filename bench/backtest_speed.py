"""Backtest speed: one SMA crossover over 1,000,000 1-minute bars, the project's engine against
backtesting.py 0.6.6 on the same bars in the same run, trades compared; then a 100-point sweep
over the same bars (stored in a scratch PostgreSQL database) in this process and on two Celery
worker processes on the backtests queue (docs/benchmarks.md).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ibdata REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/backtest_speed.py

Prints a table, then `ours_s=... reference_s=... speedup=... trades_equal=1`; the last line
repeats those with the sweep's figures. Target: speedup >= 200.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ibdata_project.settings")

import django  # noqa: E402

SEED = 20240601
FIRST_DAY = dt.date(2012, 1, 2)
SESSION_OPEN_UTC = 14 * 3600 + 30 * 60  # 09:30 in New York (EST)
BARS_PER_SESSION = 390
TARGET_SPEEDUP = 200
SWEEP_FAST, SWEEP_SLOW = "5:50:5", "60:150:10"  # 10 x 10 points, all valid


def minute_bars(n: int):
    """n 1-minute bars of regular sessions on weekdays: a random walk on a cent grid."""
    from fetcher.domain.bars import BarBatch

    rng = np.random.default_rng(SEED)
    days = np.arange(-(-n // BARS_PER_SESSION) * 2)
    first = (FIRST_DAY - dt.date(1970, 1, 1)).days
    weekdays = (first + days)[((first + days + 3) % 7) < 5][: -(-n // BARS_PER_SESSION)]
    ts = (weekdays[:, None] * 86_400 + SESSION_OPEN_UTC + 60 * np.arange(BARS_PER_SESSION)).ravel()[
        :n
    ]
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.0006, n))), 2)
    open_ = np.round(np.r_[close[0], close[:-1]] + rng.normal(0, 0.01, n), 2)
    high = np.maximum(open_, close) + 0.01
    low = np.minimum(open_, close) - 0.01
    volume = rng.integers(100, 10_000, n).astype(np.float64)
    return BarBatch(ts, open_, high, low, close, volume, close, np.ones(n, dtype=np.int64))


def ours(bars, fast: int, slow: int, commission: float):
    from backtests.domain.commissions import FractionCommission
    from backtests.domain.compute import backtest_compute
    from backtests.domain.engine import TradingConfig
    from backtests.domain.strategies import strategy_get

    trading = TradingConfig(cash=1_000_000, commission=FractionCommission(commission))
    return backtest_compute(
        bars=bars,
        strategy=strategy_get("sma"),
        params={"fast": fast, "slow": slow},
        trading=trading,
    )


def reference(bars, fast: int, slow: int, commission: float):
    from tests.support.backtest_reference import frame, reference_run

    data = frame(bars.ts, bars.open, bars.high, bars.low, bars.close)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reference_run(data, fast=fast, slow=slow, cash=1_000_000, commission=commission)


def trades_equal(result, stats) -> bool:
    theirs = stats["_trades"]
    t = result.trades
    return (
        len(theirs) == len(t)
        and np.array_equal(theirs["Size"].to_numpy(), t.size)
        and np.array_equal(theirs["EntryBar"].to_numpy(), t.entry_bar)
        and np.array_equal(theirs["ExitBar"].to_numpy(), t.exit_bar)
        and np.array_equal(theirs["EntryPrice"].to_numpy(), t.entry_price)
        and np.array_equal(theirs["ExitPrice"].to_numpy(), t.exit_price)
    )


def metrics_agreeing(metrics: dict, stats) -> tuple[int, int]:
    """(metrics within 1e-9 relative of backtesting.py's, metrics compared)."""
    import pandas as pd

    agree = 0
    for key, ours_value in metrics.items():
        value = stats[key]
        if isinstance(value, pd.Timestamp):
            value = value.timestamp()
        elif isinstance(value, pd.Timedelta):
            value = value.total_seconds()
        value, ours_value = float(value), float(ours_value)
        same = (np.isnan(value) and np.isnan(ours_value)) or abs(ours_value - value) <= 1e-9 * abs(
            value
        )
        agree += bool(same)
    return agree, len(metrics)


def sweep_figures(bars, bench_db: str, workers: int, chunk: int) -> dict[str, float]:
    """The 100-point sweep in this process, then on `workers` Celery worker processes."""
    from django.conf import settings as django_settings
    from django.db import connection
    from ingest import _use_scratch_database

    from backtests.domain.bars import BarsRequest, DataSource
    from backtests.domain.commissions import commission_parse
    from backtests.domain.engine import TradingConfig
    from backtests.domain.strategies import strategy_get
    from backtests.domain.sweeps import grid_parse, grid_points
    from backtests.services import bars as bars_service
    from backtests.services.sweeps import sweep_chunks_send, sweep_wait
    from fetcher.domain.instruments import instrument_spec_parse
    from fetcher.domain.time import from_epoch
    from fetcher.domain.timeframes import TIMEFRAMES, WhatToShow
    from fetcher.models import Instrument, Series
    from fetcher.storage.bars import bars_upsert
    from fetcher.storage.catalog import catalog_write
    from ibdata_project.celery import app
    from tests.support import Worker

    _use_scratch_database(bench_db)
    tf = TIMEFRAMES["1-MINUTE"]
    instrument = Instrument.objects.create(symbol="BENCH", con_id=1, time_zone="US/Eastern")
    bars_upsert(
        instrument_id=instrument.pk, timeframe=tf.code, what_to_show=1, batch=bars, fresh=True
    )
    Series.objects.create(
        instrument=instrument,
        timeframe=tf.code,
        what_to_show=1,
        rth=True,
        source="simulator",
        bar_count=len(bars),
        first_ts=from_epoch(int(bars.ts[0])),
        last_ts=from_epoch(int(bars.ts[-1])),
    )
    # The sweep reads its bars from the Parquet catalog, as `--data-source catalog` does: a
    # read of 1,000,000 bars there takes a fraction of a second, against seconds from the
    # database, so the figures are the sweep's own work.
    catalog = Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    catalog_write(
        root=catalog,
        symbol="BENCH",
        exchange=instrument.exchange,
        currency=instrument.currency,
        timeframe=tf,
        what_to_show="TRADES",
        batch=bars,
    )
    request = BarsRequest(
        spec=instrument_spec_parse("BENCH"),
        timeframe=tf,
        what_to_show=WhatToShow.TRADES,
        rth=True,
        start=from_epoch(int(bars.ts[0])).date(),
        end=from_epoch(int(bars.ts[-1])).date(),
        data_source=DataSource.CATALOG,
        catalog_root=str(catalog),
    )
    strategy = strategy_get("sma")
    points = [
        strategy.params_resolve(p)
        for p in grid_points(
            {"fast": grid_parse(SWEEP_FAST, "fast"), "slow": grid_parse(SWEEP_SLOW, "slow")}
        )
    ]
    trading = TradingConfig(cash=1_000_000, commission=commission_parse("0.001"))

    def sweep(group: str) -> float:
        started = time.perf_counter()
        sweep_chunks_send(
            bars=request,
            strategy="sma",
            points=points,
            trading=trading,
            group=group,
            chunk_size=chunk,
        )
        sweep_wait(group=group, total=len(points), timeout_s=3600)
        return time.perf_counter() - started

    bars_service._cache.clear()  # the in-process sweep reads the bars, as a worker does
    app.conf.task_always_eager = True
    inprocess = sweep("bench-inprocess")
    print(
        f"  sweep of {len(points)} points in this process: {inprocess:.2f} s (one read of the bars from the catalog included)"
    )
    figures = {"sweep_points": len(points), "sweep_inprocess_s": inprocess}
    if not django_settings.REDIS_URL:
        print("  (no REDIS_URL: the sweep on worker processes is skipped)")
        return figures
    import redis

    redis.Redis.from_url(django_settings.REDIS_URL).delete("backtests", "unacked", "unacked_index")
    db = connection.settings_dict
    logs = Path(tempfile.mkdtemp(prefix="bench-backtests-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{bench_db}",
        "REDIS_URL": django_settings.REDIS_URL,
        "LOG_DIR": str(logs),
    }
    procs = [
        Worker(env, logs / f"worker-{i}.log", f"bench{i}", queues=("backtests",)).start()
        for i in range(workers)
    ]
    try:
        app.conf.task_always_eager = False
        on_workers = sweep("bench-workers")
    finally:
        for proc in procs:
            proc.stop()
    reads = [p.log.read_text().count("bars read: BENCH") for p in procs]
    print(
        f"  sweep of {len(points)} points on {workers} worker processes: {on_workers:.2f} s "
        f"(bars read per worker: {reads})"
    )
    figures.update(
        sweep_workers_s=on_workers, sweep_workers=workers, sweep_speedup=inprocess / on_workers
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--fast", type=int, default=20)
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--commission", type=float, default=0.001)
    parser.add_argument(
        "--repeat", type=int, default=10, help="runs of ours before and after the reference"
    )
    parser.add_argument("--no-sweep", action="store_true", help="only the single backtest")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=10, help="sweep points per task")
    parser.add_argument("--bench-db", default="ibdata_bench_backtests", help="scratch database")
    args = parser.parse_args(argv)
    django.setup()

    bars = minute_bars(args.bars)
    print(f"{len(bars):,} 1-minute bars, SMA {args.fast}/{args.slow}, commission {args.commission}")
    # Ours is timed before and after the reference (the machine is shared: the least
    # disturbed run counts, as for the reference's single long run, which averages the load).
    times = []

    def time_ours(runs: int):
        for _ in range(runs):
            started = time.perf_counter()
            outcome = ours(bars, args.fast, args.slow, args.commission)
            times.append(time.perf_counter() - started)
        return outcome

    result, metrics = time_ours(args.repeat)
    started = time.perf_counter()
    stats = reference(bars, args.fast, args.slow, args.commission)
    reference_s = time.perf_counter() - started
    result, metrics = time_ours(args.repeat)
    ours_s = min(times)
    equal = trades_equal(result, stats)
    agree, compared = metrics_agreeing(metrics, stats)
    print(f"\n  {'engine':<16} {'seconds':>9}  {'trades':>7}")
    print(
        f"  {'ibdata':<16} {ours_s:>9.4f}  {len(result.trades):>7}   (best of {len(times)}, metrics included)"
    )
    print(f"  {'backtesting.py':<16} {reference_s:>9.4f}  {len(stats['_trades']):>7}")
    speedup = reference_s / ours_s
    verdict = "met" if speedup >= TARGET_SPEEDUP else "MISSED"
    print(
        f"\n  speedup {speedup:.0f}x (target >= {TARGET_SPEEDUP}: {verdict}); trades equal: {equal};"
        f" metrics within 1e-9: {agree} of {compared}"
    )
    head = (
        f"ours_s={ours_s:.4f} reference_s={reference_s:.2f} speedup={speedup:.0f} "
        f"trades_equal={int(equal)}"
    )
    print(head)
    if args.no_sweep:
        return 0 if equal else 1
    print()
    figures = sweep_figures(bars, args.bench_db, args.workers, args.chunk)
    tail = " ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
    )
    print(f"{head} {tail}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
