"""FetchRequest: every rule with the field it blames, parsing text options, JSON, date_parse."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from fetcher.domain.instruments import instrument_specs_parse
from fetcher.domain.requests import FetchRequest, RequestInvalid, date_parse
from fetcher.domain.timeframes import SMALL_BARS_DAYS, TIMEFRAMES, WhatToShow
from fetcher.exceptions import InvalidInput

TODAY = dt.date(2024, 6, 28)
OLDEST_SMALL = TODAY - dt.timedelta(days=SMALL_BARS_DAYS)  # 2023-12-31
AAPL = tuple(instrument_specs_parse("AAPL"))


def request(**fields) -> FetchRequest:
    return FetchRequest(**{"instruments": AAPL, **fields}, today=TODAY)


def refused(build=request, **fields) -> RequestInvalid:
    with pytest.raises(RequestInvalid) as caught:
        build(**fields)
    return caught.value


def test_defaults_are_daily_trades_regular_hours_up_to_now():
    req = request(instruments=list(AAPL))
    assert req.instruments == AAPL  # a list given is kept as a tuple
    assert req.timeframe is TIMEFRAMES["DAILY"] and req.what_to_show is WhatToShow.TRADES
    assert req.use_rth and not req.since_head
    assert (req.start, req.end) == (None, None)
    assert req.labels == ["AAPL"]


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"instruments": ()}, "instruments", "no instruments given: e.g. AAPL,MSFT"),
        (
            {"start": dt.date(2024, 6, 29)},
            "start",
            "start date 2024-06-29 is in the future (today is 2024-06-28)",
        ),
        (
            {"end": dt.date(2024, 6, 29)},
            "end",
            "end date 2024-06-29 is in the future (today is 2024-06-28)",
        ),
        (
            {"start": dt.date(2024, 6, 10), "end": dt.date(2024, 6, 9)},
            "end",
            "end date 2024-06-09 is before start date 2024-06-10",
        ),
        (
            {"since_head": True, "start": dt.date(2024, 1, 2)},
            "since_head",
            "'since the first data point' and a start date contradict each other: give one",
        ),
        (
            {"what_to_show": WhatToShow.ADJUSTED_LAST, "end": dt.date(2024, 6, 27)},
            "end",
            "ADJUSTED_LAST bars can only be fetched up to now: no end date",
        ),
        (
            {"timeframe": TIMEFRAMES["5-SECOND"], "start": dt.date(2023, 12, 30)},
            "start",
            "IBKR keeps 5-SECOND bars (30 s or less) for six months only: "
            "the start must be 2023-12-31 or later",
        ),
        (
            {"timeframe": TIMEFRAMES["30-SECOND"], "start": dt.date(2020, 1, 2)},
            "start",
            "IBKR keeps 30-SECOND bars (30 s or less) for six months only: "
            "the start must be 2023-12-31 or later",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_each_rule_blames_its_field(fields, field, problem):
    error = refused(**fields)
    assert (error.field, error.problem) == (field, problem)
    assert str(error) == problem and isinstance(error, InvalidInput)


@pytest.mark.parametrize(
    "fields",
    [
        {"start": TODAY, "end": TODAY},
        {"start": dt.date(2024, 6, 3), "end": dt.date(2024, 6, 3)},
        {"since_head": True},
        {"since_head": True, "end": dt.date(2024, 1, 31)},
        {"what_to_show": WhatToShow.ADJUSTED_LAST},
        {"what_to_show": WhatToShow.ADJUSTED_LAST, "end": TODAY, "start": dt.date(2020, 1, 2)},
        {"timeframe": TIMEFRAMES["1-SECOND"], "start": OLDEST_SMALL},
        {"timeframe": TIMEFRAMES["5-SECOND"]},
        {"timeframe": TIMEFRAMES["5-SECOND"], "since_head": True},
        {"timeframe": TIMEFRAMES["1-MINUTE"], "start": dt.date(2004, 1, 2)},
    ],
)
def test_what_the_rules_allow(fields):
    req = request(**fields)
    assert all(getattr(req, name) == value for name, value in fields.items())


def test_today_defaults_to_the_utc_date():
    today = dt.datetime.now(dt.UTC).date()
    assert FetchRequest(instruments=AAPL, end=today).end == today
    assert refused(FetchRequest, instruments=AAPL, end=today + dt.timedelta(days=1)).field == "end"


def parse(**options) -> FetchRequest:
    return FetchRequest.parse(**{"instruments": "AAPL", **options}, today=TODAY)


def test_parse_reads_text_options():
    req = parse(
        instruments="msft, AAPL,aapl,SPY:ARCA",
        timeframe="5 min",
        what_to_show="bid_ask",
        use_rth=False,
        start="2024-01-02",
        end=" 2024-01-31 ",
    )
    assert req.labels == ["msft", "AAPL", "SPY:ARCA"]
    assert req.timeframe is TIMEFRAMES["5-MINUTE"] and req.what_to_show is WhatToShow.BID_ASK
    assert not req.use_rth and not req.since_head
    assert (req.start, req.end) == (dt.date(2024, 1, 2), dt.date(2024, 1, 31))
    assert parse(start="", end=None) == parse()


def test_parse_applies_sec_type_exchange_and_currency_to_every_instrument():
    req = parse(instruments="EURUSD,GBPUSD", sec_type="CASH")
    assert [(s.symbol, s.sec_type, s.exchange) for s in req.instruments] == [
        ("EUR", "CASH", "IDEALPRO"),
        ("GBP", "CASH", "IDEALPRO"),
    ]
    req = parse(instruments="ES,NQ", sec_type="FUT", exchange="CME")
    assert {(s.sec_type, s.exchange) for s in req.instruments} == {("FUT", "CME")}
    assert (
        parse(instruments="SAP", exchange="IBIS", currency="EUR").instruments[0].currency == "EUR"
    )


@pytest.mark.parametrize(
    ("options", "field", "problem"),
    [
        ({"instruments": None}, "instruments", "no instruments given: e.g. AAPL,MSFT"),
        ({"instruments": " "}, "instruments", "no instruments given"),
        ({"instruments": "AAPL,,MSFT"}, "instruments", "empty item between commas"),
        ({"instruments": "AA$PL"}, "instruments", "malformed instrument 'AA$PL'"),
        ({"instruments": "ES", "sec_type": "FUT"}, "instruments", "a FUT needs an exchange"),
        ({"instruments": "EUR.USD", "currency": "JPY"}, "instruments", "quoted in USD, not JPY"),
        ({"timeframe": "2-DAYS"}, "timeframe", "unknown timeframe '2-DAYS': use one of"),
        ({"what_to_show": "PRICES"}, "what_to_show", "unknown what-to-show 'PRICES'"),
        ({"start": "01/02/2024"}, "start", "'01/02/2024' is not a date: use YYYY-MM-DD"),
        ({"end": "2024-13-01"}, "end", "'2024-13-01' is not a valid date: use YYYY-MM-DD"),
        ({"start": "2024-06-29"}, "start", "is in the future (today is 2024-06-28)"),
        ({"start": "2024-02-01", "end": "2024-01-31"}, "end", "before start date 2024-02-01"),
        ({"start": "2024-01-02", "since_head": True}, "since_head", "contradict each other"),
        ({"timeframe": "1-SECOND", "start": "2023-12-30"}, "start", "for six months only"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_parse_blames_the_field_of_the_text_at_fault(options, field, problem):
    error = refused(parse, **options)
    assert error.field == field and problem in error.problem


def test_parse_blames_an_unknown_security_type_on_sec_type():
    error = refused(parse, instruments="AAPL", sec_type="BOND")
    assert error.field == "sec_type" and "unknown security type 'BOND'" in error.problem


REQUESTS = [
    request(),
    request(
        instruments=tuple(instrument_specs_parse("aapl,SPY:ARCA,EUR.USD,ES:CME")),
        timeframe=TIMEFRAMES["1-MINUTE"],
        what_to_show=WhatToShow.BID_ASK,
        use_rth=False,
        start=dt.date(2024, 1, 2),
        end=dt.date(2024, 1, 31),
    ),
    request(timeframe=TIMEFRAMES["WEEKLY"], since_head=True, end=dt.date(2024, 5, 31)),
    request(what_to_show=WhatToShow.ADJUSTED_LAST, start=dt.date(2024, 6, 3)),
]


@pytest.mark.parametrize("req", REQUESTS)
def test_json_round_trip(req):
    data = json.loads(json.dumps(req.to_json()))
    assert FetchRequest.from_json(data, today=TODAY) == req
    assert data["timeframe"] == req.timeframe.name
    assert data["what_to_show"] == req.what_to_show.name
    assert [s["text"] for s in data["instruments"]] == req.labels


def test_from_json_checks_the_request_again():
    data = request(end=dt.date(2024, 6, 28)).to_json()
    assert data["end"] == "2024-06-28" and data["start"] is None
    error = refused(FetchRequest.from_json, data=data, today=dt.date(2024, 6, 27))
    assert error.field == "end"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-31", dt.date(2024, 1, 31)),
        (" 2024-02-29\n", dt.date(2024, 2, 29)),
        (dt.date(2024, 1, 31), dt.date(2024, 1, 31)),
        (None, None),
        ("", None),
    ],
)
def test_date_parse(text, expected):
    assert date_parse(text, "start") == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2024-1-31", "'2024-1-31' is not a date: use YYYY-MM-DD, e.g. 2024-01-31"),
        ("01/31/2024", "is not a date"),
        ("20240131", "is not a date"),
        ("2024-01-31T10:00", "is not a date"),
        ("yesterday", "is not a date"),
        ("   ", "is not a date"),
        ("2023-02-29", "'2023-02-29' is not a valid date: use YYYY-MM-DD"),
        ("2024-04-31", "is not a valid date"),
        ("0000-01-01", "is not a valid date"),
        ("２０２４-０１-３１", "use YYYY-MM-DD"),  # full-width digits
    ],
)
def test_date_parse_refuses_with_the_field_named(text, problem):
    with pytest.raises(RequestInvalid) as caught:
        date_parse(text, "end")
    assert caught.value.field == "end" and problem in caught.value.problem


def test_forex_defaults_to_midpoint_and_refuses_trades():
    assert FetchRequest.parse(instruments="EUR.USD").what_to_show == WhatToShow.MIDPOINT
    assert FetchRequest.parse(instruments="AAPL").what_to_show == WhatToShow.TRADES
    for what in ("TRADES", "ADJUSTED_LAST"):
        with pytest.raises(RequestInvalid) as error:
            FetchRequest.parse(instruments="EUR.USD", what_to_show=what)
        assert error.value.field == "what_to_show"
        assert f"IBKR has no {what} bars of forex" in error.value.problem
    with pytest.raises(RequestInvalid) as error:
        FetchRequest.parse(instruments="AAPL,EUR.USD")
    assert error.value.field == "what_to_show" and "fetch forex apart" in error.value.problem
    assert FetchRequest.parse(instruments="AAPL,EUR.USD", what_to_show="BID").labels == [
        "AAPL",
        "EUR.USD",
    ]
