"""The simulator's command line: `python -m ibsim --port 7497` (and `manage.py ibsim`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import sys

from .gateway import Faults, SimConfig
from .server import GatewaySimulator

STATS_EVERY_S = 1.0


class UsageError(Exception):
    """An option the simulator cannot run with; str() is the one line to show."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=7497, help="port (0: any free port)")
    parser.add_argument("--account", default="DU1234567", help="paper account id(s) to report")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="run the pacing windows this many times faster (e.g. 600)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="base latency per historical answer (s)"
    )
    parser.add_argument(
        "--throttle-free",
        type=int,
        default=0,
        help="soft throttle: requests per 10 s served without slowing down",
    )
    parser.add_argument(
        "--throttle-step",
        type=float,
        default=0.0,
        help="soft throttle: extra seconds per request beyond the free ones",
    )
    parser.add_argument(
        "--message-rate",
        type=int,
        default=50,
        help="incoming messages per second before error 100 (0: no limit)",
    )
    parser.add_argument(
        "--drop-after",
        type=int,
        default=None,
        help="fault: drop the connection when historical request N+1 arrives",
    )
    parser.add_argument(
        "--no-identify",
        action="store_true",
        help="do not name the simulator in its data-farm notices: clients then take it for a "
        "real TWS (for tests of what records where bars came from)",
    )
    parser.add_argument(
        "--now",
        default="",
        help="the simulated present, ISO 8601 with a zone (2024-06-07T20:00Z), which then "
        "advances with the wall clock: nothing after it exists (default: the real present)",
    )
    parser.add_argument(
        "--stats-file",
        default="",
        help="write the simulator's counters as JSON to this file every second",
    )


def config_from(options: dict) -> SimConfig:
    """The simulator's configuration from parsed options; UsageError for a bad one."""
    if options["time_scale"] <= 0:
        raise UsageError("--time-scale must be positive")
    if not 0 <= options["port"] <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    accounts = tuple(a.strip() for a in options["account"].split(",") if a.strip())
    if not accounts:
        raise UsageError("--account must not be empty")
    if options["latency"] < 0:
        raise UsageError("--latency must not be negative")
    now = present_from(options.get("now") or "")
    return SimConfig(
        host=options["host"],
        port=options["port"],
        accounts=accounts,
        time_scale=options["time_scale"],
        latency_s=options["latency"],
        throttle_free=options["throttle_free"],
        throttle_step_s=options["throttle_step"],
        message_rate=options["message_rate"],
        faults=Faults(drop_after_requests=options["drop_after"]),
        identify=not options["no_identify"],
        now=now,
    )


def present_from(text: str) -> float | None:
    """--now as epoch seconds (None when not given); UsageError unless ISO 8601 with a zone."""
    if not text.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--now {text!r} is not an ISO 8601 time: e.g. 2024-06-07T20:00Z"
        ) from None
    if moment.tzinfo is None:
        raise UsageError(f"--now {text!r} has no time zone: e.g. 2024-06-07T20:00Z")
    return moment.timestamp()


def serve(config: SimConfig, *, stats_file: str = "", out=sys.stdout) -> None:
    """Run the simulator in the foreground until SIGINT or SIGTERM; UsageError if it cannot listen."""
    try:
        asyncio.run(_serve(GatewaySimulator(config), stats_file, out))
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
        ) from None
    except KeyboardInterrupt:
        pass


async def _serve(sim: GatewaySimulator, stats_file: str, out) -> None:
    await sim.start()
    cfg = sim.config
    out.write(
        f"ibdata gateway simulator listening on {cfg.host}:{sim.port} "
        f"(API versions {cfg.min_version}..{cfg.max_version}, "
        f"account {','.join(cfg.accounts)}, time scale {cfg.time_scale:g}x{_present(cfg)})\n"
    )
    out.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        if stats_file:
            with open(stats_file + ".tmp", "w") as fh:
                json.dump(sim.stats.snapshot(), fh)
            os.replace(stats_file + ".tmp", stats_file)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STATS_EVERY_S)
    await sim.stop()
    out.write("simulator stopped\n")


def _present(config: SimConfig) -> str:
    if config.now is None:
        return ""
    return f", present {dt.datetime.fromtimestamp(config.now, dt.UTC):%Y-%m-%dT%H:%M:%SZ}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ibsim",
        description="The ibdata IB Gateway simulator: a TCP server speaking the TWS API "
        "protocol, serving deterministic bars on real exchange calendars with IBKR's pacing rules.",
    )
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    try:
        serve(config_from(options), stats_file=options["stats_file"])
    except UsageError as exc:
        print(f"ibsim: {exc}", file=sys.stderr)
        return 2
    return 0
