"""What holds requests to a gateway (fetcher.ibkr.holds): its link or farm down until it is
back, a trouble of the session probed by one request after a back-off, and a bound on both."""

from __future__ import annotations

import asyncio

import pytest

from fetcher.exceptions import CompetingSession, HeldTooLong
from fetcher.ibkr.holds import Hold, RequestHolds

COMPETING = CompetingSession(10197, "No market data during competing live session")


def holds(**limits) -> RequestHolds:
    return RequestHolds(**{"max_hold_s": 5.0, "probe_first_s": 0.05, "probe_max_s": 0.4} | limits)


async def go(h: RequestHolds, log: list, name: str, outcome=None) -> None:
    """One request: through the passage, then its outcome told (None: answered)."""
    async with h.passage() as ticket:
        log.append(name)
        if outcome is None:
            ticket.answered()
        else:
            ticket.troubled(outcome)


def test_a_broken_farm_holds_requests_until_it_is_back():
    async def scenario():
        h, log = holds(), []
        h.hold(Hold.FARM, 2105, "HMDS data farm connection is broken:ushmds")
        waiting = asyncio.ensure_future(go(h, log, "a"))
        await asyncio.sleep(0.1)
        held = list(log)
        h.release(Hold.FARM)
        await asyncio.wait_for(waiting, 1)
        return held, log, h.holding(Hold.FARM)

    assert asyncio.run(scenario()) == ([], ["a"], False)


def test_a_hold_that_lasts_fails_the_request_with_the_gateways_words():
    async def scenario():
        h = holds(max_hold_s=0.2)
        h.hold(
            Hold.CONNECTIVITY, 1100, "Connectivity between IB and Trader Workstation has been lost."
        )
        await go(h, [], "a")

    with pytest.raises(HeldTooLong) as info:
        asyncio.run(scenario())
    assert info.value.code == 1100
    assert "the most a run waits: its link to IBKR is down: Connectivity between IB" in str(
        info.value
    )


def test_a_trouble_holds_everyone_and_one_request_probes_after_a_back_off():
    """The session is in trouble while `trouble` says so: after each back-off one waiting
    request (whichever) probes; while it meets the trouble the others keep waiting; once one is
    answered they all go."""

    async def scenario():
        h, log, trouble = holds(probe_first_s=0.05), [], [COMPETING]

        async def request(name: str) -> None:
            async with h.passage() as ticket:
                log.append(name)
                if trouble:
                    ticket.troubled(trouble[0])
                else:
                    ticket.answered()

        await request("first")  # the trouble begins
        waiting = [asyncio.ensure_future(request(name)) for name in "abcd"]
        await asyncio.sleep(0.01)
        seen = [len(log)]  # held for the back-off
        while len(log) < 2:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.03)  # the probe met the trouble: its back-off doubled to 0.1 s
        seen.append(len(log))
        trouble.clear()  # the next probe is answered, and everyone goes
        await asyncio.wait_for(asyncio.gather(*waiting), 2)
        seen.append(len(log))
        return seen, log

    seen, log = asyncio.run(scenario())
    assert seen == [1, 2, 5]
    assert log[0] == "first" and sorted(log[1:]) == ["a", "b", "c", "d"]


def test_an_answer_to_a_request_sent_before_the_trouble_does_not_end_it():
    async def scenario():
        h, log = holds(probe_first_s=0.3), []
        async with h.passage() as early:  # let through before the trouble began
            await go(h, log, "first", COMPETING)
            early.answered()
        waiting = asyncio.ensure_future(go(h, log, "later"))
        await asyncio.sleep(0.1)
        held = list(log)
        await asyncio.wait_for(waiting, 2)
        return held

    assert asyncio.run(scenario()) == ["first"]


def test_a_new_connection_forgets_the_farms_but_not_a_trouble():
    async def scenario():
        h = holds()
        await go(h, [], "first", COMPETING)
        h.hold(Hold.FARM, 2105, "HMDS data farm connection is broken:ushmds")
        h.reset()
        return h.holding(Hold.FARM), h.troubled_by(CompetingSession)

    assert asyncio.run(scenario()) == (False, True)
