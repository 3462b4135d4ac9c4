"""The state every connection shares (ibsim.gateway): client ids, armed faults, connectivity,
open requests, pacing and counters; directly, and across real ib_insync connections."""

from __future__ import annotations

import time

import pytest
from ib_insync import IB, Stock

from ibsim.gateway import Faults
from tests.support import ErrorLog
from tests.support import historical_bars as hist

# --- client ids ---------------------------------------------------------------------------


def test_client_id_in_use_gets_326(sim, ib_factory):
    ib_factory(sim, client_id=7)
    second = IB()
    errors = ErrorLog(second)
    with pytest.raises((ConnectionError, TimeoutError, OSError)):
        second.connect("127.0.0.1", sim.port, clientId=7, timeout=3)
    assert 326 in errors.codes()
    assert not second.isConnected()


# --- pacing and open requests count for the whole gateway ------------------------------------


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
