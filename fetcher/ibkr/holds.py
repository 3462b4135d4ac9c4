"""Why requests to the gateway wait: its link to IBKR or its historical data farm down, or a
passing trouble of the whole session (a competing login, the nightly reset's false 200s)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from fetcher.exceptions import GatewayError, GatewayTrouble, HeldTooLong
from fetcher.timings import HOLD_MAX_S, TROUBLE_PROBE_FIRST_S, TROUBLE_PROBE_MAX_S

log = logging.getLogger("ibdata.ibkr")


class Hold(StrEnum):
    """What the gateway says is down, until it says it is back."""

    CONNECTIVITY = "its link to IBKR"  # 1100 .. 1101 / 1102
    FARM = "its historical data farm"  # 2105 .. 2106


@dataclass
class Ticket:
    """One request let through: when, and by whom (the probe of a trouble, maybe)."""

    holds: RequestHolds
    at: float
    task: asyncio.Task | None

    def still_free(self) -> bool:
        """After the pacer let it go (which may take long): whether nothing holds it since. If
        something does, it goes back to wait (its admission by the pacer wasted, which is safe:
        the pacer counted a request the gateway never saw)."""
        self.at = self.holds.clock()
        return self.holds._still_free(self)

    def answered(self) -> None:
        """The gateway answered it: a trouble older than the request is over."""
        self.holds._answered(self)

    def troubled(self, error: GatewayTrouble) -> None:
        """It met a trouble of the whole session: every request is held a back-off."""
        self.holds._troubled(self, error)


@dataclass
class _Trouble:
    error: GatewayError
    since: float
    backoff: float
    until: float  # no request before this; then one probes
    probe: asyncio.Task | None = None


class RequestHolds:
    """Holds every request to one gateway connection while the gateway cannot serve it.

    - its link to IBKR lost (1100) or a historical farm broken (2105): requests wait until the
      gateway says it is back (1101 / 1102, 2106);
    - a trouble of the session (`GatewayTrouble`: 10197, a false 200): requests wait a back-off,
      doubling from `probe_first_s` to `probe_max_s`, then one request probes; an answer ends
      the trouble, the probe's own trouble answer doubles the back-off.

    A request held by one cause for more than `max_hold_s` fails with HeldTooLong, so a run
    always ends. Requests pass through `passage()`; use from the connection's loop only.
    """

    def __init__(
        self,
        *,
        max_hold_s: float = HOLD_MAX_S,
        probe_first_s: float = TROUBLE_PROBE_FIRST_S,
        probe_max_s: float = TROUBLE_PROBE_MAX_S,
        clock=time.monotonic,
    ):
        self.max_hold_s = max_hold_s
        self.probe_first_s, self.probe_max_s = probe_first_s, probe_max_s
        self.clock = clock
        self._held: dict[Hold, tuple[float, int, str]] = {}  # since, the gateway's code and words
        self._trouble: _Trouble | None = None
        self._changed = asyncio.Event()
        # told (on the loop) when a trouble of the session begins and when it is over (the
        # error, over): the ibkr worker tells the admins of a competing session
        self.listener: Callable[[GatewayError, bool], None] | None = None

    # --- what the gateway says ----------------------------------------------------------------

    def hold(self, cause: Hold, code: int, message: str) -> None:
        if cause not in self._held:
            self._held[cause] = (self.clock(), code, message)
            self._notify()

    def release(self, cause: Hold) -> None:
        if self._held.pop(cause, None) is not None:
            self._notify()

    def holding(self, cause: Hold) -> bool:
        return cause in self._held

    def reset(self) -> None:
        """A new connection: what the last one was told of the link and the farms is void (the
        gateway tells the new one); a trouble of the session stays."""
        self._held.clear()
        self._notify()

    def troubled_by(self, kind: type[GatewayTrouble]) -> bool:
        return self._trouble is not None and isinstance(self._trouble.error, kind)

    # --- requests -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def passage(self):
        """Wait until a request may go, then let it through: the Ticket yielded is told what
        came back (`answered()`, `troubled(error)`)."""
        await self._wait()
        ticket = Ticket(self, self.clock(), asyncio.current_task())
        try:
            yield ticket
        finally:
            trouble = self._trouble
            if trouble is not None and trouble.probe is ticket.task:
                trouble.probe = None  # the probe ended with neither: another one may go
                self._notify()

    def _still_free(self, ticket: Ticket) -> bool:
        trouble = self._trouble
        if self._held:
            return False
        if trouble is None or trouble.probe is ticket.task:
            return True
        if ticket.at < trouble.until or trouble.probe is not None and not trouble.probe.done():
            return False  # a trouble began meanwhile, or another request probes it
        trouble.probe = ticket.task  # the back-off is over and nobody probes: this one does
        return True

    def _answered(self, ticket: Ticket) -> None:
        trouble = self._trouble
        # an answer to a request sent before the trouble began tells nothing of it
        if trouble is not None and ticket.at >= trouble.since:
            log.warning("gateway serves requests again: %s is over", trouble.error.message)
            self._trouble = None
            self._notify()
            self._tell(trouble.error, over=True)

    def _troubled(self, ticket: Ticket, error: GatewayTrouble) -> None:
        now, trouble = self.clock(), self._trouble
        if trouble is None:
            self._trouble = _Trouble(error, now, self.probe_first_s, now + self.probe_first_s)
            log.warning("%s", _trouble_words(error))
            self._tell(error, over=False)
        elif trouble.probe is ticket.task:
            trouble.backoff = min(2 * trouble.backoff, self.probe_max_s)
            trouble.until, trouble.probe, trouble.error = now + trouble.backoff, None, error
        self._notify()

    async def _wait(self) -> None:
        while True:
            changed = self._changed
            delay = self._delay(self.clock())
            if delay is None:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), delay)

    def _delay(self, now: float) -> float | None:
        """None when a request may go now; else how long to wait at most before looking again
        (raises HeldTooLong when a cause has held requests for longer than max_hold_s)."""
        if self._held:
            cause, (since, code, message) = min(self._held.items(), key=lambda item: item[1][0])
            self._check_age(now - since, code, f"{cause.value} is down: {message}")
            return since + self.max_hold_s - now
        trouble = self._trouble
        if trouble is None:
            return None
        self._check_age(now - trouble.since, trouble.error.code, trouble.error.message)
        if now < trouble.until:
            return trouble.until - now
        if trouble.probe is None or trouble.probe.done():
            trouble.probe = asyncio.current_task()
            return None
        return trouble.since + self.max_hold_s - now

    def _check_age(self, held_s: float, code: int, why: str) -> None:
        if held_s >= self.max_hold_s:
            raise HeldTooLong(code, f"requests held {held_s:.0f} s, the most a run waits: {why}")

    def _tell(self, error: GatewayError, *, over: bool) -> None:
        if self.listener is not None:
            self.listener(error, over)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def _trouble_words(error: GatewayError) -> str:
    """The one line a trouble is logged with: what it is, and what to do about it."""
    held = "every request held and asked again after a back-off"
    if error.code == 10197 or "different ip address" in error.message.lower():
        return (
            f"competing live session ({error.message}, IBKR error {error.code}): another login "
            "of this IBKR user (TWS, the mobile app, the web portal) takes the market data; "
            f"{held}; log the other session out, or give the API a user of its own"
        )
    return f"gateway in its nightly reset ({error.message}, IBKR error {error.code}): {held}"
