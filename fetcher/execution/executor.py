"""Execute a fetch run: qualify, choose ranges, plan, then request chunks concurrently and store them.

Runs on one asyncio loop with one gateway connection; database work goes through
sync_to_async so the connection keeps serving answers while bars are written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import astuple, dataclass

import numpy as np
from asgiref.sync import sync_to_async
from django.db import connections
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from fetcher import selectors
from fetcher.domain.bars import BarBatch
from fetcher.domain.gateways import DEFAULT_NAME
from fetcher.domain.planning import fetch_plan
from fetcher.domain.ranges import complete_until
from fetcher.domain.time import zone_info
from fetcher.domain.timeframes import BY_CODE, WhatToShow
from fetcher.exceptions import (
    FalseUnknownContract,
    FetchCancelled,
    GatewayError,
    GatewayTrouble,
    GatewayUnavailable,
    HeldTooLong,
    IbdataError,
    NoData,
    NoPermission,
    PacingViolation,
    UnknownContract,
)
from fetcher.ibkr.connect import gateway_from_settings
from fetcher.ibkr.gateway import Gateway
from fetcher.ibkr.types import BarRequest, QualifiedInstrument
from fetcher.models import ChunkStatus, FetchChunk, FetchRun, FetchRunItem, RunStatus
from fetcher.pacing.factory import pacer_for
from fetcher.pacing.local import LocalPacer
from fetcher.pacing.rules import CONNECT_MESSAGES, MESSAGE, RequestKey, request_key
from fetcher.services import chunks, fetch_runs, instruments, items
from fetcher.services.provenance import gateway_kind, source_mismatch
from fetcher.storage.catalog import default_root
from fetcher.timings import HEARTBEAT_S, ITEM_POLL_S

from .history import refetch_on_history_change
from .outages import database_patient, db, one_line

log = logging.getLogger("ibdata.fetch")


MAX_ATTEMPTS = 6
STORE_BATCH_BARS = 100_000  # most bars written in one transaction
PACING_PENALTY_S = 60.0  # gateway seconds every small request waits after a violation
# A gateway serving its share of a run's chunks (serve_chunk) gets answers one lane at a time:
# its writer waits this long for more before a transaction, so one stores several.
STORE_LINGER_S = 0.05
# While the gateways serve a run's chunks, its progress (Flower) is read this many looks apart.
SHARED_PROGRESS_EVERY = 10


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, GatewayError) and exc.retryable


def _retrying(retry) -> AsyncRetrying:
    """Exponential backoff with jitter (0.5 s doubling to 60 s), MAX_ATTEMPTS tries."""
    return AsyncRetrying(
        retry=retry,
        wait=wait_exponential_jitter(multiplier=0.5, max=60.0),
        stop=stop_after_attempt(MAX_ATTEMPTS),
        reraise=True,
    )


@dataclass
class PreparedItem:
    item_id: int
    instrument_id: int
    qualified: QualifiedInstrument
    chunks: list[FetchChunk]


def _zone(qualified: QualifiedInstrument):
    return zone_info(qualified.time_zone)


class RunExecutor:
    """Carries one run through its chunks on an open gateway connection.

    With several gateways (`shared`), it plans the run's items and waits while every gateway's
    worker (this one's too) claims and serves their chunks (execution.sharing, `serve_chunk`)."""

    def __init__(
        self,
        run_id: int,
        gateway: Gateway,
        pacer: LocalPacer | None = None,
        progress=None,
        reconnect=None,
        *,
        gateway_name: str = DEFAULT_NAME,
        shared: bool = False,
    ):
        self.run_id = run_id
        self.gateway = gateway
        self.gateway_name, self.shared = gateway_name, shared
        self.pacer = pacer or LocalPacer()
        self.progress = progress  # optional callable(event dict), for in-process displays
        self.catalog_root = default_root()
        # how to get the connection back after it drops: reconnect it ourselves, or (on the
        # ibkr worker's persistent connection) wait for the worker to do it
        self.reconnect = reconnect or gateway.connect
        self._reconnecting = asyncio.Lock()
        self._results: asyncio.Queue = asyncio.Queue()
        self._counts = {"chunks_done": 0, "chunks_planned": 0, "bars": 0}
        self.cancelled = False
        self._tasks: list[asyncio.Future] = []
        self._clock_offset = 0.0  # the gateway's clock minus ours
        self.store_linger_s = 0.0  # how long the writer waits for more answers to store at once

    def now(self) -> float:
        """The gateway's present (asked once a run: a simulator's may be years ago, and a real
        gateway's clock is the one its bars are complete by)."""
        return time.time() + self._clock_offset

    async def execute(self) -> FetchRun:
        try:
            return await self._execute()
        finally:
            await db(connections.close_all)()  # the database thread's connection

    async def _clock_set(self) -> None:
        """Ask the gateway its time once (its present is the one bars are complete by)."""
        asked = time.time()
        try:
            present = await self._with_reconnect(self.gateway.current_time, held=False)
            self._clock_offset = present - (asked + time.time()) / 2
        except GatewayUnavailable:
            raise
        except GatewayError as exc:  # a gateway that does not tell its time: ours, then
            log.warning("the gateway did not tell its time (%s): planning by this host's", exc)

    async def _execute(self) -> FetchRun:
        info = self.gateway.info or await self.gateway.connect()
        await self._clock_set()
        # Connecting sent a handful of messages of its own within the last second: count them,
        # so the first burst of requests stays under the gateway's 50 messages a second.
        for _ in range(CONNECT_MESSAGES):
            await self.pacer.acquire(MESSAGE)
            await self.pacer.release()
        run = await db(fetch_runs.fetch_run_start)(
            run_id=self.run_id, info=info, catalog_root=self.catalog_root
        )
        if run.status in (RunStatus.SUCCEEDED, RunStatus.CANCELLED):
            return run
        self.run = run
        self.tf = BY_CODE[run.timeframe]
        self.what = WhatToShow(run.what_to_show)
        todo = await db(selectors.fetch_run_items_todo)(run_id=self.run_id)
        # Every task of the run lives in these task groups: an error in one cancels the others
        # and none outlives the run (on the ibkr worker's persistent loop, the next run follows).
        try:
            async with asyncio.TaskGroup() as run_tasks:
                watcher = run_tasks.create_task(self._watch())
                writer = run_tasks.create_task(self._writer())
                try:
                    # every instrument at once: the pacer, not the order of items, decides
                    async with asyncio.TaskGroup() as item_tasks:
                        self._tasks = [item_tasks.create_task(self._run_item(i)) for i in todo]
                finally:
                    watcher.cancel()
                    writer.cancel()
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        if self.cancelled:
            return await db(selectors.fetch_run_get)(run_id=self.run_id)
        return await db(fetch_runs.fetch_run_finish)(run_id=self.run_id)

    async def _run_item(self, item: FetchRunItem) -> None:
        try:
            plan = await self._prepare(item)
        except GatewayUnavailable:
            raise
        except IbdataError as exc:
            await db(items.item_fail)(
                item_id=item.pk,
                message=str(getattr(exc, "message", exc)),
                code=getattr(exc, "code", None),
            )
            self._emit(event="failed", instrument=item.spec)
            return
        if self.shared:  # every gateway's worker serves them (execution.sharing)
            await self._follow_shared(item)
            return
        refused = None
        try:
            async with asyncio.TaskGroup() as chunk_tasks:
                for chunk in plan.chunks:
                    if chunk.status not in (ChunkStatus.DONE, ChunkStatus.EMPTY):
                        chunk_tasks.create_task(self._fetch_chunk(plan, chunk))
        except* NoPermission as group:  # the whole instrument fails at once: nothing to retry
            refused = group.exceptions[0]
        if refused is not None:
            await db(items.item_fail)(item_id=item.pk, message=refused.message, code=refused.code)
            self._emit(event="failed", instrument=item.spec)
            return
        # the series counted, and one catalog merge per partition for what the item stored, read
        # back from the database
        await self._store_finish(item.pk)

    async def _follow_shared(self, item: FetchRunItem) -> None:
        """Wait while the gateways serve the item's chunks. Once none is left to claim (the
        last round is in flight), what they stored so far goes to the catalog while the last
        answers come, so that after them only those are exported."""
        looked = 0
        async with asyncio.TaskGroup() as early:
            exporting = False
            while True:
                pending, unclaimed = await db(selectors.item_chunks_pending)(item_id=item.pk)
                if not pending:
                    break
                if not unclaimed and not exporting:
                    early.create_task(self._store_finish(item.pk))
                    exporting = True
                await asyncio.sleep(ITEM_POLL_S)
                looked += 1
                if self.progress is not None and looked % SHARED_PROGRESS_EVERY == 0:
                    await self._emit_shared()
        await self._store_finish(item.pk)

    async def _store_finish(self, item_id: int) -> None:
        """The item's series counted, and what it stored and is not in the catalog exported,
        on a thread of its own (other items' bars keep being stored meanwhile)."""
        await sync_to_async(_item_store_finish, thread_sensitive=False)(
            item_id=item_id, catalog_root=self.catalog_root
        )

    async def _emit_shared(self) -> None:
        """The run's counts as the gateways serve it (their answers are not this executor's
        events): requests and bars so far, and the requests each gateway answered."""
        per_gateway = await db(selectors.fetch_run_requests_per_gateway)(run_id=self.run_id)
        self._counts["chunks_done"] = sum(n for n, _ in per_gateway.values())
        self._counts["bars"] = sum(bars for _, bars in per_gateway.values())
        self._emit(
            event="gateways", requests_per_gateway={k: n for k, (n, _) in per_gateway.items()}
        )

    def _emit(self, **event) -> None:
        """Tell the progress callback (the task's Flower state): what happened, and the run's
        counts so far, kept here so the callback needs no database access from the loop."""
        if event.get("event") == "planned":
            self._counts["chunks_planned"] += event["chunks"]
        elif event.get("event") == "chunk_done":
            self._counts["chunks_done"] += 1
            self._counts["bars"] += event["bars"]
        if self.progress is not None:
            self.progress({**event, "run_id": self.run_id, **self._counts})

    async def _watch(self) -> None:
        """Heartbeat the run, and stop it (cancelling requests on the gateway) when cancelled.
        The progress is told each heartbeat too, answers or not: a run waiting (for Redis, a
        gateway, its pacing) still shows as alive in Flower, with its counts."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            status = await db(fetch_runs.fetch_run_heartbeat)(run_id=self.run_id)
            self._emit(event="alive")
            if status == RunStatus.CANCELLED:
                self.cancelled = True
                for task in self._tasks:
                    task.cancel()
                return

    async def _prepare(self, item: FetchRunItem) -> PreparedItem:
        run, tf = self.run, self.tf
        spec = items.item_spec(item)
        qualified = await self._with_reconnect(lambda: self._qualify(spec))
        instrument = await db(instruments.instrument_save)(qualified=qualified)
        series = {
            "instrument_id": instrument.pk,
            "timeframe": tf.code,
            "what_to_show": self.what,
            "rth": run.use_rth,
        }
        covered = await db(selectors.coverage_windows)(**series)
        retry = await db(selectors.coverage_retry)(**series)
        # the head timestamp bounds every range: no request before the first data point
        head = await self._with_reconnect(
            lambda: self.gateway.head_timestamp(qualified, self.what.name, run.use_rth)
        )
        await db(instruments.instrument_head_set)(
            instrument_id=instrument.pk, what_to_show=self.what.name, head=head
        )

        def plan_for(covered: list[tuple[int, int]]):
            return fetch_plan(
                listing=qualified,
                timeframe=tf,
                use_rth=run.use_rth,
                start=run.start,
                end=run.end,
                since_head=run.since_head,
                head=head,
                covered=covered,
                now=self.now(),
                retry=retry,  # windows once answered "no data" though they traded: asked again
            )

        plan = plan_for(covered)
        # IBKR's history may have changed under the stored bars (a split): then every series of
        # the instrument is fetched again and swapped first, and what is left planned again
        if (
            plan.requests
            and covered
            and await refetch_on_history_change(
                self, item_id=item.pk, instrument=instrument, qualified=qualified, covered=covered
            )
        ):
            covered = await db(selectors.coverage_windows)(**series)
            retry = await db(selectors.coverage_retry)(**series)
            plan = plan_for(covered)
        chunks = await db(items.item_plan)(item_id=item.pk, instrument_id=instrument.pk, plan=plan)
        self._emit(event="planned", chunks=len(chunks), instrument=qualified.symbol)
        return PreparedItem(item.pk, instrument.pk, qualified, chunks)

    async def _qualify(self, spec):
        """The gateway's definition of `spec`. Its 200 is taken for the nightly reset's false 200
        (a trouble, asked again) while the gateway is in or just out of a reset."""
        try:
            return await self.gateway.qualify(spec)
        except UnknownContract as exc:
            if not self.gateway.recently_reset():
                raise
            raise FalseUnknownContract(
                exc.code, f"{exc.message}, for {spec.label} in the gateway's reset (a false 200)"
            ) from None

    async def _ensure_connected(self) -> None:
        """One reconnection at a time, however many requests noticed the drop."""
        if self.gateway.is_connected():
            return
        async with self._reconnecting:
            if not self.gateway.is_connected():
                await self.reconnect()

    async def gateway_call(self, call):
        """A gateway call (not a bar request) as the run makes them: paced, reconnecting."""
        return await self._with_reconnect(call)

    async def _with_reconnect(self, call, *, held: bool = True):
        """Run a gateway call (counted by the pacer like every message we send); after a lost
        connection reconnect with backoff and try again. `held`: it waits for what holds
        requests (what IBKR's servers answer); the gateway's own clock answers at once."""

        async def connected_call():
            await self._ensure_connected()
            return await call()

        async for attempt in _retrying(retry_if_exception_type(GatewayUnavailable)):
            with attempt:
                if held:
                    return await self._through_holds(connected_call, MESSAGE)
                await self.pacer.acquire(MESSAGE)
                try:
                    return await connected_call()
                finally:
                    await self.pacer.release()

    async def _through_holds(self, call, key: RequestKey, on_trouble=None):
        """`call()` once the gateway may be asked (its holds), counted by the pacer. A trouble
        of the whole session (a competing session, a false 200) is waited out and asked again,
        not counted as a failed attempt: `on_trouble(error)` records it; after HOLD_MAX_S of
        troubles the call fails with HeldTooLong."""
        holds = self.gateway.holds
        troubled_since = None
        while True:
            async with holds.passage() as ticket:
                await self.pacer.acquire(key)
                try:
                    if not ticket.still_free():
                        continue
                    result = await call()
                except NoData:
                    ticket.answered()
                    raise
                except GatewayTrouble as exc:
                    ticket.troubled(exc)
                    trouble = exc
                else:
                    ticket.answered()
                    return result
                finally:
                    await self.pacer.release()
            now = time.monotonic()
            if troubled_since is None:
                troubled_since = now
            if now - troubled_since >= holds.max_hold_s:
                raise HeldTooLong(
                    trouble.code, f"asked for {now - troubled_since:.0f} s: {trouble.message}"
                )
            if on_trouble is not None:
                await on_trouble(trouble)

    async def _fetch_chunk(self, plan: PreparedItem, chunk: FetchChunk) -> None:
        tf, run = self.tf, self.run
        q = plan.qualified
        request = BarRequest(
            end=chunk.request_end,
            duration=chunk.duration,
            bar_size=tf.bar_size,
            what_to_show=self.what.name,
            use_rth=run.use_rth,
        )
        key = _request_key(q, request, tf.small)
        lo, hi = int(chunk.window_start.timestamp()), int(chunk.window_end.timestamp())
        try:
            async for attempt in _retrying(retry_if_exception(_retryable)):
                with attempt:
                    batch = await self._request(chunk, q, request, key, attempt.retry_state)
        except NoPermission:
            raise  # its item fails at once (_run_item)
        except GatewayError:
            self._emit(event="chunk_failed", instrument=plan.qualified.symbol)
            return
        except FetchCancelled:
            return
        inside = (batch.ts >= lo) & (batch.ts < hi)
        batch = batch if bool(np.all(inside)) else batch.slice(inside)
        await self._store(chunk.pk, batch, complete_until(tf, self.now(), _zone(q)))
        self._emit(event="chunk_done", bars=len(batch), instrument=q.symbol)

    async def _store(self, chunk_id: int, batch: BarBatch, covered_until: int) -> None:
        """Hand an answer to the writer; return once it is committed."""
        done = asyncio.get_running_loop().create_future()
        await self._results.put((chunk_id, batch, covered_until, done))
        await done

    async def _writer(self) -> None:
        """Store answers as they come: whatever has piled up while the last write ran goes
        into the next one (one COPY, one transaction), up to STORE_BATCH_BARS bars."""
        while True:
            first = await self._results.get()
            if self.store_linger_s:  # answers come a few at a time: store several at once
                await asyncio.sleep(self.store_linger_s)
            pending, bars = [first], len(first[1])
            while bars < STORE_BATCH_BARS and not self._results.empty():
                pending.append(self._results.get_nowait())
                bars += len(pending[-1][1])
            try:
                await db(chunks.chunks_store)(
                    results=[p[:3] for p in pending], gateway=self.gateway_name
                )
            except Exception as exc:  # handed to every waiting request, which fails its chunk
                for *_, done in pending:
                    done.set_exception(exc)
            else:
                for *_, done in pending:
                    done.set_result(None)

    async def serve_start(self) -> None:
        """Get ready to serve chunks another gateway's executor planned (serve_chunk)."""
        self.run = await db(selectors.fetch_run_get)(run_id=self.run_id)
        info = self.gateway.info or await self.gateway.connect()
        if self.run.source and gateway_kind(info) != self.run.source:  # bars never mix
            raise source_mismatch(
                (self.run.source, self.run.account),
                (gateway_kind(info), info.account),
                f"run {self.run_id}",
            )
        self.tf, self.what = BY_CODE[self.run.timeframe], WhatToShow(self.run.what_to_show)
        self._qualified: dict[int, QualifiedInstrument] = {}
        self._qualifying = asyncio.Lock()
        await self._clock_set()
        self.store_linger_s = STORE_LINGER_S
        self._writer_task = asyncio.get_running_loop().create_task(self._writer())

    def serve_stop(self) -> None:
        self._writer_task.cancel()

    async def serve_chunk(self, chunk: FetchChunk) -> None:
        """Request and store one chunk this gateway claimed; a refusal of the instrument
        (no permissions) fails the chunk for good."""
        async with self._qualifying:  # one qualification of each item on this gateway
            if chunk.item_id not in self._qualified:
                item = await db(selectors.fetch_run_item_get)(item_id=chunk.item_id)
                spec = items.item_spec(item)
                self._qualified[chunk.item_id] = await self._with_reconnect(
                    lambda: self._qualify(spec)
                )
        plan = PreparedItem(chunk.item_id, chunk.instrument_id, self._qualified[chunk.item_id], [])
        try:
            await self._fetch_chunk(plan, chunk)
        except NoPermission as exc:
            await db(chunks.chunk_fail)(
                chunk_id=chunk.pk, code=exc.code, message=exc.message, final=True
            )

    async def _request(self, chunk, q, request: BarRequest, key: RequestKey, state) -> BarBatch:
        """One attempt at a chunk's request; a failure is recorded on the chunk and raised (a
        trouble of the whole session is recorded and waited out, not counted as an attempt)."""
        if self.cancelled:
            raise FetchCancelled(f"run {self.run_id} cancelled")

        async def troubled(exc: GatewayError) -> None:
            await db(chunks.chunk_fail)(
                chunk_id=chunk.pk, code=exc.code, message=exc.message, final=False
            )

        try:
            return await self._through_holds(
                lambda: self._bars(q, request), key, on_trouble=troubled
            )
        except NoData:
            return BarBatch.empty()
        except GatewayError as exc:
            final = not exc.retryable or state.attempt_number >= MAX_ATTEMPTS
            await db(chunks.chunk_fail)(
                chunk_id=chunk.pk, code=exc.code, message=exc.message, final=final
            )
            if isinstance(exc, PacingViolation):
                self.pacer.penalize(PACING_PENALTY_S)  # the gateway counts differently: hold back
            raise

    async def fetch_bars(
        self, q: QualifiedInstrument, request: BarRequest, small: bool
    ) -> BarBatch:
        """One request outside the run's chunks (a probe, a series fetched again), paced, held
        and retried as a chunk's are; NoData is no bars, a failure is raised."""
        key = _request_key(q, request, small)
        async for attempt in _retrying(retry_if_exception(_retryable)):
            with attempt:
                try:
                    return await self._through_holds(lambda: self._bars(q, request), key)
                except NoData:
                    return BarBatch.empty()
                except PacingViolation:
                    self.pacer.penalize(PACING_PENALTY_S)
                    raise

    async def _bars(self, q: QualifiedInstrument, request: BarRequest) -> BarBatch:
        """One historical request, on the connection once it is up."""
        await self._ensure_connected()
        return await self.gateway.bars(q, request)


def _request_key(q: QualifiedInstrument, request: BarRequest, small: bool) -> RequestKey:
    return request_key(
        con_id=q.con_id,
        exchange=q.exchange,
        identity=(q.con_id, *astuple(request)),
        what_to_show=request.what_to_show,
        small=small,
    )


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The error that ended a run's task group: a project error if there is one (its one line
    says what went wrong), else the first."""
    errors = list(_leaves(group))
    return next((e for e in errors if isinstance(e, IbdataError)), errors[0])


def _leaves(group: BaseExceptionGroup):
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _item_store_finish(*, item_id: int, catalog_root) -> int:
    try:
        return database_patient(items.item_store_finish)(item_id=item_id, catalog_root=catalog_root)
    finally:
        connections.close_all()  # this worker thread's own connection


def fetch_run_execute(*, run_id: int, progress=None) -> FetchRun:
    """Run a fetch to completion on a connection of its own (in-process runs; the ibkr worker
    uses its persistent connection: execution.worker)."""

    async def on_own_connection() -> FetchRun:
        gateway = gateway_from_settings()
        try:
            await gateway.connect()
            return await RunExecutor(run_id, gateway, pacer_for(gateway.key), progress).execute()
        finally:
            gateway.disconnect()

    return fetch_run_settle(run_id=run_id, run=lambda: asyncio.run(on_own_connection()))


def fetch_run_settle(*, run_id: int, run) -> FetchRun:
    """Call `run()` (which executes the run) and make sure the run ends: whatever it raises
    ends it as failed with a one-line error stored on it (a project error's own line; for
    anything else its type and first line, the traceback going to the log). Either way, what
    it stored is in the catalog when this returns (a cancelled or failed run's too)."""
    try:
        done = run()
    except IbdataError as exc:
        error = str(exc)
    except Exception as exc:
        log.exception("fetch run %s failed unexpectedly", run_id)
        error = f"unexpected error: {one_line(exc)}"
    else:
        _run_store_finish(run_id)
        return done
    database_patient(fetch_runs.fetch_run_fail)(run_id=run_id, error=error)
    _run_store_finish(run_id)
    return database_patient(selectors.fetch_run_get)(run_id=run_id)


def _run_store_finish(run_id: int) -> None:
    """Export what the run stored and no item finished (cancelled, failed, cut short). A
    failure here leaves those requests marked not exported: the next fetch of the series, or
    `manage.py bars check --repair`, exports them."""
    try:
        database_patient(items.fetch_run_store_finish)(run_id=run_id, catalog_root=default_root())
    except Exception:
        log.exception("fetch run %s: exporting what it stored to the catalog failed", run_id)
