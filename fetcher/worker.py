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
from concurrent.futures import Future

from .exceptions import ClientIdInUse, GatewayUnavailable
from .ibkr.connect import gateway_from_settings
from .ibkr.gateway import Gateway

log = logging.getLogger("ibdata.worker")

RECONNECT_MAX_S = 60.0


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

    async def connected_gateway(self, timeout: float = 60.0) -> Gateway:
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
        while not self._stopping:
            if self.gateway.is_connected():
                await asyncio.sleep(0.2)
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
                await asyncio.sleep(delay)
                continue
            attempt = 0
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
        await self.connected_gateway(timeout=300.0)

    def stop(self) -> None:
        self._stopping = True

        async def close():
            if self.gateway is not None:
                self.gateway.disconnect()

        try:
            self.run(close(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


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
    from .queues import Queue
    from .tasks import fetch_runs_resume

    queues = {q.name for q in consumer.task_consumer.queues} if consumer is not None else set()
    if Queue.IBKR not in queues:
        return
    loop = gateway_loop()
    try:
        loop.run(loop.connected_gateway(timeout=30.0))
    except ClientIdInUse as exc:
        log.critical("ibkr worker stopping: %s", exc)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    except GatewayUnavailable as exc:
        log.warning("ibkr worker started without a gateway connection (%s); still trying", exc)
    resumed = fetch_runs_resume(stale_after_s=None)
    if resumed:
        log.warning("resuming fetch runs left running by a previous worker: %s", resumed)
