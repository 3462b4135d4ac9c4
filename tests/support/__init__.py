"""What several test modules share: where the project is, real Celery worker processes, and
waiting for a run to end; backtest_reference.py holds backtesting.py as the backtests' reference."""

from __future__ import annotations

import base64
import datetime as dt
import email.policy
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

from fetcher.domain.bars import BarBatch
from fetcher.domain.timeframes import timeframe_parse
from ibsim.rules import BAR_SIZES

ROOT = Path(__file__).resolve().parents[2]
# Celery's keys in the broker: the queues and the Redis transport's unacked bookkeeping.
QUEUE_KEYS = ("ibkr", "default", "backtests", "unacked", "unacked_index", "unacked_mutex")
# Tests of the deployed shape: worker processes share PostgreSQL and Redis with the test.
DEPLOYED_SHAPE = [
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis (REDIS_URL)"),
    pytest.mark.skipif(
        not django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="worker processes need a shared database (PostgreSQL)",
    ),
]


def worker_database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def deployed_env(tmp_path: Path, sim=None, **overrides: str) -> dict[str, str]:
    """The environment of a process of the deployed shape: the test's database and Redis, the
    simulator (when given) as the gateway, data and logs under tmp_path."""
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_DIR": str(tmp_path / "logs"),
    }
    if sim is not None:
        env |= {"IBKR_HOST": "127.0.0.1", "IBKR_PORT": str(sim.port)}
    return env | overrides


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a process on the production settings (ibdata_project.settings, not the
    suite's), without a secret of the developer's (DJANGO_SECRET_KEY, FLOWER_BASIC_AUTH)."""
    unset = {"DJANGO_SECRET_KEY", "FLOWER_BASIC_AUTH"}
    env = {name: value for name, value in os.environ.items() if name not in unset}
    return env | {"DJANGO_SETTINGS_MODULE": "ibdata_project.settings"} | overrides


def manage(env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """`python manage.py ARGS` from the project root in `env`, its output captured."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def http_get(url: str, auth: str = "", timeout: float = 10) -> tuple[int, str]:
    """(status, body) of a GET, with basic auth "user:password" when given."""
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", f"Basic {base64.b64encode(auth.encode()).decode()}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def answers(url: str, auth: str = "") -> bool:
    """True once something listens there and answers HTTP."""
    try:
        http_get(url, auth, timeout=2)
    except (OSError, urllib.error.URLError):
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A real process started from the project root (celery worker, beat, Flower...), with its
    log in a file the test reads."""

    def __init__(self, env: dict, log: Path, name: str):
        self.env, self.log, self.name = env, log, name
        self.proc: subprocess.Popen | None = None

    def popen(self, args: list[str], *, output_to_log: bool) -> None:
        """Start `args`; its stdout and stderr go to the log file, or nowhere when the process
        writes the log itself."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        output = open(self.log, "ab") if output_to_log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT
        )
        if output_to_log:
            output.close()  # the child holds its own copy

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, text: str, timeout: float, count: int = 1) -> None:
        """Until `text` is in the log `count` times (or the process has ended)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.text().count(text) >= count:
                return
            if self.proc and self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"{self.name}: {text!r} not {count} times in its log:\n{self.text()[-3000:]}"
        )

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class Worker(Process):
    """A real `celery worker` process (by default the ibkr worker: -Q ibkr --pool solo)."""

    def __init__(
        self,
        env: dict,
        log: Path,
        name: str,
        *,
        queues: tuple[str, ...] = ("ibkr",),
        pool: str = "solo",
        concurrency: int = 1,
    ):
        super().__init__(env, log, name)
        self.queues, self.pool, self.concurrency = queues, pool, concurrency

    def start(self, wait: bool = True) -> Worker:
        self.popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "ibdata_project",
                "worker",
                "-Q",
                ",".join(self.queues),
                "--pool",
                self.pool,
                "--concurrency",
                str(self.concurrency),
                "-n",
                f"{self.name}@%h",
                "-E",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
                "--logfile",
                str(self.log),
            ],
            output_to_log=False,
        )
        if wait:
            self.wait_for("ready.", 60)
        return self


def wait_until(predicate, timeout: float, what: str, poll: float = 0.2):
    """predicate()'s first true value, checked every `poll` seconds for up to `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"{what}: not within {timeout}s")


