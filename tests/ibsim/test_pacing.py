"""IBKR's pacing rules (ibsim.pacing): on injected clocks, and as the gateway enforces them for
the real ib_insync client."""

from __future__ import annotations

import time

import pytest
from ib_insync import Stock
from ib_insync.wrapper import RequestError

from tests.support import ErrorLog, recent_sessions
from tests.support import historical_bars as hist

# A recent full session: bars of 30 s or less exist for six months only.
RECENT = recent_sessions(1)[0].strftime("%Y%m%d")


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
