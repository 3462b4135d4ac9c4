"""The `ibkr` worker's one persistent gateway connection, on its own event-loop thread.

A worker on the ibkr queue (concurrency 1) connects once at start-up and keeps the
connection for its lifetime: reconnecting with backoff when it is lost, never a new
connection per task. Every ib_insync call runs on the connection's loop thread; tasks hand
it coroutines and wait for their result.

A worker never pretends: while it is not connected (the gateway down or logged off, its
client id taken by another client) it takes no run from the ibkr queue, keeps trying with
backoff, and tells the admins once when that has lasted IBKR_ALERT_AFTER_S (an incident,
closed when it is connected again).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import threading
import time
from concurrent.futures import Future

from django.conf import settings
from django.db import DatabaseError, connections

from fetcher.domain.gateways import RUNS_QUEUE, GatewaySpec, gateway_for_queues
from fetcher.domain.sessions import session_tables_preload
from fetcher.exceptions import (
    ClientIdInUse,
    CompetingSession,
    ConnectionRefused,
    GatewayError,
    GatewayUnavailable,
    RunHandedBack,
)
from fetcher.ibkr.connect import gateway_from_settings
from fetcher.ibkr.gateway import Gateway
from fetcher.ibkr.specs import gateway_specs, gateways_shared
from fetcher.models import FetchRun, IncidentKind
from fetcher.pacing.factory import pacer_for
from fetcher.services.alerts import incident_close, incident_open
from fetcher.services.recovery import fetch_runs_recover
from fetcher.services.sharing import gateway_state_set
from fetcher.timings import (
    ALERT_RETRY_S,
    CONNECTION_CHECK_S,
    CONSUMER_SYNC_S,
    HEARTBEAT_S,
    RECONNECT_MAX_S,
    RUN_RECONNECT_WAIT_S,
    WORKER_CONNECT_WAIT_S,
)

from .executor import RunExecutor, fetch_run_settle
from .outages import one_line
from .sharing import ChunkShare

log = logging.getLogger("ibdata.worker")

# Refusing its port is also how IB Gateway looks when it is logged off: restarted and waiting
# for its weekly login with two-factor authentication (Sundays around 01:00 New York time).
LOGGED_OFF_HINT = (
    "A gateway that refuses its port may also be logged off: IB Gateway restarts daily and "
    "every week (Sundays around 01:00 New York time) waits for a login with two-factor "
    "authentication; log it in (or check IBC)."
)


class UnreachableWatch:
    """When to open and close the `gateway_unreachable` incident of one connection.

    Open it once the gateway has been unreachable for `after_s` (and again after
    ALERT_RETRY_S while the database or the mail server would not take it); close it at the
    first connection after that, or at the first connection at all (a previous process may
    have left it open). `clock` is injectable: tests need no sleeping."""

    def __init__(self, *, after_s: float, clock=time.monotonic):
        self.after_s, self.clock = after_s, clock
        self.down_since: float | None = None
        self.told = False  # the admins know (the incident is open and mailed)
        self.maybe_open = True  # an incident may be open: close it once connected
        self.next_try = 0.0

    def down(self) -> bool:
        """The gateway could not be reached just now: True when the incident is to be opened."""
        now = self.clock()
        if self.down_since is None:
            self.down_since = now
        return not self.told and now - self.down_since >= self.after_s and now >= self.next_try

    def down_for(self) -> float:
        return 0.0 if self.down_since is None else self.clock() - self.down_since

    def up(self) -> bool:
        """Connected: True when the incident is to be closed."""
        self.down_since = None
        return self.maybe_open and self.clock() >= self.next_try

    def opened(self, told: bool) -> None:
        self.maybe_open = True
        self.told = told
        if not told:
            self.next_try = self.clock() + ALERT_RETRY_S

    def closed(self, done: bool) -> None:
        if done:
            self.told, self.maybe_open, self.next_try = False, False, 0.0
        else:
            self.next_try = self.clock() + ALERT_RETRY_S


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not record an incident: %s", one_line(task.exception()))


def _in_thread(fn, **kwargs):
    """A database call made from the loop: on a thread, with its own connection closed after."""

    def call():
        try:
            return fn(**kwargs)
        finally:
            connections.close_all()

    return asyncio.to_thread(call)


class GatewayLoop:
    """One Gateway and the loop thread that owns it; with several gateways, its share of the
    running runs' chunks (ChunkShare). Its heartbeat tells the gateway's health (GatewayState)."""

    def __init__(self, spec: GatewaySpec | None = None) -> None:
        self.spec = spec or gateway_specs()[0]
        self.loop = asyncio.new_event_loop()
        self.gateway: Gateway | None = None
        self.share: ChunkShare | None = None
        self.last_error: GatewayError | None = None  # why the last connection attempt failed
        self._thread = threading.Thread(target=self._run, name="ibkr-gateway", daemon=True)
        self._ready = threading.Event()
        self._connected = None  # asyncio.Event on the loop
        self._attempted = threading.Event()  # a first connection attempt has ended
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
        self.submit(self._beat())

    def share_start(self) -> None:
        """Serve this gateway's share of every running run's chunks (several gateways)."""

        async def share() -> None:
            while self.gateway is None:
                await asyncio.sleep(CONNECTION_CHECK_S)
            self.share = ChunkShare(
                name=self.spec.name,
                gateway=self.gateway,
                pacer=pacer_for(self.gateway.key),
                reconnect=self.wait_connected,
                connected=self.is_connected,
            )
            await self.share.run()

        self.submit(share())

    async def _beat(self) -> None:
        """Every HEARTBEAT_S: the gateway's health recorded, this gateway's claims renewed; with
        several gateways, every FETCH_RECOVER_EVERY_S the runs whose leading worker died resumed."""
        worker = f"{socket.gethostname()}:{os.getpid()}"
        last_recover = time.monotonic()
        while not self._stopping:
            gateway, info = self.gateway, self.gateway and self.gateway.info
            try:
                await _in_thread(
                    gateway_state_set,
                    name=self.spec.name,
                    host=gateway.host if gateway else self.spec.host,
                    port=gateway.port if gateway else self.spec.port,
                    client_id=self.spec.client_id,
                    worker=worker,
                    connected=self.is_connected(),
                    simulated=bool(info and info.simulated),
                    server_version=info.server_version if info else None,
                    last_error="" if self.is_connected() else str(self.last_error or ""),
                )
                if self.share is not None:
                    await self.share.renew()
                every = settings.FETCH_RECOVER_EVERY_S
                if self.share is not None and time.monotonic() - last_recover >= every:
                    last_recover = time.monotonic()
                    resumed = await _in_thread(
                        fetch_runs_recover, stale_after_s=settings.FETCH_STALE_AFTER_S
                    )
                    if resumed:
                        log.warning("resuming fetch runs whose worker died: %s", resumed)
            except DatabaseError as exc:
                log.warning("could not record the gateway's health: %s", one_line(exc))
            await asyncio.sleep(HEARTBEAT_S)

    def submit(self, coro) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro, timeout: float | None = None):
        """Run a coroutine on the gateway loop and wait for its result (from a task thread)."""
        return self.submit(coro).result(timeout)

    def is_connected(self) -> bool:
        """Connected now, as the supervisor last saw it (from any thread)."""
        return bool(
            self._connected is not None
            and self._connected.is_set()
            and self.gateway is not None
            and self.gateway.is_connected()
        )

    def first_attempt_wait(self, timeout: float) -> None:
        """Wait (from another thread) until the first connection attempt has ended."""
        self._attempted.wait(timeout)

    async def connected_gateway(self, timeout: float) -> Gateway:
        """The gateway once connected, within `timeout` seconds; GatewayUnavailable otherwise
        (saying why the last attempt failed)."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            reason = f": {self.last_error}" if self.last_error else ""
            raise GatewayUnavailable(
                504, f"no gateway connection within {timeout:g}s{reason}"
            ) from None
        return self.gateway

    async def _supervise(self) -> None:
        """Connect, and reconnect with exponential backoff and jitter whenever the link drops
        or cannot be made: the gateway down, or another client holding this client id (it may
        let go of it). The same Gateway object is reconnected, so runs holding it carry on
        once it is back."""
        self.gateway = gateway_from_settings(spec=self.spec)
        key = f"{self.gateway.key} (client id {self.gateway.client_id})"
        self.gateway.holds.listener = self._on_trouble
        watch = UnreachableWatch(after_s=settings.IBKR_ALERT_AFTER_S)
        attempt, refused = 0, False
        while not self._stopping:
            if self.gateway.is_connected():
                if watch.up():
                    await self._incident_close(watch, key)
                await asyncio.sleep(CONNECTION_CHECK_S)
                continue
            self._connected.clear()
            self.gateway.disconnect()
            try:
                info = await self.gateway.connect()
            except GatewayError as exc:  # down, logged off, 326: each may pass; keep trying
                delay = min(RECONNECT_MAX_S, 0.5 * 2**attempt) * (0.5 + random.random())
                attempt += 1
                self._connect_failed(exc, delay)
                if isinstance(exc, ConnectionRefused) and not refused:
                    log.warning(
                        "gateway %s refuses connections: not running, restarting, or logged off "
                        "(an IB Gateway waiting for its login with 2FA keeps its API port "
                        "closed); reconnecting",
                        self.gateway.key,
                    )
                refused = isinstance(exc, ConnectionRefused)
                self._attempted.set()
                if watch.down():
                    await self._incident_open(watch, key, exc)
                await asyncio.sleep(delay)
                continue
            attempt, self.last_error, refused = 0, None, False
            log.warning(
                "connected to gateway %s:%s (server version %s, client id %s): taking runs",
                info.host,
                info.port,
                info.server_version,
                info.client_id,
            )
            self._connected.set()
            self._attempted.set()

    def _connect_failed(self, exc: GatewayError, delay: float) -> None:
        """Log a failed attempt: in full when the reason changes, briefly when it repeats."""
        repeated = self.last_error is not None and str(self.last_error) == str(exc)
        self.last_error = exc
        if repeated:
            log.info("still cannot connect; trying again in %.1fs", delay)
        elif isinstance(exc, ClientIdInUse):
            log.error(
                "ibkr worker cannot connect: %s; taking no runs, trying again in %.1fs", exc, delay
            )
        else:
            log.warning(
                "gateway unavailable (%s); taking no runs, reconnecting in %.1fs", exc, delay
            )

    async def _incident_open(self, watch: UnreachableWatch, key: str, exc: GatewayError) -> None:
        minutes = watch.down_for() / 60
        hint = "" if isinstance(exc, ClientIdInUse) else f"\n\n{LOGGED_OFF_HINT}"
        message = (
            f"The ibkr worker has not been able to connect to its gateway at {key} for "
            f"{minutes:.0f} minutes: {exc}. It takes no runs meanwhile (they wait in the "
            f"queue) and keeps trying.{hint}"
        )
        try:
            incident = await _in_thread(
                incident_open, kind=IncidentKind.GATEWAY_UNREACHABLE, key=key, message=message
            )
        except DatabaseError as exc:
            log.warning("could not record the gateway_unreachable incident: %s", exc)
            watch.opened(told=False)
        else:
            watch.opened(told=incident.notified_at is not None)

    async def _incident_close(self, watch: UnreachableWatch, key: str) -> None:
        message = f"The ibkr worker is connected to its gateway at {key} again, taking runs."
        try:
            await _in_thread(
                incident_close, kind=IncidentKind.GATEWAY_UNREACHABLE, key=key, message=message
            )
        except DatabaseError as exc:
            log.warning("could not close the gateway_unreachable incident: %s", exc)
            watch.closed(done=False)
        else:
            watch.closed(done=True)

    def _on_trouble(self, error: GatewayError, over: bool) -> None:
        """A competing session (10197) is an incident while it lasts: the admins are told once
        when it begins and once when requests are answered again."""
        if not isinstance(error, CompetingSession):
            return
        key = self.gateway.key
        if over:
            message = f"The gateway at {key} serves historical data again: {error.message} is over."
        else:
            message = (
                f"The gateway at {key} answers {error.message} (IBKR error {error.code}): another "
                "login of this IBKR user (TWS, the mobile app, the web portal) holds the market "
                "data session. Every request waits and is asked again after a back-off; log the "
                "other session out, or give the API a user of its own."
            )
        call = incident_close if over else incident_open
        task = self.loop.create_task(
            _in_thread(call, kind=IncidentKind.COMPETING_SESSION, key=key, message=message)
        )
        task.add_done_callback(_log_failure)

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


