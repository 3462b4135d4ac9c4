"""RedisPacer: LocalPacer's rules, kept in Redis and shared atomically by every process."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import time
import uuid
from collections import defaultdict

import pytest

from fetcher.pacing.local import LocalPacer
from fetcher.pacing.redis_pacer import (
    EPOCH_S,
    OPEN_LEASE_S,
    POLL_CAP_S,
    POOL_MAX,
    SETTLE_S,
    TTL_SLACK_S,
    RedisPacer,
)
from fetcher.pacing.rules import PacingRules, RequestKey

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def small(n: int, con_id: int = 1, what: str = "TRADES") -> RequestKey:
    """A request for bars of 30 s or less; equal `n`, `con_id` and `what` make it identical."""
    return RequestKey(
        identity=("req", n, con_id, what),
        contract=(con_id, "SMART", what),
        small=True,
        weight=2 if what == "BID_ASK" else 1,
    )


def large(n: int, con_id: int = 1) -> RequestKey:
    return RequestKey(
        identity=("req", n, con_id), contract=(con_id, "SMART", "TRADES"), small=False
    )


def new_gateway() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:4002"


@pytest.fixture
def make_pacer():
    """RedisPacers on a gateway of their own; their keys are deleted at the end of the test."""
    made: list[RedisPacer] = []

    def make(**kwargs) -> RedisPacer:
        kwargs.setdefault("gateway", new_gateway())
        pacer = RedisPacer(redis_url=REDIS_URL, **kwargs)
        made.append(pacer)
        return pacer

    yield make
    for pacer in made:
        pacer.reset()
        asyncio.run(pacer.aclose())


def run(scenario, *pacers: RedisPacer):
    """Run `scenario()` in a fresh event loop, closing the pacers' connections within it."""

    async def main():
        try:
            return await scenario()
        finally:
            for pacer in pacers:
                await pacer.aclose()

    return asyncio.run(main())


async def assert_waits(pacer: RedisPacer, key: RequestKey, clock: FakeClock, expected: float):
    """`key` has to wait `expected` seconds: refused until just before, admitted just after."""
    wait = await pacer.try_acquire(key, clock())
    assert wait == pytest.approx(expected, abs=1e-9)
    early = min(1e-3, expected / 10)
    clock.advance(wait - early)
    assert await pacer.try_acquire(key, clock()) == pytest.approx(early, abs=1e-9)
    clock.advance(early + 1e-9)
    assert await pacer.try_acquire(key, clock()) == 0


def test_the_46th_request_within_a_second_waits_until_the_first_leaves(make_pacer):
    clock = FakeClock()
    pacer = make_pacer(clock=clock)
    first = clock()

    async def scenario():
        for n in range(45):
            assert await pacer.try_acquire(large(n, con_id=n), clock()) == 0
            await pacer.release()
            clock.advance(1 / 64)
        await assert_waits(pacer, large(45), clock, first + 1.0 - clock())

    run(scenario, pacer)


@pytest.mark.parametrize("time_scale", [1, 10])
def test_an_identical_small_request_waits_the_identical_window(make_pacer, time_scale):
    clock = FakeClock()
    rules = PacingRules(time_scale=time_scale)
    pacer = make_pacer(clock=clock, rules=rules)

    async def scenario():
        assert await pacer.try_acquire(small(1), clock()) == 0
        clock.advance(0.5 / time_scale)
        await assert_waits(pacer, small(1), clock, rules.scaled(15.0) - 0.5 / time_scale)
        # Bars of a minute and more have no identical-request rule.
        assert await pacer.try_acquire(large(1), clock()) == 0
        assert await pacer.try_acquire(large(1), clock()) == 0

    run(scenario, pacer)


def test_a_contract_takes_five_in_two_seconds_bid_ask_counting_twice(make_pacer):
    clock = FakeClock()
    pacer = make_pacer(clock=clock)
    first = clock()

    async def scenario():
        for n in range(5):
            assert await pacer.try_acquire(small(n), clock()) == 0
            clock.advance(0.25)
        assert await pacer.try_acquire(small(10, con_id=2), clock()) == 0
        assert await pacer.try_acquire(small(10, what="MIDPOINT"), clock()) == 0
        await assert_waits(pacer, small(5), clock, first + PacingRules().scaled(2.0) - clock())

        # BID_ASK (its own contract key): two requests count four, a third would make six.
        first_bid_ask = clock()
        assert await pacer.try_acquire(small(0, what="BID_ASK"), clock()) == 0
        clock.advance(0.5)
        assert await pacer.try_acquire(small(1, what="BID_ASK"), clock()) == 0
        clock.advance(0.5)
        await assert_waits(
            pacer,
            small(2, what="BID_ASK"),
            clock,
            first_bid_ask + PacingRules().scaled(2.0) - clock(),
        )

    run(scenario, pacer)


