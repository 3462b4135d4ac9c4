"""Several gateways (docs/benchmarks.md): one instrument's bars fetched through N = 1, 2, 3
gateways sharing the run: a year of 1-minute bars, and recent sessions of 5-second bars.

The deployed shape: N simulators, each in a process of its own (base latency L per answer, its
own pacing), one `celery worker -Q ibkr.gK --pool solo` per gateway (IBKR_GATEWAYS names them
all), Redis (broker, results, one pacer per gateway), a scratch PostgreSQL database.
`manage.py fetch` enqueues the run; each gateway's worker claims the run's next requests within
its own pacing. For bars of 1 minute and up the binding rule is 45 requests a second per
gateway, so the bound for R requests on N gateways is T_min = R / (45 N) + L (45 a second, the
issue's bound); ratio = wall / T_min (target <= 1.10), wall being the run's own start-to-finish
time (planning included). The rule is a sliding window, so a gateway may send 45 at once at the
start of each second: floor = floor((ceil(R / N) - 1) / 45) + L is the earliest the rules let the
last answer come (nothing stored or exported yet), and wall / floor how far a run is from it;
speedup = wall at N = 1 / wall (target >= 0.9 N); violations are the pacing errors the
simulators sent (their counters: pacing violations and error 100); bars_equal says every stored bar equals the simulator's
ground truth. A fresh set of workers and simulators, and a fresh instrument, for each N.
cpu_s is the user + system CPU used during the fetch by the simulators, the workers, PostgreSQL,
Redis and the fetch command (each shown apart: PostgreSQL's and Redis's are all of the machine's,
so the figures mean something on a quiet machine only), busy the share of
the whole machine (every core, every process: PostgreSQL, Redis, the fetch command too) busy
during the run: the pacing bound holds only while the machine has CPU to spare (near 100% the
run is bound by CPU, not by pacing). stored_s is when the run's last request was stored (from
its start): what follows is its catalog export and its end.

Small bars: `--sessions` recent full sessions of 5-second bars (7 requests a session), the
simulators and the pacers at time scale S (`--scale`, W = 600 / S seconds a window): the binding
rule is 60 requests in any window per gateway, so T_min = floor((R - 1) / (60 N)) * W + L (the
floor too).

    .venv/bin/python bench/fetch_gateways.py [--n 1,2,3] [--latency 0.05] [--year 2025]
        [--scale 60] [--sessions 54] [--workloads minutes,small]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import simproc  # noqa: E402
from scratch import scratch_database  # noqa: E402

from ibsim.market import Market  # noqa: E402
from ibsim.rules import BAR_SIZES  # noqa: E402

SYMBOLS = ["AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "TSLA", "JPM"]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """A process's user + system CPU; with `children`, that of its children it waited for too."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / TICKS


def service_cpu(command: str) -> float:
    """The CPU of every process named `command` (the PostgreSQL or Redis server), with what its
    exited children used (a PostgreSQL connection's backend ends with it): all of the machine's,
    so it means something on a quiet machine only."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name == command:
            total += cpu_seconds(int(stat.parent.name), children=True)
    return total


class CpuUse:
    """CPU seconds each part of the deployed shape used between `start()` and `stop()`."""

    def __init__(self, sims: list, workers: list) -> None:
        self.parts = {
            "sims": lambda: sum(cpu_seconds(p.pid) for p in sims),
            "workers": lambda: sum(cpu_seconds(p.pid) for p in workers),
            "postgres": lambda: service_cpu("postgres"),
            "redis": lambda: service_cpu("redis-server"),
            "command": lambda: sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]),
        }

    def start(self) -> None:
        self.used = {name: -read() for name, read in self.parts.items()}

    def stop(self) -> dict[str, float]:
        return {name: self.used[name] + read() for name, read in self.parts.items()}


class MachineLoad:
    """The whole machine's busy and total CPU time (all cores, /proc/stat), sampled every
    20 ms while it runs: `busy(a, b)` is the share of the machine busy between two times."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> MachineLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            idle = ticks[3] + ticks[4]  # idle, iowait
            self.marks.append((time.time(), sum(ticks) - idle, sum(ticks)))
            time.sleep(0.02)

    def busy(self, start: float, end: float) -> float:
        inside = [m for m in self.marks if start <= m[0] <= end]
        if len(inside) < 2:
            return float("nan")
        return (inside[-1][1] - inside[0][1]) / max(1, inside[-1][2] - inside[0][2])


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


