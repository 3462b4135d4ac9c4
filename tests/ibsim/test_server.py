"""The simulator as a whole (ibsim.server): its socket and life cycle, the faults tests trigger,
and the start-up the real ib_insync client goes through, over a real socket."""

from __future__ import annotations

import logging

import pytest
from ib_insync import IB, Stock
from ib_insync.wrapper import RequestError

from tests.support import ErrorLog

# --- connecting -----------------------------------------------------------------------


@pytest.mark.parametrize("readonly", [True, False])
def test_connect_answers_every_start_up_request_quietly(sim, ib_factory, caplog, readonly):
    """A gateway that leaves a start-up request unanswered makes ib_insync wait for its
    timeout and log it; here every one is answered, so it synchronises and warns of nothing."""
    caplog.set_level(logging.INFO, logger="ib_insync")
    ib = ib_factory(sim, readonly=readonly)
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


@pytest.mark.parametrize("version", [157, 163, 165, 176])
def test_every_served_version_decodes_in_ib_insync(sim, version, caplog):
    ib = IB()
    ib.RaiseRequestErrors = True
    ib.client.MaxClientVersion = version
    try:
        ib.connect("127.0.0.1", sim.port, clientId=500 + version, readonly=True, timeout=5)
        assert ib.client.serverVersion() == version
        [aapl] = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
        assert aapl.conId == 265598
        with pytest.raises(RequestError) as info:
            ib.reqContractDetails(Stock("XYZQ", "SMART", "USD"))
        assert info.value.code == 200
        assert not [r for r in caplog.records if "Error handling fields" in r.getMessage()]
    finally:
        ib.disconnect()


# --- faults the tests trigger ---------------------------------------------------------------


def test_connectivity_lost_and_restored(sim, ib):
    errors = ErrorLog(ib)
    sim.call(sim.connectivity_lost)
    ib.sleep(0.2)
    sim.call(sim.connectivity_restored)
    ib.sleep(0.2)
    assert errors.codes() == [1100, 1102]
