"""`manage.py ibsim`: run the built-in IB Gateway simulator in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal

from django.core.management.base import BaseCommand, CommandError

from fetcher.ibkr.sim.server import Faults, GatewaySimulator, SimConfig


class Command(BaseCommand):
    help = (
        "Run the built-in IB Gateway simulator: a TCP server speaking the TWS API protocol, "
        "serving deterministic bars on real exchange calendars with IBKR's pacing rules."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=7497, help="port (0: any free port)")
        parser.add_argument("--account", default="DU1234567", help="paper account id to report")
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
            "--stats-file",
            default="",
            help="write the simulator's counters as JSON to this file every second",
        )

    def handle(self, *args, **opts):
        if opts["time_scale"] <= 0:
            raise CommandError("--time-scale must be positive")
        if not (0 <= opts["port"] <= 65535):
            raise CommandError("--port must be between 0 and 65535")
        if not opts["account"].strip():
            raise CommandError("--account must not be empty")
        config = SimConfig(
            host=opts["host"],
            port=opts["port"],
            accounts=tuple(a.strip() for a in opts["account"].split(",") if a.strip()),
            time_scale=opts["time_scale"],
            latency_s=opts["latency"],
            throttle_free=opts["throttle_free"],
            throttle_step_s=opts["throttle_step"],
            message_rate=opts["message_rate"],
            faults=Faults(drop_after_requests=opts["drop_after"]),
        )
        try:
            asyncio.run(self._serve(GatewaySimulator(config), opts["stats_file"]))
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {opts['host']}:{opts['port']}: {exc.strerror}"
            ) from None
        except KeyboardInterrupt:
            pass

    async def _serve(self, sim: GatewaySimulator, stats_file: str) -> None:
        await sim.start()
        self.stdout.write(
            f"ibdata gateway simulator listening on {sim.config.host}:{sim.port} "
            f"(API versions {sim.config.min_version}..{sim.config.max_version}, "
            f"account {','.join(sim.config.accounts)}, time scale {sim.config.time_scale:g}x)"
        )
        self.stdout.flush()
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
                await asyncio.wait_for(stop.wait(), 1.0)
        await sim.stop()
        self.stdout.write("simulator stopped")