def lose_state(pacer: RedisPacer, *, keep_epoch: bool = False) -> None:
    """What Redis restarted without persistence leaves: none of the gateway's keys (or, with
    keep_epoch, what their time to live leaves after the longest window: the epoch only)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{pacer.key_prefix}:*"))
        assert keys
        if keep_epoch:
            keys = [k for k in keys if not k.decode().endswith(":epoch")]
        client.delete(*keys)
    finally:
        client.close()


async def sixty_small(clock: FakeClock, *pacers: RedisPacer) -> None:
    """Sixty small requests on sixty contracts, five seconds apart, taking turns on `pacers`."""
    for n in range(60):
        pacer = pacers[n % len(pacers)]
        assert await pacer.try_acquire(small(n, con_id=n), clock()) == 0
        await pacer.release()
        clock.advance(5.0)


@pytest.mark.parametrize("lost", [False, True], ids=["kept", "lost-and-restored"])
def test_sixty_in_ten_minutes_across_contracts(make_pacer, caplog, lost):
    """The 61st small request waits for the first to leave the ten minutes. Also when Redis
    came back empty meanwhile: before it admits anything more, the process puts back its own
    admissions of the last windows, so the rules hold as if nothing had been lost."""
    clock = FakeClock()
    pacer = make_pacer(clock=clock)
    first = clock()

    async def scenario():
        await sixty_small(clock, pacer)
        if lost:
            lose_state(pacer)
        await assert_waits(
            pacer, small(60, con_id=60), clock, first + PacingRules().scaled(600.0) - clock()
        )

    caplog.set_level("WARNING", logger="ibdata.pacing")
    run(scenario, pacer)
    assert ("pacing state for gateway" in caplog.text) == lost


def test_a_state_that_expired_while_idle_is_not_called_lost(make_pacer, caplog):
    """Nothing admitted for longer than every window: the keys expire, but not the epoch, so
    nothing is restored, nothing is held back and nothing is said about it."""
    clock = FakeClock()
    pacer = make_pacer(clock=clock)

    async def scenario():
        assert await pacer.try_acquire(small(1), clock()) == 0
        await pacer.release()
        clock.advance(PacingRules().scaled(600.0) + 1.0)
        lose_state(pacer, keep_epoch=True)  # what the keys' time to live leaves
        assert await pacer.try_acquire(small(1), clock()) == 0

    caplog.set_level("WARNING", logger="ibdata.pacing")
    run(scenario, pacer)
    assert "pacing state" not in caplog.text


def test_a_bid_ask_request_is_two_of_the_sixty(make_pacer):
    clock = FakeClock()
    pacer = make_pacer(clock=clock)
    first = clock()

    async def scenario():
        for n in range(59):
            assert await pacer.try_acquire(small(n, con_id=n), clock()) == 0
            await pacer.release()
            clock.advance(5.0)
        key = small(0, con_id=99, what="BID_ASK")
        await assert_waits(pacer, key, clock, first + PacingRules().scaled(600.0) - clock())

    run(scenario, pacer)


def test_max_open_holds_a_request_until_a_release(make_pacer):
    clock = FakeClock()
    pacer = make_pacer(clock=clock, rules=PacingRules(max_open=2))

    async def scenario():
        assert await pacer.try_acquire(large(1), clock()) == 0
        assert await pacer.try_acquire(small(2), clock()) == 0
        assert await pacer.try_acquire(large(3), clock()) > 0
        await pacer.release()
        assert await pacer.try_acquire(large(3), clock()) == 0
        assert await pacer.try_acquire(large(4), clock()) > 0

    run(scenario, pacer)


def test_a_crashed_holder_frees_its_slot_after_the_lease(make_pacer):
    clock = FakeClock()
    gateway = new_gateway()
    rules = PacingRules(max_open=1)
    crashed = make_pacer(clock=clock, rules=rules, gateway=gateway, holder="crashed")
    survivor = make_pacer(clock=clock, rules=rules, gateway=gateway, holder="survivor")

    async def scenario():
        assert await crashed.try_acquire(large(1), clock()) == 0
        clock.advance(10.0)
        await assert_waits(survivor, large(2), clock, OPEN_LEASE_S - 10.0)

    run(scenario, crashed, survivor)


def test_acquire_sleeps_until_a_release(make_pacer):
    gateway = new_gateway()
    rules = PacingRules(max_open=1)
    one = make_pacer(gateway=gateway, rules=rules)  # default clock: the Redis server's
    other = make_pacer(gateway=gateway, rules=rules)  # as if in another process

    async def scenario():
        await one.acquire(large(1))
        other_process = asyncio.create_task(other.acquire(large(2)))
        await asyncio.sleep(0.5)
        same_process = asyncio.create_task(one.acquire(large(3)))
        await asyncio.sleep(0.2)
        assert not other_process.done() and not same_process.done()
        await one.release()
        # A release wakes the waiters of its own process at once; the other process's waiter
        # only sees it at its next poll (its first one came 0.5 s before the release).
        done, _ = await asyncio.wait(
            [other_process, same_process], return_when=asyncio.FIRST_COMPLETED, timeout=10
        )
        assert done == {same_process}
        await one.release()
        await asyncio.wait_for(other_process, timeout=10)
        await other.release()

    run(scenario, one, other)


def test_time_scale_shrinks_the_gateway_windows_but_not_the_message_rate(make_pacer):
    clock = FakeClock()
    rules = PacingRules(time_scale=600)
    identical, contract, total, messages = (make_pacer(clock=clock, rules=rules) for _ in range(4))

    async def scenario():
        assert await identical.try_acquire(small(0), clock()) == 0
        await assert_waits(identical, small(0), clock, rules.scaled(15.0))

        first = clock()
        for n in range(5):
            assert await contract.try_acquire(small(n), clock()) == 0
            clock.advance(1 / 2048)
        await assert_waits(contract, small(5), clock, first + rules.scaled(2.0) - clock())

        # 30 BID_ASK requests are 60 of the total but only 30 messages.
        first = clock()
        for n in range(30):
            assert await total.try_acquire(small(n, con_id=n, what="BID_ASK"), clock()) == 0
            await total.release()
            clock.advance(1 / 64)
        await assert_waits(
            total, small(30, con_id=30), clock, first + rules.scaled(600.0) - clock()
        )

        # The message rate is in real seconds, like the simulator's, whatever the scale.
        first = clock()
        for n in range(45):
            assert await messages.try_acquire(large(n, con_id=n), clock()) == 0
            await messages.release()
        await assert_waits(messages, large(45), clock, first + 1.0 - clock())

    run(scenario, identical, contract, total, messages)


def test_penalize_holds_small_requests_back(make_pacer):
    clock = FakeClock()
    pacer = make_pacer(clock=clock, rules=PacingRules(time_scale=10))

    async def scenario():
        pacer.penalize(60.0)
        pacer.penalize(10.0)  # a shorter penalty does not cut the hold short
        assert await pacer.try_acquire(large(1), clock()) == 0
        await assert_waits(pacer, small(1), clock, 6.0)

    run(scenario, pacer)


def test_every_key_expires(make_pacer):
    import redis

    clock = FakeClock()
    rules = PacingRules(max_open=3)
    pacer = make_pacer(clock=clock, rules=rules)

    async def scenario():
        pacer.penalize(1.0)
        await pacer.try_acquire(large(99), clock())  # sends the penalty
        await pacer.release()
        clock.advance(1.0)
        for n in range(8):
            await pacer.try_acquire(small(n, con_id=n % 2), clock())
            await pacer.try_acquire(small(n, what="BID_ASK"), clock())
            await pacer.try_acquire(large(n), clock())
            clock.advance(0.1)
        await pacer.release()

    run(scenario, pacer)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        ttls = {
            key.decode().removeprefix(pacer.key_prefix): client.pttl(key)
            for key in client.scan_iter(match=f"{pacer.key_prefix}:*")
        }
    finally:
        client.close()
    kinds = {key.split(":")[1] for key in ttls}
    assert kinds == {
        "clock",
        "messages",
        "open",
        "hold",
        "identical",
        "contract",
        "total",
        "epoch",
    }
    # the epoch lives a day after the last admission; every other key its window
    assert 0 < ttls.pop(":epoch") <= (EPOCH_S + TTL_SLACK_S) * 1000
    longest = max(OPEN_LEASE_S, rules.scaled(rules.total_window_s))
    assert all(0 < ttl <= (longest + TTL_SLACK_S) * 1000 for ttl in ttls.values()), ttls
    assert 0 < ttls[":total"] <= (rules.scaled(rules.total_window_s) + TTL_SLACK_S) * 1000

    pacer.reset()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert list(client.scan_iter(match=f"{pacer.key_prefix}:*")) == []
    finally:
        client.close()


def mixed_traffic(rng: random.Random, time_scale: float):
    """Steps of ("advance", seconds), ("penalize", seconds) or ("request", key) that put each
    rule to work: bursts of requests, same-contract runs, repeats, pauses and penalties."""
    for _ in range(60):
        phase = rng.choice(["mix", "mix", "burst", "contract", "pause", "penalty"])
        if phase == "burst":
            for n in range(rng.randrange(30, 60)):
                yield "request", large(n, con_id=rng.randrange(50))
        elif phase == "contract":
            con_id, what = rng.randrange(3), rng.choice(["TRADES", "BID_ASK"])
            for n in range(rng.randrange(4, 9)):
                yield "advance", rng.choice([0.0, 0.1, 0.4]) / time_scale
                yield "request", small(100 + n, con_id=con_id, what=what)
        elif phase == "pause":
            yield "advance", rng.choice([0.5, 2.0, 16.0, 120.0, 600.0]) / time_scale
        elif phase == "penalty":
            yield "penalize", rng.choice([5.0, 60.0])
        else:
            for _ in range(rng.randrange(5, 20)):
                yield "advance", rng.choice([0.0, 1 / 128, 0.05, 0.3, 1.0, 4.0, 60.0]) / time_scale
                what = rng.choice(["TRADES", "TRADES", "MIDPOINT", "BID_ASK"])
                if rng.random() < 0.2:
                    yield "request", large(rng.randrange(4), con_id=rng.randrange(3))
                else:
                    yield "request", small(rng.randrange(6), con_id=rng.randrange(3), what=what)


@pytest.mark.parametrize("time_scale", [1, 60])
def test_the_same_waits_as_local_pacer(make_pacer, time_scale):
    """Every wait in a random mix of traffic equals LocalPacer's, to the nanosecond."""
    clock = FakeClock()
    rules = PacingRules(time_scale=time_scale, max_open=10**6)
    local = LocalPacer(rules=rules, clock=clock)
    pacer = make_pacer(clock=clock, rules=rules)

    async def scenario():
        admitted = refused = 0
        for action, arg in mixed_traffic(random.Random(time_scale), time_scale):
            if action == "advance":
                clock.advance(arg)
            elif action == "penalize":
                local.penalize(arg)
                pacer.penalize(arg)
            else:
                expected = local.wait_needed(arg, clock())
                if expected <= 0:
                    local._record(arg, clock())
                assert await pacer.try_acquire(arg, clock()) == pytest.approx(expected, abs=1e-9)
                admitted += expected <= 0
                refused += expected > 0
        assert admitted > 200 and refused > 200

    run(scenario, pacer)


