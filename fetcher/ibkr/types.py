"""The project's own types for talking to a gateway: what it said about itself, about contracts,
and what one historical request asks. No client library here: the web and admin side import these."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fetcher.exceptions import InvalidInput

# IBKR_CLIENT: the client libraries a gateway can be spoken to through (the first is the default)
CLIENT_LIBRARIES = ("ib_insync", "ib_async")
MARKET_DATA_TYPES = {"REALTIME": 1, "FROZEN": 2, "DELAYED": 3, "DELAYED_FROZEN": 4}


@dataclass(frozen=True)
class GatewayInfo:
    host: str
    port: int
    client_id: int
    server_version: int
    account: str
    accounts: tuple[str, ...]
    connected_at: dt.datetime
    simulated: bool = False  # the ibdata simulator (its data farms say so), not a real TWS


@dataclass(frozen=True)
class QualifiedInstrument:
    """A contract as the gateway defines it (IBKR's contract details, in snake_case)."""

    con_id: int
    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    long_name: str
    time_zone: str
    min_tick: float
    last_trade_date: str
    trading_class: str
    multiplier: str


@dataclass(frozen=True)
class SymbolMatch:
    """One answer of the gateway's symbol search (reqMatchingSymbols)."""

    symbol: str
    sec_type: str
    exchange: str  # the primary listing exchange
    currency: str

    @property
    def label(self) -> str:
        """'SPX (IND, CBOE)'."""
        return f"{self.symbol} ({self.sec_type}, {self.exchange})"


@dataclass(frozen=True)
class BarRequest:
    """One historical-data request, in IBKR's own terms."""

    end: str  # IBKR endDateTime, e.g. '20240131-23:59:59' ('' = now)
    duration: str  # e.g. '1 D'
    bar_size: str  # e.g. '1 min'
    what_to_show: str
    use_rth: bool


def market_data_type_code(name: str) -> int:
    try:
        return MARKET_DATA_TYPES[name.strip().upper()]
    except KeyError:
        raise InvalidInput(
            f"IBKR_MARKET_DATA_TYPE={name!r} is not one of {', '.join(MARKET_DATA_TYPES)}"
        ) from None
