"""Several gateways (docs/benchmarks.md): one instrument's year of 1-minute bars fetched through
N = 1, 2, 3 gateways sharing the run.

The deployed shape: N simulators, each in a process of its own (base latency L per answer, its
own pacing), one `celery worker -Q ibkr.gK --pool solo` per gateway (IBKR_GATEWAYS names them
all), Redis (broker, results, one pacer per gateway), a scratch PostgreSQL database.
`manage.py fetch` enqueues the run; each gateway's worker claims the run's next requests within
its own pacing. For bars of 1 minute and up the binding rule is 45 requests a second per
gateway, so the bound for R requests on N gateways is T_min = R / (45 N) + L; ratio = wall /
T_min (target <= 1.10), wall being the run's own start-to-finish time (planning included);
speedup = wall at N = 1 / wall (target >= 0.9 N); violations are the pacing errors the
simulators sent (their counters: pacing violations and error 100); bars_equal says every stored bar equals the simulator's
ground truth. A fresh set of workers and simulators, and a fresh instrument, for each N.

    .venv/bin/python bench/fetch_gateways.py [--n 1,2,3] [--latency 0.05] [--year 2025]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import simproc  # noqa: E402
from scratch import scratch_database  # noqa: E402

from ibsim.market import Market  # noqa: E402
from ibsim.rules import BAR_SIZES  # noqa: E402

SYMBOLS = ["AAPL", "MSFT", "NVDA", "GOOGL"]
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
MESSAGE_RATE = "100"  # more than 50 messages a second (the pacing violations are counted apart)


def start_worker(env: dict, queue: str, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "ibdata_project", "worker", "-Q", queue,
         "--pool", "solo", "--concurrency", "1", "-n", f"bench-{queue}-{time.time_ns()}@%h",
         "--without-gossip", "--without-mingle", "-l", "WARNING", "--logfile", str(log)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return proc


def wait_connected(proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # connected to its gateway: taking runs
        if log.exists() and "connected to gateway" in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"a worker did not start:\n{log.read_text(errors='replace')[-2000:]}")


def run_figures(env: dict) -> tuple[int, int, float, int, dict[str, int], np.ndarray]:
    """(requests, bars, wall, run id, requests per gateway, stored bar times and closes) of
    the latest run, from the database."""
    import psycopg

    url = env["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        run_id, requests, bars, wall, timeframe = conn.execute(
            "SELECT id, requests_made, bars_stored, "
            "extract(epoch from finished_at - started_at), timeframe FROM fetcher_fetchrun "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        per_gateway = dict(
            conn.execute(
                "SELECT gateway, count(*) FROM fetcher_fetchchunk WHERE run_id = %s "
                "GROUP BY gateway ORDER BY gateway",
                [run_id],
            ).fetchall()
        )
        [instrument_id] = conn.execute(
            "SELECT DISTINCT instrument_id FROM fetcher_fetchchunk WHERE run_id = %s", [run_id]
        ).fetchone()
        stored = conn.execute(
            "SELECT extract(epoch from ts)::bigint, close FROM fetcher_bar "
            "WHERE instrument_id = %s AND timeframe = %s ORDER BY ts",
            [instrument_id, timeframe],
        ).fetchall()
    return requests, bars, float(wall), run_id, per_gateway, np.array(stored)


def truth(symbol: str, year: int):
    market = Market(seed=0)
    [listing] = market.find(symbol, "STK", "SMART", "USD")
    zone = dt.timezone(dt.timedelta(hours=-5))
    a = dt.datetime(year, 1, 1, tzinfo=zone)
    b = dt.datetime(year + 1, 1, 1, tzinfo=zone)
    return market.bars(
        listing, BAR_SIZES["1 min"], "TRADES", True, int(a.timestamp()), int(b.timestamp())
    )


def violations(stats: list[Path]) -> int:
    total = 0
    for path in stats:
        counts = json.loads(path.read_text()) if path.exists() else {}
        total += counts.get("pacing_violations", 0) + counts.get("errors", {}).get(MESSAGE_RATE, 0)
    return total


def fetch_through(n: int, symbol: str, args, workdir: Path, base_env: dict) -> dict:
    """One fetch of `symbol`'s year through n fresh gateways; its figures."""
    sims, ports, stats = [], [], []
    for k in range(n):
        path = workdir / f"sim-{n}-{k}.json"
        sim, port = simproc.start_simulator(
            "--latency", str(args.latency), "--stats-file", str(path)
        )
        sims.append(sim)
        ports.append(port)
        stats.append(path)
    gateways = ",".join(f"g{k + 1}=127.0.0.1:{port}:{90 + k}" for k, port in enumerate(ports))
    env = {**base_env, "IBKR_GATEWAYS": gateways} if n > 1 else {
        **base_env, "IBKR_HOST": "127.0.0.1", "IBKR_PORT": str(ports[0]), "IBKR_CLIENT_ID": "90"
    }  # fmt: skip
    queues = [f"ibkr.g{k + 1}" for k in range(n)] if n > 1 else ["ibkr"]
    logs = [workdir / f"worker-{n}-{queue}.log" for queue in queues]
    workers = [start_worker(env, queue, log) for queue, log in zip(queues, logs, strict=True)]
    try:
        for proc, log in zip(workers, logs, strict=True):
            wait_connected(proc, log)
        fetch = subprocess.run(
            [sys.executable, "manage.py", "fetch", "--instruments", symbol,
             "--start", f"{args.year}-01-01", "--end", f"{args.year}-12-31",
             "--timeframe", "1-MINUTE", "--yes"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if fetch.returncode != 0:
            raise SystemExit(f"the fetch failed:\n{fetch.stdout[-2000:]}{fetch.stderr}")
        time.sleep(1.5)  # the simulators write their counters every second
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(30)
        for sim in sims:
            sim.terminate()
            sim.wait(10)
    requests, bars, wall, _, per_gateway, stored = run_figures(env)
    want = truth(symbol, args.year)
    equal = (
        len(stored) == len(want.time)
        and np.array_equal(stored[:, 0].astype(np.int64), want.time)
        and np.allclose(stored[:, 1].astype(float), want.close, rtol=0, atol=1e-9)
    )
    bound = requests / (45 * n) + args.latency
    return {
        "n": n,
        "requests": requests,
        "bars": bars,
        "wall": wall,
        "bound": bound,
        "violations": violations(stats),
        "equal": equal,
        "per_gateway": per_gateway,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="1,2,3", help="gateway counts, comma-separated")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--year", type=int, default=2025)
    args = parser.parse_args()
    counts = [int(n) for n in args.n.split(",")]
    if len(counts) > len(SYMBOLS):
        raise SystemExit(f"at most {len(SYMBOLS)} runs")

    workdir = Path(tempfile.mkdtemp(prefix="ibdata-bench-gateways-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ibdata_project.settings",
        "DATABASE_URL": scratch_database(workdir, "ibdata_bench_gateways"),
        "REDIS_URL": REDIS_URL,
        "DATA_DIR": str(workdir / "data"),
        "LOG_DIR": str(workdir / "logs"),
    }
    env.pop("IBKR_GATEWAYS", None)
    if not env["DATABASE_URL"].startswith("postgres"):
        raise SystemExit("fetch_gateways needs PostgreSQL (the deployed shape)")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    results = [
        fetch_through(n, symbol, args, workdir, env)
        for n, symbol in zip(counts, SYMBOLS, strict=False)
    ]

    base = results[0]["wall"] * results[0]["n"]  # N = 1's wall (the first run is N = 1)
    print(f"{'N':>3} {'requests':>9} {'bars':>8} {'wall s':>8} {'bound s':>8} {'ratio':>6} "
          f"{'speedup':>8} {'violations':>11} {'bars equal':>11}  per gateway")  # fmt: skip
    figures = []
    for r in results:
        n, wall, bound = r["n"], r["wall"], r["bound"]
        speedup = base / wall
        per = ", ".join(f"{g or '-'} {c}" for g, c in r["per_gateway"].items())
        print(f"{n:>3} {r['requests']:>9} {r['bars']:>8} {wall:>8.2f} {bound:>8.2f} "
              f"{wall / bound:>6.2f} {speedup:>8.2f} {r['violations']:>11} "
              f"{'yes' if r['equal'] else 'NO':>11}  {per}")  # fmt: skip
        figures += [
            f"requests_{n}={r['requests']}",
            f"wall_{n}={wall:.2f}",
            f"bound_{n}={bound:.2f}",
            f"ratio_{n}={wall / bound:.2f}",
            f"speedup_{n}={speedup:.2f}",
            f"violations_{n}={r['violations']}",
            f"bars_equal_{n}={int(r['equal'])}",
        ]
    print(" ".join(figures))


if __name__ == "__main__":
    main()
