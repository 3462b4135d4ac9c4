"""The `ibkr` worker's one persistent gateway connection, on its own event-loop thread.

A worker on the ibkr queue (concurrency 1) connects once at start-up and keeps the
connection for its lifetime: reconnecting with backoff when it is lost, never a new
connection per task. Every ib_insync call runs on the connection's loop thread; tasks hand
it coroutines and wait for their result.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import threading
import time
from concurrent.futures import Future

from fetcher.domain.sessions import session_tables_preload
from fetcher.exceptions import ClientIdInUse, ConnectionRefused, GatewayUnavailable
from fetcher.ibkr.connect import gateway_from_settings
from fetcher.ibkr.gateway import Gateway
from fetcher.models import FetchRun
from fetcher.pacing.factory import pacer_for
from fetcher.queues import Queue
from fetcher.services.recovery import fetch_runs_recover
from fetcher.timings import (
    CONNECTION_CHECK_S,
    LOGGED_OFF_WARN_S,
    RECONNECT_MAX_S,
    RUN_CONNECT_WAIT_S,
    RUN_RECONNECT_WAIT_S,
    WORKER_CONNECT_WAIT_S,
)

from .executor import RunExecutor, fetch_run_settle

log = logging.getLogger("ibdata.worker")


class GatewayLoop:
    """One Gateway and the loop thread that owns it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.gateway: Gateway | None = None
        self.fatal: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ibkr-gateway", daemon=True)
        self._ready = threading.Event()
        self._connected = None  # asyncio.Event on the loop
        self._stopping = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._connected = asyncio.Event()
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        self.submit(self._supervise())

    def submit(self, coro) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro, timeout: float | None = None):
        """Run a coroutine on the gateway loop and wait for its result (from a task thread)."""
        return self.submit(coro).result(timeout)

    async def connected_gateway(self, timeout: float = RUN_CONNECT_WAIT_S) -> Gateway:
        """The gateway once connected; raises the fatal error (326) or GatewayUnavailable."""
        if self.fatal:
            raise self.fatal
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            raise GatewayUnavailable(504, f"no gateway connection within {timeout:g}s") from None
        if self.fatal:
            raise self.fatal
        return self.gateway

    async def _supervise(self) -> None:
        """Connect, and reconnect with exponential backoff and jitter whenever the link drops.

        The same Gateway object is reconnected, so runs holding it carry on once it is back.
        """
        self.gateway = gateway_from_settings()
        attempt = 0
        refusals = Refusals(self.gateway.key)
        while not self._stopping:
            if self.gateway.is_connected():
                await asyncio.sleep(CONNECTION_CHECK_S)
                continue
            self._connected.clear()
            self.gateway.disconnect()
            try:
                info = await self.gateway.connect()
            except ClientIdInUse as exc:
                self.fatal = exc
                self._connected.set()  # wake waiters so they see the fatal error
                log.critical("ibkr worker cannot connect: %s. Not retrying.", exc)
                return
            except GatewayUnavailable as exc:
                delay = min(RECONNECT_MAX_S, 0.5 * 2**attempt) * (0.5 + random.random())
                attempt += 1
                log.warning("gateway unavailable (%s); reconnecting in %.1fs", exc, delay)
                refusals.seen(isinstance(exc, ConnectionRefused))
                await asyncio.sleep(delay)
                continue
            attempt = 0
            refusals.seen(False)
            log.warning(
                "connected to gateway %s:%s (server version %s, client id %s)",
                info.host,
                info.port,
                info.server_version,
                info.client_id,
            )
            self._connected.set()

    async def wait_connected(self) -> None:
        """For runs on this connection: wait until the supervisor has it up again."""
        await self.connected_gateway(timeout=RUN_RECONNECT_WAIT_S)

    def stop(self) -> None:
        self._stopping = True

        async def close():
            if self.gateway is not None:
                self.gateway.disconnect()

        try:
            self.run(close(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


class Refusals:
    """Tells, once each, that the gateway's port refuses connections (it is not running,
    restarting, or logged off), and that it has done so for LOGGED_OFF_WARN_S: then the gateway
    is most likely logged off, waiting for its weekly login with 2FA."""

    def __init__(self, key: str, clock=time.monotonic):
        self.key, self.clock = key, clock
        self._since: float | None = None
        self._told_logged_off = False

    def seen(self, refused: bool) -> None:
        """After each connection attempt: whether the port refused it."""
        if not refused:
            self._since, self._told_logged_off = None, False
            return
        now = self.clock()
        if self._since is None:
            self._since = now
            log.warning(
                "gateway %s refuses connections: not running, restarting, or logged off (an "
                "IB Gateway waiting for its login with 2FA keeps its API port closed); "
                "reconnecting",
                self.key,
            )
        elif now - self._since >= LOGGED_OFF_WARN_S and not self._told_logged_off:
            self._told_logged_off = True
            log.warning(
                "gateway %s has refused connections for %.0f s: logged off, waiting for its "
                "weekly login with 2FA? Log it in (runs wait for it)",
                self.key,
                now - self._since,
            )


_instance: GatewayLoop | None = None
_lock = threading.Lock()


def gateway_loop() -> GatewayLoop:
    """This process's persistent connection (started on first use)."""
    global _instance
    with _lock:
        if _instance is None:
            _instance = GatewayLoop()
            _instance.start()
        return _instance


def gateway_loop_stop() -> None:
    global _instance
    with _lock:
        if _instance is not None:
            _instance.stop()
            _instance = None


def ibkr_worker_start(consumer) -> None:
    """At worker start-up: connect (if this worker serves the ibkr queue) and resume orphans.

    A client-id clash (326) is fatal: logged once, and the worker shuts down instead of
    retrying a connection that cannot succeed.
    """
    queues = {q.name for q in consumer.task_consumer.queues} if consumer is not None else set()
    if Queue.IBKR not in queues:
        return
    session_tables_preload()
    loop = gateway_loop()
    try:
        loop.run(loop.connected_gateway(timeout=WORKER_CONNECT_WAIT_S))
    except ClientIdInUse as exc:
        log.critical("ibkr worker stopping: %s", exc)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    except GatewayUnavailable as exc:
        log.warning("ibkr worker started without a gateway connection (%s); still trying", exc)
    resumed = fetch_runs_recover(stale_after_s=None)
    if resumed:
        log.warning("resuming fetch runs left running by a previous worker: %s", resumed)


def fetch_run_execute_on_worker(*, run_id: int, progress=None) -> FetchRun:
    """Run a fetch to completion on this ibkr worker's persistent connection."""
    loop = gateway_loop()

    async def on_worker_connection() -> FetchRun:
        gateway = await loop.connected_gateway()
        executor = RunExecutor(
            run_id, gateway, pacer_for(gateway.key), progress, reconnect=loop.wait_connected
        )
        return await executor.execute()

    return fetch_run_settle(run_id=run_id, run=lambda: loop.run(on_worker_connection()))
