"""One gateway's share of the running runs' chunks (several gateways, IBKR_GATEWAYS).

Each gateway's ibkr worker runs lanes on its connection's loop (a second's worth of its
pacing): a lane claims the next pending chunk of a running run from the database (FOR UPDATE
SKIP LOCKED), requests it within this gateway's pacing and stores it, recording the gateway. Claims last CLAIM_S and are renewed
with the worker's heartbeat (`renew`): a gateway that goes away (its worker killed) leaves what
it claimed and did not store to the others once the claims lapse. A chunk is stored once
(chunks_store skips a finished one), so nothing is fetched twice or lost."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from django.db import DatabaseError

from fetcher.domain.timeframes import BY_CODE
from fetcher.exceptions import SourceMismatch
from fetcher.ibkr.gateway import Gateway
from fetcher.services import sharing
from fetcher.timings import CLAIM_S, SHARE_POLL_S

from .executor import RunExecutor
from .outages import db, one_line

log = logging.getLogger("ibdata.sharing")

# Requests of one gateway in flight at once: a second's worth of its pacing (45 requests of
# 1-minute bars or more), so its pacer, not the lanes, sets the pace, and what a gateway that
# goes away leaves held is one second of its work. Bars of 30 s or less pass 60 in ten minutes:
# few of those are held at once, or one gateway would sit on chunks the others could serve.
SMALL_LANES = 8


class ChunkShare:
    """The lanes of one gateway: `run()` on its loop, `renew()` from its heartbeat. One
    dispatcher claims chunks for the lanes, a few at a time, as lanes come free; with nothing
    to claim it looks again every SHARE_POLL_S."""

    def __init__(self, *, name: str, gateway: Gateway, pacer, reconnect, connected) -> None:
        self.name, self.gateway, self.pacer = name, gateway, pacer
        self.reconnect, self.connected = reconnect, connected
        self.held: set[int] = set()  # chunk ids this gateway has claimed and not finished
        self._executors: dict[int, RunExecutor] = {}
        self._in_use: Counter[int] = Counter()
        self._starting = asyncio.Lock()
        self._claimed: asyncio.Queue = asyncio.Queue()
        self._refused: set[int] = set()  # runs of another gateway kind's store: never served
        self.lanes = pacer.rules.messages_per_s
        self._free = asyncio.Semaphore(self.lanes)  # lanes without a chunk
        self._small = 0  # lanes serving a chunk of small bars

    async def run(self) -> None:
        async with asyncio.TaskGroup() as lanes:
            lanes.create_task(self._dispatch())
            for _ in range(self.lanes):
                lanes.create_task(self._lane())

    async def renew(self) -> None:
        await db(sharing.chunks_claims_renew)(
            gateway=self.name, chunk_ids=sorted(self.held), claim_s=CLAIM_S
        )

    async def _dispatch(self) -> None:
        """Claim as many chunks as lanes are free (at least one), and hand them out."""
        while True:
            await self._free.acquire()
            free = 1
            while not self._free.locked():  # every other free lane too
                await self._free.acquire()
                free += 1
            chunks = []
            while not chunks:
                if self.connected():
                    try:
                        chunks = await db(sharing.chunks_claim)(
                            gateway=self.name,
                            claim_s=CLAIM_S,
                            limit=free,
                            small_limit=max(0, SMALL_LANES - self._small),
                            exclude_runs=sorted(self._refused),
                        )
                    except DatabaseError as exc:
                        log.warning("gateway %s could not claim: %s", self.name, one_line(exc))
                if not chunks:
                    self._idle()
                    await asyncio.sleep(SHARE_POLL_S)
            for chunk in chunks:
                self.held.add(chunk.pk)
                self._in_use[chunk.run_id] += 1
                self._small += _small(chunk)
                self._claimed.put_nowait(chunk)
            for _ in range(free - len(chunks)):
                self._free.release()

    async def _lane(self) -> None:
        while True:
            chunk = await self._claimed.get()
            try:
                executor = await self._executor(chunk.run_id)
                await executor.serve_chunk(chunk)
            except SourceMismatch as exc:  # a simulator's bars and real ones never mix
                if chunk.run_id not in self._refused:
                    log.warning("gateway %s serves none of %s", self.name, exc)
                self._refused.add(chunk.run_id)
                await db(sharing.chunk_release)(gateway=self.name, chunk_id=chunk.pk)
            except Exception as exc:  # the lane lives on: the chunk goes back to the others
                log.warning(
                    "gateway %s could not serve chunk %s: %s", self.name, chunk.pk, one_line(exc)
                )
                await db(sharing.chunk_release)(gateway=self.name, chunk_id=chunk.pk)
                await asyncio.sleep(SHARE_POLL_S)
            finally:  # stored or failed for good; a cancelled run's lapses with its claim
                self._in_use[chunk.run_id] -= 1
                self._small -= _small(chunk)
                self.held.discard(chunk.pk)
                self._free.release()

    async def _executor(self, run_id: int) -> RunExecutor:
        """The executor serving `run_id` on this gateway (made once, while its chunks come)."""
        async with self._starting:
            executor = self._executors.get(run_id)
            if executor is None:
                executor = RunExecutor(
                    run_id,
                    self.gateway,
                    self.pacer,
                    reconnect=self.reconnect,
                    gateway_name=self.name,
                )
                await executor.serve_start()
                self._executors[run_id] = executor
            return executor

    def _idle(self) -> None:
        """Nothing to claim: drop the executors no lane uses (their runs are over)."""
        for run_id in [r for r in self._executors if not self._in_use[r]]:
            self._executors.pop(run_id).serve_stop()


def _small(chunk) -> bool:
    """A chunk of a run of bars of 30 s or less (its claim tells the run's timeframe)."""
    return BY_CODE[chunk.run_timeframe].small