def run_figures(env: dict) -> tuple[int, int, tuple[float, float], float, dict, np.ndarray]:
    """(requests, bars, (start, end) epochs, last store, requests per gateway, stored bar times
    and closes) of the latest run, from the database; `last store` is when its last chunk was
    stored, in seconds from its start (what follows is the catalog export and the run's end)."""
    import psycopg

    url = env["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        run_id, requests, bars, start, end, timeframe = conn.execute(
            "SELECT id, requests_made, bars_stored, extract(epoch from started_at), "
            "extract(epoch from finished_at), timeframe FROM fetcher_fetchrun "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        [last_store] = conn.execute(
            "SELECT extract(epoch from max(c.updated_at) - r.started_at) FROM fetcher_fetchchunk c "
            "JOIN fetcher_fetchrun r ON r.id = c.run_id WHERE c.run_id = %s GROUP BY r.started_at",
            [run_id],
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
    span = (float(start), float(end))
    return requests, bars, span, float(last_store), per_gateway, np.array(stored)


def truth(symbol: str, bar_size: str, start: dt.date, end: dt.date):
    """The bars the simulators serve for `symbol` from start to end (dates, New York)."""
    market = Market(seed=0)
    [listing] = market.find(symbol, "STK", "SMART", "USD")
    zone = ZoneInfo("America/New_York")
    a = dt.datetime.combine(start, dt.time(), zone)
    b = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone)
    return market.bars(
        listing, BAR_SIZES[bar_size], "TRADES", True, int(a.timestamp()), int(b.timestamp())
    )


def recent_sessions(n: int) -> tuple[dt.date, dt.date]:
    """The first and last of the n full NYSE sessions ending two weeks ago (bars of 30 s or less
    are kept for six months only)."""
    import exchange_calendars as xcals

    today = dt.date.today()
    calendar = xcals.get_calendar(
        "XNYS", start=(today - dt.timedelta(days=180)).isoformat(), end=today.isoformat()
    )
    schedule = calendar.schedule
    hours = (schedule["close"] - schedule["open"]).dt.total_seconds()
    full = [day.date() for day, h in zip(schedule.index, hours, strict=True) if h == 6.5 * 3600]
    days = [day for day in full if day <= today - dt.timedelta(days=14)][-n:]
    return days[0], days[-1]


def violations(stats: list[Path]) -> int:
    total = 0
    for path in stats:
        counts = json.loads(path.read_text()) if path.exists() else {}
        total += counts.get("pacing_violations", 0) + counts.get("errors", {}).get(MESSAGE_RATE, 0)
    return total


@dataclass(frozen=True)
class Workload:
    name: str
    timeframe: str  # as `fetch --timeframe` takes it
    bar_size: str  # IBKR's, for the ground truth
    start: dt.date
    end: dt.date
    scale: float  # the simulators' and pacers' time scale

    def bound(self, requests: int, n: int, latency: float) -> float:
        if self.timeframe == "1-MINUTE":  # 45 requests a second per gateway
            return requests / (45 * n) + latency
        return (requests - 1) // (60 * n) * (600 / self.scale) + latency

    def floor(self, requests: int, n: int, latency: float) -> float:
        """The earliest the rules let the last answer come: each gateway sends its share in
        bursts, a window's worth at the start of each window (45 a second, or 60 a window)."""
        share = -(-requests // n)
        if self.timeframe == "1-MINUTE":
            return (share - 1) // 45 + latency
        return (share - 1) // 60 * (600 / self.scale) + latency


def fetch_through(n: int, symbol: str, work: Workload, args, workdir: Path, base_env: dict) -> dict:
    """One fetch of `symbol` through n fresh gateways; its figures."""
    sims, ports, stats = [], [], []
    for k in range(n):
        path = workdir / f"sim-{work.name}-{n}-{k}.json"
        sim, port = simproc.start_simulator(
            "--latency", str(args.latency), "--stats-file", str(path),
            "--time-scale", str(work.scale),
        )  # fmt: skip
        sims.append(sim)
        ports.append(port)
        stats.append(path)
    gateways = ",".join(f"g{k + 1}=127.0.0.1:{port}:{90 + k}" for k, port in enumerate(ports))
    env = {**base_env, "IBKR_GATEWAYS": gateways} if n > 1 else {
        **base_env, "IBKR_HOST": "127.0.0.1", "IBKR_PORT": str(ports[0]), "IBKR_CLIENT_ID": "90"
    }  # fmt: skip
    env["IBKR_PACING_TIME_SCALE"] = str(work.scale)
    queues = [f"ibkr.g{k + 1}" for k in range(n)] if n > 1 else ["ibkr"]
    logs = [workdir / f"worker-{work.name}-{n}-{queue}.log" for queue in queues]
    workers = [start_worker(env, queue, log) for queue, log in zip(queues, logs, strict=True)]
    try:
        for proc, log in zip(workers, logs, strict=True):
            wait_connected(proc, log)
        use = CpuUse(sims, workers)
        use.start()
        with MachineLoad() as load:
            fetch = subprocess.run(
                [sys.executable, "manage.py", "fetch", "--instruments", symbol,
                 "--start", work.start.isoformat(), "--end", work.end.isoformat(),
                 "--timeframe", work.timeframe, "--yes"],
                cwd=ROOT, env=env, capture_output=True, text=True,
            )  # fmt: skip
        cpu = use.stop()
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
    requests, bars, (start, end), last_store, per_gateway, stored = run_figures(env)
    wall = end - start
    want = truth(symbol, work.bar_size, work.start, work.end)
    equal = (
        len(stored) == len(want.time)
        and np.array_equal(stored[:, 0].astype(np.int64), want.time)
        and np.allclose(stored[:, 1].astype(float), want.close, rtol=0, atol=1e-9)
    )
    bound = work.bound(requests, n, args.latency)
    floor = work.floor(requests, n, args.latency)
    return {
        "cpu": cpu,
        "busy": load.busy(start, end),
        "n": n,
        "requests": requests,
        "bars": bars,
        "wall": wall,
        "last_store": last_store,
        "bound": bound,
        "floor": floor,
        "violations": violations(stats),
        "equal": equal,
        "per_gateway": per_gateway,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="1,2,3", help="gateway counts, comma-separated")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--scale", type=float, default=60.0, help="small bars' time scale S")
    parser.add_argument("--sessions", type=int, default=54, help="small bars' sessions")
    parser.add_argument("--workloads", default="minutes,small")
    args = parser.parse_args()
    counts = [int(n) for n in args.n.split(",")]
    if counts[0] != 1:
        raise SystemExit("--n starts with 1 (the speed-ups are against it)")
    first, last = recent_sessions(args.sessions)
    workloads = {
        "minutes": Workload(
            "minutes", "1-MINUTE", "1 min", dt.date(args.year, 1, 1), dt.date(args.year, 12, 31), 1
        ),
        "small": Workload("small", "5-SECOND", "5 secs", first, last, args.scale),
    }
    chosen = [workloads[name] for name in args.workloads.split(",")]
    if len(counts) * len(chosen) > len(SYMBOLS):
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
    symbols = iter(SYMBOLS)
    figures = []
    for work in chosen:
        results = [fetch_through(n, next(symbols), work, args, workdir, env) for n in counts]
        base = results[0]["wall"]  # N = 1's
        print(
            f"{work.name} ({work.timeframe}, {work.start} to {work.end}, time scale {work.scale:g})"
        )
        print(f"{'N':>3} {'requests':>9} {'bars':>8} {'wall s':>8} {'bound s':>8} {'ratio':>6} {'floor s':>8} {'/ floor':>7} "
              f"{'speedup':>8} {'stored s':>9} {'cpu s':>6} {'busy':>5} {'violations':>11} {'bars equal':>11}  per gateway")  # fmt: skip
        for r in results:
            n, wall, bound = r["n"], r["wall"], r["bound"]
            speedup = base / wall
            per = ", ".join(f"{g or '-'} {c}" for g, c in r["per_gateway"].items())
            print(f"{n:>3} {r['requests']:>9} {r['bars']:>8} {wall:>8.2f} {bound:>8.2f} "
                  f"{wall / bound:>6.2f} {r['floor']:>8.2f} {wall / r['floor']:>7.2f} {speedup:>8.2f} {r['last_store']:>9.2f} {sum(r['cpu'].values()):>6.1f} {r['busy']:>5.0%} {r['violations']:>11} "
                  f"{'yes' if r['equal'] else 'NO':>11}  {per}")  # fmt: skip
            key = f"{work.name}_{n}"
            figures += [
                f"requests_{key}={r['requests']}",
                f"wall_{key}={wall:.2f}",
                f"bound_{key}={bound:.2f}",
                f"ratio_{key}={wall / bound:.2f}",
                f"floor_{key}={r['floor']:.2f}",
                f"ratio_floor_{key}={wall / r['floor']:.2f}",
                f"speedup_{key}={speedup:.2f}",
                f"stored_s_{key}={r['last_store']:.2f}",
                f"cpu_s_{key}={sum(r['cpu'].values()):.1f}",
                f"busy_{key}={r['busy']:.2f}",
                f"violations_{key}={r['violations']}",
                f"bars_equal_{key}={int(r['equal'])}",
            ]
        print("cpu s by part: " + "; ".join(
            f"N={r['n']} " + ", ".join(f"{part} {cpu:.2f}" for part, cpu in r["cpu"].items())
            for r in results
        ))  # fmt: skip
        print()
    print(" ".join(figures))


if __name__ == "__main__":
    main()
