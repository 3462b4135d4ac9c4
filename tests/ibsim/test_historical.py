"""Historical-data requests as the gateway validates them (ibsim.historical): bar size, duration,
end time, age and pacing, directly and for the real ib_insync client."""

from __future__ import annotations

import dataclasses
import math

import pytest
from ib_insync import Stock
from ib_insync.wrapper import RequestError

from ibsim import texts
from ibsim.historical import Reject, request_window
from ibsim.market import Market
from ibsim.messages import ContractFields, HistoricalRequest
from ibsim.pacing import HistoricalPacing
from tests.support import epoch_at, listing, recent_sessions
from tests.support import historical_bars as hist

# A recent full session: bars of 30 s or less exist for six months only.
RECENT = recent_sessions(1)[0].strftime("%Y%m%d")

AAPL_FIELDS = ContractFields(0, "AAPL", "STK", "", "", "", "", "SMART", "", "USD", "", "")
AAPL = listing("AAPL")
NOW = epoch_at("2024-03-01 12:00")


def request(**changes) -> HistoricalRequest:
    base = HistoricalRequest(
        req_id=1,
        contract=AAPL_FIELDS,
        end="20240105 16:00:00 US/Eastern",
        bar_size="1 min",
        duration="1 D",
        use_rth=True,
        what_to_show="TRADES",
        format_date=1,
        keep_up_to_date=False,
    )
    return dataclasses.replace(base, **changes)


def window(req: HistoricalRequest, *, now: float = NOW, pacing=None, listings=None):
    return request_window(
        req,
        listings=[AAPL] if listings is None else listings,
        market=Market(),
        pacing=pacing or HistoricalPacing(lambda: 0.0),
        now=now,
        time_zone="US/Eastern",
    )


# --- directly -----------------------------------------------------------------------------


def test_a_valid_request_gets_its_window():
    w, implied_zone = window(request())
    assert (w.spec, w.bar_size.setting) == (AAPL, "1 min")
    assert (w.start, w.end) == (epoch_at("2024-01-05 09:30"), epoch_at("2024-01-05 16:00"))
    assert implied_zone is False
    _, implied_zone = window(request(end="20240105 16:00:00"))
    assert implied_zone is True  # the gateway warns with 2174


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"bar_size": "7 mins"}, "Historical data bar size setting is invalid: '7 mins'"),
        ({"duration": "1 X"}, "Historical data duration is invalid: '1 X'"),
        ({"what_to_show": "TRADEZ"}, "Invalid whatToShow 'TRADEZ'"),
        ({"what_to_show": "ADJUSTED_LAST"}, "End date not supported with adjusted last"),
        ({"keep_up_to_date": True}, "End date not supported with live updates"),
    ],
)
def test_invalid_requests_are_refused_with_321(changes, expected):
    with pytest.raises(Reject) as info:
        window(request(**changes))
    assert (info.value.code, info.value.text) == texts.validation(expected)
    assert info.value.pacing == ""


def test_a_continuous_future_takes_no_end_date():
    es = listing("ES", "FUT")
    contfut = dataclasses.replace(AAPL_FIELDS, symbol="ES", sec_type="CONTFUT", exchange="CME")
    with pytest.raises(Reject) as info:
        window(request(contract=contfut, bar_size="1 hour"), listings=[es])
    assert (info.value.code, info.value.text) == texts.CONTINUOUS_END_DATE
    w, _ = window(request(contract=contfut, bar_size="1 hour", end=""), listings=[es])
    assert w.end == NOW


def test_an_unknown_or_ambiguous_contract_is_200():
    for listings in ([], [AAPL, AAPL]):
        with pytest.raises(Reject) as info:
            window(request(), listings=listings)
        assert (info.value.code, info.value.text) == texts.NO_SECURITY


def test_a_duration_in_days_counts_sessions_and_the_end_stops_at_now():
    end = "20240117 12:00:00 US/Eastern"  # Wednesday after Martin Luther King Jr. Day
    w, _ = window(request(end=end, duration="3 D", bar_size="1 hour"))
    assert w.start == epoch_at("2024-01-12 09:30")  # Friday, Tuesday, Wednesday
    w, _ = window(request(end="20240301 15:00:00 US/Eastern", duration="3600 S"))
    assert w.end == math.ceil(NOW)
    assert w.start == math.ceil(NOW) - 3600


def test_small_bars_older_than_six_months_are_refused_before_pacing_counts_them():
    pacing = HistoricalPacing(lambda: 0.0)
    old = request(bar_size="5 secs", duration="1800 S", end="20230105 16:00:00 US/Eastern")
    for _ in range(6):
        with pytest.raises(Reject) as info:
            window(old, pacing=pacing)
        assert (info.value.code, info.value.text) == texts.SMALL_BARS_TOO_OLD
    recent = request(bar_size="5 secs", duration="1800 S", end="20240301 11:00:00 US/Eastern")
    window(recent, pacing=pacing)  # the six refusals left the contract's budget whole
    with pytest.raises(Reject) as info:
        window(recent, pacing=pacing)
    assert (info.value.code, info.value.text) == texts.PACING_VIOLATION
    assert info.value.pacing == "identical request within 15 seconds"


# --- for the real client -------------------------------------------------------------------


def test_adjusted_last_needs_empty_end(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, "20240105 17:00:00 US/Eastern", "1 M", "1 day", what="ADJUSTED_LAST")
    assert info.value.code == 321
    assert len(hist(ib, aapl, "", "1 M", "1 day", what="ADJUSTED_LAST")) >= 15


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


def test_a_zone_less_end_is_answered_with_warning_2174(ib):
    warnings = []
    ib.errorEvent += lambda req_id, code, text, contract: warnings.append(code)
    assert hist(ib, Stock("AAPL", "SMART", "USD"), "20240105 16:00:00", "1800 S", "1 min")
    assert warnings == [2174]


def test_durations_are_refused_as_ibkr_refuses_them(ib):
    aapl, end = Stock("AAPL", "SMART", "USD"), "20240105 16:00:00 US/Eastern"
    for duration in ("400 D", "60 W", "13 M", "100000 S"):
        with pytest.raises(RequestError) as info:
            hist(ib, aapl, end, duration, "1 hour")
        assert (
            info.value.code == 321
            and "must be made in years" in info.value.message
            or ("greater than 86400 seconds rejected" in info.value.message)
        ), duration
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, end, "1 M", "1 min")
    assert (info.value.code, info.value.message) == texts.TIME_LENGTH_EXCEEDED
    assert len(hist(ib, aapl, end, "5 D", "1 min")) == 5 * 390  # the step table is a guideline
    assert len(hist(ib, aapl, end, "1 Y", "1 day")) == 251


def test_small_bars_older_than_six_months_are_refused(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, "20240105 16:00:00 US/Eastern", "1800 S", "5 secs")
    assert info.value.code == 162 and "six months only" in info.value.message
    assert hist(ib, aapl, "20240105 16:00:00 US/Eastern", "1800 S", "1 min")  # 1 min: kept
    assert hist(ib, aapl, f"{RECENT} 16:00:00 US/Eastern", "1800 S", "5 secs")
