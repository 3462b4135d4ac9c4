"""The simulated gateway's own state, which every client connection shares: its configuration,
client ids, connectivity, armed faults, counters, pacing and the present."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from . import messages as msg
from . import rules, texts
from .market import Listing, Market
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

    # The gateway's life and transient trouble (docs/tws-protocol.md, "Gateway life and
    # transient faults"). Each `..._after_requests: N` goes off once, when historical request
    # N+1 arrives, counted from the gateway's start; durations are in real seconds.
    # A daily restart: every connection dropped, the port refusing connections for a while.
    restart_after_requests: int | None = None
    restart_down_s: float = 2.0
    # A log-off (the weekly one that wants a 2FA login): every connection dropped, the port
    # refusing connections until `Gateway.log_in()` (SIGUSR1 to `python -m ibsim`).
    log_off_after_requests: int | None = None
    # The historical data farm broken: 2105 to every client, historical requests stall (never
    # answered, also those in flight) until it is back, 2106, this many seconds later.
    farm_outage_after_requests: int | None = None
    farm_outage_s: float = 2.0
    # A competing live session: market data requests answered 10197 for this many seconds.
    competing_after_requests: int | None = None
    competing_s: float = 2.0
    # The nightly reset's false 200: contracts it knows answered "No security definition" for
    # this many seconds (contract details, head timestamps, historical data).
    spurious_200_after_requests: int | None = None
    spurious_200_s: float = 2.0
    # "No data" answers for windows that do have bars: this share of them, drawn per request
    # from a generator seeded with `no_data_seed`.
    no_data_rate: float = 0.0
    no_data_seed: int = 0


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
    # Start logged off: the API port refuses connections until `Gateway.log_in()`.
    logged_off: bool = False
    # Symbols the account has no market data subscription for: head timestamps answer 354,
    # historical requests 162 "No market data permissions for ..."; contract details are served.
    no_permission: frozenset[str] = frozenset()
    faults: Faults = field(default_factory=Faults)


class Event(StrEnum):
    """What the gateway counts: the keys of SimStats.counts."""

    CONNECTIONS = "connections"
    REFUSED_VERSIONS = "refused_versions"  # handshakes offering no version served here
    MESSAGES = "messages"  # every message after the handshake
    UNSUPPORTED = "unsupported"  # messages answered with "not served"
    CONTRACT_DETAILS = "contract_details"
    MATCHING_SYMBOLS = "matching_symbols"
    HEAD_TIMESTAMPS = "head_timestamps"
    HISTORICAL_REQUESTS = "historical_requests"
    CANCELLED = "cancelled"  # historical requests cancelled while open
    STALLED = "stalled"  # historical requests a fault left unanswered
    DROPPED_CONNECTIONS = "dropped_connections"  # by the drop fault
    LOST_IN_OUTAGE = "lost_in_outage"  # requests in flight dropped by a 1101 outage
    PACING_VIOLATIONS = "pacing_violations"  # also counted per rule, as "pacing: <rule>"
    BARS_SERVED = "bars_served"
    RESTARTS = "restarts"  # daily restarts: connections dropped, the port closed a while
    LOG_OFFS = "log_offs"  # log-offs: connections dropped, the port closed until log-in
    FARM_OUTAGES = "farm_outages"  # 2105 .. 2106
    # historical requests that arrived while the farm was broken (they stall)
    ARRIVED_IN_FARM_OUTAGE = "arrived_in_farm_outage"
    LOST_IN_FARM_OUTAGE = "lost_in_farm_outage"  # in flight when it broke: never answered
    NO_DATA_GLITCHES = "no_data_glitches"  # "no data" answered for a window with bars


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


class Lookup(StrEnum):
    """The requests that ask the gateway about a contract's data."""

    CONTRACT_DETAILS = "contract_details"
    MATCHING_SYMBOLS = "matching_symbols"
    HEAD_TIMESTAMP = "head_timestamp"
    HISTORICAL = "historical"


