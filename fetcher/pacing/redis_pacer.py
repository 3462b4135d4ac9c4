"""Pacing shared by every process that talks to one gateway: LocalPacer's rules, kept in Redis.

However many requests wait, a process talks to Redis through one admission loop and a small,
bounded pool of connections: waiters queue in the process, and each round trip (one Lua call,
admit.lua) tries a batch of them in the order they began to wait, frees the slots released
since the last call and applies a pending penalty. Round trips grow with the requests admitted
and released, not with the waiters: a refused batch sleeps until the first of them could pass
(or a release, a penalty or a new waiter wakes it, or at most POLL_CAP_S to see other
processes' releases). While Redis is unreachable the requests wait, and the log says so.

Should Redis come back without the pacing state (restarted empty), every process restores its
own admissions of the last windows (a journal it keeps, a few dozen entries) before it admits
anything more: the state has an epoch, made anew when it is lost, and a process that finds a new
epoch restores first (seed.lua). Small requests (the rules with ten-minute windows) then wait
SETTLE_S, while every process that sent some within the windows, busy or idle, looks at the
epoch (at most every POLL_CAP_S) and restores its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import secrets
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redis.asyncio as aioredis

from .rules import PacingRules, RequestKey

log = logging.getLogger("ibdata.pacing")

# The general message rate is counted in real seconds, like LocalPacer and the simulator's
# MessageRate: a faster simulator does not accept more messages per second.
MESSAGE_WINDOW_S = 1.0
# An open request left behind by a crashed process frees its slot after this long (pacer clock
# seconds, independent of time_scale: a slow request is slow in real time).
OPEN_LEASE_S = 300.0
# A refused batch sleeps at most this long, so another process's release is seen; a process
# that sent small requests within the last windows looks at the state's epoch as often.
POLL_CAP_S = 1.0
# After the state was lost, small requests wait this long: every process that remembers some
# has looked at the epoch by then, and restored them.
SETTLE_S = 2 * POLL_CAP_S + 0.5
# The state's epoch outlives its other keys by this long after the last admission: a missing
# epoch says the state was lost, not that it expired while nothing was sent.
EPOCH_S = 86_400.0
# Every key lives this much longer than the window it remembers, then Redis drops it.
TTL_SLACK_S = 5.0
# Requests tried in one round trip (the rest wait for the next one).
BATCH_MAX = 256
# Connections a process opens to Redis for pacing, whatever the number of waiters.
POOL_MAX = 4
# Redis unreachable: try again after this long, doubling up to the cap.
REDIS_RETRY_S, REDIS_RETRY_MAX_S = 0.2, 5.0
SOCKET_TIMEOUT_S = 10.0

_DEFAULT_RULES = PacingRules()
_COMMON_LUA = (Path(__file__).parent / "common.lua").read_text()
_ADMIT_LUA = _COMMON_LUA + (Path(__file__).parent / "admit.lua").read_text()
_SEED_LUA = _COMMON_LUA + (Path(__file__).parent / "seed.lua").read_text()
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


@dataclass(eq=False)
class _Waiter:
    key: RequestKey
    token: str
    admitted: asyncio.Future


@dataclass(frozen=True)
class _Admission:
    """One of this process's admissions, as admit.lua recorded it (for seed.lua)."""

    token: str
    at: float
    key: RequestKey


