"""Instrument specs as users type them ('AAPL', 'SPY:ARCA', 'EUR.USD', 'ES:CME') and their parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from fetcher.exceptions import InvalidInput

from .time import DEFAULT_ZONE, EXCHANGE_ZONES

SEC_TYPES = ("STK", "CASH", "FUT", "IND", "CFD", "CRYPTO", "CONTFUT")
_SPEC_RE = re.compile(r"^[A-Z0-9][A-Z0-9 .\-/]{0,30}(?::[A-Z0-9]{2,16})?$")
FUTURES_EXCHANGES = frozenset({"CME", "GLOBEX", "CBOT", "NYMEX", "COMEX", "EUREX", "ICEUS", "CFE"})
# Indices users name by their symbol alone, and the exchange IBKR lists each on.
INDICES = {
    "SPX": "CBOE",
    "XSP": "CBOE",
    "OEX": "CBOE",
    "VIX": "CBOE",
    "DJX": "CBOE",
    "NDX": "NASDAQ",
    "RUT": "RUSSELL",
}
_FOREX_RE = re.compile(r"^([A-Z]{3})\.?([A-Z]{3})$")


@dataclass(frozen=True)
class InstrumentSpec:
    """What the user asked for, before the gateway qualifies it."""

    symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    primary_exchange: str = ""
    currency: str = "USD"
    last_trade_date: str = ""
    text: str = ""  # as the user typed it
    con_id: int | None = None  # known when the contract was qualified before (the admin)

    @property
    def label(self) -> str:
        return self.text or self.symbol

    def contract_fields(self) -> dict:
        """The contract's fields, as a run's item stores them (CONTRACT_FIELDS)."""
        return {name: getattr(self, name) for name in CONTRACT_FIELDS}

    @classmethod
    def from_contract_fields(cls, row, *, text: str = "") -> InstrumentSpec:
        """The spec a row holding CONTRACT_FIELDS (a run's item, an instrument) asks for; a row
        without one of them (an instrument has no last trade date) takes the default."""
        defaults = cls.__dataclass_fields__
        return cls(
            **{name: getattr(row, name, defaults[name].default) for name in CONTRACT_FIELDS},
            text=text,
        )

    def to_json(self) -> dict:
        return {**self.contract_fields(), "text": self.text}

    @classmethod
    def from_json(cls, data: dict) -> InstrumentSpec:
        return cls(**{name: data[name] for name in (*CONTRACT_FIELDS, "text") if name in data})


# What names a contract (everything but how the user typed it).
CONTRACT_FIELDS = (
    "symbol",
    "sec_type",
    "exchange",
    "primary_exchange",
    "currency",
    "last_trade_date",
    "con_id",
)


def sec_type_check(sec_type: str) -> str:
    """A security type as IBKR names it ('' when not given); InvalidInput for an unknown one."""
    sec = (sec_type or "").strip().upper()
    if sec and sec not in SEC_TYPES:
        raise InvalidInput(f"unknown security type {sec_type!r}: use one of {', '.join(SEC_TYPES)}")
    return sec


def instrument_spec_parse(
    text: str, *, sec_type: str = "", exchange: str = "", currency: str = ""
) -> InstrumentSpec:
    """One instrument from the command line: a stock on SMART in USD unless told otherwise.

    'SYMBOL:EXCHANGE' names the listing exchange of a stock (or the exchange of anything
    else); 'EUR.USD' (or EURUSD with --sec-type CASH) is a forex pair on IDEALPRO; a known
    index symbol (SPX, NDX, VIX, ...; INDICES) is that index.
    """
    raw = text.strip()
    upper = raw.upper()
    if not upper or not _SPEC_RE.match(upper):
        raise InvalidInput(f"malformed instrument {text!r}: use SYMBOL, SYMBOL:EXCHANGE or EUR.USD")
    sec = sec_type_check(sec_type)
    symbol, _, venue = upper.partition(":")
    forex = _FOREX_RE.match(symbol)
    if (sec == "CASH" and forex) or (not sec and forex and "." in symbol):
        base, quote = forex.groups()
        if currency and currency.upper() != quote:
            raise InvalidInput(f"{text!r} is quoted in {quote}, not {currency.upper()}")
        return InstrumentSpec(
            base, "CASH", venue or exchange.upper() or "IDEALPRO", "", quote, text=raw
        )
    index_venue = INDICES.get(symbol)
    if not sec and index_venue and venue in ("", index_venue):
        sec = "IND"  # 'SPX' is the S&P 500 index, not a stock
    sec = sec or ("FUT" if venue in FUTURES_EXCHANGES else "STK")
    spec = InstrumentSpec(symbol.strip(), sec, text=raw, currency=(currency or "USD").upper())
    if sec == "STK":
        spec = replace(spec, exchange=(exchange or "SMART").upper(), primary_exchange=venue)
    elif sec == "IND":
        default = index_venue or "CBOE"
        spec = replace(spec, exchange=venue or (exchange or default).upper())
    else:
        if not (venue or exchange):
            raise InvalidInput(
                f"{text!r}: a {sec} needs an exchange (SYMBOL:EXCHANGE, or an exchange for all)"
            )
        spec = replace(spec, exchange=venue or exchange.upper())
    return spec


def instrument_specs_parse(
    text: str, *, sec_type: str = "", exchange: str = "", currency: str = ""
) -> list[InstrumentSpec]:
    """A comma-separated instrument list; duplicates are dropped, order kept."""
    if text is None or not text.strip():
        raise InvalidInput("no instruments given: e.g. AAPL,MSFT")
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise InvalidInput(f"malformed instrument list {text!r}: empty item between commas")
    seen: dict[tuple, InstrumentSpec] = {}
    for part in parts:
        spec = instrument_spec_parse(part, sec_type=sec_type, exchange=exchange, currency=currency)
        key = (spec.symbol, spec.sec_type, spec.exchange, spec.primary_exchange, spec.currency)
        seen.setdefault(key, spec)
    return list(seen.values())


def spec_time_zone(spec: InstrumentSpec) -> str | None:
    """The exchange's time zone as far as the spec tells, before the gateway is asked: US
    listings and forex keep New York time, CME Group futures Chicago time; None when unsure."""
    if spec.sec_type in ("FUT", "CONTFUT"):
        return EXCHANGE_ZONES.get(spec.exchange)
    if spec.sec_type == "CASH" or (spec.sec_type in ("STK", "IND") and spec.currency == "USD"):
        return DEFAULT_ZONE
    return None