MP_RULES = PacingRules(time_scale=600)  # 2 s become 3.4 ms, 10 minutes become 1 s
MP_REQUESTS = 40


def mp_key(i: int) -> RequestKey:
    # Both processes ask for the same identities and contracts, so they compete for them.
    return small(i % 8, con_id=i % 2, what="BID_ASK" if i % 5 == 0 else "TRADES")


def _acquire_in_a_loop(gateway: str, barrier, results) -> None:
    pacer = RedisPacer(redis_url=REDIS_URL, gateway=gateway, rules=MP_RULES, clock=time.time)

    async def main() -> list[tuple[float, int]]:
        admitted = []
        try:
            for i in range(MP_REQUESTS):
                admitted.append((await pacer.acquire(mp_key(i)), i))
                await pacer.release()
        finally:
            await pacer.aclose()
        return admitted

    try:
        # a spawned process imports the project first: on a loaded machine that can take a
        # while, and the two must start together (the test waits 120 s for their results)
        barrier.wait(timeout=100)
        results.put(asyncio.run(main()))
    except BaseException as exc:
        results.put(repr(exc))
        raise


def assert_at_most(events: list[tuple[float, int]], window: float, limit: int) -> None:
    """No window (t - `window`, t] holds more than `limit` of the (time, weight) events."""
    events = sorted(events)
    for t, _ in events:
        inside = sum(w for s, w in events if t - window < s <= t)
        assert inside <= limit, (t, inside)


