"""Pacing shared by every process that talks to one gateway: LocalPacer's rules, kept in Redis."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import math
import os
import secrets
import socket
from collections import deque
from collections.abc import Callable
from pathlib import Path

import redis
import redis.asyncio as aioredis

from .rules import PacingRules, RequestKey

# The general message rate is counted in real seconds, like LocalPacer and the simulator's
# MessageRate: a faster simulator does not accept more messages per second.
MESSAGE_WINDOW_S = 1.0
# An open request left behind by a crashed process frees its slot after this long (pacer clock
# seconds, independent of time_scale: a slow request is slow in real time).
OPEN_LEASE_S = 300.0
# Sleep at most this long between attempts, so a penalty or another process's release is seen.
POLL_CAP_S = 1.0
# Every key lives this much longer than the window it remembers, then Redis drops it.
TTL_SLACK_S = 5.0

_DEFAULT_RULES = PacingRules()

# Admission, atomic across processes (the script says how).
_ADMIT_LUA = (Path(__file__).parent / "admit.lua").read_text()
_HOLD_LUA = (Path(__file__).parent / "hold.lua").read_text()


class RedisPacer:
    """LocalPacer's rules for every process that talks to `gateway`, kept in Redis.

    A drop-in for LocalPacer (`await acquire(key)`, `await release()`, `penalize(seconds)`,
    `rules`). Keys are `ibdata:pacer:{<gateway>}:...`; the braces make the gateway a Redis
    Cluster hash tag, so the script's keys always share a slot. Time comes from `clock` (tests
    pass a fake one) or, by default, from the Redis server, so several machines agree.
    """

    def __init__(
        self,
        *,
        redis_url: str,
        gateway: str,
        rules: PacingRules = _DEFAULT_RULES,
        clock: Callable[[], float] | None = None,
        holder: str | None = None,
    ) -> None:
        self.rules = rules
        self.gateway = gateway
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.key_prefix = f"ibdata:pacer:{{{gateway}}}"
        self._redis_url = redis_url
        self._clock = clock
        self._request_ids = itertools.count(1)
        self._open_tokens: deque[str] = deque()
        # redis.asyncio connections belong to one event loop: a new loop gets a new client.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aio: aioredis.Redis | None = None
        self._admit = None
        self._released: asyncio.Event | None = None
        self._sync: redis.Redis | None = None
        self._hold = None

    # -- the LocalPacer interface ------------------------------------------------------------

    async def acquire(self, key: RequestKey) -> float:
        """Wait until the request may be sent, then count it as sent and open.

        Returns the time it was admitted at, on the pacer's clock.
        """
        while True:
            wait, at = await self._attempt(key, await self._now())
            if wait <= 0:
                return at
            released = self._released
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), min(wait, POLL_CAP_S))

    async def release(self) -> None:
        """The request's answer arrived (or it failed): it is no longer open."""
        client = self._client()
        if not self._open_tokens:
            return
        await client.zrem(self._key("open"), self._open_tokens.popleft())
        # Waiters in this process retry at once; other processes see it at their next poll.
        self._released.set()
        self._released = asyncio.Event()

    def penalize(self, seconds: float) -> None:
        """After a pacing violation from the gateway anyway: hold every small request back."""
        hold = seconds / self.rules.time_scale
        if hold <= 0:
            return
        client = self._sync_client()
        now = self._clock() if self._clock is not None else _seconds(client.time())
        if self._hold is None:
            self._hold = client.register_script(_HOLD_LUA)
        self._hold(
            keys=[self._key("hold")],
            args=[now + hold, math.ceil((hold + TTL_SLACK_S) * 1000)],
        )

    # -- tools and tests ---------------------------------------------------------------------

    async def try_acquire(self, key: RequestKey, now: float) -> float:
        """One attempt at `now`: 0 if admitted (and recorded), else the seconds to wait."""
        wait, _ = await self._attempt(key, now)
        return wait

    def reset(self) -> None:
        """Forget everything recorded for this gateway, in every process."""
        client = self._sync_client()
        keys = list(client.scan_iter(match=f"{_glob_escape(self.key_prefix)}:*", count=1000))
        if keys:
            client.delete(*keys)
        self._open_tokens.clear()

    async def aclose(self) -> None:
        """Close the connections (a client of an event loop no longer running is dropped)."""
        if self._aio is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                await self._aio.aclose()
        self._aio = self._admit = self._loop = self._released = None
        if self._sync is not None:
            self._sync.close()
            self._sync = self._hold = None

    # -- internals ---------------------------------------------------------------------------

    async def _attempt(self, key: RequestKey, now: float) -> tuple[float, float]:
        r = self.rules
        if key.small and key.weight > min(r.contract_max, r.total_max):
            raise ValueError(f"a request of weight {key.weight} can never pass {r}")
        self._client()
        token = f"{self.holder}:{next(self._request_ids)}"
        wait, at = await self._admit(
            keys=[
                self._key("clock"),
                self._key("messages"),
                self._key("open"),
                self._key("hold"),
                self._key("identical", _digest(key.identity)),
                self._key("contract", _digest(key.contract)),
                self._key("total"),
            ],
            args=[
                now,
                token,
                int(key.small),
                key.weight,
                TTL_SLACK_S,
                r.messages_per_s,
                MESSAGE_WINDOW_S,
                r.max_open,
                OPEN_LEASE_S,
                r.scaled(r.identical_window_s),
                r.contract_max,
                r.scaled(r.contract_window_s),
                r.total_max,
                r.scaled(r.total_window_s),
            ],
        )
        wait, at = float(wait), float(at)
        if wait <= 0:
            self._open_tokens.append(token)
            return 0.0, at
        return wait, at

    async def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return _seconds(await self._client().time())

    def _client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._aio = aioredis.Redis.from_url(self._redis_url)
            self._admit = self._aio.register_script(_ADMIT_LUA)
            self._released = asyncio.Event()
            self._loop = loop
        return self._aio

    def _sync_client(self) -> redis.Redis:
        if self._sync is None:
            self._sync = redis.Redis.from_url(self._redis_url)
        return self._sync

    def _key(self, *parts: str) -> str:
        return ":".join((self.key_prefix, *parts))


def _digest(parts: tuple) -> str:
    return hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()[:16]


def _seconds(server_time: tuple[int, int]) -> float:
    seconds, micros = server_time
    return seconds + micros / 1e6


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
