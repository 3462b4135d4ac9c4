"""The simulator as a whole (ibsim.server): its socket and life cycle, the faults tests trigger,
and the start-up the real clients (ib_insync, ib_async) go through, over a real socket."""

from __future__ import annotations

import contextlib
import importlib
import logging
import socket
import time

import pytest
from ib_insync import IB, Stock

from fetcher.ibkr.types import CLIENT_LIBRARIES
from ibsim.server import Faults, GatewaySimulator, SimConfig
from tests.support import ErrorLog, recent_sessions
from tests.support import historical_bars as hist

RECENT = recent_sessions(1)[0].strftime("%Y%m%d")


def _wait_disconnected(ib: IB, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while ib.isConnected() and time.monotonic() < deadline:
        with contextlib.suppress(ConnectionError):  # ib_insync's sleep raises it on a close
            ib.sleep(0.05)


# --- connecting -----------------------------------------------------------------------


@pytest.mark.parametrize("library", CLIENT_LIBRARIES)
@pytest.mark.parametrize("readonly", [True, False])
def test_connect_answers_every_start_up_request_quietly(sim, ib_factory, caplog, readonly, library):
    """A gateway that leaves a start-up request unanswered makes the client (ib_insync, or
    ib_async) wait for its timeout and log it; here every one is answered, so it synchronises and
    warns of nothing."""
    caplog.set_level(logging.INFO, logger=library)
    ib = ib_factory(sim, readonly=readonly, library=library)
    assert ib.isConnected()
    assert ib.client.serverVersion() == 176
    assert ib.managedAccounts() == ["DU1234567"]
    messages = [r.getMessage() for r in caplog.records]
    assert "Synchronization complete" in messages
    assert sim.stats.counts["unsupported"] == 0
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]
    farm = [r.getMessage() for r in caplog.records if "farm connection is OK" in r.getMessage()]
    assert len(farm) == 3


@pytest.mark.parametrize("library", CLIENT_LIBRARIES)
@pytest.mark.parametrize("version", [157, 163, 165, 176])
def test_every_served_version_decodes_in_either_client(sim, version, library, caplog):
    client = importlib.import_module(library)
    ib = client.IB()
    ib.RaiseRequestErrors = True
    ib.client.MaxClientVersion = version
    try:
        ib.connect("127.0.0.1", sim.port, clientId=500 + version, readonly=True, timeout=5)
        assert ib.client.serverVersion() == version
        [aapl] = ib.qualifyContracts(client.Stock("AAPL", "SMART", "USD"))
        assert aapl.conId == 265598
        with pytest.raises(client.RequestError) as info:
            ib.reqContractDetails(client.Stock("XYZQ", "SMART", "USD"))
        assert info.value.code == 200
        assert not [r for r in caplog.records if "Error handling fields" in r.getMessage()]
    finally:
        ib.disconnect()


# --- life cycle ----------------------------------------------------------------------------


def test_port_0_takes_a_free_port_and_a_taken_port_fails_the_start(sim):
    assert sim.config.port == 0 and sim.port > 0
    with pytest.raises(OSError):
        GatewaySimulator(SimConfig(port=sim.port)).start_in_thread()


def test_stopping_closes_every_connection(sim_factory, ib_factory):
    sim = sim_factory()
    clients = [ib_factory(sim), ib_factory(sim)]
    sim.stop_thread()
    for ib in clients:
        _wait_disconnected(ib)
        assert not ib.isConnected()
    assert sim.stats.counts["connections"] == 2


def test_each_simulator_is_a_gateway_of_its_own(sim_factory, ib_factory):
    """IBKR counts pacing per gateway: an identical request on another gateway is not one."""
    first, second = sim_factory(), sim_factory()
    aapl = Stock("AAPL", "SMART", "USD")
    end = f"{RECENT} 16:00:00 US/Eastern"
    assert hist(ib_factory(first), aapl, end, "1800 S", "5 secs")
    assert hist(ib_factory(second), aapl, end, "1800 S", "5 secs")
    assert first.stats.pacing_violations == second.stats.pacing_violations == 0
    assert first.stats.counts["historical_requests"] == 1


# --- faults the tests trigger ---------------------------------------------------------------


def test_connectivity_lost_and_restored(sim, ib):
    errors = ErrorLog(ib)
    sim.call(sim.connectivity_lost)
    ib.sleep(0.2)
    sim.call(sim.connectivity_restored)
    ib.sleep(0.2)
    assert errors.codes() == [1100, 1102]


def test_drop_all_closes_every_connection_and_the_gateway_stays(sim, ib_factory):
    clients = [ib_factory(sim, client_id=61), ib_factory(sim, client_id=62)]
    sim.call(sim.drop_all)
    for ib in clients:
        _wait_disconnected(ib)
        assert not ib.isConnected()
    time.sleep(0.2)  # the client ids are free again
    assert ib_factory(sim, client_id=61).reqCurrentTime()


# --- the gateway's life: a daily restart, a log-off, a log-in ------------------------------


def _refused(port: int) -> bool:
    """Whether a connection to the port is refused (nothing listens there)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _until(done, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    return done()


def test_a_daily_restart_drops_every_connection_and_refuses_the_port_a_while(
    sim_factory, ib_factory
):
    sim = sim_factory(faults=Faults(restart_after_requests=1, restart_down_s=1.0))
    first, second = ib_factory(sim, client_id=71), ib_factory(sim, client_id=72)
    aapl = Stock("AAPL", "SMART", "USD")
    assert hist(first, aapl, "20240105 16:00:00 US/Eastern", "1 D", "1 min")
    with pytest.raises(ConnectionError):  # request 2 sets the restart off
        hist(first, aapl, "20240104 16:00:00 US/Eastern", "1 D", "1 min")
    for ib in (first, second):
        _wait_disconnected(ib)
        assert not ib.isConnected()
    assert _refused(sim.port)
    assert _until(lambda: not _refused(sim.port))  # up again, on the same port
    again = ib_factory(sim, client_id=71)  # the client ids are free again
    assert hist(again, aapl, "20240104 16:00:00 US/Eastern", "1 D", "1 min")
    assert sim.stats.counts["restarts"] == 1


def test_a_logged_off_gateway_refuses_connections_until_logged_in(sim_factory, ib_factory):
    sim = sim_factory(logged_off=True)
    assert _refused(sim.port)
    time.sleep(0.5)
    assert _refused(sim.port)  # no time heals it: someone has to log in
    sim.call(sim.log_in)
    assert _until(lambda: not _refused(sim.port))
    ib = ib_factory(sim)
    aapl = Stock("AAPL", "SMART", "USD")
    assert hist(ib, aapl, "20240105 16:00:00 US/Eastern", "1 D", "1 min")
    sim.config.faults.log_off_after_requests = 1  # the weekly log-off, at the next request
    with pytest.raises(ConnectionError):
        hist(ib, aapl, "20240104 16:00:00 US/Eastern", "1 D", "1 min")
    _wait_disconnected(ib)
    assert _refused(sim.port)
    time.sleep(0.5)
    assert _refused(sim.port) and sim.stats.counts["log_offs"] == 1
    sim.call(sim.log_in)
    assert _until(lambda: not _refused(sim.port))
    assert hist(ib_factory(sim), aapl, "20240104 16:00:00 US/Eastern", "1 D", "1 min")


def test_a_stopped_simulator_does_not_open_its_port_again(sim_factory):
    sim = sim_factory()
    sim.call(sim.gateway.restart, 0.3)
    assert _until(lambda: _refused(sim.port))
    sim.stop_thread()
    time.sleep(0.5)
    assert _refused(sim.port)