def test_open_requests_identical_ones_and_a_penalty_survive_a_lost_state(make_pacer):
    clock = FakeClock()
    pacer = make_pacer(clock=clock, rules=PacingRules(max_open=1))

    async def scenario():
        assert await pacer.try_acquire(small(1), clock()) == 0  # stays open
        pacer.penalize(60.0)
        clock.advance(2.0)
        lose_state(pacer)
        # the open slot is taken again: only the lease frees it
        assert await pacer.try_acquire(large(2), clock()) == pytest.approx(OPEN_LEASE_S - 2.0)
        await pacer.release()
        # the identical window and the penalty hold (sent with the first call, 58 s left)
        assert await pacer.try_acquire(small(1), clock()) == pytest.approx(58.0)
        clock.advance(58.0)
        assert await pacer.try_acquire(small(1), clock()) == 0

    run(scenario, pacer)


def test_each_process_restores_its_own_admissions_even_an_idle_one(make_pacer):
    """Two processes on one gateway, 30 small requests each; Redis loses everything. The one
    that asks next finds small requests held for SETTLE_S; meanwhile the idle one, which looks
    at the epoch while it remembers small requests, puts back its thirty. Together the sixty
    are there again before the hold ends."""
    clock = FakeClock()
    gateway = new_gateway()
    one, two = make_pacer(clock=clock, gateway=gateway), make_pacer(clock=clock, gateway=gateway)
    first = clock()

    async def scenario():
        await sixty_small(clock, one, two)
        await asyncio.sleep(0.2)  # `two`'s last release has gone out: it has nothing to send
        lose_state(one)
        # held for SETTLE_S at least (more if `two` has already restored its thirty)
        assert await one.try_acquire(small(60, con_id=60), clock()) >= SETTLE_S - 1e-9
        await asyncio.sleep(POLL_CAP_S + 0.5)  # `two` asks nothing, but looks at the epoch
        clock.advance(SETTLE_S)
        await assert_waits(
            one, small(60, con_id=60), clock, first + PacingRules().scaled(600.0) - clock()
        )

    run(scenario, one, two)


