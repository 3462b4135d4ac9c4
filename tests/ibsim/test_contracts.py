"""Contract lookups and the CONTRACT_DATA the gateway answers with (ibsim.contracts)."""

from __future__ import annotations

import pytest
from ib_insync import Stock
from ib_insync.wrapper import RequestError

ET = "US/Eastern"


def test_qualify_aapl(ib):
    [aapl] = ib.qualifyContracts(Stock("AAPL", "SMART", "USD"))
    assert aapl.conId == 265598
    assert aapl.primaryExchange == "NASDAQ"
    [details] = ib.reqContractDetails(Stock("AAPL", "SMART", "USD"))
    assert details.longName.upper().startswith("APPLE")
    assert details.timeZoneId == ET
    assert details.minTick == 0.01
    assert "CLOSED" in details.tradingHours or ":" in details.tradingHours
    assert details.liquidHours


def test_unknown_symbol_is_error_200(ib):
    with pytest.raises(RequestError) as info:
        ib.reqContractDetails(Stock("XYZQ", "SMART", "USD"))
    assert info.value.code == 200
    assert "No security definition" in info.value.message