@dataclass(eq=False)
class _LoopState:
    """What the pacer keeps per event loop: redis.asyncio connections belong to one loop."""

    client: aioredis.Redis
    script: object
    seed: object
    waiters: deque[_Waiter] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    runner: asyncio.Task | None = None


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
        pool_max: int = POOL_MAX,
    ) -> None:
        self.rules = rules
        self.gateway = gateway
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.key_prefix = f"ibdata:pacer:{{{gateway}}}"
        self.round_trips = 0
        self._redis_url = redis_url
        self._clock = clock
        self._pool_max = pool_max
        self._request_ids = itertools.count(1)
        self._open: dict[str, _Admission] = {}  # admitted here, not released yet (in order)
        # this process's admissions still inside a window: of the last second (the message
        # rate), and small ones of the longest small-request window
        self._recent: deque[_Admission] = deque()
        self._recent_small: deque[_Admission] = deque()
        self._hold_until = 0.0  # the end of the last penalty sent (pacer clock)
        self._epoch = ""  # of the pacing state in Redis, as last seen
        self._released: list[str] = []  # released here, not yet freed in Redis
        self._hold_s = 0.0  # a penalty not yet sent
        self._hold_at: float | None = None
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._unreachable_since: float | None = None
        self._retry_s = REDIS_RETRY_S

    # -- the LocalPacer interface ------------------------------------------------------------

    async def acquire(self, key: RequestKey) -> float:
        """Wait until the request may be sent, then count it as sent and open.

        Returns the time it was admitted at, on the pacer's clock.
        """
        self._check(key)
        state = self._state()
        loop = asyncio.get_running_loop()
        waiter = _Waiter(key, self._token(), loop.create_future())
        state.waiters.append(waiter)
        self._wake(state)
        try:
            return await waiter.admitted
        except asyncio.CancelledError:
            if waiter.admitted.done() and not waiter.admitted.cancelled():
                self._release_one(state)  # admitted as we were cancelled: free the slot
            else:
                waiter.admitted.cancel()
            raise

    async def release(self) -> None:
        """The request's answer arrived (or it failed): it is no longer open."""
        self._release_one(self._state())

    def penalize(self, seconds: float) -> None:
        """After a pacing violation from the gateway anyway: hold every small request back.

        Sent with the next round trip; a longer pending penalty wins."""
        hold = seconds / self.rules.time_scale
        if hold <= 0:
            return
        at = self._clock() if self._clock is not None else None
        if at is not None and self._hold_at is not None:
            longer = at + hold > self._hold_at + self._hold_s
        else:
            longer = hold > self._hold_s
        if longer:
            self._hold_s, self._hold_at = hold, at
        # outside a running loop, it goes with the next round trip
        with contextlib.suppress(RuntimeError):
            self._wake(self._state())

    # -- tools and tests ---------------------------------------------------------------------

    async def try_acquire(self, key: RequestKey, now: float) -> float:
        """One attempt at `now`: 0 if admitted (and recorded), else the seconds to wait."""
        self._check(key)
        waiter = _Waiter(key, self._token(), asyncio.get_running_loop().create_future())
        _, waits = await self._round_trip(self._state(), [waiter], now)
        return waits[0]

    def reset(self) -> None:
        """Forget everything recorded for this gateway, in every process."""
        client = redis.Redis.from_url(self._redis_url)
        try:
            keys = list(client.scan_iter(match=f"{_glob_escape(self.key_prefix)}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
        self._open.clear()
        self._released.clear()
        self._recent.clear()
        self._recent_small.clear()
        self._hold_until = 0.0
        self._epoch = ""

    async def aclose(self) -> None:
        """Close this loop's connections (those of loops no longer running are dropped)."""
        state = self._states.pop(asyncio.get_running_loop(), None)
        self._states.clear()
        if state is not None:
            if state.runner is not None and not state.runner.done():
                state.runner.cancel()
            await state.client.aclose(close_connection_pool=True)

    # -- the admission loop ------------------------------------------------------------------

    async def _admit_waiters(self, state: _LoopState) -> None:
        """Run while there are waiters, releases or a penalty to send, or small requests of
        the last windows to look after (the epoch); then end (started again on need)."""
        while state.waiters or self._released or self._hold_s or self._recent_small:
            state.wake.clear()
            while state.waiters and state.waiters[0].admitted.done():
                state.waiters.popleft()  # cancelled while waiting
            batch = [w for w in itertools.islice(state.waiters, BATCH_MAX) if not w.admitted.done()]
            now = self._clock() if self._clock is not None else None
            try:
                at, waits = await self._round_trip(state, batch, now)
            except _UNREACHABLE as exc:
                await self._unreachable(state, exc)
                continue
            sleep = POLL_CAP_S
            for waiter, wait in zip(batch, waits, strict=True):
                if wait <= 0:
                    state.waiters.remove(waiter)
                    if waiter.admitted.done():  # cancelled meanwhile: free its slot again
                        self._release_one(state)
                    else:
                        waiter.admitted.set_result(at)
                else:
                    sleep = min(sleep, wait)
            # small requests sent within the windows: keep looking at the epoch meanwhile
            if (state.waiters or self._recent_small) and not state.wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.wake.wait(), sleep)

    async def _round_trip(
        self, state: _LoopState, batch: list[_Waiter], now: float | None
    ) -> tuple[float, list[float]]:
        while True:
            at, waits, epoch = await self._admit(state, batch, now)
            if epoch == self._epoch or not self._epoch:
                break
            # the state in Redis is not the one we knew: restore ours, then ask again
            restored = await self._seed(state, epoch, at)
            if restored:
                log.warning(
                    "pacing state for gateway %s was lost (Redis restarted empty?): restored "
                    "this process's %d admissions of the last windows",
                    self.gateway,
                    restored,
                )
            if restored is not None:
                self._epoch = epoch
        self._epoch = epoch
        for waiter, wait in zip(batch, waits, strict=True):
            if wait <= 0:
                admission = _Admission(waiter.token, at, waiter.key)
                self._open[waiter.token] = admission
                self._recent.append(admission)
                if waiter.key.small:
                    self._recent_small.append(admission)
        self._forget_before(at)
        return at, waits

    async def _admit(
        self, state: _LoopState, batch: list[_Waiter], now: float | None
    ) -> tuple[float, list[float], str]:
        """One call of admit.lua: (the time it ran at, each waiter's wait, the state's epoch).
        Refused for an epoch other than ours: nothing done, no waits."""
        r = self.rules
        released, self._released = self._released, []
        hold_s, hold_at = pending_hold = (self._hold_s, self._hold_at)
        self._hold_s, self._hold_at = 0.0, None
        if hold_at is not None and now is not None:
            hold_s = max(0.0, hold_s - (now - hold_at))  # the penalty began when it was given
        keys = self._state_keys()
        args: list = [
            "" if now is None else repr(now),
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
            hold_s,
            self._epoch,
            SETTLE_S,
            EPOCH_S,
            len(released),
            *released,
        ]
        for waiter in batch:
            keys += self._request_keys(waiter.key)
            args += [waiter.token, int(waiter.key.small), waiter.key.weight]
        refused = False
        try:
            self.round_trips += 1
            at, waits, epoch = await state.script(keys=keys, args=args)
            epoch = epoch.decode() if isinstance(epoch, bytes) else str(epoch)
            refused = bool(self._epoch) and epoch != self._epoch
        except BaseException:
            refused = True
            raise
        finally:
            if refused:  # nothing was done: keep what has to be said for the next call
                self._released[:0] = released
                if pending_hold[0] > self._hold_s:
                    self._hold_s, self._hold_at = pending_hold
        if self._unreachable_since is not None:
            log.warning("Redis is back: pacing requests for gateway %s again", self.gateway)
            self._unreachable_since = None
        if refused:
            return float(at), [], epoch
        if hold_s > 0:
            self._hold_until = max(self._hold_until, float(at) + hold_s)
        return float(at), [float(w) for w in waits], epoch

    async def _seed(self, state: _LoopState, epoch: str, now: float) -> int | None:
        """Restore this process's admissions still inside a window at `now` into the state of
        `epoch` (seed.lua): the number restored (0, with no round trip, when none is: the
        state merely expired while nothing was admitted), or None if the epoch changed again."""
        r = self.rules
        self._forget_before(now)
        admissions = {a.token: a for a in (*self._recent_small, *self._recent)}
        admissions.update((t, a) for t, a in self._open.items() if a.at > now - OPEN_LEASE_S)
        if not admissions and now >= self._hold_until:
            return 0
        keys = self._state_keys()
        args: list = [
            epoch,
            TTL_SLACK_S,
            MESSAGE_WINDOW_S,
            OPEN_LEASE_S,
            r.scaled(r.identical_window_s),
            r.scaled(r.contract_window_s),
            r.scaled(r.total_window_s),
            repr(self._hold_until),
        ]
        for a in admissions.values():
            keys += self._request_keys(a.key)
            args += [
                a.token,
                repr(a.at),
                int(a.key.small),
                a.key.weight,
                int(a.token in self._open),
            ]
        self.round_trips += 1
        done = await state.seed(keys=keys, args=args)
        return len(admissions) if int(done) else None

    def _forget_before(self, now: float) -> None:
        """Drop journal entries no window remembers any more."""
        r = self.rules
        windows = (r.identical_window_s, r.contract_window_s, r.total_window_s)
        small_window = max(r.scaled(w) for w in windows)
        while self._recent and self._recent[0].at <= now - MESSAGE_WINDOW_S:
            self._recent.popleft()
        while self._recent_small and self._recent_small[0].at <= now - small_window:
            self._recent_small.popleft()

    def _state_keys(self) -> list[str]:
        """The keys admit.lua and seed.lua take first, in their order."""
        return [self._key(k) for k in ("clock", "messages", "open", "hold", "total", "epoch")]

    def _request_keys(self, key: RequestKey) -> list[str]:
        return [
            self._key("identical", _digest(key.identity)),
            self._key("contract", _digest(key.contract)),
        ]

    async def _unreachable(self, state: _LoopState, exc: BaseException) -> None:
        loop = asyncio.get_running_loop()
        if self._unreachable_since is None:
            self._unreachable_since = loop.time()
            self._retry_s = REDIS_RETRY_S
            log.warning(
                "Redis unreachable (%s): %d requests for gateway %s wait until it is back",
                exc,
                len(state.waiters),
                self.gateway,
            )
        await asyncio.sleep(self._retry_s)
        self._retry_s = min(REDIS_RETRY_MAX_S, self._retry_s * 2)

    # -- internals ---------------------------------------------------------------------------

    def _check(self, key: RequestKey) -> None:
        r = self.rules
        if key.small and key.weight > min(r.contract_max, r.total_max):
            raise ValueError(f"a request of weight {key.weight} can never pass {r}")

    def _release_one(self, state: _LoopState) -> None:
        # Open slots are interchangeable: any one of ours is freed (the oldest).
        if self._open:
            token = next(iter(self._open))
            del self._open[token]
            self._released.append(token)
            self._wake(state)

    def _token(self) -> str:
        return f"{self.holder}:{next(self._request_ids)}"

    def _wake(self, state: _LoopState) -> None:
        state.wake.set()
        if state.runner is None or state.runner.done():
            state.runner = asyncio.get_running_loop().create_task(
                self._admit_waiters(state), name=f"pacer-{self.gateway}"
            )

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            # a client of a loop that has ended is dropped (its sockets close with it)
            self._states = {lp: s for lp, s in self._states.items() if not lp.is_closed()}
            pool = aioredis.BlockingConnectionPool.from_url(
                self._redis_url,
                max_connections=self._pool_max,
                timeout=None,
                socket_timeout=SOCKET_TIMEOUT_S,
                socket_connect_timeout=SOCKET_TIMEOUT_S,
                client_name=f"ibdata-pacer:{self.holder}",
            )
            client = aioredis.Redis(connection_pool=pool)
            state = self._states[loop] = _LoopState(
                client, client.register_script(_ADMIT_LUA), client.register_script(_SEED_LUA)
            )
        return state

    def _key(self, *parts: str) -> str:
        return ":".join((self.key_prefix, *parts))


def _digest(parts: tuple) -> str:
    return hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()[:16]


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