_instance: GatewayLoop | None = None
_spec: GatewaySpec | None = None  # the gateway this worker serves (by its ibkr.<name> queue)
_lock = threading.Lock()
# The ibkr worker's Celery consumer (set when the worker is ready): the ibkr queue is consumed
# only while the connection is up. Used on the worker's main thread only.
_consumer = None


def gateway_loop() -> GatewayLoop:
    """This process's persistent connection (started on first use)."""
    global _instance
    with _lock:
        if _instance is None:
            _instance = GatewayLoop(_spec)
            _instance.start()
        return _instance


def gateway_loop_stop() -> None:
    global _instance
    with _lock:
        if _instance is not None:
            _instance.stop()
            _instance = None


def ibkr_consumer_sync() -> None:
    """Consume the ibkr queue (and this gateway's ibkr.<name>) while connected, and not while
    not: a worker without a connection takes no run it cannot serve. On the worker's main
    thread (its event loop's timer, or a task: the ibkr worker's pool is solo), as Celery's
    consumer wants."""
    consumer = _consumer
    if consumer is None or consumer.task_consumer is None or _instance is None:
        return
    connected = _instance.is_connected()
    for queue in dict.fromkeys((RUNS_QUEUE, _instance.spec.queue)):
        consuming = consumer.task_consumer.consuming_from(queue)
        if connected and not consuming:
            consumer.add_task_queue(queue)
            log.warning("connected: taking runs from the %s queue again", queue)
        elif consuming and not connected:
            consumer.cancel_task_queue(queue)
            log.warning("not connected to the gateway: taking no runs until it is")


