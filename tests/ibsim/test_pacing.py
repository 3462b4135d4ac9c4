"""IBKR's pacing rules (ibsim.pacing): on injected clocks, and as the gateway enforces them for
the real ib_insync client."""

from __future__ import annotations

import time

import pytest
from ib_insync import Stock
from ib_insync.wrapper import RequestError

from ibsim.pacing import HistoricalPacing, MessageRate, ScaledClock, SoftThrottle
from tests.support import ErrorLog, recent_sessions
from tests.support import historical_bars as hist

# A recent full session: bars of 30 s or less exist for six months only.
RECENT = recent_sessions(1)[0].strftime("%Y%m%d")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the clock ----------------------------------------------------------------------------


def test_scaled_clock_counts_from_its_start_at_its_scale():
    source = Clock(500.0)
    clock = ScaledClock(600, source)
    assert clock() == 0.0
    source.now = 501.5
    assert clock() == 900.0  # 1.5 real seconds are 15 gateway minutes
    with pytest.raises(ValueError, match="time scale must be positive"):
        ScaledClock(0)


# --- historical pacing -------------------------------------------------------------------


def test_an_identical_request_waits_15_seconds():
    clock = Clock()
    pacing = HistoricalPacing(clock)
    assert pacing.admit(("same",), ("AAPL", "TRADES"), 1) is None
    clock.now += 14.9
    assert pacing.admit(("same",), ("AAPL", "TRADES"), 1) == "identical request within 15 seconds"
    assert pacing.admit(("other",), ("AAPL", "TRADES"), 1) is None
    clock.now += 0.2
    assert pacing.admit(("same",), ("AAPL", "TRADES"), 1) is None


def test_the_sixth_request_for_a_contract_within_2_seconds_is_refused():
    clock = Clock()
    pacing = HistoricalPacing(clock)
    for i in range(5):
        assert pacing.admit(("trades", i), ("AAPL", "TRADES"), 1) is None
    broken = pacing.admit(("trades", 5), ("AAPL", "TRADES"), 1)
    assert broken == "6 or more requests for the same contract and tick type within 2 seconds"
    assert pacing.admit(("midpoint", 0), ("AAPL", "MIDPOINT"), 1) is None  # another tick type
    clock.now += 2.0  # the five leave the window
    # the refused request did not count: 2 s later it is not an identical one
    assert pacing.admit(("trades", 5), ("AAPL", "TRADES"), 2) is None


def test_more_than_60_requests_within_10_minutes_are_refused():
    clock = Clock()
    pacing = HistoricalPacing(clock)
    for i in range(30):
        assert pacing.admit((i,), (i,), 2) is None  # BID_ASK weighs 2
        clock.now += 1.0
    assert pacing.admit(("last",), ("last",), 1) == "more than 60 requests within 10 minutes"
    clock.now = 1000.0 + 600.0  # the first request leaves the window
    assert pacing.admit(("last",), ("last",), 1) is None


def test_the_message_rate_allows_one_second_of_messages_at_once():
    source = Clock(0.0)
    rate = MessageRate(limit=50, source=source)
    assert [rate.admit() for _ in range(50)] == [None] * 50
    assert rate.admit() == 51
    assert rate.admit() == 52
    source.now = 1.0  # a second later the bucket is full again
    assert [rate.admit() for _ in range(50)] == [None] * 50
    source.now = 1.1
    assert [rate.admit() for _ in range(5)] == [None] * 5
    assert rate.admit() == 51


def test_the_soft_throttle_slows_requests_beyond_its_allowance():
    clock = Clock(0.0)
    throttle = SoftThrottle(clock, free=2, step_s=0.5, window_s=10.0)
    assert [throttle.delay() for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]
    clock.now = 10.0  # those four have left the window
    assert throttle.delay() == 0.0
    off = SoftThrottle(clock)
    assert [off.delay() for _ in range(100)] == [0.0] * 100


# --- the rules as the gateway enforces them -----------------------------------------------


