"""The state every connection shares (ibsim.gateway): client ids, armed faults, connectivity,
open requests, pacing and counters; directly, and across real ib_insync connections."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from ib_insync import IB, Stock
from ib_insync.wrapper import RequestError

from ibsim.gateway import Event, Fault, Faults, Gateway, SimConfig
from ibsim.market import Market
from ibsim.rules import BAR_SIZES
from tests.support import ErrorLog, recent_sessions
from tests.support import historical_bars as hist

RECENT = recent_sessions(1)[0].strftime("%Y%m%d")


def gateway(**config) -> Gateway:
    return Gateway(SimConfig(**config), Market())


# --- directly -----------------------------------------------------------------------------


def test_a_client_id_is_held_until_released():
    g = gateway()
    assert g.claim_client_id(7)
    assert not g.claim_client_id(7)
    assert g.claim_client_id(8)
    g.release_client_id(7)
    assert g.claim_client_id(7)


def test_faults_go_off_once_at_their_request():
    g = gateway(faults=Faults(drop_after_requests=2, stall_requests=2))
    arrived = [g.historical_arrived() for _ in range(6)]
    assert arrived == [Fault.STALL, Fault.STALL, Fault.DROP, None, None, None]
    assert g.config.faults == Faults()  # every one disarmed itself
    assert g.stats.counts["historical_requests"] == 6


def test_an_outage_holds_answers_until_connectivity_is_restored():
    async def scenario() -> list[bool]:
        g = gateway(faults=Faults(outage_after_requests=1, outage_s=0.05))
        seen = []
        assert g.historical_arrived() is None
        await asyncio.wait_for(g.connected(), 1)  # connected: no wait
        assert g.historical_arrived() is None  # the outage goes off
        waiting = asyncio.ensure_future(g.connected())
        await asyncio.sleep(0.01)
        seen.append(waiting.done())
        await asyncio.wait_for(waiting, 1)  # restored outage_s later
        g.connectivity_lost()
        waiting = asyncio.ensure_future(g.connected())
        await asyncio.sleep(0.01)
        seen.append(waiting.done())
        g.connectivity_restored()
        await asyncio.sleep(0)
        seen.append(waiting.done())
        return seen

    assert asyncio.run(scenario()) == [False, False, True]


def test_answer_delay_is_latency_plus_the_throttle_for_larger_bars():
    g = gateway(latency_s=0.25, throttle_free=1, throttle_step_s=0.5)
    assert [g.answer_delay(BAR_SIZES["1 min"]) for _ in range(3)] == [0.25, 0.75, 1.25]
    assert [g.answer_delay(BAR_SIZES["5 secs"]) for _ in range(3)] == [0.25] * 3


def test_counters_and_their_snapshot():
    g = gateway()
    g.count(Event.MESSAGES)
    g.count(Event.BARS_SERVED, 390)
    g.pacing_violated("identical request within 15 seconds")
    g.error_sent(162)
    g.error_sent(162)
    g.error_sent(2174)
    assert g.stats.pacing_violations == 1
    assert json.loads(json.dumps(g.stats.snapshot())) == {
        "messages": 1,
        "bars_served": 390,
        "pacing_violations": 1,
        "pacing: identical request within 15 seconds": 1,
        "errors": {"162": 2, "2174": 1},
    }


def test_the_present_is_the_wall_clock():
    assert abs(gateway().now() - time.time()) < 1


def test_a_configured_present_moves_on_with_the_wall_clock():
    g = gateway(now=1_717_790_400.0)  # 2024-06-07 20:00 UTC
    first = g.now()
    time.sleep(0.01)
    assert 1_717_790_400.0 <= first < g.now() < 1_717_790_400.0 + 60


def test_the_client_reads_the_configured_present(sim_factory, ib_factory):
    ib = ib_factory(sim_factory(now=1_717_790_400.0))
    assert 0 <= ib.reqCurrentTime().timestamp() - 1_717_790_400 < 60


# --- client ids ---------------------------------------------------------------------------


def test_client_id_in_use_gets_326(sim, ib_factory):
    ib_factory(sim, client_id=7)
    second = IB()
    errors = ErrorLog(second)
    with pytest.raises((ConnectionError, TimeoutError, OSError)):
        second.connect("127.0.0.1", sim.port, clientId=7, timeout=3)
    assert 326 in errors.codes()
    assert not second.isConnected()


def test_a_client_id_is_free_again_once_its_connection_closes(sim, ib_factory):
    first = ib_factory(sim, client_id=9)
    first.disconnect()
    time.sleep(0.2)
    assert ib_factory(sim, client_id=9).isConnected()


# --- pacing and open requests count for the whole gateway ------------------------------------


def test_pacing_counts_every_connection(sim, ib_factory):
    first, second = ib_factory(sim), ib_factory(sim)
    aapl = Stock("AAPL", "SMART", "USD")
    end = f"{RECENT} 16:00:00 US/Eastern"
    assert hist(first, aapl, end, "1800 S", "5 secs")
    with pytest.raises(RequestError) as info:  # identical, from another connection
        hist(second, aapl, end, "1800 S", "5 secs")
    assert "pacing violation" in info.value.message
    assert sim.stats.counts["pacing: identical request within 15 seconds"] == 1


def _request(ib: IB, req_id: int) -> None:
    ib.client.reqHistoricalData(
        req_id,
        Stock("AAPL", "SMART", "USD"),
        f"20240105 15:{req_id % 60:02d}:00 US/Eastern",
        "1 D",
        "1 min",
        "TRADES",
        True,
        1,
        False,
        [],
    )


def _wait(ib: IB, done, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        ib.sleep(0.05)


def test_more_than_50_open_requests_is_322(sim_factory, ib_factory):
    sim = sim_factory(faults=Faults(stall_requests=60))
    ib = ib_factory(sim)
    errors = ErrorLog(ib)
    aapl = Stock("AAPL", "SMART", "USD")
    for i in range(51):
        ib.client.reqHistoricalData(
            1000 + i,
            aapl,
            f"20240105 15:{i % 60:02d}:00 US/Eastern",
            "1 D",
            "1 min",
            "TRADES",
            True,
            1,
            False,
            [],
        )
    deadline = time.monotonic() + 5
    while 322 not in errors.codes() and time.monotonic() < deadline:
        ib.sleep(0.05)
    assert (1050, 322) in [(r, c) for r, c, _ in errors.items]
    for i in range(50):
        ib.client.cancelHistoricalData(1000 + i)
    deadline = time.monotonic() + 5  # the client's own throttle spreads the cancels out
    while sim.stats.counts["cancelled"] < 50 and time.monotonic() < deadline:
        ib.sleep(0.05)
    assert sim.stats.counts["cancelled"] == 50


def test_open_requests_count_across_connections(sim_factory, ib_factory):
    sim = sim_factory(faults=Faults(stall_requests=60))
    first, second = ib_factory(sim), ib_factory(sim)
    errors = ErrorLog(second)
    for i in range(25):
        _request(first, 2000 + i)
    _wait(first, lambda: sim.stats.counts["stalled"] >= 25)
    for i in range(26):
        _request(second, 3000 + i)
    _wait(second, lambda: 322 in errors.codes())
    assert [(r, c) for r, c, _ in errors.items if c == 322] == [(3025, 322)]
    first.disconnect()  # its 25 requests close with it
    _wait(second, lambda: sim.gateway.historical_in_flight() == 25)
    _request(second, 3026)
    _wait(second, lambda: sim.stats.counts["stalled"] == 51)
    assert sim.gateway.historical_in_flight() == 26
    assert [c for c in errors.codes() if c == 322] == [322]


# --- faults -----------------------------------------------------------------------------


def test_stalled_request_waits_for_cancel(sim_factory, ib_factory):
    sim = sim_factory(faults=Faults(stall_requests=1))
    ib = ib_factory(sim)
    bars = hist(
        ib,
        Stock("AAPL", "SMART", "USD"),
        "20240105 16:00:00 US/Eastern",
        "1 D",
        "1 min",
        timeout=0.5,
    )
    assert (
        len(bars) == 0
    )  # ib_insync's own behaviour on timeout: the project must treat it as an error
    ib.sleep(0.2)
    assert sim.stats.counts["stalled"] == 1 and sim.stats.counts["cancelled"] == 1


def test_dropped_connection(sim_factory, ib_factory):
    sim = sim_factory(faults=Faults(drop_after_requests=1))
    ib = ib_factory(sim)
    aapl = Stock("AAPL", "SMART", "USD")
    assert hist(ib, aapl, "20240105 16:00:00 US/Eastern", "1 D", "1 min")
    with pytest.raises(ConnectionError):
        hist(ib, aapl, "20240104 16:00:00 US/Eastern", "1 D", "1 min")
    assert not ib.isConnected()
    # the fault is one-shot: a new connection works
    ib.connect("127.0.0.1", sim.port, clientId=ib.client.clientId, readonly=True, timeout=5)
    assert hist(ib, aapl, "20240104 16:00:00 US/Eastern", "1 D", "1 min")


def test_an_outage_reaches_every_connection_and_data_kept_is_answered(sim_factory, ib_factory):
    sim = sim_factory(faults=Faults(outage_after_requests=0, outage_s=0.3))
    first, second = ib_factory(sim), ib_factory(sim)
    errors = ErrorLog(first), ErrorLog(second)
    started = time.monotonic()
    bars = hist(
        first, Stock("AAPL", "SMART", "USD"), "20240105 16:00:00 US/Eastern", "1 D", "1 min"
    )
    assert len(bars) == 390 and time.monotonic() - started >= 0.3  # held through the outage
    second.sleep(0.1)
    assert [log.codes() for log in errors] == [[1100, 1102], [1100, 1102]]


def test_an_outage_with_data_lost_drops_the_requests_in_flight(sim_factory, ib_factory):
    sim = sim_factory(faults=Faults(outage_after_requests=0, outage_s=0.2, outage_data_lost=True))
    ib = ib_factory(sim)
    errors = ErrorLog(ib)
    bars = hist(
        ib, Stock("AAPL", "SMART", "USD"), "20240105 16:00:00 US/Eastern", "1 D", "1 min", timeout=1
    )
    assert len(bars) == 0  # never answered: the client has to ask again
    assert errors.codes() == [1100, 1101]
    assert sim.stats.counts["lost_in_outage"] == 1 and sim.stats.errors[1101] == 1
    assert hist(ib, Stock("AAPL", "SMART", "USD"), "20240105 16:00:00 US/Eastern", "1 D", "1 min")


# --- transient trouble: farm outage, competing session, false 200, permissions, no data ----


AAPL = Stock("AAPL", "SMART", "USD")
JAN5 = "20240105 16:00:00 US/Eastern"


def _until(ib: IB, done, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        ib.sleep(0.05)


def test_a_farm_outage_stalls_requests_between_2105_and_2106(sim_factory, ib_factory):
    """The historical farm breaks when request 2 arrives: 2105 to every client; request 1 (in
    flight) and request 2 are never answered; a client connecting meanwhile is told the farm is
    broken; 2106 once it is back, and requests are answered again."""
    sim = sim_factory(latency_s=0.3, faults=Faults(farm_outage_after_requests=1, farm_outage_s=1))
    ib = ib_factory(sim)
    errors = ErrorLog(ib)
    first = ib.reqHistoricalDataAsync(AAPL, JAN5, "1 D", "1 min", "TRADES", True, timeout=0)
    in_flight = asyncio.ensure_future(first)
    _until(ib, lambda: sim.stats.counts["historical_requests"] == 1)
    arriving = asyncio.ensure_future(
        ib.reqHistoricalDataAsync(AAPL, "20240104 16:00:00 US/Eastern", "1 D", "1 min", "TRADES",
                                  True, timeout=0)
    )  # fmt: skip
    _until(ib, lambda: 2105 in errors.codes())
    late = IB()  # connects during the outage: told the farm is broken
    late_errors = ErrorLog(late)
    late.connect("127.0.0.1", sim.port, clientId=399, readonly=True, timeout=5)
    _until(ib, lambda: 2106 in errors.codes())
    assert errors.codes() == [2105, 2106]
    late.sleep(0.1)
    assert [c for c in late_errors.codes() if c in (2105, 2106)] == [2105, 2106]
    late.disconnect()
    ib.sleep(0.5)  # more than the latency: nothing comes for the two requests
    assert not in_flight.done() and not arriving.done()
    assert sim.stats.counts["arrived_in_farm_outage"] == 1
    assert sim.stats.counts["lost_in_farm_outage"] == 1
    assert len(hist(ib, AAPL, "20240103 16:00:00 US/Eastern", "1 D", "1 min")) == 390
    in_flight.cancel()
    arriving.cancel()


def test_a_competing_session_answers_10197_for_a_while(sim_factory, ib_factory):
    sim = sim_factory(faults=Faults(competing_after_requests=0, competing_s=0.5))
    ib = ib_factory(sim)
    with pytest.raises(RequestError) as info:
        hist(ib, AAPL, JAN5, "1 D", "1 min")
    assert (info.value.code, info.value.message) == (
        10197,
        "No market data during competing live session",
    )
    with pytest.raises(RequestError) as info:
        ib.reqHeadTimeStamp(AAPL, "TRADES", useRTH=True, formatDate=2)
    assert info.value.code == 10197
    assert ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))  # contract details are served
    bars = []
    deadline = time.monotonic() + 10
    while not bars and time.monotonic() < deadline:
        ib.sleep(0.1)
        with contextlib.suppress(RequestError):
            bars = hist(ib, AAPL, JAN5, "1 D", "1 min")
    assert len(bars) == 390  # the session is over


def test_the_nightly_resets_false_200_for_contracts_that_exist(sim_factory, ib_factory):
    sim = sim_factory(faults=Faults(spurious_200_after_requests=0, spurious_200_s=0.5))
    ib = ib_factory(sim)
    codes = []
    for ask in (
        lambda: hist(ib, AAPL, JAN5, "1 D", "1 min"),
        lambda: ib.reqHeadTimeStamp(AAPL, "TRADES", useRTH=True, formatDate=2),
        lambda: ib.reqContractDetails(Stock("AAPL", "SMART", "USD")),
    ):
        with pytest.raises(RequestError) as info:
            ask()
        codes.append((info.value.code, info.value.message))
    assert codes == [(200, "No security definition has been found for the request")] * 3
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ib.sleep(0.1)
        with contextlib.suppress(RequestError):
            assert ib.reqContractDetails(Stock("AAPL", "SMART", "USD"))
            break
    assert len(hist(ib, AAPL, JAN5, "1 D", "1 min")) == 390
    assert sim.stats.errors[200] >= 3


def test_an_instrument_without_market_data_permission(sim_factory, ib_factory):
    sim = sim_factory(no_permission=frozenset({"AAPL"}))
    ib = ib_factory(sim)
    [aapl] = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))  # contract details: served
    with pytest.raises(RequestError) as head:
        ib.reqHeadTimeStamp(aapl, "TRADES", useRTH=True, formatDate=2)
    with pytest.raises(RequestError) as bars:
        hist(ib, aapl, JAN5, "1 D", "1 min")
    assert (head.value.code, head.value.message) == (
        354,
        "Requested market data is not subscribed.",
    )
    assert (bars.value.code, bars.value.message) == (
        162,
        "Historical Market Data Service error message:No market data permissions for ISLAND STK",
    )
    assert len(hist(ib, Stock("MSFT", "SMART", "USD"), JAN5, "1 D", "1 min")) == 390


def test_no_data_answers_for_windows_with_bars_drawn_from_a_seed():
    def draws(seed: int) -> list[bool]:
        g = gateway(faults=Faults(no_data_rate=0.25, no_data_seed=seed))
        return [g.no_data_glitch() for _ in range(400)]

    assert draws(7) == draws(7) != draws(8)
    assert 60 < sum(draws(7)) < 140
    assert not any(gateway().no_data_glitch() for _ in range(100))


def test_a_no_data_glitch_over_the_socket(sim_factory, ib_factory):
    sim = sim_factory(faults=Faults(no_data_rate=1.0))
    ib = ib_factory(sim)
    with pytest.raises(RequestError) as info:
        hist(ib, AAPL, JAN5, "1 D", "1 min")
    assert info.value.code == 162 and "HMDS query returned no data" in info.value.message
    assert sim.stats.counts["no_data_glitches"] == 1
