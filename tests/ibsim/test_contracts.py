"""Contract lookups and the CONTRACT_DATA the gateway answers with (ibsim.contracts)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from ib_insync import Stock
from ib_insync.wrapper import RequestError

from ibsim.contracts import contract_details, listings_for
from ibsim.market import Market
from ibsim.messages import ContractFields, symbol_samples
from ibsim.universe import find
from tests.support import epoch_at, listing

ET = "US/Eastern"
ES = listing("ES", "FUT")


def fields(symbol="", sec_type="", exchange="", currency="USD", con_id=0, **more) -> ContractFields:
    values = dict.fromkeys(ContractFields.__dataclass_fields__, "")
    values.update(
        symbol=symbol, sec_type=sec_type, exchange=exchange, currency=currency, con_id=con_id
    )
    return ContractFields(**values | more)


def test_listings_for_a_contract_request():
    market = Market()
    (aapl,) = find("AAPL", "STK", "SMART", "USD")
    assert listings_for(market, fields("AAPL", "STK", "SMART")) == [aapl]
    assert listings_for(market, fields(con_id=265598, currency="")) == [aapl]
    assert listings_for(market, fields("AAPL", "STK", "SMART", primary_exchange="NYSE")) == []
    es = listings_for(market, fields(sec_type="FUT", exchange="GLOBEX", local_symbol="ESZ4"))
    assert [s.local_symbol for s in es] == ["ESZ4"]


def test_an_expired_future_is_found_only_when_expired_ones_are_asked_for():
    market, expired = Market(), epoch_at("2025-06-02 12:00")  # ESZ4 expired 2024-12-20
    future = fields("ES", "FUT", "CME", local_symbol="ESZ4")
    assert listings_for(market, future, now=epoch_at("2024-06-03 12:00")) == [ES]
    assert listings_for(market, future, now=expired) == []
    assert listings_for(market, replace(future, include_expired=True), now=expired) == [ES]


def test_a_continuous_future_is_answered_as_one():
    details = contract_details(ES, "CME", "", "", sec_type="CONTFUT")
    assert (details.sec_type, details.con_id, details.local_symbol) == (
        "CONTFUT",
        ES.con_id,
        "ESZ4",
    )
    assert contract_details(ES, "CME", "", "").sec_type == "FUT"


def test_contract_details_of_a_stock_and_a_future():
    (aapl,) = find("AAPL", "STK", "SMART", "USD")
    stock = contract_details(aapl, "SMART", "trading", "liquid")
    assert (stock.symbol, stock.exchange, stock.primary_exchange, stock.con_id) == (
        "AAPL",
        "SMART",
        "NASDAQ",
        265598,
    )
    assert stock.valid_exchanges.startswith("SMART,") and stock.valid_exchanges.endswith(",NASDAQ")
    assert (stock.stock_type, stock.multiplier, stock.contract_month) == ("COMMON", "", "")
    assert (stock.trading_hours, stock.liquid_hours) == ("trading", "liquid")
    (es,) = find("ES", "FUT", "CME", "USD")
    future = contract_details(es, "CME", "", "")
    assert (future.valid_exchanges, future.multiplier, future.last_trade_date) == (
        "CME",
        "50",
        "20241220",
    )
    assert (future.contract_month, future.stock_type, future.time_zone_id) == (
        "202412",
        "",
        "US/Central",
    )


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


def test_the_symbol_search_answers_the_closest_instruments(ib, sim):
    """reqMatchingSymbols (81) answered with SYMBOL_SAMPLES (79) as the unmodified client
    decodes it (v176: with description and issuerId)."""
    found = ib.reqMatchingSymbols("SPXX")
    assert [(d.contract.symbol, d.contract.secType, d.contract.primaryExchange) for d in found] == [
        ("SPX", "IND", "CBOE"),
        ("SPY", "STK", "ARCA"),
    ]
    assert found[0].contract.conId == listing("SPX", "IND").con_id
    assert found[0].contract.currency == "USD" and found[0].derivativeSecTypes == []
    assert found[1].contract.description == listing("SPY").long_name
    assert [d.contract.symbol for d in ib.reqMatchingSymbols("apple")] == ["AAPL"]
    assert ib.reqMatchingSymbols("XYZQ") == []
    assert sim.stats.counts["matching_symbols"] == 3


def test_symbol_samples_before_v176_carry_no_description():
    """Before v176 a description is conId, symbol, secType, primaryExchange, currency and the
    derivative types' count (0): six fields."""
    spy = listing("SPY")

    def fields(version: int) -> list[bytes]:
        return symbol_samples(version, 7, [spy]).split(b"\0")

    assert len(fields(176)) - len(fields(175)) == 2
    assert fields(175)[-7:-1] == [str(spy.con_id).encode(), b"SPY", b"STK", b"ARCA", b"USD", b"0"]