def enqueue(symbols: str, start: str, end: str, timeframe: str):
    """A fetch submitted as the CLI does (queued for the ibkr worker), as its FetchRun."""
    from fetcher.domain.requests import FetchRequest
    from fetcher.models import FetchRun
    from fetcher.services.submit import fetch_submit

    request = FetchRequest.parse(instruments=symbols, timeframe=timeframe, start=start, end=end)
    return FetchRun.objects.get(pk=fetch_submit(request=request, requested_by="cli").run_id)


def scheduled_run_fired(env: dict, log_dir: Path, instruments: str, timeframe: str):
    """A schedule added (`schedule add`, every minute) and real celery beat run until it fires
    once: the run it started (the default worker starts it), beat stopped."""
    from fetcher.models import FetchRun, RequestedBy

    added = manage(
        env, "schedule", "add", "--instruments", instruments, "--timeframe", timeframe,
        "--cron", "* * * * *",
    )  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    beat = Process(env, log_dir / "beat.log", "beat")
    beat.popen(
        [sys.executable, "-m", "celery", "-A", "ibdata_project", "beat",
         "-S", "django_celery_beat.schedulers:DatabaseScheduler", "-l", "INFO",
         "--pidfile", str(log_dir / "beat.pid")],
        output_to_log=True,
    )  # fmt: skip
    try:  # beat fires at the next minute
        return wait_until(
            lambda: FetchRun.objects.filter(requested_by=RequestedBy.SCHEDULE).first(),
            90,
            "a run started by the schedule",
        )
    finally:
        beat.stop()  # one firing is what the tests follow


def wait_finished(run_id: int, timeout: float):
    """The run once it has ended (succeeded, partial, failed or cancelled)."""
    from fetcher.models import FetchRun, RunStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = FetchRun.objects.get(pk=run_id)
        if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
            return run
        time.sleep(0.5)  # the simulator shares this process: poll gently
    raise AssertionError(
        f"run {run_id} still {FetchRun.objects.get(pk=run_id).status} after {timeout}s"
    )


class SmtpServer:
    """A real SMTP server of the test's own (aiosmtpd) on a free loopback port: the mails ibdata
    sends, as parsed messages."""

    def __init__(self, port: int | None = None):
        from aiosmtpd.controller import Controller

        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's handler hook
        message = BytesParser(policy=email.policy.default).parsebytes(envelope.content)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