class Listener(Protocol):
    """What the gateway asks of its listening socket (ibsim.server.GatewaySimulator is one)."""

    def close_port(self) -> None: ...

    async def open_port(self) -> None: ...


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
        self._restores: set[asyncio.Task] = set()  # connectivity, the farm, the port restored
        self._started = time.time()
        self._listener: Listener | None = None
        self._logged_in = not config.logged_off
        self._port_down = False  # refusing connections: restarting or logged off
        self._farm_ok = True
        self._farm_epoch = 0  # counts the farm's outages: an answer sees whether one began
        # time.monotonic() until which market data requests answer 10197, and lookups 200
        self._competing_until = 0.0
        self._spurious_200_until = 0.0
        self._no_data = random.Random(config.faults.no_data_seed)

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

    # --- the gateway's life: restarts, log-off, log-in -------------------------------------

    def listen_with(self, listener: Listener) -> None:
        """The socket whose port a restart or a log-off closes; closed at once when logged off."""
        self._listener = listener
        if not self._logged_in:
            self._port_down = True
            listener.close_port()

    @property
    def logged_in(self) -> bool:
        return self._logged_in

    def restart(self, down_s: float) -> None:
        """A daily restart: the port closed, every connection dropped (their client ids free),
        and the port open again `down_s` seconds later (unless logged off meanwhile)."""
        self.count(Event.RESTARTS)
        self._go_down()
        self._spawn(self._reopen_after(down_s))

    def log_off(self) -> None:
        """Logged off (waiting for a login with 2FA): the port refuses until `log_in()`."""
        self.count(Event.LOG_OFFS)
        self._logged_in = False
        self._go_down()

    def log_in(self) -> None:
        """Logged in again: the port accepts connections (at once, unless restarting)."""
        self._logged_in = True
        if self._port_down:
            self._spawn(self._reopen_after(0))

    def _go_down(self) -> None:
        self._port_down = True
        if self._listener is not None:
            self._listener.close_port()  # before the drop: nobody reconnects in between
        self.drop_all()

    async def _reopen_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self._logged_in and self._port_down and self._listener is not None:
            await self._listener.open_port()
            self._port_down = False

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._restores.add(task)
        task.add_done_callback(self._restores.discard)

    def stop(self) -> None:
        """Cancel what is scheduled (restores, reopenings): the simulator is stopping."""
        for task in list(self._restores):
            task.cancel()

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

    # --- the historical data farm -------------------------------------------------------------

    @property
    def farm_ok(self) -> bool:
        return self._farm_ok

    @property
    def farm_epoch(self) -> int:
        return self._farm_epoch

    def farm_broken(self) -> None:
        """2105 to every client; historical requests stall until the farm is back (and those
        in flight now are never answered)."""
        self.count(Event.FARM_OUTAGES)
        self._farm_ok = False
        self._farm_epoch += 1
        self._tell_all(texts.hmds_farm(self.config.identify, ok=False))

    def farm_restored(self) -> None:
        """2106 to every client: requests arriving from now on are answered."""
        self._farm_ok = True
        self._tell_all(texts.hmds_farm(self.config.identify, ok=True))

    def farm_serves(self, epoch: int) -> bool:
        """Whether a historical request that arrived at farm epoch `epoch` gets its answer: not
        when the farm broke since (or is broken)."""
        return self._farm_ok and epoch == self._farm_epoch

    def _tell_all(self, error: tuple[int, str]) -> None:
        for connection in list(self._connections):
            connection.send_error(-1, *error)

    async def _farm_back_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.farm_restored()

    # --- answers other than bars: competing session, false 200, permissions, no data -----------

    def competing_session(self, seconds: float) -> None:
        """Another login takes the market data: 10197 for `seconds`."""
        self._competing_until = time.monotonic() + seconds

    def spurious_200(self, seconds: float) -> None:
        """The nightly reset's false 200 for contracts that exist, for `seconds`."""
        self._spurious_200_until = time.monotonic() + seconds

    def refusal(self, lookup: Lookup, listing: Listing | None) -> tuple[int, str] | None:
        """The error a request about `listing`'s data is answered with instead, if any: 10197 in
        a competing live session, 200 in a false-200 window, 354 / 162 without permission."""
        now = time.monotonic()
        if lookup is not Lookup.CONTRACT_DETAILS and now < self._competing_until:
            return texts.COMPETING_SESSION
        if now < self._spurious_200_until:
            return texts.NO_SECURITY
        if listing is not None and listing.symbol in self.config.no_permission:
            if lookup is Lookup.HEAD_TIMESTAMP:
                return texts.NOT_SUBSCRIBED
            if lookup is Lookup.HISTORICAL:
                return texts.no_permissions(
                    listing.primary_exchange or listing.exchange, listing.sec_type
                )
        return None

    def no_data_glitch(self) -> bool:
        """Whether this answer with bars says "no data" instead (`Faults.no_data_rate`)."""
        rate = self.config.faults.no_data_rate
        if rate <= 0 or self._no_data.random() >= rate:
            return False
        self.count(Event.NO_DATA_GLITCHES)
        return True

    # --- historical requests ------------------------------------------------------------------

    def historical_arrived(self) -> Fault | None:
        """Count an arriving historical request and set off the armed fault it triggers: an
        outage the gateway starts itself; a drop or a stall is the connection's to carry out."""
        self.count(Event.HISTORICAL_REQUESTS)
        self._historical_arrived += 1
        if self._life_faults():
            return Fault.DROP  # the gateway went down: this connection with every other one
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
            self._spawn(self._restore_after(f.outage_s))
            return None
        if not self._farm_ok:
            self.count(Event.ARRIVED_IN_FARM_OUTAGE)
            return Fault.STALL
        if f.stall_requests > 0:
            f.stall_requests -= 1
            return Fault.STALL
        return None

    def _life_faults(self) -> bool:
        """Set off the gateway-life faults due at this request (counted from the start); True
        when the gateway went down with it."""
        f, n = self.config.faults, self.stats.counts[Event.HISTORICAL_REQUESTS.value]

        def due(after: int | None) -> bool:
            return after is not None and n > after

        if due(f.farm_outage_after_requests):
            f.farm_outage_after_requests = None
            self.farm_broken()
            self._spawn(self._farm_back_after(f.farm_outage_s))
        if due(f.competing_after_requests):
            f.competing_after_requests = None
            self.competing_session(f.competing_s)
        if due(f.spurious_200_after_requests):
            f.spurious_200_after_requests = None
            self.spurious_200(f.spurious_200_s)
        if due(f.restart_after_requests):
            f.restart_after_requests = None
            self.restart(f.restart_down_s)
            return True
        if due(f.log_off_after_requests):
            f.log_off_after_requests = None
            self.log_off()
            return True
        return False

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
