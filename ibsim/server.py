"""The simulated gateway: its configuration, counters, faults and listening socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field

from . import messages as msg
from . import rules, texts
from .market import Market
from .pacing import HistoricalPacing, ScaledClock, SoftThrottle
from .session import Session
from .wire import ProtocolError

log = logging.getLogger("ibdata.sim")


@dataclass
class Faults:
    """Switchable misbehaviour, for reliability tests. Each one-shot fault disarms itself."""

    drop_after_requests: int | None = None  # close the socket when request N+1 arrives
    stall_requests: int = 0  # the next N historical requests are never answered (until cancelled)
    outage_after_requests: int | None = None  # send 1100 when request N+1 arrives ...
    outage_s: float = 1.0  # ... and 1102 this many real seconds later
    # ... or 1101 (restored, data lost): requests in flight are never answered, as after a
    # real outage of that kind; the client has to send them again
    outage_data_lost: bool = False


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 7497  # 0 picks a free port
    accounts: tuple[str, ...] = ("DU1234567",)
    min_version: int = msg.MIN_VERSION
    max_version: int = msg.MAX_VERSION
    time_zone: str = "US/Eastern"  # the gateway's own zone (handshake, zone-less end times)
    time_scale: float = 1.0  # >1 runs the pacing windows faster (600 = 10 minutes in 1 s)
    latency_s: float = 0.0  # base latency of every historical answer, in real seconds
    throttle_free: int = 0  # soft throttle for bars >= 1 min: free requests per window ...
    throttle_step_s: float = 0.0  # ... and the extra delay per request beyond them
    seed: int = 0
    message_rate: int = rules.MESSAGES_PER_SECOND  # incoming messages/s before error 100; 0: off
    # Name the simulator in its data-farm notices, so clients record its bars as synthetic.
    # False stands in for a real TWS (which cannot run here) in tests of that record.
    identify: bool = True
    faults: Faults = field(default_factory=Faults)


@dataclass
class SimStats:
    """What the simulator saw and did; read by tests and benchmarks."""

    counts: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # code -> times sent

    @property
    def pacing_violations(self) -> int:
        return self.counts["pacing_violations"]

    def snapshot(self) -> dict:
        return {
            **dict(self.counts),
            "errors": {str(k): v for k, v in sorted(self.errors.items())},
        }


class GatewaySimulator:
    """An IB Gateway look-alike the unmodified ib_insync client can connect to.

    Run it in the current event loop (`await start()`), in a background thread
    (`start_in_thread()`, for tests and the demo) or as `manage.py ibsim`.
    """

    def __init__(self, config: SimConfig | None = None, market: Market | None = None):
        self.config = config or SimConfig()
        self.faults = self.config.faults
        self.market = market or Market(seed=self.config.seed)
        self.stats = SimStats()
        # IBKR counts pacing (and open requests) per gateway, across all its client connections
        clock = ScaledClock(self.config.time_scale)
        self.pacing = HistoricalPacing(clock)
        self.throttle = SoftThrottle(clock, self.config.throttle_free, self.config.throttle_step_s)
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[Session] = set()
        self._client_ids: set[int] = set()
        self._farm_ok: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._hist_received = 0
        self.port = self.config.port

    def open_historical(self) -> int:
        """Historical requests being answered, on every connection."""
        return sum(len(session.open_historical) for session in self._sessions)

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.market.warm_up()  # a real gateway answers its first request without a pause
        self._farm_ok = asyncio.Event()
        self._farm_ok.set()
        self._server = await asyncio.start_server(
            self._on_connect, self.config.host, self.config.port, limit=2**20
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("gateway simulator listening on %s:%s", self.config.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for session in list(self._sessions):
                session.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def start_in_thread(self) -> GatewaySimulator:
        """Start on a daemon thread with its own event loop; return once it listens."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="ibsim", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._thread = None

    def call(self, fn, *args) -> None:
        """Run `fn(*args)` on the simulator's loop (thread-safe)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    # --- faults the tests trigger -----------------------------------------------------

    def connectivity_lost(self) -> None:
        """Send 1100 to every client and hold historical answers until restored."""
        assert self._farm_ok is not None
        self._farm_ok.clear()
        for session in list(self._sessions):
            session.send_error(-1, *texts.CONNECTIVITY_LOST)

    def connectivity_restored(self, data_lost: bool = False) -> None:
        """Send 1102 (data kept: held answers go out), or 1101 (data lost: requests in flight
        are dropped unanswered)."""
        assert self._farm_ok is not None
        for session in list(self._sessions):
            if data_lost:
                self.stats.counts["lost_in_outage"] += session.drop_historical()
                session.send_error(-1, *texts.CONNECTIVITY_RESTORED_DATA_LOST)
            else:
                session.send_error(-1, *texts.CONNECTIVITY_RESTORED)
        self._farm_ok.set()

    def drop_all(self) -> None:
        for session in list(self._sessions):
            session.abort()

    # --- connections ------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        session = Session(self, reader, writer)
        self._sessions.add(session)
        self.stats.counts["connections"] += 1
        try:
            await session.run()
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError) as exc:
            log.debug("client gone: %r", exc)
        finally:
            self._sessions.discard(session)
            session.close()

    def _count_historical(self) -> str | None:
        """Count an arriving historical request; name the armed fault it triggers."""
        self._hist_received += 1
        f = self.faults
        if f.drop_after_requests is not None and self._hist_received > f.drop_after_requests:
            f.drop_after_requests = None
            self._hist_received = 0
            return "drop"
        if f.outage_after_requests is not None and self._hist_received > f.outage_after_requests:
            f.outage_after_requests = None
            self._hist_received = 0
            return "outage"
        if f.stall_requests > 0:
            f.stall_requests -= 1
            return "stall"
        return None

    async def _outage(self, seconds: float) -> None:
        self.connectivity_lost()
        await asyncio.sleep(seconds)
        self.connectivity_restored(data_lost=self.faults.outage_data_lost)
