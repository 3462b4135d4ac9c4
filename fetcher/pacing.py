"""Client-side pacing: wait until a historical request would break none of IBKR's rules.

The rules (IBKR.md 'Pacing') are applied with a small safety margin: at most 45 requests a
second (the setup guide's promise), for bars of 30 s or less no identical request within
15 s, at most 5 per contract and tick type in any 2 s (the 6th is the violation; BID_ASK
counts twice) and at most 60 in any 10 minutes; at most `max_open` requests open at once.
`time_scale` speeds the windows up to match a simulator running faster than real time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PacingRules:
    messages_per_s: int = 45
    identical_window_s: float = 15.0
    contract_window_s: float = 2.0
    contract_max: int = 5
    total_window_s: float = 600.0
    total_max: int = 60
    max_open: int = 50
    # Added to every window in real seconds: the gateway counts a request when it arrives,
    # a little after we count it, and arrival delays vary (network, loop, GIL).
    margin_s: float = 0.1
    time_scale: float = 1.0

    def scaled(self, seconds: float) -> float:
        return seconds / self.time_scale + self.margin_s


@dataclass(frozen=True)
class RequestKey:
    """What the pacing rules look at in one historical request."""

    identity: tuple  # equal for identical requests
    contract: tuple  # (con_id, exchange, what_to_show)
    small: bool  # bar size of 30 s or less
    weight: int = 1  # BID_ASK counts twice


@dataclass
class LocalPacer:
    """The rules for the requests of one process (the Redis pacer shares them across processes)."""

    rules: PacingRules = field(default_factory=PacingRules)
    clock: Callable[[], float] = time.monotonic
    _messages: deque = field(default_factory=deque)
    _total: deque = field(default_factory=deque)
    _per_contract: dict = field(default_factory=dict)
    _identical: dict = field(default_factory=dict)
    _open: int = 0
    _hold_until: float = 0.0
    _slot_freed: asyncio.Event | None = None

    def wait_needed(self, key: RequestKey, now: float) -> float:
        """Seconds until `key` may go out (0: now)."""
        r = self.rules
        waits = [0.0]
        if self._open >= r.max_open:
            waits.append(float("inf"))
        _trim(self._messages, now - 1.0)
        if len(self._messages) >= r.messages_per_s:
            waits.append(self._messages[0] + 1.0 - now)
        if key.small:
            waits.append(self._hold_until - now)
            last = self._identical.get(key.identity)
            if last is not None:
                waits.append(last + r.scaled(r.identical_window_s) - now)
            same = self._per_contract.setdefault(key.contract, deque())
            _trim(same, now - r.scaled(r.contract_window_s))
            if len(same) + key.weight > r.contract_max:
                waits.append(
                    same[len(same) + key.weight - r.contract_max - 1]
                    + r.scaled(r.contract_window_s)
                    - now
                )
            _trim(self._total, now - r.scaled(r.total_window_s))
            if len(self._total) + key.weight > r.total_max:
                waits.append(
                    self._total[len(self._total) + key.weight - r.total_max - 1]
                    + r.scaled(r.total_window_s)
                    - now
                )
        return max(waits)

    def _record(self, key: RequestKey, now: float) -> None:
        self._messages.append(now)
        self._open += 1
        if key.small:
            self._identical[key.identity] = now
            for _ in range(key.weight):
                self._per_contract[key.contract].append(now)
                self._total.append(now)

    async def acquire(self, key: RequestKey) -> None:
        """Wait until the request may be sent, then count it as sent and open.

        Check-and-record happens in one step of the event loop, so it is atomic here. A
        request waits exactly as long as the rules say (no polling); only requests held by
        the open-request cap wait for a release.
        """
        while True:
            now = self.clock()
            wait = self.wait_needed(key, now)
            if wait <= 0:
                self._record(key, now)
                return
            if wait == float("inf"):
                if self._slot_freed is None:
                    self._slot_freed = asyncio.Event()
                await self._slot_freed.wait()
            else:
                await asyncio.sleep(wait)

    async def release(self) -> None:
        """The request's answer arrived (or it failed): it is no longer open."""
        self._open = max(0, self._open - 1)
        if self._slot_freed is not None:
            self._slot_freed.set()
            self._slot_freed = None

    def penalize(self, seconds: float) -> None:
        """After a pacing violation from the gateway anyway: hold every small request back."""
        self._hold_until = max(self._hold_until, self.clock() + seconds / self.rules.time_scale)


def _trim(times: deque, horizon: float) -> None:
    while times and times[0] <= horizon:
        times.popleft()
