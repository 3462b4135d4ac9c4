"""The simulated gateway's listening socket and its life cycle, in the current loop or a thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from .gateway import Faults, Gateway, SimConfig, SimStats
from .market import Market
from .session import Session
from .wire import ProtocolError

# The simulator's public face: what the project and its tests import from here.
__all__ = ["Faults", "GatewaySimulator", "SimConfig", "SimStats"]

log = logging.getLogger("ibdata.sim")


class GatewaySimulator:
    """An IB Gateway look-alike the unmodified ib_insync client can connect to.

    Run it in the current event loop (`await start()`) or in a background thread
    (`start_in_thread()`, for tests and the demo); `python -m ibsim` runs it in the foreground.
    Each connection is a Session on the one Gateway, whose state they share.
    """

    def __init__(self, config: SimConfig | None = None, market: Market | None = None):
        self.config = config or SimConfig()
        self.market = market or Market(seed=self.config.seed)
        self.gateway = Gateway(self.config, self.market)
        self.stats = self.gateway.stats
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.port = self.config.port

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.market.warm_up()  # a real gateway answers its first request without a pause
        await self.open_port()
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("gateway simulator listening on %s:%s", self.config.host, self.port)
        self.gateway.listen_with(self)  # a gateway that starts logged off closes it again

    async def stop(self) -> None:
        self._stopped = True
        self.gateway.stop()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.gateway.drop_all()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    # --- the port, as the gateway's life opens and closes it (gateway.Listener) -------------

    async def open_port(self) -> None:
        """Listen (again) on the simulator's port: the same one after a restart or a log-in."""
        if self._server is None and not self._stopped:
            self._server = await asyncio.start_server(
                self._on_connect, self.config.host, self.port, limit=2**20
            )

    def close_port(self) -> None:
        """Stop listening: connection attempts are refused until the port opens again."""
        if self._server is not None:
            self._server.close()
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

    # --- faults the tests trigger (on the simulator's loop: `sim.call(sim.drop_all)`) ----

    def connectivity_lost(self) -> None:
        """Send 1100 to every client and hold historical answers until restored."""
        self.gateway.connectivity_lost()

    def connectivity_restored(self, data_lost: bool = False) -> None:
        """Send 1102, or 1101 with `data_lost` (requests in flight are dropped unanswered)."""
        self.gateway.connectivity_restored(data_lost)

    def drop_all(self) -> None:
        """Close every client connection."""
        self.gateway.drop_all()

    def log_in(self) -> None:
        """Log the gateway in (after a log-off, or when it started logged off): the port opens."""
        self.gateway.log_in()

    def spurious_200(self, seconds: float) -> None:
        """Contracts that exist answered 200 for `seconds` (the nightly reset's false 200)."""
        self.gateway.spurious_200(seconds)

    def farm_broken(self) -> None:
        """2105 to every client; historical requests stall until `farm_restored`."""
        self.gateway.farm_broken()

    def farm_restored(self) -> None:
        """2106 to every client."""
        self.gateway.farm_restored()

    # --- connections ------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        session = Session(self.gateway, reader, writer)
        self.gateway.attach(session)
        try:
            await session.run()
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError) as exc:
            log.debug("client gone: %r", exc)
        finally:
            self.gateway.detach(session)
            session.close()
