"""The instruments the simulated gateway knows, and IBKR's rules for matching a contract request
(ibsim.universe)."""

from __future__ import annotations

import dataclasses

import pytest

from ibsim.calendars import CALENDAR_START
from ibsim.universe import BY_CON_ID, INSTRUMENTS, find
from tests.support import epoch_at, listing

AAPL = listing("AAPL")
ES = listing("ES", "FUT")
SPX = listing("SPX", "IND")
EURUSD = listing("EUR", "CASH")


def test_universe_has_unique_con_ids_and_the_required_instruments():
    assert len(INSTRUMENTS) >= 30
    assert len({s.con_id for s in INSTRUMENTS}) == len(INSTRUMENTS)
    assert (
        AAPL.con_id == 265598
        and listing("MSFT").con_id == 272093
        and listing("SPY").con_id == 756733
    )
    assert listing("BRK B").primary_exchange == "NYSE"
    assert (ES.exchange, ES.local_symbol, ES.multiplier, ES.last_trade_date) == (
        "CME",
        "ESZ4",
        "50",
        "20241220",
    )
    assert (SPX.sec_type, SPX.exchange, SPX.daily_volume) == ("IND", "CBOE", 0)
    assert (EURUSD.local_symbol, EURUSD.exchange, EURUSD.min_tick) == ("EUR.USD", "IDEALPRO", 5e-5)


def test_find_follows_ibkr_matching():
    assert find("", "", "", "", con_id=265598) == [AAPL]
    assert find("anything", "FUT", "CME", "EUR", con_id=265598) == [AAPL]
    assert find("aapl", "STK", "SMART", "USD") == [AAPL]
    assert find("AAPL", "STK", "NASDAQ", "USD", primary_exchange="NASDAQ") == [AAPL]
    assert find("AAPL", "STK", "SMART", "USD", primary_exchange="NYSE") == []
    assert find("AAPL", "STK", "SMART", "EUR") == []
    assert find("AAPL", "FUT", "", "") == []
    assert find("EUR", "CASH", "IDEALPRO", "USD") == [EURUSD]
    assert find("", "CASH", "", "", local_symbol="EUR.USD") == [EURUSD]
    assert find("ES", "FUT", "CME", "USD", local_symbol="ESZ4") == [ES]
    assert find("ES", "FUT", "CME", "USD", local_symbol="ESH5") == []
    assert find("SPX", "IND", "CBOE", "USD") == [SPX]
    assert find("NOPE", "STK", "SMART", "USD") == []
    assert find("", "STK", "SMART", "USD", con_id=1) == []


def test_symbols_are_matched_as_ibkr_writes_them_and_contfut_is_the_front_future():
    brk = listing("BRK B")
    assert find("BRK.B", "STK", "SMART", "USD") == find("brk-b", "", "", "") == [brk]
    assert find("ES", "CONTFUT", "GLOBEX", "USD") == [ES]
    assert find("SPY", "STK", "ARCA", "USD") == [listing("SPY")]
    assert find("SPY", "STK", "TSE", "USD") == []  # not a US stock venue


@pytest.mark.parametrize(("tick", "decimals"), [(0.01, 2), (0.25, 2), (0.00005, 5), (1.0, 0)])
def test_price_decimals_represent_every_tick(tick, decimals):
    assert dataclasses.replace(AAPL, min_tick=tick).price_decimals == decimals


def test_every_instrument_trades_on_a_calendar_that_starts_before_its_head():
    assert all(BY_CON_ID[s.con_id] is s for s in INSTRUMENTS)
    for instrument in INSTRUMENTS:
        assert instrument.calendar in CALENDAR_START, instrument.symbol
        assert epoch_at(f"{CALENDAR_START[instrument.calendar]} 00:00") < instrument.head_timestamp
    assert AAPL.head_timestamp == epoch_at("1980-12-12 09:30")