def test_two_processes_never_break_the_rules_together(make_pacer):
    gateway = new_gateway()
    make_pacer(gateway=gateway)  # deletes the gateway's keys at the end
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(target=_acquire_in_a_loop, args=(gateway, barrier, results)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        runs = [results.get(timeout=120) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
    assert all(isinstance(admitted, list) for admitted in runs), runs
    assert [len(admitted) for admitted in runs] == [MP_REQUESTS, MP_REQUESTS]
    # The two runs overlapped in time, so they really competed.
    assert max(min(t for t, _ in a) for a in runs) < min(max(t for t, _ in a) for a in runs)

    r = MP_RULES
    admitted = [(t, mp_key(i)) for run_ in runs for t, i in run_]
    assert_at_most([(t, 1) for t, _ in admitted], 1.0, r.messages_per_s)
    assert_at_most([(t, k.weight) for t, k in admitted], r.scaled(r.total_window_s), r.total_max)
    by_contract = defaultdict(list)
    by_identity = defaultdict(list)
    for t, key in admitted:
        by_contract[key.contract].append((t, key.weight))
        by_identity[key.identity].append(t)
    for events in by_contract.values():
        assert_at_most(events, r.scaled(r.contract_window_s), r.contract_max)
    for times in by_identity.values():
        times.sort()
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= r.scaled(r.identical_window_s) - 1e-9
    # The rules did bind: 40 requests a process cannot all go out at once.
    first, last = min(t for t, _ in admitted), max(t for t, _ in admitted)
    assert last - first > r.scaled(r.total_window_s)


def test_thousands_of_waiters_share_a_few_connections_and_round_trips(make_pacer):
    """3,000 requests wait at once (the 252-request fetch that died with 'Too many connections'
    had far fewer): all are admitted, never more than max_open at a time, through at most
    POOL_MAX connections, with round trips growing with admissions, not waiters times polls."""
    import redis

    rules = PacingRules(messages_per_s=100_000, max_open=50)
    pacer = make_pacer(rules=rules)
    requests, open_now, peak = 3000, 0, 0
    seen_connections = set()
    client = redis.Redis.from_url(REDIS_URL)

    def pacer_connections() -> set[int]:
        name = f"ibdata-pacer:{pacer.holder}"
        return {c["id"] for c in client.client_list() if c.get("name") == name}

    async def one(n: int) -> None:
        nonlocal open_now, peak
        await pacer.acquire(large(n, con_id=n))
        open_now += 1
        peak = max(peak, open_now)
        await asyncio.sleep(0.001)  # the answer arrives
        open_now -= 1
        await pacer.release()

    async def scenario():
        tasks = [asyncio.create_task(one(n)) for n in range(requests)]
        while not all(t.done() for t in tasks):
            seen_connections.update(await asyncio.to_thread(pacer_connections))
            await asyncio.sleep(0.05)
        await asyncio.gather(*tasks)

    try:
        run(scenario, pacer)
    finally:
        client.close()
    assert 0 < len(seen_connections) <= POOL_MAX
    assert peak == rules.max_open
    assert pacer.round_trips <= requests, pacer.round_trips  # 66 seen here
