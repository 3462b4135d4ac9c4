"""Fetch at scale (docs/benchmarks.md): N instruments x a year of 1-minute bars through the
ibkr worker, into PostgreSQL and the catalog.

The deployed shape: the simulator in a process of its own (base latency L per answer), one
`celery worker -Q ibkr --pool solo` process, Redis (broker, results, pacer), a scratch
PostgreSQL database. `manage.py fetch` enqueues the run and follows it. For bars of 1 minute
and up the binding rule is 45 requests a second, so the bound for R requests is
T_min = R / 45 + L; ratio = wall / T_min, wall being the run's own start-to-finish time. The
rule is a sliding second, so the first 45 may go at once: no schedule beats
floor = (ceil(R / 45) - 1) s + L, and ratio_floor = wall / floor is the stricter figure. The
worker's CPU (user + system, from /proc) divided by the bars stored gives cpu_us_per_bar, and
its VmHWM the peak resident set. A fresh worker (and fresh symbols) for each N.

    .venv/bin/python bench/fetch_scale.py [--n 1,3] [--latency 0.05] [--year 2025]
"""

from __future__ import annotations

import argparse
import math
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

SYMBOLS = ["AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "TSLA", "JPM", "V", "XOM"]
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "ibdata_project", "worker", "-Q", "ibkr",
         "--pool", "solo", "--concurrency", "1", "-n", f"bench-{time.time_ns()}@%h",
         "--without-gossip", "--without-mingle", "-l", "WARNING", "--logfile", str(log)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # connected to the gateway: ready for the run
        if log.exists() and "connected to gateway" in log.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the worker did not start:\n{log.read_text(errors='replace')[-2000:]}")


def run_figures(env: dict) -> tuple[int, int, float]:
    """(requests, bars, wall) of the latest run, from the database."""
    import psycopg

    url = env["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        requests, bars, wall = conn.execute(
            "SELECT requests_made, bars_stored, "
            "extract(epoch from finished_at - started_at) FROM fetcher_fetchrun "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return requests, bars, float(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="1,3", help="instrument counts, comma-separated")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--year", type=int, default=2025)
    args = parser.parse_args()
    counts = [int(n) for n in args.n.split(",")]
    if sum(counts) > len(SYMBOLS):
        raise SystemExit(f"at most {len(SYMBOLS)} instruments in all")

    workdir = Path(tempfile.mkdtemp(prefix="ibdata-bench-scale-"))
    sim, port = simproc.start_simulator("--latency", str(args.latency))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ibdata_project.settings",
        "DATABASE_URL": scratch_database(workdir, "ibdata_bench_scale"),
        "REDIS_URL": REDIS_URL,
        "IBKR_HOST": "127.0.0.1",
        "IBKR_PORT": str(port),
        "IBKR_CLIENT_ID": "93",
        "DATA_DIR": str(workdir / "data"),
        "LOG_DIR": str(workdir / "logs"),
    }
    if not env["DATABASE_URL"].startswith("postgres"):
        raise SystemExit("fetch_scale needs PostgreSQL (the deployed shape)")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    results = []
    try:
        offset = 0
        for n in counts:
            symbols = SYMBOLS[offset : offset + n]
            offset += n
            worker = start_worker(env, workdir / f"worker-{n}.log")
            try:
                cpu0 = cpu_seconds(worker.pid)
                fetch = subprocess.run(
                    [sys.executable, "manage.py", "fetch", "--instruments", ",".join(symbols),
                     "--start", f"{args.year}-01-01", "--end", f"{args.year}-12-31",
                     "--timeframe", "1-MINUTE"],
                    cwd=ROOT, env=env, capture_output=True, text=True,
                )  # fmt: skip
                if fetch.returncode != 0:
                    raise SystemExit(f"the fetch failed:\n{fetch.stdout[-2000:]}{fetch.stderr}")
                cpu = cpu_seconds(worker.pid) - cpu0
                rss = peak_rss_mb(worker.pid)
            finally:
                worker.terminate()
                worker.wait(30)
            requests, bars, wall = run_figures(env)
            bound = requests / 45 + args.latency
            floor = (math.ceil(requests / 45) - 1) + args.latency
            results.append((n, requests, bars, wall, bound, floor, cpu * 1e6 / bars, rss))
    finally:
        sim.terminate()
        sim.wait(10)

    print(f"{'N':>3} {'requests':>9} {'bars':>9} {'wall s':>8} {'bound s':>8} {'ratio':>6} "
          f"{'floor s':>8} {'ratio':>6} {'cpu us/bar':>11} {'peak RSS MB':>12}")  # fmt: skip
    for n, requests, bars, wall, bound, floor, cpu_us, rss in results:
        print(f"{n:>3} {requests:>9} {bars:>9} {wall:>8.2f} {bound:>8.2f} {wall / bound:>6.2f} "
              f"{floor:>8.2f} {wall / floor:>6.2f} {cpu_us:>11.1f} {rss:>12.0f}")  # fmt: skip
    figures = []
    for n, requests, bars, wall, bound, floor, cpu_us, rss in results:
        figures += [
            f"requests_{n}={requests}",
            f"bars_{n}={bars}",
            f"wall_{n}={wall:.2f}",
            f"bound_{n}={bound:.2f}",
            f"ratio_{n}={wall / bound:.2f}",
            f"floor_{n}={floor:.2f}",
            f"ratio_floor_{n}={wall / floor:.2f}",
            f"cpu_us_per_bar_{n}={cpu_us:.1f}",
            f"peak_rss_mb_{n}={rss:.0f}",
        ]
    print(" ".join(figures))


if __name__ == "__main__":
    main()