class PrivateRedis:
    """A redis-server of the test's own on a free port: killed (-9) and restarted at will."""

    def __init__(self, directory: Path):
        self.directory, self.port = directory, free_port()
        self.proc: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, 15, f"redis on port {self.port}")
        return self

    def answers(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
        except redis.ConnectionError:
            return False

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary folder, a free port),
    restarted at will; run as the `postgres` user when the tests run as root."""

    def __init__(self):
        # not under pytest's tmp_path: its parent is private to root, and the server runs as
        # the postgres user
        self.directory, self.port = Path(tempfile.mkdtemp(prefix="ibdata-pg-")), free_port()
        self.data = self.directory / "pgdata"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/ibdata"

    def _run(self, *args: str) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> PrivatePostgres:
        if not self.data.exists():
            if os.geteuid() == 0:
                shutil.chown(self.directory, "postgres")
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
            )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1",
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def create_database(self) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "ibdata")


def recent_sessions(n: int, *, days_ago: int = 14) -> list[dt.date]:
    """The n full NYSE sessions (9:30-16:00, no half days) ending `days_ago` days before today:
    bars of 30 s or less exist for six months only, so their tests fetch recent sessions."""
    import exchange_calendars as xcals

    today = dt.date.today()
    calendar = xcals.get_calendar(
        "XNYS", start=(today - dt.timedelta(days=120)).isoformat(), end=today.isoformat()
    )
    schedule = calendar.schedule
    hours = (schedule["close"] - schedule["open"]).dt.total_seconds()
    full = [day.date() for day, h in zip(schedule.index, hours, strict=True) if h == 6.5 * 3600]
    last = today - dt.timedelta(days=days_ago)
    return [day for day in full if day <= last][-n:]


def settled(run):
    """A run once it has ended (runs started in this process go on a thread of their own)."""
    from fetcher.services.submit import FetchHandle

    FetchHandle(run.pk).wait(timeout_s=120)
    run.refresh_from_db()
    return run


# --- bars as tests make, read and expect them ---------------------------------------------


DAILY, HOURLY = 19, 14  # timeframe codes
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def store_bars(instrument, timeframe: int, n: int) -> None:
    """n TRADES bars of one series (daily or hourly) from T0, and its Series row, written as a
    fetch leaves them."""
    from fetcher.models import Bar, Series

    step = dt.timedelta(days=1) if timeframe == DAILY else dt.timedelta(hours=1)
    Bar.objects.bulk_create(
        Bar(
            instrument=instrument,
            timeframe=timeframe,
            what_to_show=1,
            ts=T0 + i * step,
            open=i,
            high=i + 1,
            low=i - 1,
            close=i + 0.5,
        )
        for i in range(n)
    )
    Series.objects.create(
        instrument=instrument,
        timeframe=timeframe,
        what_to_show=1,
        rth=True,
        source="simulator",
        bar_count=n,
        first_ts=T0,
        last_ts=T0 + (n - 1) * step,
    )


def make_bars(ts, price: float = 100.0) -> BarBatch:
    """Bars at the given times, each price a little above the one before."""
    ts = np.asarray(ts, dtype=np.int64)
    step = np.arange(len(ts), dtype=np.float64)
    base = price + step
    return BarBatch.from_columns(
        ts=ts,
        open=base,
        high=base + 0.5,
        low=base - 0.5,
        close=base + 0.25,
        volume=1000.0 + step,
        wap=base + 0.125,
        bar_count=7 + np.arange(len(ts)),
    )


def bars_of(symbol: str, timeframe: str) -> list[tuple]:
    """A stored series' bars, as rows in time order."""
    from fetcher.models import Bar

    return list(
        Bar.objects.filter(instrument__symbol=symbol, timeframe=timeframe_parse(timeframe).code)
        .order_by("ts")
        .values_list("ts", "open", "high", "low", "close", "volume", "wap", "bar_count")
    )


def truth_times(sim, symbol: str, bar_size: str, start: str, end: str) -> list[int]:
    """The bar times a simulator's market holds for a US stock from start to end (dates)."""
    ny = dt.timezone(dt.timedelta(hours=-5))
    [spec] = sim.market.find(symbol, "STK", "SMART", "USD")
    a = dt.datetime.fromisoformat(start).replace(tzinfo=ny)
    b = dt.datetime.fromisoformat(end).replace(tzinfo=ny) + dt.timedelta(days=1)
    return sim.market.bars(
        spec, BAR_SIZES[bar_size], "TRADES", True, int(a.timestamp()), int(b.timestamp())
    ).time.tolist()


def minute_truth(symbol: str, start: dt.date, end: dt.date):
    """The 1-minute TRADES bars (RTH) of a US stock from start to end (dates, in winter) that a
    simulator with the default seed serves: the ground truth of the scale tests."""
    from ibsim.market import Market

    market = Market(seed=0)
    [found] = market.find(symbol, "STK", "SMART", "USD")
    zone = dt.timezone(dt.timedelta(hours=-5))  # New York in January and December
    a = dt.datetime.combine(start, dt.time(), zone)
    b = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone)
    return market.bars(
        found, BAR_SIZES["1 min"], "TRADES", True, int(a.timestamp()), int(b.timestamp())
    )


def rows(html: str) -> list[tuple[str, str, str]]:
    """(instrument, timeframe, bar start) of each row shown."""
    return re.findall(
        r"<tr><td>(\w+)</td><td>([\w-]+)</td><td>\w+</td><td>\w+</td>\s*<td>([\d\- :]+)</td>", html
    )


