"""TWS message layouts the simulator reads and writes, per server version (docs/tws-protocol.md)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .wire import encode, frame

# Server versions this simulator speaks, and where layouts change.
MIN_VERSION = 157
MAX_VERSION = 176
V_SUGGESTED_SIZE_INCREMENT = 163
V_SIZE_RULES = 164  # CONTRACT_DATA loses its version field and mdSizeMultiplier, gains sizes
V_ISSUER_ID = 176  # SYMBOL_SAMPLES gains description and issuerId (Δ)
V_ADVANCED_REJECT = 166  # ERR_MSG gains advancedOrderRejectJson


class In(IntEnum):
    """Message ids the client sends."""

    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCT_DATA = 6
    REQ_EXECUTIONS = 7
    REQ_CONTRACT_DATA = 9
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_HISTORICAL_DATA = 20
    CANCEL_HISTORICAL_DATA = 25
    REQ_CURRENT_TIME = 49
    REQ_MKT_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    START_API = 71
    REQ_ACCOUNT_UPDATES_MULTI = 76
    REQ_MATCHING_SYMBOLS = 81
    REQ_HEAD_TIMESTAMP = 87
    CANCEL_HEAD_TIMESTAMP = 90
    REQ_COMPLETED_ORDERS = 99


class Out(IntEnum):
    """Message ids the server sends."""

    ERR_MSG = 4
    ACCT_VALUE = 6
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    MANAGED_ACCTS = 15
    HISTORICAL_DATA = 17
    CURRENT_TIME = 49
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    ACCOUNT_UPDATE_MULTI_END = 74
    SYMBOL_SAMPLES = 79
    HEAD_TIMESTAMP = 88
    COMPLETED_ORDERS_END = 102


# Where the request id sits in messages the simulator does not serve, so that its error
# reply ends the client's request instead of leaving it waiting (index into the fields).
REQ_ID_POSITION = {
    1: 2,  # reqMktData: id, version, reqId
    2: 2,  # cancelMktData
    3: 1,  # placeOrder: id, orderId
    4: 1,  # cancelOrder
    10: 2,  # reqMktDepth
    19: 2,  # reqMktDepth cancel... (legacy layouts carry a version)
    22: 1,  # reqScannerSubscription
    50: 2,  # reqRealTimeBars
    74: 2,  # reqPositionsMulti
    78: 1,  # reqSecDefOptParams
    88: 1,  # reqHistogramData
    96: 1,  # reqHistoricalTicks
    97: 1,  # reqTickByTickData
}


@dataclass(frozen=True)
class ContractFields:
    """The twelve contract fields (C12) a request carries."""

    con_id: int
    symbol: str
    sec_type: str
    last_trade_date: str
    strike: str
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    include_expired: bool = False  # the flag that follows the twelve fields in every request


def parse_contract(fields: list[str], at: int) -> ContractFields:
    c = fields[at : at + 13]
    if len(c) < 12:
        raise ValueError("truncated contract")
    return ContractFields(
        con_id=int(c[0] or 0),
        symbol=c[1],
        sec_type=c[2],
        last_trade_date=c[3],
        strike=c[4],
        right=c[5],
        multiplier=c[6],
        exchange=c[7],
        primary_exchange=c[8],
        currency=c[9],
        local_symbol=c[10],
        trading_class=c[11],
        include_expired=len(c) > 12 and c[12] not in ("", "0"),
    )


@dataclass(frozen=True)
class HistoricalRequest:
    req_id: int
    contract: ContractFields
    end: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int
    keep_up_to_date: bool

    @property
    def identity(self) -> tuple:
        """What makes two requests 'identical' for IBKR's 15-second rule."""
        c = self.contract
        return (
            c.con_id,
            c.symbol,
            c.sec_type,
            c.exchange,
            c.currency,
            self.end,
            self.bar_size,
            self.duration,
            self.use_rth,
            self.what_to_show,
        )


def parse_historical_request(fields: list[str]) -> HistoricalRequest:
    # 20, reqId, C12, includeExpired, end, barSize, duration, useRTH, whatToShow, formatDate,
    # [combo legs if BAG], keepUpToDate, chartOptions
    contract = parse_contract(fields, 2)
    rest = fields[15:]
    if len(rest) < 6:
        raise ValueError("truncated historical data request")
    end, bar_size, duration, use_rth, what, fmt = rest[:6]
    tail = rest[6:]
    if contract.sec_type == "BAG" and tail:
        legs = int(tail[0] or 0)
        tail = tail[1 + 4 * legs :]
    keep = bool(int(tail[0] or 0)) if tail else False
    return HistoricalRequest(
        req_id=int(fields[1]),
        contract=contract,
        end=end,
        bar_size=bar_size,
        duration=duration,
        use_rth=bool(int(use_rth or 0)),
        what_to_show=what,
        format_date=int(fmt or 1),
        keep_up_to_date=keep,
    )


@dataclass(frozen=True)
class HeadTimestampRequest:
    req_id: int
    contract: ContractFields
    use_rth: bool
    what_to_show: str
    format_date: int


def parse_head_timestamp_request(fields: list[str]) -> HeadTimestampRequest:
    # 87, reqId, C12, includeExpired, useRTH, whatToShow, formatDate
    contract = parse_contract(fields, 2)
    use_rth, what, fmt = fields[15:18]
    return HeadTimestampRequest(
        req_id=int(fields[1]),
        contract=contract,
        use_rth=bool(int(use_rth or 0)),
        what_to_show=what,
        format_date=int(fmt or 1),
    )


