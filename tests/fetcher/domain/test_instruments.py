"""Instrument specs: parsing what users type, duplicates, stored fields and JSON, time zones."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from fetcher.domain.instruments import (
    CONTRACT_FIELDS,
    InstrumentSpec,
    instrument_spec_parse,
    instrument_specs_parse,
    spec_time_zone,
)
from fetcher.exceptions import InvalidInput


def fields(spec: InstrumentSpec) -> tuple:
    return (spec.symbol, spec.sec_type, spec.exchange, spec.primary_exchange, spec.currency)


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("AAPL", {}, ("AAPL", "STK", "SMART", "", "USD")),
        ("aapl", {}, ("AAPL", "STK", "SMART", "", "USD")),
        ("SPY:ARCA", {}, ("SPY", "STK", "SMART", "ARCA", "USD")),
        ("SPY:ARCA", {"exchange": "island"}, ("SPY", "STK", "ISLAND", "ARCA", "USD")),
        ("SAP", {"exchange": "IBIS", "currency": "eur"}, ("SAP", "STK", "IBIS", "", "EUR")),
        ("BRK B", {}, ("BRK B", "STK", "SMART", "", "USD")),
        ("EUR.USD", {}, ("EUR", "CASH", "IDEALPRO", "", "USD")),
        ("eur.jpy", {}, ("EUR", "CASH", "IDEALPRO", "", "JPY")),
        ("EURUSD", {"sec_type": "cash"}, ("EUR", "CASH", "IDEALPRO", "", "USD")),
        ("EUR.USD:IDEALPRO", {}, ("EUR", "CASH", "IDEALPRO", "", "USD")),
        ("EURUSD", {}, ("EURUSD", "STK", "SMART", "", "USD")),  # no dot, no CASH: a stock
        ("ES:CME", {}, ("ES", "FUT", "CME", "", "USD")),
        ("CL:NYMEX", {}, ("CL", "FUT", "NYMEX", "", "USD")),
        ("ES", {"sec_type": "CONTFUT", "exchange": "cme"}, ("ES", "CONTFUT", "CME", "", "USD")),
        ("SPX", {"sec_type": "IND"}, ("SPX", "IND", "CBOE", "", "USD")),
        ("NDX:NASDAQ", {"sec_type": "ind"}, ("NDX", "IND", "NASDAQ", "", "USD")),
    ],
)
def test_parse(text, options, expected):
    spec = instrument_spec_parse(text, **options)
    assert fields(spec) == expected
    assert spec.text == text and spec.label == text
    assert spec.last_trade_date == "" and spec.con_id is None


def test_surrounding_spaces_are_not_part_of_the_spec():
    spec = instrument_spec_parse("  SPY:ARCA ")
    assert fields(spec) == ("SPY", "STK", "SMART", "ARCA", "USD") and spec.text == "SPY:ARCA"


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("AA$PL", {}, "malformed instrument 'AA$PL': use SYMBOL, SYMBOL:EXCHANGE or EUR.USD"),
        ("", {}, "malformed instrument ''"),
        (":ARCA", {}, "malformed instrument"),
        ("SPY:", {}, "malformed instrument"),
        ("SPY:A", {}, "malformed instrument"),  # an exchange has two letters at least
        ("A" * 32, {}, "malformed instrument"),
        ("AAPL", {"sec_type": "BOND"}, "unknown security type 'BOND': use one of STK, CASH"),
        ("EUR.USD", {"currency": "JPY"}, "'EUR.USD' is quoted in USD, not JPY"),
        ("ES", {"sec_type": "FUT"}, "'ES': a FUT needs an exchange"),
        ("BTC", {"sec_type": "CRYPTO"}, "a CRYPTO needs an exchange"),
    ],
)
def test_parse_refuses(text, options, message):
    with pytest.raises(InvalidInput) as caught:
        instrument_spec_parse(text, **options)
    assert message in str(caught.value)


def test_a_list_drops_duplicates_and_keeps_the_order_of_first_mention():
    specs = instrument_specs_parse("MSFT, aapl,AAPL,SPY:ARCA,msft,SPY,EUR.USD,eur.usd")
    assert [s.text for s in specs] == ["MSFT", "aapl", "SPY:ARCA", "SPY", "EUR.USD"]
    assert [s.symbol for s in specs] == ["MSFT", "AAPL", "SPY", "SPY", "EUR"]


def test_a_list_applies_the_options_to_every_instrument():
    specs = instrument_specs_parse("ES,NQ:CBOT", sec_type="FUT", exchange="CME")
    assert [fields(s) for s in specs] == [
        ("ES", "FUT", "CME", "", "USD"),
        ("NQ", "FUT", "CBOT", "", "USD"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no instruments given: e.g. AAPL,MSFT"),
        ("", "no instruments given"),
        ("   ", "no instruments given"),
        ("AAPL,,MSFT", "malformed instrument list 'AAPL,,MSFT': empty item between commas"),
        ("AAPL,", "empty item between commas"),
        ("AAPL,AA$PL", "malformed instrument 'AA$PL'"),
    ],
)
def test_a_list_refuses(text, message):
    with pytest.raises(InvalidInput) as caught:
        instrument_specs_parse(text)
    assert message in str(caught.value)


@dataclass
class Listing:
    """A row holding contract fields but no last trade date (as an Instrument row)."""

    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    con_id: int | None


SPECS = [
    instrument_spec_parse("SPY:ARCA"),
    instrument_spec_parse("EUR.USD"),
    instrument_spec_parse("ES:CME"),
    instrument_spec_parse("SPX", sec_type="IND"),
    InstrumentSpec("ESZ4", "FUT", "CME", "", "USD", "20241220", "ESZ4", con_id=495512563),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_contract_fields_round_trip(spec):
    stored = spec.contract_fields()
    assert tuple(stored) == CONTRACT_FIELDS and "text" not in stored
    again = InstrumentSpec.from_contract_fields(spec, text=spec.text)
    assert again == spec
    assert InstrumentSpec.from_contract_fields(spec).text == ""


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_json_round_trip_keeps_how_the_user_typed_it(spec):
    data = spec.to_json()
    assert data["text"] == spec.text and data["con_id"] == spec.con_id
    assert InstrumentSpec.from_json(data) == spec


def test_a_row_without_a_field_takes_its_default():
    row = Listing("AAPL", "STK", "SMART", "NASDAQ", "USD", con_id=265598)
    spec = InstrumentSpec.from_contract_fields(row, text="AAPL")
    assert spec == InstrumentSpec("AAPL", "STK", "SMART", "NASDAQ", "USD", "", "AAPL", 265598)
    assert InstrumentSpec.from_json({"symbol": "AAPL"}) == InstrumentSpec("AAPL")


def test_label_is_the_text_or_else_the_symbol():
    assert InstrumentSpec("AAPL", text="aapl").label == "aapl"
    assert InstrumentSpec("AAPL").label == "AAPL"


@pytest.mark.parametrize(
    ("spec", "zone"),
    [
        (instrument_spec_parse("AAPL"), "America/New_York"),
        (instrument_spec_parse("SPX", sec_type="IND"), "America/New_York"),
        (instrument_spec_parse("EUR.JPY"), "America/New_York"),
        (instrument_spec_parse("ES:CME"), "America/Chicago"),
        (instrument_spec_parse("VX:CFE"), "America/Chicago"),
        (instrument_spec_parse("ES", sec_type="CONTFUT", exchange="GLOBEX"), "America/Chicago"),
        (instrument_spec_parse("FDAX:EUREX"), None),
        (instrument_spec_parse("SAP", exchange="IBIS", currency="EUR"), None),
    ],
    ids=lambda v: getattr(v, "label", v),
)
def test_spec_time_zone_before_the_gateway_is_asked(spec, zone):
    assert spec_time_zone(spec) == zone


@pytest.mark.parametrize(
    ("text", "exchange"),
    [("SPX", "CBOE"), ("SPX:CBOE", "CBOE"), ("vix", "CBOE"), ("NDX", "NASDAQ")],
)
def test_a_known_index_symbol_is_the_index(text, exchange):
    spec = instrument_spec_parse(text)
    assert (spec.sec_type, spec.exchange, spec.primary_exchange) == ("IND", exchange, "")


def test_a_known_index_symbol_on_another_exchange_or_type_is_what_it_says():
    assert instrument_spec_parse("SPX:ARCA").sec_type == "STK"
    assert instrument_spec_parse("SPX", sec_type="STK").sec_type == "STK"
