"""TWS message layouts (ibsim.messages): the requests the simulator reads and the answers it
writes, per server version."""

from __future__ import annotations

import pytest

from ibsim import messages as msg

C12 = ["265598", "AAPL", "STK", "", "0", "", "", "SMART", "NASDAQ", "USD", "AAPL", "NMS"]


def fields_of(data: bytes) -> list[str]:
    """The fields of one framed message."""
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    return data[4:].decode().split("\0")[:-1]


def historical(tail: list[str], contract: list[str] = C12) -> list[str]:
    end_to_format = ["20240105 16:00:00 US/Eastern", "1 min", "1 D", "1", "TRADES", "2"]
    return ["20", "7", *contract, "0", *end_to_format, *tail]


def test_a_historical_request():
    req = msg.parse_historical_request(historical(["0", ""]))
    assert (req.req_id, req.end, req.bar_size, req.duration) == (
        7,
        "20240105 16:00:00 US/Eastern",
        "1 min",
        "1 D",
    )
    assert (req.use_rth, req.what_to_show, req.format_date, req.keep_up_to_date) == (
        True,
        "TRADES",
        2,
        False,
    )
    c = req.contract
    assert (c.con_id, c.symbol, c.sec_type, c.exchange, c.primary_exchange) == (
        265598,
        "AAPL",
        "STK",
        "SMART",
        "NASDAQ",
    )
    assert (c.currency, c.local_symbol, c.trading_class) == ("USD", "AAPL", "NMS")


def test_a_combo_requests_legs_are_skipped_to_reach_keep_up_to_date():
    bag = ["0", "SPREAD", "BAG", *[""] * 4, "SMART", "", "USD", "", ""]
    legs = ["2", "1", "1", "BUY", "SMART", "2", "1", "SELL", "SMART"]
    req = msg.parse_historical_request(historical([*legs, "1", ""], contract=bag))
    assert req.keep_up_to_date is True and req.contract.sec_type == "BAG"


def test_identical_requests_are_identical_whatever_their_id_and_date_format():
    first = msg.parse_historical_request(historical(["0", ""]))
    again = msg.parse_historical_request(["20", "8", *historical(["0", ""])[2:20], "1", "0"])
    assert first.identity == again.identity
    other = msg.parse_historical_request(
        historical(["0", ""])[:17] + ["5 mins"] + historical([])[18:]
    )
    assert first.identity != other.identity


def test_truncated_requests_raise_value_error():
    with pytest.raises(ValueError, match="truncated contract"):
        msg.parse_historical_request(["20", "7", "265598", "AAPL"])
    with pytest.raises(ValueError, match="truncated historical data request"):
        msg.parse_historical_request(historical([])[:18])


def test_head_timestamp_and_contract_details_requests():
    req = msg.parse_head_timestamp_request(["87", "3", *C12, "0", "1", "MIDPOINT", "2"])
    assert (req.req_id, req.contract.symbol, req.use_rth, req.what_to_show, req.format_date) == (
        3,
        "AAPL",
        True,
        "MIDPOINT",
        2,
    )
    req_id, contract = msg.parse_contract_details_request(["9", "8", "4", *C12, "0", "", ""])
    assert (req_id, contract.con_id, contract.include_expired) == (4, 265598, False)


def test_include_expired_is_read_from_every_request_that_names_a_contract():
    _, contract = msg.parse_contract_details_request(["9", "8", "4", *C12, "1", "", ""])
    assert contract.include_expired
    head = msg.parse_head_timestamp_request(["87", "3", *C12, "1", "1", "TRADES", "2"])
    assert head.contract.include_expired and head.use_rth


def test_errors_gain_a_field_from_version_166():
    assert fields_of(msg.error(165, 7, 162, "text")) == ["4", "2", "7", "162", "text"]
    assert fields_of(msg.error(166, 7, 162, "text")) == ["4", "2", "7", "162", "text", ""]


DETAILS = msg.ContractDetailsFields(
    symbol="AAPL",
    sec_type="STK",
    last_trade_date="",
    exchange="SMART",
    currency="USD",
    local_symbol="AAPL",
    market_name="NMS",
    trading_class="NMS",
    con_id=265598,
    min_tick=0.01,
    multiplier="",
    order_types="LMT",
    valid_exchanges="SMART,NASDAQ",
    long_name="APPLE INC",
    primary_exchange="NASDAQ",
    contract_month="",
    industry="Technology",
    category="",
    subcategory="",
    time_zone_id="US/Eastern",
    trading_hours="20240102:0400-20240102:2000",
    liquid_hours="20240102:0930-20240102:1600",
    market_rule_ids="26",
    stock_type="COMMON",
)


@pytest.mark.parametrize(
    ("version", "req_id_at", "sizes"),
    [(157, 2, []), (163, 2, ["1"]), (164, 1, ["1", "1", "1"]), (176, 1, ["1", "1", "1"])],
)
def test_contract_data_layout_per_version(version, req_id_at, sizes):
    fields = fields_of(msg.contract_data(version, 5, DETAILS))
    assert fields[0] == "10" and fields[req_id_at] == "5"
    assert fields[req_id_at + 11 : req_id_at + 13] == ["265598", "0.01"]
    assert fields[-len(sizes) - 1 :] == ["COMMON", *sizes]
    old = version < msg.V_SIZE_RULES  # a version field and mdSizeMultiplier, both gone at 164
    assert len(fields) == 37 + len(sizes) + (2 if old else 0)


def test_historical_data_carries_its_rows_as_they_are():
    rows = ["20240102\0" + "\0".join(["1", "2", "0.5", "1.5", "100", "1.25", "3"])]
    fields = fields_of(msg.historical_data(9, "start", "end", rows))
    assert fields == [
        "17",
        "9",
        "start",
        "end",
        "1",
        "20240102",
        "1",
        "2",
        "0.5",
        "1.5",
        "100",
        "1.25",
        "3",
    ]


def test_start_up_answers():
    assert fields_of(msg.handshake(176, "20240105 10:11:12 EST")) == [
        "176",
        "20240105 10:11:12 EST",
    ]
    assert fields_of(msg.next_valid_id(1)) == ["9", "1", "1"]
    assert fields_of(msg.managed_accounts(["DU1", "DU2"])) == ["15", "1", "DU1,DU2"]
    assert fields_of(msg.head_timestamp(3, "19801212-14:30:00")) == ["88", "3", "19801212-14:30:00"]
    assert fields_of(msg.completed_orders_end()) == ["102"]
