"""The simulated gateway's own state, which every client connection shares: its configuration,
client ids, connectivity, armed faults, counters, pacing and the present."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from . import messages as msg
from . import rules, texts
from .market import Market
from .pacing import HistoricalPacing, ScaledClock, SoftThrottle


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
    # The simulated present when the gateway starts (epoch seconds), which then advances with
    # the wall clock; None: the real present. Nothing after it exists: bars, splits, listings.
    now: float | None = None
    faults: Faults = field(default_factory=Faults)


class Event(StrEnum):
    """What the gateway counts: the keys of SimStats.counts."""

    CONNECTIONS = "connections"
    REFUSED_VERSIONS = "refused_versions"  # handshakes offering no version served here
    MESSAGES = "messages"  # every message after the handshake
    UNSUPPORTED = "unsupported"  # messages answered with "not served"
    CONTRACT_DETAILS = "contract_details"
    HEAD_TIMESTAMPS = "head_timestamps"
    HISTORICAL_REQUESTS = "historical_requests"
    CANCELLED = "cancelled"  # historical requests cancelled while open
    STALLED = "stalled"  # historical requests a fault left unanswered
    DROPPED_CONNECTIONS = "dropped_connections"  # by the drop fault
    LOST_IN_OUTAGE = "lost_in_outage"  # requests in flight dropped by a 1101 outage
    PACING_VIOLATIONS = "pacing_violations"  # also counted per rule, as "pacing: <rule>"
    BARS_SERVED = "bars_served"


@dataclass
class SimStats:
    """What the simulator saw and did; read by tests and benchmarks, written by the Gateway."""

    counts: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # code -> times sent

    @property
    def pacing_violations(self) -> int:
        return self.counts[Event.PACING_VIOLATIONS.value]

    def snapshot(self) -> dict:
        return {
            **dict(self.counts),
            "errors": {str(k): v for k, v in sorted(self.errors.items())},
        }


class Fault(StrEnum):
    """What an armed fault does to the connection whose historical request set it off."""

    DROP = "drop"  # close the connection at once
    STALL = "stall"  # never answer the request (until it is cancelled)


class Connection(Protocol):
    """What the gateway asks of a client connection it knows (ibsim.session.Session is one)."""

    def send_error(self, req_id: int, code: int, text: str) -> None: ...

    def historical_in_flight(self) -> int: ...

    def drop_historical(self) -> int: ...

    def abort(self) -> None: ...


class Gateway:
    """The state of one simulated gateway, shared by all its connections.

    IBKR counts pacing and open requests per gateway, across every connection, and an
    outage reaches every connection at once: connections report to the gateway and ask it,
    and the gateway reaches them only through `Connection`. Runs on the simulator's loop.
    """

    def __init__(self, config: SimConfig, market: Market):
        self.config = config
        self.market = market
        self.stats = SimStats()
        clock = ScaledClock(config.time_scale)
        self.pacing = HistoricalPacing(clock)
        self._throttle = SoftThrottle(clock, config.throttle_free, config.throttle_step_s)
        self._connections: set[Connection] = set()
        self._client_ids: set[int] = set()
        self._connected = asyncio.Event()  # connectivity between "IB" and the gateway
        self._connected.set()
        self._historical_arrived = 0  # since the last fault that counts requests went off
        self._restores: set[asyncio.Task] = set()
        self._started = time.time()

    def now(self) -> float:
        """The gateway's present, in epoch seconds: the configured present moved on by the wall
        clock since the gateway started, or the real present."""
        if self.config.now is None:
            return time.time()
        return self.config.now + (time.time() - self._started)

    # --- counters -------------------------------------------------------------------------

    def count(self, event: Event, n: int = 1) -> None:
        self.stats.counts[event.value] += n

    def error_sent(self, code: int) -> None:
        self.stats.errors[code] += 1

    def pacing_violated(self, rule: str) -> None:
        self.count(Event.PACING_VIOLATIONS)
        self.stats.counts[f"pacing: {rule}"] += 1

    # --- connections and client ids ---------------------------------------------------------

    def attach(self, connection: Connection) -> None:
        self._connections.add(connection)
        self.count(Event.CONNECTIONS)

    def detach(self, connection: Connection) -> None:
        self._connections.discard(connection)

    def claim_client_id(self, client_id: int) -> bool:
        """Take `client_id` for a connection; False when another connection holds it."""
        if client_id in self._client_ids:
            return False
        self._client_ids.add(client_id)
        return True

    def release_client_id(self, client_id: int) -> None:
        self._client_ids.discard(client_id)

    def drop_all(self) -> None:
        """Close every connection at once, as a gateway that goes away does."""
        for connection in list(self._connections):
            connection.abort()

    # --- connectivity -----------------------------------------------------------------------

    def connectivity_lost(self) -> None:
        """Send 1100 to every client and hold historical answers until restored."""
        self._connected.clear()
        for connection in list(self._connections):
            connection.send_error(-1, *texts.CONNECTIVITY_LOST)

    def connectivity_restored(self, data_lost: bool = False) -> None:
        """Send 1102 (data kept: held answers go out), or 1101 (data lost: requests in flight
        are dropped unanswered)."""
        for connection in list(self._connections):
            if data_lost:
                self.count(Event.LOST_IN_OUTAGE, connection.drop_historical())
                connection.send_error(-1, *texts.CONNECTIVITY_RESTORED_DATA_LOST)
            else:
                connection.send_error(-1, *texts.CONNECTIVITY_RESTORED)
        self._connected.set()

    async def connected(self) -> None:
        """Return once the gateway is connected (at once, unless in an outage)."""
        await self._connected.wait()

    # --- historical requests ------------------------------------------------------------------

    def historical_arrived(self) -> Fault | None:
        """Count an arriving historical request and set off the armed fault it triggers: an
        outage the gateway starts itself; a drop or a stall is the connection's to carry out."""
        self.count(Event.HISTORICAL_REQUESTS)
        self._historical_arrived += 1
        f = self.config.faults
        if f.drop_after_requests is not None and self._historical_arrived > f.drop_after_requests:
            f.drop_after_requests = None
            self._historical_arrived = 0
            return Fault.DROP
        if (
            f.outage_after_requests is not None
            and self._historical_arrived > f.outage_after_requests
        ):
            f.outage_after_requests = None
            self._historical_arrived = 0
            self.connectivity_lost()
            restore = asyncio.get_running_loop().create_task(self._restore_after(f.outage_s))
            self._restores.add(restore)
            restore.add_done_callback(self._restores.discard)
            return None
        if f.stall_requests > 0:
            f.stall_requests -= 1
            return Fault.STALL
        return None

    def historical_in_flight(self) -> int:
        """Historical requests being answered, on every connection."""
        return sum(c.historical_in_flight() for c in self._connections)

    def answer_delay(self, bar_size: rules.BarSize) -> float:
        """Real seconds before an answer goes out: the base latency, plus the soft throttle
        for bars of 1 minute and more."""
        delay = self.config.latency_s
        if not bar_size.small:
            delay += self._throttle.delay()
        return delay

    async def _restore_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.connectivity_restored(data_lost=self.config.faults.outage_data_lost)
