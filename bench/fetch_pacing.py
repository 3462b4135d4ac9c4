"""Fetch pacing (docs/benchmarks.md): many small-bar requests, zero violations, close to the rules' bound.

The simulator runs as its own process (`manage.py ibsim`) at time scale S with base latency
L. The project fetches a workload of 5-second bars for several instruments, needing R
requests, through its real path (planning, the pacer, concurrent requests on one
connection, storage). The bound the rules allow for R requests is
T_min = floor((R - 1) / 60) * W + L with W = 600 / S; ratio = wall / T_min. Then the same
requests one at a time, as a naive client sends them (wait for each answer; after a pacing
violation wait a moment and retry): speedup = naive / wall.

    .venv/bin/python bench/fetch_pacing.py [--scale 60] [--latency 0.5] [--instruments 4] [--sessions 6]

The bound ignores the 45 messages/s rate, which is real time at any scale: keep W = 600 / S
well above 60 / 45 s (S <= 60) or the rate, not the window, sets the pace.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import simproc  # noqa: E402
from scratch import scratch_database  # noqa: E402

SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM"]


def start_simulator(scale: float, latency: float, stats: Path) -> tuple[subprocess.Popen, int]:
    return simproc.start_simulator(
        "--time-scale", str(scale), "--latency", str(latency), "--stats-file", str(stats)
    )


def read_stats(path: Path) -> dict:
    time.sleep(1.2)  # the simulator writes its counters every second
    return json.loads(path.read_text())


def setup_django(port: int, scale: float, workdir: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ibdata_project.settings")
    os.environ["DATABASE_URL"] = scratch_database(workdir)
    os.environ.pop("REDIS_URL", None)  # the in-process pacer: one process, one connection
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.update(
        IBKR_HOST="127.0.0.1",
        IBKR_PORT=str(port),
        IBKR_PACING_TIME_SCALE=str(scale),
        DATA_DIR=str(workdir / "data"),
        LOG_DIR=str(workdir / "logs"),
        IBKR_CLIENT_ID="91",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def sessions(n: int) -> tuple[dt.date, dt.date]:
    """The last n full sessions ending two weeks ago (the tests' choice): bars of 30 s or less
    are kept for six months only. Called once Django is set up."""
    from tests.support import recent_sessions

    days = recent_sessions(n)
    return days[0], days[-1]


def project_fetch(symbols: list[str], start: dt.date, end: dt.date) -> tuple[float, int]:
    from fetcher.domain.requests import FetchRequest
    from fetcher.execution.executor import fetch_run_execute
    from fetcher.services.fetch_runs import fetch_run_create

    request = FetchRequest.parse(
        instruments=",".join(symbols), timeframe="5-SECOND", start=start, end=end
    )
    run = fetch_run_create(request=request)
    started = time.perf_counter()
    done = fetch_run_execute(run_id=run.pk)
    wall = time.perf_counter() - started
    if done.status != "succeeded":
        raise SystemExit(f"the fetch did not succeed: {done.status} {done.error}")
    return wall, done.chunks_planned


async def naive_fetch(
    port: int, requests: list[tuple[str, str, str]], pause: float
) -> tuple[float, int]:
    """One request at a time, the same requests; after a pacing violation wait, then retry."""
    from ib_insync import IB, Stock
    from ib_insync.wrapper import RequestError

    ib = IB()
    ib.RaiseRequestErrors = True
    await ib.connectAsync("127.0.0.1", port, clientId=92, readonly=True, timeout=10)
    violations = 0
    started = time.perf_counter()
    for symbol, end, duration in requests:
        while True:
            try:
                await ib.reqHistoricalDataAsync(
                    Stock(symbol, "SMART", "USD"),
                    end,
                    duration,
                    "5 secs",
                    "TRADES",
                    True,
                    formatDate=2,
                    timeout=0,
                )
                break
            except RequestError as exc:
                if "pacing" not in exc.message:
                    raise
                violations += 1
                await asyncio.sleep(pause)
    wall = time.perf_counter() - started
    ib.disconnect()
    return wall, violations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=60.0, help="simulator time scale S")
    parser.add_argument("--latency", type=float, default=0.5, help="base latency L per request (s)")
    parser.add_argument("--instruments", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=6)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        stats_path = workdir / "sim-stats.json"
        sim, port = start_simulator(args.scale, args.latency, stats_path)
        try:
            setup_django(port, args.scale, workdir)
            symbols = SYMBOLS[: args.instruments]
            start, end = sessions(args.sessions)
            wall, requests = project_fetch(symbols, start, end)
            ours = read_stats(stats_path)
            from fetcher.models import FetchChunk

            planned = [
                (c.instrument.symbol, c.request_end, c.duration)
                for c in FetchChunk.objects.select_related("instrument")
            ]
            # the simulator counts pacing per gateway: let our requests leave its windows
            # first, so the reference starts as clean as ours did
            time.sleep(600 / args.scale + 1)
            naive_wall, naive_violations = asyncio.run(
                naive_fetch(port, planned, pause=600 / args.scale / 10)
            )
        finally:
            sim.terminate()
            sim.wait(10)

    window = 600.0 / args.scale
    minimal = args.instruments * args.sessions * 7  # 23,400 s of RTH in requests of 3,600 s
    bound = ((requests - 1) // 60) * window + args.latency
    # The bound sends each window's 60 requests at once; at 45 requests/s (real time at any
    # scale) the last window's requests take floor((n - 1) / 45) seconds more.
    last_batch = requests - 60 * ((requests - 1) // 60)
    bound_with_rate = bound + (last_batch - 1) // 45
    violations = ours.get("pacing_violations", 0)
    made = ours.get("historical_requests", 0)
    print(
        f"workload: {args.instruments} instruments x {args.sessions} sessions of 5-second bars, "
        f"simulator at {args.scale:g}x (W = {window:g}s), latency {args.latency:g}s"
    )
    print(f"{'':<28}{'requests':>10}{'violations':>12}{'wall s':>10}")
    print(f"{'ibdata (pacer, concurrent)':<28}{made:>10}{violations:>12}{wall:>10.2f}")
    print(
        f"{'naive (one at a time)':<28}{len(planned):>10}{naive_violations:>12}{naive_wall:>10.2f}"
    )
    print(
        f"bound T_min = floor(({requests} - 1) / 60) * {window:g} + {args.latency:g} = {bound:.2f}s"
    )
    print(
        f"targets: 0 violations -> {'met' if violations == 0 else 'MISSED'}; "
        f"wall <= 1.10 x bound -> {'met' if wall <= 1.10 * bound else 'MISSED'}"
    )
    print(
        f"requests={made} minimal={minimal} violations={violations} wall={wall:.2f} bound={bound:.2f} "
        f"ratio={wall / bound:.2f} bound_with_rate={bound_with_rate:.2f} "
        f"ratio_with_rate={wall / bound_with_rate:.2f} naive={naive_wall:.2f} naive_violations={naive_violations} "
        f"speedup={naive_wall / wall:.1f}"
    )


if __name__ == "__main__":
    main()