def parse_contract_details_request(fields: list[str]) -> tuple[int, ContractFields]:
    # 9, 8, reqId, C12, includeExpired, secIdType, secId[, issuerId]
    return int(fields[2]), parse_contract(fields, 3)


# --- what the server writes ---------------------------------------------------------


def error(version: int, req_id: int, code: int, text: str) -> bytes:
    if version >= V_ADVANCED_REJECT:
        return encode(Out.ERR_MSG, 2, req_id, code, text, "")
    return encode(Out.ERR_MSG, 2, req_id, code, text)


def handshake(version: int, connection_time: str) -> bytes:
    return encode(version, connection_time)


def next_valid_id(order_id: int) -> bytes:
    return encode(Out.NEXT_VALID_ID, 1, order_id)


def managed_accounts(accounts: list[str]) -> bytes:
    return encode(Out.MANAGED_ACCTS, 1, ",".join(accounts))


def current_time(epoch: int) -> bytes:
    return encode(Out.CURRENT_TIME, 1, epoch)


def head_timestamp(req_id: int, text: str) -> bytes:
    return encode(Out.HEAD_TIMESTAMP, req_id, text)


def parse_matching_symbols_request(fields: list[str]) -> tuple[int, str]:
    """REQ_MATCHING_SYMBOLS: 81, reqId, pattern (no version field)."""
    return int(fields[1]), fields[2]


def symbol_samples(version: int, req_id: int, listings: list) -> bytes:
    """SYMBOL_SAMPLES: 79, reqId, n, then per contract conId, symbol, secType,
    primaryExchange, currency, the count of derivative security types and those types, and
    from v176 its description and issuerId (ib_insync 0.9.86, decoder.symbolSamples)."""
    fields: list = [req_id, len(listings)]
    for spec in listings:
        primary = spec.primary_exchange or spec.exchange
        fields += [spec.con_id, spec.symbol, spec.sec_type, primary, spec.currency, 0]
        if version >= V_ISSUER_ID:
            fields += [spec.long_name, ""]
    return encode(Out.SYMBOL_SAMPLES, *fields)


def contract_data_end(req_id: int) -> bytes:
    return encode(Out.CONTRACT_DATA_END, 1, req_id)


@dataclass(frozen=True)
class ContractDetailsFields:
    """What CONTRACT_DATA carries beyond the contract itself."""

    symbol: str
    sec_type: str
    last_trade_date: str
    exchange: str
    currency: str
    local_symbol: str
    market_name: str
    trading_class: str
    con_id: int
    min_tick: float
    multiplier: str
    order_types: str
    valid_exchanges: str
    long_name: str
    primary_exchange: str
    contract_month: str
    industry: str
    category: str
    subcategory: str
    time_zone_id: str
    trading_hours: str
    liquid_hours: str
    market_rule_ids: str
    stock_type: str


def contract_data(version: int, req_id: int, d: ContractDetailsFields) -> bytes:
    head: list[object] = [Out.CONTRACT_DATA]
    if version < V_SIZE_RULES:
        head.append(8)
    head += [
        req_id,
        d.symbol,
        d.sec_type,
        d.last_trade_date,
        "0",
        "",
        d.exchange,
        d.currency,
        d.local_symbol,
        d.market_name,
        d.trading_class,
        d.con_id,
        d.min_tick,
    ]
    if version < V_SIZE_RULES:
        head.append("")  # mdSizeMultiplier, obsolete
    body: list[object] = [
        d.multiplier,
        d.order_types,
        d.valid_exchanges,
        1,
        0,
        d.long_name,
        d.primary_exchange,
        d.contract_month,
        d.industry,
        d.category,
        d.subcategory,
        d.time_zone_id,
        d.trading_hours,
        d.liquid_hours,
        "",
        "",
        0,  # evRule, evMultiplier, no secIds
        1,
        "",
        "",
        d.market_rule_ids,
        "",
        d.stock_type,  # aggGroup ... stockType
    ]
    if version == V_SUGGESTED_SIZE_INCREMENT:
        body.append("1")
    elif version >= V_SIZE_RULES:
        body += ["1", "1", "1"]  # minSize, sizeIncrement, suggestedSizeIncrement
    return encode(*head, *body)


def historical_data(req_id: int, start: str, end: str, rows: list[str]) -> bytes:
    """HISTORICAL_DATA with pre-joined bar rows ('date\\0open\\0...\\0count' each)."""
    return frame([str(int(Out.HISTORICAL_DATA)), str(req_id), start, end, str(len(rows)), *rows])


# Start-up answers IB.connect() waits for.
def position_end() -> bytes:
    return encode(Out.POSITION_END, 1)


def open_order_end() -> bytes:
    return encode(Out.OPEN_ORDER_END, 1)


def completed_orders_end() -> bytes:
    return encode(Out.COMPLETED_ORDERS_END)


def account_value(key: str, value: str, currency: str, account: str) -> bytes:
    return encode(Out.ACCT_VALUE, 2, key, value, currency, account)


def account_update_time(hhmm: str) -> bytes:
    return encode(Out.ACCT_UPDATE_TIME, 1, hhmm)


def account_download_end(account: str) -> bytes:
    return encode(Out.ACCT_DOWNLOAD_END, 1, account)


def account_update_multi_end(req_id: int) -> bytes:
    return encode(Out.ACCOUNT_UPDATE_MULTI_END, 1, req_id)


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> bytes:
    return encode(Out.ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency)


def account_summary_end(req_id: int) -> bytes:
    return encode(Out.ACCOUNT_SUMMARY_END, 1, req_id)


def execution_data_end(req_id: int) -> bytes:
    return encode(Out.EXECUTION_DATA_END, 1, req_id)
