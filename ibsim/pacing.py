"""IBKR's pacing rules for one connection, on a clock that a time scale can speed up."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from . import rules


class ScaledClock:
    """Seconds as the gateway's rules see them: real time multiplied by `scale`."""

    def __init__(self, scale: float = 1.0, source: Callable[[], float] = time.monotonic):
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self.scale = scale
        self._source = source
        self._origin = source()

    def __call__(self) -> float:
        return (self._source() - self._origin) * self.scale


@dataclass
class HistoricalPacing:
    """The hard rules for bars of 30 s or less (docs/ibkr.md, "Pacing"), evaluated per connection.

    `admit` says whether a request may be served now; requests that are refused do not
    count towards the windows (IBKR does not publish this; it keeps a polite client's
    retries from starving).
    """

    clock: Callable[[], float]
    _identical: dict[tuple, float] = field(default_factory=dict)
    _per_contract: dict[tuple, deque[float]] = field(default_factory=dict)
    _total: deque[float] = field(default_factory=deque)

    def admit(self, identity: tuple, contract_key: tuple, weight: int) -> str | None:
        """Record the request and return None, or return the rule it breaks."""
        now = self.clock()
        last = self._identical.get(identity)
        if last is not None and now - last < rules.IDENTICAL_WINDOW_S:
            return "identical request within 15 seconds"
        same = self._per_contract.setdefault(contract_key, deque())
        _expire(same, now - rules.SAME_CONTRACT_WINDOW_S)
        if len(same) + weight > rules.SAME_CONTRACT_MAX:
            return "6 or more requests for the same contract and tick type within 2 seconds"
        _expire(self._total, now - rules.TOTAL_WINDOW_S)
        if len(self._total) + weight > rules.TOTAL_MAX:
            return "more than 60 requests within 10 minutes"
        self._identical[identity] = now
        for _ in range(weight):
            same.append(now)
            self._total.append(now)
        if len(self._identical) > 4096:  # forget identities older than the window
            horizon = now - rules.IDENTICAL_WINDOW_S
            self._identical = {k: t for k, t in self._identical.items() if t >= horizon}
        return None


@dataclass
class MessageRate:
    """At most `limit` incoming messages per second (error 100), as a token bucket holding
    one second's worth: a client that sends 45 at once, then 45 a second later, passes,
    whatever the jitter between its bursts."""

    limit: int = rules.MESSAGES_PER_SECOND
    source: Callable[[], float] = time.monotonic
    _tokens: float = -1.0
    _last: float = 0.0
    _excess: int = 0

    def admit(self) -> int | None:
        """None if the message is within the rate, else how many arrived in the last second."""
        now = self.source()
        if self._tokens < 0:
            self._tokens, self._last = float(self.limit), now
        self._tokens = min(float(self.limit), self._tokens + (now - self._last) * self.limit)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self._excess = 0
            return None
        self._excess += 1
        return self.limit + self._excess


@dataclass
class SoftThrottle:
    """IBKR's unpublished slow-down for bars of 1 minute and up: the more requests in the
    recent window beyond a free allowance, the longer each answer takes."""

    clock: Callable[[], float]
    free: int = 0  # requests per window served without extra delay; 0 disables the throttle
    step_s: float = 0.0  # extra real seconds per request beyond the allowance
    window_s: float = 10.0  # in gateway (scaled) seconds
    _times: deque[float] = field(default_factory=deque)

    def delay(self) -> float:
        now = self.clock()
        _expire(self._times, now - self.window_s)
        self._times.append(now)
        if self.free <= 0 or self.step_s <= 0:
            return 0.0
        excess = len(self._times) - self.free
        return max(0, excess) * self.step_s


def _expire(times: deque[float], horizon: float) -> None:
    while times and times[0] <= horizon:
        times.popleft()