def test_identical_request_within_15s_is_a_pacing_violation(sim_factory, ib_factory):
    sim = sim_factory(time_scale=10)  # 15 s become 1.5 s
    ib = ib_factory(sim)
    aapl = Stock("AAPL", "SMART", "USD")
    end = f"{RECENT} 16:00:00 US/Eastern"
    assert hist(ib, aapl, end, "1800 S", "5 secs")
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, end, "1800 S", "5 secs")
    assert info.value.code == 162 and "pacing violation" in info.value.message
    time.sleep(1.6)
    assert hist(ib, aapl, end, "1800 S", "5 secs")
    assert sim.stats.pacing_violations == 1


def test_six_requests_for_one_contract_in_2s(sim_factory, ib_factory):
    sim = sim_factory(time_scale=1)
    ib = ib_factory(sim)
    aapl = Stock("AAPL", "SMART", "USD")
    for minute in range(5):
        assert hist(ib, aapl, f"{RECENT} 15:{minute:02d}:00 US/Eastern", "60 S", "1 secs")
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, f"{RECENT} 15:10:00 US/Eastern", "60 S", "1 secs")
    assert "pacing violation" in info.value.message
    # another tick type of the same contract is its own budget
    assert hist(ib, aapl, f"{RECENT} 15:10:00 US/Eastern", "60 S", "1 secs", what="MIDPOINT")


def test_bid_ask_counts_twice(sim_factory, ib_factory):
    sim = sim_factory(time_scale=1)
    ib = ib_factory(sim)
    aapl = Stock("AAPL", "SMART", "USD")
    hist(ib, aapl, f"{RECENT} 15:00:00 US/Eastern", "60 S", "1 secs", what="BID_ASK")
    hist(ib, aapl, f"{RECENT} 15:01:00 US/Eastern", "60 S", "1 secs", what="BID_ASK")
    with pytest.raises(RequestError):  # 2 + 2 + 2 = 6 within 2 s
        hist(ib, aapl, f"{RECENT} 15:02:00 US/Eastern", "60 S", "1 secs", what="BID_ASK")
    assert sim.stats.pacing_violations == 1


def test_sixty_requests_in_ten_minutes(sim_factory, ib_factory):
    sim = sim_factory(time_scale=100)  # 10 minutes become 6 s
    ib = ib_factory(sim)
    symbols = [
        "AAPL",
        "MSFT",
        "GOOGL",
        "AMZN",
        "NVDA",
        "META",
        "TSLA",
        "JPM",
        "V",
        "WMT",
        "KO",
        "PEP",
    ]
    violations = 0
    for i in range(61):
        contract = Stock(symbols[i % len(symbols)], "SMART", "USD")
        try:
            hist(ib, contract, f"{RECENT} 15:{i % 60:02d}:00 US/Eastern", "60 S", "5 secs")
        except RequestError as exc:
            assert "pacing violation" in exc.message
            violations += 1
    assert violations == 1  # only the 61st
    assert sim.stats.pacing_violations == 1


def test_large_bars_have_no_hard_pacing(sim_factory, ib_factory):
    sim = sim_factory(time_scale=1)
    ib = ib_factory(sim)
    aapl = Stock("AAPL", "SMART", "USD")
    for _ in range(8):
        assert hist(ib, aapl, "20240105 16:00:00 US/Eastern", "1 D", "1 min")
    assert sim.stats.pacing_violations == 0


def test_more_than_50_messages_per_second_is_error_100(ib):
    errors = ErrorLog(ib)
    ib.client.MaxRequests = 0  # switch off the client's own 45/s throttle
    for _ in range(70):
        ib.client.reqCurrentTime()
    ib.sleep(0.5)
    assert 100 in errors.codes()


def test_the_message_rate_can_be_switched_off(sim_factory, ib_factory):
    sim = sim_factory(message_rate=0)
    ib = ib_factory(sim)
    errors = ErrorLog(ib)
    ib.client.MaxRequests = 0
    for _ in range(200):
        ib.client.reqCurrentTime()
    ib.sleep(0.5)
    assert 100 not in errors.codes()
    assert sim.stats.counts["messages"] >= 200