def link(html: str, name: str) -> str | None:
    found = re.search(rf'href="(\?[^"]*)" id="bars-{name}"', html)
    return found and found.group(1).replace("&amp;", "&")


NEW_YORK = ZoneInfo("America/New_York")


def epoch_at(text: str, zone: ZoneInfo = NEW_YORK) -> int:
    """'2024-01-02 09:30' in `zone` -> epoch seconds."""
    return int(dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=zone).timestamp())


def historical_bars(
    ib, contract, end, duration, bar_size, what="TRADES", rth=True, fmt=1, timeout=30
):
    """ib_insync's reqHistoricalData with the simulator tests' defaults (TRADES, RTH)."""
    return ib.reqHistoricalData(
        contract,
        endDateTime=end,
        durationStr=duration,
        barSizeSetting=bar_size,
        whatToShow=what,
        useRTH=rth,
        formatDate=fmt,
        timeout=timeout,
    )


class ErrorLog:
    """Collects (reqId, code, text) from ib.errorEvent."""

    def __init__(self, ib):
        self.items: list[tuple[int, int, str]] = []
        ib.errorEvent += self.on_error

    def on_error(self, req_id, code, text, contract):
        self.items.append((req_id, code, text))

    def codes(self) -> list[int]:
        return [code for _, code, _ in self.items]


def listing(symbol: str, sec_type: str = ""):
    """The simulator's instrument `symbol` in USD (ibsim.universe), on any exchange."""
    from ibsim.universe import find

    (found,) = find(symbol, sec_type, "", "USD")
    return found


def simulator_truth(symbol: str, bar_size: str, start: dt.date, end: dt.date) -> BarBatch:
    """The bars the simulator's market (seed 0) holds for a US stock, TRADES in regular hours,
    from start to end (dates in New York): ground truth built without a fetch (a year of minutes
    in about a second)."""
    from ibsim.market import Market

    [listing] = Market(seed=0).find(symbol, "STK", "SMART", "USD")
    a = dt.datetime.combine(start, dt.time(), NEW_YORK)
    b = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), NEW_YORK)
    bars = Market(seed=0).bars(
        listing, BAR_SIZES[bar_size], "TRADES", True, int(a.timestamp()), int(b.timestamp())
    )
    return BarBatch(
        ts=bars.time,
        open=bars.open,
        high=bars.high,
        low=bars.low,
        close=bars.close,
        volume=bars.volume.astype(np.float64),
        wap=bars.wap,
        bar_count=bars.count,
    )


def store_emptied(settings, data_dir: Path) -> None:
    """Make the test's store an empty one: no bars, series, coverage, runs or instruments in the
    database, and a new catalog under `data_dir` (DATA_DIR)."""
    from fetcher.models import Bar, Coverage, FetchRun, Instrument, Series

    for model in (Bar, Coverage, Series, FetchRun, Instrument):
        model.objects.all().delete()
    settings.DATA_DIR = data_dir


# --- the terminal as a user at 80 columns sees it ------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def narrow_terminal(monkeypatch, columns: int = 80) -> None:
    """rich takes the output for a terminal of `columns` columns, without colours."""
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("NO_COLOR", "1")


def screen_lines(text: str) -> list[str]:
    """What a terminal shows: escape codes and carriage-return redraws gone."""
    return [line.rsplit("\r", 1)[-1] for line in ANSI.sub("", text).splitlines()]


def too_wide(text: str, columns: int = 80) -> list[str]:
    """The lines wider than `columns` cells (an emoji takes two), and any cut short with '…'."""
    from rich.cells import cell_len

    return [line for line in screen_lines(text) if cell_len(line) > columns or "…" in line]


def words_of(text: str) -> set[str]:
    """The words a screen shows, table borders aside: a text cut mid-word misses some."""
    return set(re.sub(r"[│┃┆┊║|]", " ", ANSI.sub("", text)).split())