def ibkr_worker_start(consumer) -> None:
    """At worker start-up (its main thread): connect, if this worker serves a gateway (the
    ibkr queue, or with several gateways its ibkr.<name>), consume the ibkr queues only while
    connected, and resume the runs whose worker died. With several gateways, serve this
    gateway's share of the running runs' chunks.

    Only runs whose heartbeat is stale are resumed (under their row lock): a run another live
    worker is executing is never touched, however many workers start."""
    global _consumer, _spec
    queues = {q.name for q in consumer.task_consumer.queues} if consumer is not None else set()
    _spec = gateway_for_queues(gateway_specs(), queues)
    if _spec is None:
        if RUNS_QUEUE in queues:
            names = ", ".join(f"{g.queue}" for g in gateway_specs())
            log.error("an ibkr worker serves one gateway: start it with -Q one of %s", names)
        return
    session_tables_preload()
    loop = gateway_loop()
    if gateways_shared():
        loop.share_start()
    loop.first_attempt_wait(WORKER_CONNECT_WAIT_S)
    if not loop.is_connected():
        reason = loop.last_error or f"no answer within {WORKER_CONNECT_WAIT_S:g}s"
        log.warning("ibkr worker started without a gateway connection (%s); still trying", reason)
    _consumer = consumer
    ibkr_consumer_sync()
    consumer.timer.call_repeatedly(CONSUMER_SYNC_S, ibkr_consumer_sync)
    resumed = fetch_runs_recover(stale_after_s=settings.FETCH_STALE_AFTER_S)
    if resumed:
        log.warning("resuming fetch runs whose worker died: %s", resumed)


def fetch_run_execute_on_worker(*, run_id: int, progress=None) -> FetchRun:
    """Run a fetch to completion on this ibkr worker's persistent connection. Not connected
    (the queue is consumed only while connected, but the link may have just dropped): the run
    is handed back to the queue untouched (RunHandedBack), and the queue left alone until the
    connection is back."""
    loop = gateway_loop()
    if not loop.is_connected():
        ibkr_consumer_sync()
        reason = f": {loop.last_error}" if loop.last_error else ""
        raise RunHandedBack(f"run {run_id} handed back: no gateway connection{reason}")

    async def on_worker_connection() -> FetchRun:
        gateway = await loop.connected_gateway(timeout=RUN_RECONNECT_WAIT_S)
        executor = RunExecutor(
            run_id,
            gateway,
            pacer_for(gateway.key),
            progress,
            reconnect=loop.wait_connected,
            gateway_name=loop.spec.name,
            shared=gateways_shared(),
        )
        return await executor.execute()

    return fetch_run_settle(run_id=run_id, run=lambda: loop.run(on_worker_connection()))
