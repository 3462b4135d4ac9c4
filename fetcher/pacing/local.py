"""The pacer of one process: waits until a request would break none of the rules (pacing.rules)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .rules import PacingRules, RequestKey


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
