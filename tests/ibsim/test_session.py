"""One client connection (ibsim.session): the handshake, the start-up answers, dispatch, and
historical answers, as the real ib_insync client (or a raw socket) sees them."""

from __future__ import annotations

import datetime as dt
import socket
import struct

import pytest
from ib_insync import Contract, Forex, Stock
from ib_insync.wrapper import RequestError

from tests.support import ErrorLog, epoch_at
from tests.support import historical_bars as hist

ET = "US/Eastern"


def as_tuples(bars):
    return [(b.date, b.open, b.high, b.low, b.close, b.volume, b.average, b.barCount) for b in bars]


# --- start-up requests ------------------------------------------------------------------


def test_current_time_and_market_data_type(ib):
    ib.reqMarketDataType(4)
    now = ib.reqCurrentTime()
    assert abs((now - dt.datetime.now(dt.UTC)).total_seconds()) < 5


def test_accounts_are_the_configured_ones(sim_factory, ib_factory):
    sim = sim_factory(accounts=("DU1111111", "DU2222222"))
    ib = ib_factory(sim)
    assert ib.managedAccounts() == ["DU1111111", "DU2222222"]
    summary = ib.accountSummary()
    assert {(v.account, v.tag) for v in summary} == {
        (account, tag)
        for account in ("DU1111111", "DU2222222")
        for tag in ("AccountType", "NetLiquidation")
    }
    assert {v.value for v in summary if v.tag == "NetLiquidation"} == {"1000000.00"}


# --- contracts and head timestamps --------------------------------------------------------


def test_head_timestamp(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    head = ib.reqHeadTimeStamp(aapl, "TRADES", useRTH=True, formatDate=1)
    assert head.date() == dt.date(1980, 12, 12)
    bars = hist(ib, aapl, "19801231 23:00:00 US/Eastern", "1 M", "1 day")
    first = bars[0].date
    assert first >= head.date()


def test_head_timestamp_as_epoch_and_its_errors(sim, ib):
    aapl = Stock("AAPL", "SMART", "USD")
    head = ib.reqHeadTimeStamp(aapl, "TRADES", useRTH=True, formatDate=2)
    assert head == dt.datetime(1980, 12, 12, 14, 30, tzinfo=dt.UTC)
    with pytest.raises(RequestError) as info:  # forex has no TRADES
        ib.reqHeadTimeStamp(Forex("EURUSD"), "TRADES", useRTH=True, formatDate=1)
    assert info.value.code == 162
    with pytest.raises(RequestError) as info:
        ib.reqHeadTimeStamp(Stock("XYZQ", "SMART", "USD"), "TRADES", useRTH=True, formatDate=1)
    assert info.value.code == 200
    assert sim.stats.counts["head_timestamps"] == 3


# --- bars -----------------------------------------------------------------------------


def test_aapl_daily_january_2024_is_21_bars(ib):
    bars = hist(ib, Stock("AAPL", "SMART", "USD"), "20240131 23:59:59 US/Eastern", "1 M", "1 day")
    dates = [b.date for b in bars]
    assert len(bars) == 21
    assert dates[0] == dt.date(2024, 1, 2) and dates[-1] == dt.date(2024, 1, 31)
    assert dt.date(2024, 1, 15) not in dates  # Martin Luther King Jr. Day
    for b in bars:
        assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        assert b.volume >= 0


def test_one_minute_rth_session_is_390_bars(ib):
    bars = hist(ib, Stock("AAPL", "SMART", "USD"), "20240102 16:00:00 US/Eastern", "1 D", "1 min")
    assert len(bars) == 390
    assert bars[0].date == dt.datetime(2024, 1, 2, 9, 30, tzinfo=bars[0].date.tzinfo)
    assert bars[-1].date.strftime("%H:%M") == "15:59"


def test_early_close_is_210_bars(ib):
    bars = hist(ib, Stock("AAPL", "SMART", "USD"), "20231124 23:00:00 US/Eastern", "1 D", "1 min")
    assert len(bars) == 210
    assert bars[-1].date.strftime("%H:%M") == "12:59"


def test_extended_hours_add_bars(ib):
    bars = hist(
        ib, Stock("AAPL", "SMART", "USD"), "20240102 20:00:00 US/Eastern", "1 D", "1 min", rth=False
    )
    assert len(bars) == 960
    assert bars[0].date.strftime("%H:%M") == "04:00"


def test_epoch_dates_with_format_date_2(ib):
    bars = hist(ib, Stock("AAPL", "SMART", "USD"), "20240102-21:00:00", "1 D", "1 min", fmt=2)
    assert len(bars) == 390
    assert bars[0].date == dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)


