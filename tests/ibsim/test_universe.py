"""The instruments the simulated gateway knows, and IBKR's rules for matching a contract request
(ibsim.universe)."""

from __future__ import annotations

import dataclasses

import pytest

from ibsim.calendars import CALENDAR_START
from ibsim.universe import BY_CON_ID, INSTRUMENTS, QUOTES_START, find, head_of
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


def test_quote_history_begins_years_after_the_trades_except_for_a_currency_pair():
    assert head_of(AAPL, "TRADES") == AAPL.head_timestamp == epoch_at("1980-12-12 09:30")
    for what in ("BID", "ASK", "BID_ASK", "MIDPOINT"):
        assert head_of(AAPL, what) == QUOTES_START == epoch_at("2004-01-02 09:30")
    meta = listing("META")  # listed after QUOTES_START: quotes from its first day
    assert head_of(meta, "BID") == meta.head_timestamp
    assert head_of(EURUSD, "BID") == head_of(EURUSD, "MIDPOINT") == EURUSD.head_timestamp


def test_what_the_data_farm_calls_an_instrument_and_when_a_future_expires():
    assert (EURUSD.data_name, AAPL.data_name, ES.data_name) == ("EUR.USD", "AAPL", "ES")
    assert ES.expiry == epoch_at("2024-12-20 19:00")  # the end of its last trading day, UTC
    assert AAPL.expiry is None


def test_splits_are_the_real_ones():
    splits = {s.symbol: s.splits for s in INSTRUMENTS if s.splits}
    assert splits == {
        "AAPL": (("2014-06-09", 7.0), ("2020-08-31", 4.0)),
        "GOOGL": (("2022-07-18", 20.0),),
        "AMZN": (("2022-06-06", 20.0),),
        "NVDA": (("2021-07-20", 4.0), ("2024-06-10", 10.0)),
        "TSLA": (("2020-08-31", 5.0), ("2022-08-25", 3.0)),
    }
