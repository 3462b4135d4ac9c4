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
    add_life_arguments(parser)
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


# The gateway's life and transient faults: (name, what it imitates, its source, and the option
# of its duration when it has one: (name, default seconds, what)).
LIFE_FAULTS = (
    (
        "restart",
        "daily restart: every connection dropped, the port refusing connections for a while, "
        "then accepting again",
        "IBKR auto-restart guide; IBC issues 290, 316",
        ("restart-down-s", 2.0, "how long the port refuses connections in a restart"),
    ),
    (
        "log-off",
        "log-off: every connection dropped, the port refusing connections until a login "
        "(SIGUSR1), as a gateway waiting for its weekly 2FA login",
        "IBKR auto-restart guide; IBC issues 205, 290; ib-gateway-docker issue 119",
        None,
    ),
    (
        "farm-outage",
        "historical data farm broken: 2105 to every client, historical requests stall (also "
        "those in flight: never answered), then 2106",
        "twsapi list message 51396",
        ("farm-outage-s", 2.0, "how long the farm stays broken"),
    ),
    (
        "competing-session",
        "competing live session: market data requests answered 10197 'No market data during "
        "competing live session'",
        "ibkr.info article 1719",
        ("competing-session-s", 2.0, "how long the competing session lasts"),
    ),
    (
        "spurious-200",
        "the nightly reset's false 200 'No security definition has been found for the "
        "request' for contracts that exist",
        "IBC issue 251; ib_insync issue 330",
        ("spurious-200-s", 2.0, "how long known contracts are answered 200"),
    ),
)


def add_life_arguments(parser: argparse.ArgumentParser) -> None:
    """The gateway's life and transient faults (docs/tws-protocol.md, "Gateway life and
    transient faults"): each imitates what a real IB Gateway does and names its source."""
    life = parser.add_argument_group(
        "gateway life and transient faults",
        "each goes off once, when historical request N+1 arrives (counted from the start); "
        "durations in real seconds",
    )
    for name, what, source, duration in LIFE_FAULTS:
        life.add_argument(
            f"--{name}-after-requests", type=int, metavar="N", help=f"{what} [{source}]"
        )
        if duration is not None:
            flag, default, text = duration
            life.add_argument(
                f"--{flag}",
                type=float,
                default=default,
                metavar="S",
                help=f"{text} (default {default:g})",
            )
    life.add_argument(
        "--logged-off",
        action="store_true",
        help="start logged off: the port refuses connections until SIGUSR1 logs in",
    )
    life.add_argument(
        "--no-data-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="share of historical answers with bars that say 'HMDS query returned no data' "
        "instead (0 to 1) [ibdata issue 17; ib_insync issue 330: 'if the data is returned empty "
        "then try again some other time'; not published by IBKR]",
    )
    life.add_argument(
        "--no-data-seed", type=int, default=0, metavar="K", help="seed of --no-data-rate's draws"
    )
    life.add_argument(
        "--no-permission",
        default="",
        metavar="SYMBOL[,...]",
        help="symbols the account has no market data subscription for: head timestamps "
        "answer 354, historical data 162 'No market data permissions for ...' "
        "[ib_insync issues 19, 234, 461]",
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
    if not 0 <= options["no_data_rate"] <= 1:
        raise UsageError("--no-data-rate must be between 0 and 1")
    for name, _, _, duration in LIFE_FAULTS:
        for flag in (f"{name}-after-requests", duration and duration[0]):
            if flag and (options[flag.replace("-", "_")] or 0) < 0:
                raise UsageError(f"--{flag} must not be negative")
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
        faults=Faults(
            drop_after_requests=options["drop_after"],
            restart_after_requests=options["restart_after_requests"],
            restart_down_s=options["restart_down_s"],
            log_off_after_requests=options["log_off_after_requests"],
            farm_outage_after_requests=options["farm_outage_after_requests"],
            farm_outage_s=options["farm_outage_s"],
            competing_after_requests=options["competing_session_after_requests"],
            competing_s=options["competing_session_s"],
            spurious_200_after_requests=options["spurious_200_after_requests"],
            spurious_200_s=options["spurious_200_s"],
            no_data_rate=options["no_data_rate"],
            no_data_seed=options["no_data_seed"],
        ),
        identify=not options["no_identify"],
        now=now,
        logged_off=options["logged_off"],
        no_permission=frozenset(
            s.strip().upper() for s in options["no_permission"].split(",") if s.strip()
        ),
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, sim.log_in)  # the 2FA login of a logged-off gateway
    cfg = sim.config
    state = "logged off (SIGUSR1 logs in) on" if cfg.logged_off else "listening on"
    out.write(
        f"ibdata gateway simulator {state} {cfg.host}:{sim.port} "
        f"(API versions {cfg.min_version}..{cfg.max_version}, "
        f"account {','.join(cfg.accounts)}, time scale {cfg.time_scale:g}x{_present(cfg)})\n"
    )
    out.flush()
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