def test_chunking_gives_identical_bars(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    whole = hist(ib, aapl, "20240112 20:00:00 US/Eastern", "1 W", "5 mins", rth=False)
    parts = []
    for day in ("20240108", "20240109", "20240110", "20240111", "20240112"):
        parts += hist(ib, aapl, f"{day} 20:00:00 US/Eastern", "1 D", "5 mins", rth=False)
    assert len(whole) == 5 * 16 * 12
    assert as_tuples(whole) == as_tuples(parts)


def test_daily_bar_aggregates_its_minutes(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    [day] = hist(ib, aapl, "20240103 23:00:00 US/Eastern", "1 D", "1 day")
    minutes = hist(ib, aapl, "20240103 23:00:00 US/Eastern", "1 D", "1 min")
    assert day.open == minutes[0].open and day.close == minutes[-1].close
    assert day.high == max(b.high for b in minutes) and day.low == min(b.low for b in minutes)
    assert day.volume == sum(b.volume for b in minutes)


def test_forex_has_no_trades_but_has_midpoint(ib):
    eurusd = Forex("EURUSD")
    with pytest.raises(RequestError) as info:
        hist(ib, eurusd, "20240105 17:00:00 US/Eastern", "1 D", "1 hour")
    assert info.value.code == 162
    bars = hist(
        ib, eurusd, "20240105 17:00:00 US/Eastern", "1 D", "1 hour", what="MIDPOINT", rth=False
    )
    assert len(bars) == 24


def test_future_and_index_serve_bars(sim_factory, ib_factory):
    ib = ib_factory(sim_factory(now=epoch_at("2024-06-07 16:00")))  # before ESZ4 expired
    es = Contract(
        symbol="ES",
        secType="FUT",
        exchange="CME",
        currency="USD",
        lastTradeDateOrContractMonth="20241220",
    )
    assert hist(ib, es, "20240105 17:00:00 US/Eastern", "1 D", "1 hour", rth=False)
    spx = Contract(symbol="SPX", secType="IND", exchange="CBOE", currency="USD")
    bars = hist(ib, spx, "20240105 17:00:00 US/Eastern", "1 D", "1 hour")
    assert len(bars) == 7


def test_empty_window_is_no_data_error(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, "20240101 23:00:00 US/Eastern", "3600 S", "1 min")  # New Year's Day
    assert info.value.code == 162 and "HMDS query returned no data" in info.value.message


def test_prices_carry_the_contracts_decimals_and_are_counted(sim, ib):
    eurusd = Forex("EURUSD")
    bars = hist(ib, eurusd, "20240105 17:00:00 US/Eastern", "1 D", "1 hour", what="MIDPOINT")
    ticks = [round(b.close / 0.00005, 6) for b in bars]
    assert ticks == [round(t) for t in ticks]  # EUR.USD moves in ticks of 0.00005
    assert sim.stats.counts["bars_served"] == len(bars) == 24
    assert sim.stats.counts["historical_requests"] == 1


# --- dispatch ---------------------------------------------------------------------------


def test_unknown_message_gets_an_error_not_a_hang(ib):
    errors = ErrorLog(ib)
    ib.client.send(3, 55, "AAPL")  # placeOrder with orderId 55
    ib.client.send(12345, 1)
    ib.sleep(0.3)
    codes = [(r, c) for r, c, _ in errors.items]
    assert (55, 321) in codes and (-1, 321) in codes


def test_malformed_messages_are_answered_and_the_connection_stays(sim, ib):
    errors = ErrorLog(ib)
    ib.client.send("x", 1)  # not a message id
    ib.client.send(20, 9001)  # a historical request cut short
    ib.reqMktData(Stock("AAPL", "SMART", "USD"))  # not served: its own request id is answered
    ib.sleep(0.3)
    assert (-1, 10000) in [(r, c) for r, c, _ in errors.items]
    [(_, _, text)] = [item for item in errors.items if item[0] == 9001]
    assert text.startswith("Error validating request.-'bX' : cause - malformed:")
    market_data = [r for r, c, _ in errors.items if c == 321 and r not in (-1, 9001)]
    assert len(market_data) == 1 and market_data[0] > 0
    assert sim.stats.counts["unsupported"] == 1
    assert ib.reqCurrentTime()


# --- raw socket: version negotiation --------------------------------------------------------


def _frame(text: str) -> bytes:
    body = text.encode() + b"\0"
    return struct.pack(">I", len(body)) + body


def _read_frame(sock) -> list[str]:
    header = sock.recv(4, socket.MSG_WAITALL)
    if len(header) < 4:
        return []
    (size,) = struct.unpack(">I", header)
    body = sock.recv(size, socket.MSG_WAITALL)
    return body.decode().split("\0")[:-1]


@pytest.mark.parametrize(
    ("offer", "expected"),
    [("v100..200", "176"), ("v157..176", "176"), ("v157..160", "160"), ("v163..163", "163")],
)
def test_version_negotiation(sim, offer, expected):
    with socket.create_connection(("127.0.0.1", sim.port), timeout=3) as sock:
        sock.sendall(b"API\0" + _frame(offer))
        fields = _read_frame(sock)
        assert len(fields) == 2 and fields[0] == expected
        sock.sendall(_frame("71\x002\x0042\x00"))
        assert _read_frame(sock) == ["9", "1", "1"]
        assert _read_frame(sock) == ["15", "1", "DU1234567"]


def test_old_client_is_refused(sim):
    with socket.create_connection(("127.0.0.1", sim.port), timeout=3) as sock:
        sock.sendall(b"API\0" + _frame("v100..150"))
        fields = _read_frame(sock)
        assert fields[:4] == ["4", "2", "-1", "503"]
        assert "157..176" in fields[4]
        assert sock.recv(1) == b""  # closed


def test_a_malformed_version_range_is_refused(sim):
    with socket.create_connection(("127.0.0.1", sim.port), timeout=3) as sock:
        sock.sendall(b"API\0" + _frame("hello"))
        assert _read_frame(sock)[3:5] == ["503", "Malformed API version range"]
        assert sock.recv(1) == b""
    assert sim.stats.counts["refused_versions"] == 1


def test_nothing_goes_out_between_the_handshake_and_start_api(sim):
    with socket.create_connection(("127.0.0.1", sim.port), timeout=3) as sock:
        sock.sendall(b"API\0" + _frame("v157..176"))
        assert _read_frame(sock)[0] == "176"
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        sock.settimeout(3)
        sock.sendall(_frame("49\x001"))  # reqCurrentTime before startApi: not answered
        sock.sendall(_frame("71\x002\x0043\x00"))
        assert _read_frame(sock) == ["9", "1", "1"]


def test_a_peer_that_does_not_speak_the_protocol_is_closed_without_an_answer(sim):
    with socket.create_connection(("127.0.0.1", sim.port), timeout=3) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert sock.recv(1) == b""


# --- habits of a real gateway, for the real client ------------------------------------------


def test_quote_bars_carry_volume_wap_and_count_as_minus_one(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    for what in ("MIDPOINT", "BID", "ASK", "BID_ASK"):
        bars = hist(ib, aapl, "20240105 16:00:00 US/Eastern", "1800 S", "1 min", what=what)
        assert {(b.volume, b.average, b.barCount) for b in bars} == {(-1, -1, -1)}, what
    [trades] = hist(ib, aapl, "20240105 23:00:00 US/Eastern", "1 D", "1 day")
    assert trades.volume > 0 and trades.average > 0 and trades.barCount > 0


def test_the_no_data_text_names_a_currency_pair_as_ibkr_does(ib):
    with pytest.raises(RequestError) as info:  # a Saturday
        hist(ib, Forex("EURUSD"), "20240106 12:00:00 US/Eastern", "3600 S", "1 min", "MIDPOINT")
    assert info.value.message.endswith("HMDS query returned no data: EUR.USD@IDEALPRO Midpoint")


def test_an_expired_future_needs_include_expired_and_is_gone_two_years_after(
    sim_factory, ib_factory
):
    def es(**more):
        return Contract(symbol="ES", secType="FUT", exchange="CME", currency="USD", **more)

    ib = ib_factory(sim_factory(now=epoch_at("2025-03-03 12:00")))  # ESZ4 expired 2024-12-20
    with pytest.raises(RequestError) as info:
        ib.reqContractDetails(es())
    assert info.value.code == 200
    [details] = ib.reqContractDetails(es(includeExpired=True))
    assert details.contract.lastTradeDateOrContractMonth == "20241220"
    end = "20241231 23:00:00 US/Eastern"
    bars = hist(ib, es(includeExpired=True), end, "1 M", "1 day", rth=False)
    assert bars[-1].date == dt.date(2024, 12, 20)  # its last trading day, and nothing after
    with pytest.raises(RequestError) as info:
        hist(ib, es(includeExpired=True), "", "2 W", "1 day", rth=False)
    assert info.value.code == 162 and "returned no data" in info.value.message
    later = ib_factory(sim_factory(now=epoch_at("2026-12-21 12:00")))
    with pytest.raises(RequestError) as info:
        later.reqContractDetails(es(includeExpired=True))
    assert info.value.code == 200


def test_a_continuous_future_refuses_an_end_date(sim_factory, ib_factory):
    ib = ib_factory(sim_factory(now=epoch_at("2024-06-07 12:00")))
    contfut = Contract(symbol="ES", secType="CONTFUT", exchange="CME", currency="USD")
    [details] = ib.reqContractDetails(contfut)
    assert (details.contract.secType, details.contract.localSymbol) == ("CONTFUT", "ESZ4")
    with pytest.raises(RequestError) as info:
        hist(ib, contfut, "20240605 16:00:00 US/Eastern", "1 D", "1 hour", rth=False)
    assert info.value.code == 10339
    assert len(hist(ib, contfut, "", "1 W", "1 day", rth=False)) == 5


def test_at_a_present_of_its_own_the_last_bars_are_partial(sim_factory, ib_factory):
    friday_noon = epoch_at("2024-06-07 12:00")
    ib = ib_factory(sim_factory(now=friday_noon + 90))
    aapl = Stock("AAPL", "SMART", "USD")
    days = hist(ib, aapl, "", "5 D", "1 day")
    assert days[-1].date == dt.date(2024, 6, 7)  # today's, so far
    hours = hist(ib, aapl, "", "1 D", "1 hour", fmt=2)
    assert [int(b.date.timestamp()) for b in hours][-1] == friday_noon  # this hour's first minute
    [week] = hist(ib, aapl, "", "3 D", "1 week")
    assert week.date == dt.date(2024, 6, 7)  # the week so far, dated by its last trading day
    later = ib_factory(sim_factory(now=friday_noon + 5 * 3600))  # after the close
    [complete] = hist(later, aapl, "20240607 23:00:00 US/Eastern", "1 D", "1 day")
    assert complete.volume > days[-1].volume and complete.date == days[-1].date


def test_history_asked_after_a_split_is_adjusted_for_it(sim_factory, ib_factory):
    nvda = Stock("NVDA", "SMART", "USD")
    end = "20240607 23:00:00 US/Eastern"
    before = hist(
        ib_factory(sim_factory(now=epoch_at("2024-06-08 12:00"))), nvda, end, "5 D", "1 day"
    )
    after = hist(
        ib_factory(sim_factory(now=epoch_at("2024-06-11 12:00"))), nvda, end, "5 D", "1 day"
    )
    assert [b.date for b in before] == [b.date for b in after]
    for old, new in zip(before, after, strict=True):
        assert new.close == pytest.approx(old.close / 10, abs=5e-5)  # to the 4 decimals sent
        assert new.volume == old.volume * 10


def test_quote_history_begins_later_than_the_trades_and_forex_sessions_at_1715(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    trades = ib.reqHeadTimeStamp(aapl, "TRADES", True, 2)
    for what in ("BID", "ASK", "BID_ASK"):
        quotes = ib.reqHeadTimeStamp(aapl, what, True, 2)
        assert quotes == dt.datetime(2004, 1, 2, 14, 30, tzinfo=dt.UTC) and quotes > trades
    hours = hist(ib, Forex("EURUSD"), "20240103 17:00:00 US/Eastern", "1 D", "1 hour", "MIDPOINT")
    assert hours[0].date.strftime("%H:%M %Z") == "17:15 EST"  # IDEALPRO: 1715-1700
