"""The gateway simulator as the real ib_insync client sees it, over a real socket."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import struct
import time

import pytest
from ib_insync import Contract, Forex, Stock
from ib_insync.wrapper import RequestError

from ibsim.server import Faults
from tests.support import recent_sessions

# A recent full session: bars of 30 s or less exist for six months only.
RECENT = recent_sessions(1)[0].strftime("%Y%m%d")

ET = "US/Eastern"


def hist(ib, contract, end, duration, bar_size, what="TRADES", rth=True, fmt=1, timeout=30):
    return ib.reqHistoricalData(
        contract,
        endDateTime=end,
        durationStr=duration,
        barSizeSetting=bar_size,
        whatToShow=what,
        useRTH=rth,
        formatDate=fmt,
        timeout=timeout,
    )


def as_tuples(bars):
    return [(b.date, b.open, b.high, b.low, b.close, b.volume, b.average, b.barCount) for b in bars]


class ErrorLog:
    """Collects (reqId, code, text) from ib.errorEvent."""

    def __init__(self, ib):
        self.items: list[tuple[int, int, str]] = []
        ib.errorEvent += self.on_error

    def on_error(self, req_id, code, text, contract):
        self.items.append((req_id, code, text))

    def codes(self) -> list[int]:
        return [code for _, code, _ in self.items]


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


def test_current_time_and_market_data_type(ib):
    ib.reqMarketDataType(4)
    now = ib.reqCurrentTime()
    assert abs((now - dt.datetime.now(dt.UTC)).total_seconds()) < 5


def test_client_id_in_use_gets_326(sim, ib_factory):
    ib_factory(sim, client_id=7)
    from ib_insync import IB

    second = IB()
    errors = ErrorLog(second)
    with pytest.raises((ConnectionError, TimeoutError, OSError)):
        second.connect("127.0.0.1", sim.port, clientId=7, timeout=3)
    assert 326 in errors.codes()
    assert not second.isConnected()


# --- contracts ------------------------------------------------------------------------


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


def test_head_timestamp(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    head = ib.reqHeadTimeStamp(aapl, "TRADES", useRTH=True, formatDate=1)
    assert head.date() == dt.date(1980, 12, 12)
    bars = hist(ib, aapl, "19801231 23:00:00 US/Eastern", "1 M", "1 day")
    first = bars[0].date
    assert first >= head.date()


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


def test_future_and_index_serve_bars(ib):
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


def test_adjusted_last_needs_empty_end(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, "20240105 17:00:00 US/Eastern", "1 M", "1 day", what="ADJUSTED_LAST")
    assert info.value.code == 321
    assert len(hist(ib, aapl, "", "1 M", "1 day", what="ADJUSTED_LAST")) >= 15


def test_empty_window_is_no_data_error(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, "20240101 23:00:00 US/Eastern", "3600 S", "1 min")  # New Year's Day
    assert info.value.code == 162 and "HMDS query returned no data" in info.value.message


# --- request validation -----------------------------------------------------------------


def test_bad_end_date_is_10314(ib):
    with pytest.raises(RequestError) as info:
        hist(ib, Stock("AAPL", "SMART", "USD"), "2024-13-45 99:00", "1 D", "1 min")
    assert info.value.code == 10314


@pytest.mark.parametrize(
    "end",
    [
        "20240105 16:00:00 US/Eastern",
        "20240105-21:00:00",
        "20240105 21:00:00 UTC",
        "20240105 16:00:00",
    ],
)
def test_every_end_format_is_accepted(ib, end):
    bars = hist(ib, Stock("AAPL", "SMART", "USD"), end, "1800 S", "1 min")
    assert len(bars) == 30
    assert bars[-1].date.strftime("%H:%M") == "15:59"


def test_too_long_duration_is_invalid_step(ib):
    with pytest.raises(RequestError) as info:
        hist(ib, Stock("AAPL", "SMART", "USD"), "20240105 16:00:00 US/Eastern", "2 D", "1 min")
    assert info.value.code == 162 and "invalid step" in info.value.message
    with pytest.raises(RequestError) as info:
        hist(ib, Stock("AAPL", "SMART", "USD"), "20240105 16:00:00 US/Eastern", "3601 S", "5 secs")
    assert "invalid step" in info.value.message


def test_small_bars_older_than_six_months_are_refused(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, "20240105 16:00:00 US/Eastern", "1800 S", "5 secs")
    assert info.value.code == 162 and "six months only" in info.value.message
    assert hist(ib, aapl, "20240105 16:00:00 US/Eastern", "1800 S", "1 min")  # 1 min: kept
    assert hist(ib, aapl, f"{RECENT} 16:00:00 US/Eastern", "1800 S", "5 secs")


# --- pacing -----------------------------------------------------------------------------


def test_identical_request_within_15s_is_a_pacing_violation(sim_factory, ib_factory):
    sim = sim_factory(time_scale=10)  # 15 s become 1.5 s
    ib = ib_factory(sim)
    aapl = Stock("AAPL", "SMART", "USD")
    end = f"{RECENT} 16:00:00 US/Eastern"
    assert hist(ib, aapl, end, "1800 S", "5 secs")
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, end, "1800 S", "5 secs")
    assert info.value.code == 162 and "pacing violation" in info.value.message
    time.sleep(1.6)
    assert hist(ib, aapl, end, "1800 S", "5 secs")
    assert sim.stats.pacing_violations == 1


def test_six_requests_for_one_contract_in_2s(sim_factory, ib_factory):
    sim = sim_factory(time_scale=1)
    ib = ib_factory(sim)
    aapl = Stock("AAPL", "SMART", "USD")
    for minute in range(5):
        assert hist(ib, aapl, f"{RECENT} 15:{minute:02d}:00 US/Eastern", "60 S", "1 secs")
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, f"{RECENT} 15:10:00 US/Eastern", "60 S", "1 secs")
    assert "pacing violation" in info.value.message
    # another tick type of the same contract is its own budget
    assert hist(ib, aapl, f"{RECENT} 15:10:00 US/Eastern", "60 S", "1 secs", what="MIDPOINT")


def test_bid_ask_counts_twice(sim_factory, ib_factory):
    sim = sim_factory(time_scale=1)
    ib = ib_factory(sim)
    aapl = Stock("AAPL", "SMART", "USD")
    hist(ib, aapl, f"{RECENT} 15:00:00 US/Eastern", "60 S", "1 secs", what="BID_ASK")
    hist(ib, aapl, f"{RECENT} 15:01:00 US/Eastern", "60 S", "1 secs", what="BID_ASK")
    with pytest.raises(RequestError):  # 2 + 2 + 2 = 6 within 2 s
        hist(ib, aapl, f"{RECENT} 15:02:00 US/Eastern", "60 S", "1 secs", what="BID_ASK")
    assert sim.stats.pacing_violations == 1


def test_sixty_requests_in_ten_minutes(sim_factory, ib_factory):
    sim = sim_factory(time_scale=100)  # 10 minutes become 6 s
    ib = ib_factory(sim)
    symbols = [
        "AAPL",
        "MSFT",
        "GOOGL",
        "AMZN",
        "NVDA",
        "META",
        "TSLA",
        "JPM",
        "V",
        "WMT",
        "KO",
        "PEP",
    ]
    violations = 0
    for i in range(61):
        contract = Stock(symbols[i % len(symbols)], "SMART", "USD")
        try:
            hist(ib, contract, f"{RECENT} 15:{i % 60:02d}:00 US/Eastern", "60 S", "5 secs")
        except RequestError as exc:
            assert "pacing violation" in exc.message
            violations += 1
    assert violations == 1  # only the 61st
    assert sim.stats.pacing_violations == 1


def test_large_bars_have_no_hard_pacing(sim_factory, ib_factory):
    sim = sim_factory(time_scale=1)
    ib = ib_factory(sim)
    aapl = Stock("AAPL", "SMART", "USD")
    for _ in range(8):
        assert hist(ib, aapl, "20240105 16:00:00 US/Eastern", "1 D", "1 min")
    assert sim.stats.pacing_violations == 0


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


def test_more_than_50_messages_per_second_is_error_100(ib):
    errors = ErrorLog(ib)
    ib.client.MaxRequests = 0  # switch off the client's own 45/s throttle
    for _ in range(70):
        ib.client.reqCurrentTime()
    ib.sleep(0.5)
    assert 100 in errors.codes()


# --- faults ---------------------------------------------------------------------------


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


def test_connectivity_lost_and_restored(sim, ib):
    errors = ErrorLog(ib)
    sim.call(sim.connectivity_lost)
    ib.sleep(0.2)
    sim.call(sim.connectivity_restored)
    ib.sleep(0.2)
    assert errors.codes() == [1100, 1102]


def test_unknown_message_gets_an_error_not_a_hang(ib):
    errors = ErrorLog(ib)
    ib.client.send(3, 55, "AAPL")  # placeOrder with orderId 55
    ib.client.send(12345, 1)
    ib.sleep(0.3)
    codes = [(r, c) for r, c, _ in errors.items]
    assert (55, 321) in codes and (-1, 321) in codes


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


@pytest.mark.parametrize("version", [157, 163, 165, 176])
def test_every_served_version_decodes_in_ib_insync(sim, version, caplog):
    from ib_insync import IB

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
