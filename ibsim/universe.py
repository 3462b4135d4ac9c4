"""The instruments the simulated gateway knows, and IBKR's rules for matching a contract request."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ibsim.calendars import FOREX_CALENDAR, IANA_ZONES, SessionKind


def _epoch(local: str, time_zone_id: str) -> int:
    """'1980-12-12 09:30' in an IBKR zone -> epoch seconds UTC."""
    zone = ZoneInfo(IANA_ZONES.get(time_zone_id, time_zone_id))
    return int(datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=zone).timestamp())


@dataclass(frozen=True)
class Listing:
    con_id: int
    symbol: str
    sec_type: str  # STK (ETFs too), FUT, IND, CASH
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    long_name: str
    min_tick: float
    time_zone_id: str  # IBKR's name, e.g. US/Eastern
    calendar: str  # exchange_calendars code, or calendars.FOREX_CALENDAR
    session_kind: SessionKind
    head_timestamp: int  # epoch seconds UTC of the first data point
    anchor_price: float  # roughly the real price in January 2024
    daily_vol: float  # standard deviation of daily log returns
    daily_volume: int  # typical daily volume; 0 when the instrument has none
    multiplier: str = ""
    last_trade_date: str = ""  # lastTradeDateOrContractMonth, futures only
    annual_drift: float = 0.08  # trend of the log price, per year
    dividend_yield: float = 0.0  # annual, drives the ADJUSTED_LAST factor
    industry: str = ""
    category: str = ""
    # Stock splits as (ex-date 'YYYY-MM-DD', ratio): from that session on, the traded price is
    # the ratio lower and the volume the ratio higher (docs/tws-protocol.md, "Corporate actions").
    splits: tuple[tuple[str, float], ...] = ()

    @property
    def data_name(self) -> str:
        """How IBKR's data farm names the instrument in its texts: EUR.USD for a currency pair
        (the pair, not its base currency), the symbol otherwise."""
        return self.local_symbol if self.sec_type == "CASH" else self.symbol

    @property
    def expiry(self) -> int | None:
        """Epoch seconds of the end (UTC midnight after) of a future's last trading day; None for
        what does not expire."""
        if not self.last_trade_date:
            return None
        day = datetime.strptime(self.last_trade_date, "%Y%m%d").replace(tzinfo=UTC)
        return int(day.timestamp()) + 86_400

    @property
    def price_decimals(self) -> int:
        """Decimals that represent every multiple of min_tick exactly."""
        text = f"{self.min_tick:.10f}".rstrip("0")
        return len(text.split(".")[1]) if "." in text else 0


_STOCK_VENUES = {"SMART", "ISLAND", "NASDAQ", "NYSE", "ARCA", "BATS", "IEX", "AMEX", "BYX", "EDGEA"}


def _stock(
    con_id: int,
    symbol: str,
    primary: str,
    long_name: str,
    ipo: str,
    anchor: float,
    vol: float,
    volume_m: float,
    *,
    drift: float = 0.08,
    dividend: float = 0.0,
    industry: str = "",
    etf: bool = False,
    splits: tuple[tuple[str, float], ...] = (),
) -> Listing:
    return Listing(
        con_id=con_id,
        symbol=symbol,
        sec_type="STK",
        exchange="SMART",
        primary_exchange=primary,
        currency="USD",
        local_symbol=symbol,
        trading_class="NMS" if primary == "NASDAQ" and not etf else symbol,
        long_name=long_name,
        min_tick=0.01,
        time_zone_id="US/Eastern",
        calendar="XNYS",
        session_kind=SessionKind.US_EQUITY,
        head_timestamp=_epoch(f"{ipo} 09:30", "US/Eastern"),
        anchor_price=anchor,
        daily_vol=vol,
        daily_volume=int(volume_m * 1_000_000),
        annual_drift=drift,
        dividend_yield=dividend,
        industry="Funds" if etf else industry,
        category="Equity Fund" if etf else "",
        splits=splits,
    )


# conIds follow IBKR's where known (AAPL 265598, MSFT 272093, SPY 756733, EUR.USD 12087792, ...);
# the others are stable numbers that may differ from IBKR's. They must never change: stored
# instruments and the deterministic bars are keyed on them.
INSTRUMENTS: tuple[Listing, ...] = (
    _stock(265598, "AAPL", "NASDAQ", "APPLE INC", "1980-12-12", 185.0, 0.017, 55,
           drift=0.15, dividend=0.005, industry="Technology",
           splits=(("2014-06-09", 7.0), ("2020-08-31", 4.0))),
    _stock(272093, "MSFT", "NASDAQ", "MICROSOFT CORP", "1986-03-13", 370.0, 0.016, 22,
           drift=0.15, dividend=0.008, industry="Technology"),
    _stock(208813719, "GOOGL", "NASDAQ", "ALPHABET INC-CL A", "2004-08-19", 140.0, 0.019, 25,
           drift=0.15, industry="Communications", splits=(("2022-07-18", 20.0),)),
    _stock(3691937, "AMZN", "NASDAQ", "AMAZON.COM INC", "1997-05-15", 151.0, 0.021, 45,
           drift=0.2, industry="Consumer, Cyclical", splits=(("2022-06-06", 20.0),)),
    _stock(4815747, "NVDA", "NASDAQ", "NVIDIA CORP", "1999-01-22", 490.0, 0.032, 45,
           drift=0.25, dividend=0.0003, industry="Technology",
           splits=(("2021-07-20", 4.0), ("2024-06-10", 10.0))),
    _stock(107113386, "META", "NASDAQ", "META PLATFORMS INC-CLASS A", "2012-05-18", 350.0, 0.026,
           17, drift=0.12, industry="Communications"),
    _stock(76792991, "TSLA", "NASDAQ", "TESLA INC", "2010-06-29", 245.0, 0.035, 110,
           drift=0.25, industry="Consumer, Cyclical",
           splits=(("2020-08-31", 5.0), ("2022-08-25", 3.0))),
    _stock(72063691, "BRK B", "NYSE", "BERKSHIRE HATHAWAY INC-CL B", "1996-05-09", 360.0, 0.009,
           3.5, drift=0.1, industry="Financial"),
    _stock(1520593, "JPM", "NYSE", "JPMORGAN CHASE & CO", "1980-01-02", 170.0, 0.013, 9,
           dividend=0.025, industry="Financial"),
    _stock(49462172, "V", "NYSE", "VISA INC-CLASS A SHARES", "2008-03-19", 260.0, 0.011, 6,
           drift=0.14, dividend=0.008, industry="Financial"),
    _stock(8719, "JNJ", "NYSE", "JOHNSON & JOHNSON", "1980-01-02", 157.0, 0.009, 7,
           dividend=0.03, industry="Consumer, Non-cyclical"),
    _stock(13824, "WMT", "NYSE", "WALMART INC", "1980-01-02", 157.0, 0.009, 7,
           dividend=0.015, industry="Consumer, Non-cyclical"),
    _stock(15016062, "PG", "NYSE", "PROCTER & GAMBLE CO/THE", "1980-01-02", 147.0, 0.009, 7,
           dividend=0.025, industry="Consumer, Non-cyclical"),
    _stock(13977, "XOM", "NYSE", "EXXON MOBIL CORP", "1980-01-02", 100.0, 0.015, 17,
           drift=0.06, dividend=0.035, industry="Energy"),
    _stock(13096, "UNH", "NYSE", "UNITEDHEALTH GROUP INC", "1984-10-17", 525.0, 0.013, 3.5,
           drift=0.15, dividend=0.014, industry="Consumer, Non-cyclical"),
    _stock(4934, "HD", "NYSE", "HOME DEPOT INC", "1981-09-22", 350.0, 0.013, 3.5,
           drift=0.14, dividend=0.025, industry="Consumer, Cyclical"),
    _stock(62925, "MA", "NYSE", "MASTERCARD INC - A", "2006-05-25", 425.0, 0.012, 2.7,
           drift=0.16, dividend=0.006, industry="Financial"),
    _stock(8894, "KO", "NYSE", "COCA-COLA CO/THE", "1980-01-02", 59.0, 0.008, 13,
           dividend=0.03, industry="Consumer, Non-cyclical"),
    _stock(11017, "PEP", "NASDAQ", "PEPSICO INC", "1980-01-02", 170.0, 0.008, 5,
           dividend=0.03, industry="Consumer, Non-cyclical"),
    _stock(272997, "COST", "NASDAQ", "COSTCO WHOLESALE CORP", "1985-12-05", 660.0, 0.012, 2,
           drift=0.13, dividend=0.007, industry="Consumer, Non-cyclical"),
    _stock(93432291, "AVGO", "NASDAQ", "BROADCOM INC", "2009-08-06", 1110.0, 0.022, 2.5,
           drift=0.2, dividend=0.018, industry="Technology"),
    _stock(15124833, "NFLX", "NASDAQ", "NETFLIX INC", "2002-05-23", 470.0, 0.027, 5,
           drift=0.2, industry="Communications"),
    _stock(4391, "AMD", "NASDAQ", "ADVANCED MICRO DEVICES", "1980-01-02", 140.0, 0.031, 55,
           drift=0.06, industry="Technology"),
    _stock(270639, "INTC", "NASDAQ", "INTEL CORP", "1980-01-02", 48.0, 0.022, 40,
           dividend=0.015, industry="Technology"),
    _stock(6459, "DIS", "NYSE", "WALT DISNEY CO/THE", "1980-01-02", 90.0, 0.015, 9,
           industry="Communications"),
    _stock(272800, "ORCL", "NYSE", "ORACLE CORP", "1986-03-12", 105.0, 0.017, 8,
           drift=0.12, dividend=0.015, industry="Technology"),
    _stock(268084, "CSCO", "NASDAQ", "CISCO SYSTEMS INC", "1990-02-16", 50.0, 0.012, 18,
           dividend=0.03, industry="Communications"),
    _stock(265768, "ADBE", "NASDAQ", "ADOBE INC", "1986-08-20", 595.0, 0.021, 2.5,
           drift=0.15, industry="Technology"),
    _stock(44652000, "CRM", "NYSE", "SALESFORCE INC", "2004-06-23", 265.0, 0.02, 5,
           drift=0.14, industry="Technology"),
    _stock(756733, "SPY", "ARCA", "SPDR S&P 500 ETF TRUST", "1993-01-29", 472.0, 0.009, 75,
           dividend=0.014, etf=True),
    _stock(320227571, "QQQ", "NASDAQ", "INVESCO QQQ TRUST SERIES 1", "1999-03-10", 405.0, 0.012,
           45, drift=0.11, dividend=0.006, etf=True),
    _stock(9579970, "IWM", "ARCA", "ISHARES RUSSELL 2000 ETF", "2000-05-26", 200.0, 0.013, 35,
           drift=0.06, dividend=0.013, etf=True),
    _stock(73128548, "DIA", "ARCA", "SPDR DJIA TRUST", "1998-01-20", 376.0, 0.008, 3,
           dividend=0.018, etf=True),
    Listing(
        con_id=495512563,
        symbol="ES",
        sec_type="FUT",
        exchange="CME",
        primary_exchange="",
        currency="USD",
        local_symbol="ESZ4",
        trading_class="ES",
        long_name="E-mini S&P 500",
        min_tick=0.25,
        time_zone_id="US/Central",
        calendar="CMES",
        session_kind=SessionKind.CME_FUTURE,
        head_timestamp=_epoch("1997-09-08 17:00", "US/Central"),
        anchor_price=4850.0,
        daily_vol=0.009,
        daily_volume=1_500_000,
        multiplier="50",
        last_trade_date="20241220",
    ),
    Listing(
        con_id=416904,
        symbol="SPX",
        sec_type="IND",
        exchange="CBOE",
        primary_exchange="",
        currency="USD",
        local_symbol="SPX",
        trading_class="SPX",
        long_name="S&P 500 Stock Index",
        min_tick=0.01,
        time_zone_id="US/Central",
        calendar="XNYS",
        session_kind=SessionKind.RTH_ONLY,
        head_timestamp=_epoch("1980-01-02 08:30", "US/Central"),
        anchor_price=4740.0,
        daily_vol=0.009,
        daily_volume=0,
    ),
    Listing(
        con_id=12087792,
        symbol="EUR",
        sec_type="CASH",
        exchange="IDEALPRO",
        primary_exchange="",
        currency="USD",
        local_symbol="EUR.USD",
        trading_class="EUR.USD",
        long_name="European Monetary Union Euro",
        min_tick=0.00005,
        time_zone_id="US/Eastern",
        calendar=FOREX_CALENDAR,
        session_kind=SessionKind.FOREX,
        head_timestamp=_epoch("2005-01-02 17:00", "US/Eastern"),
        anchor_price=1.10,
        daily_vol=0.004,
        daily_volume=0,
        annual_drift=0.0,
    ),
)  # fmt: skip

BY_CON_ID: dict[int, Listing] = {spec.con_id: spec for spec in INSTRUMENTS}

# Where IBKR's bid and ask history of stocks, futures and indices begins: years after the trades
# (docs/tws-protocol.md, "Head timestamps"). IBKR publishes no date; this one is the simulator's.
QUOTES_START = _epoch("2004-01-02 09:30", "US/Eastern")
QUOTE_TYPES = frozenset({"MIDPOINT", "BID", "ASK", "BID_ASK"})


def head_of(spec: Listing, what_to_show: str) -> int:
    """Epoch seconds of the first data point of `what_to_show`: a currency pair's quotes are its
    whole history; anything else's quotes begin at QUOTES_START at the earliest."""
    if what_to_show in QUOTE_TYPES and spec.sec_type != "CASH":
        return max(spec.head_timestamp, QUOTES_START)
    return spec.head_timestamp


_EXCHANGE_ALIASES = {"FUT": {"CME", "GLOBEX"}, "IND": {"CBOE"}, "CASH": {"IDEALPRO"}}


def _normal_symbol(symbol: str) -> str:
    return symbol.strip().upper().replace(".", " ").replace("-", " ")


def _exchange_matches(spec: Listing, exchange: str) -> bool:
    if spec.sec_type == "STK":
        return exchange in _STOCK_VENUES or exchange == spec.primary_exchange
    return exchange in _EXCHANGE_ALIASES.get(spec.sec_type, {spec.exchange})


def find(
    symbol: str,
    sec_type: str,
    exchange: str,
    currency: str,
    con_id: int = 0,
    local_symbol: str = "",
    primary_exchange: str = "",
) -> list[Listing]:
    """The instruments a contract request matches, as IBKR resolves it; [] when unknown.

    A non-zero con_id decides alone. Otherwise the symbol (or, without one, the local symbol)
    must match, and every other field matches when given: an empty field means "any".
    CONTFUT asks for the front future.
    """
    if con_id:
        spec = BY_CON_ID.get(int(con_id))
        return [spec] if spec else []
    symbol, local = _normal_symbol(symbol), _normal_symbol(local_symbol)
    if not symbol and not local:
        return []
    sec_type, exchange = sec_type.strip().upper(), exchange.strip().upper()
    currency, primary = currency.strip().upper(), primary_exchange.strip().upper()
    if sec_type == "CONTFUT":
        sec_type = "FUT"
    found = []
    for spec in INSTRUMENTS:
        if symbol and _normal_symbol(spec.symbol) != symbol:
            continue
        if local and _normal_symbol(spec.local_symbol) != local:
            continue
        if sec_type and spec.sec_type != sec_type:
            continue
        if currency and spec.currency != currency:
            continue
        if exchange and not _exchange_matches(spec, exchange):
            continue
        if primary and spec.primary_exchange != primary:
            continue
        found.append(spec)
    return found


MATCHES_MAX = 16  # IBKR answers reqMatchingSymbols with at most 16 descriptions


def matching(pattern: str) -> list[Listing]:
    """The instruments reqMatchingSymbols answers for `pattern`, closest first: symbols that
    begin with it, then symbols it begins with (SPXX: SPX), then those sharing all its letters
    but the last one or two (SPXX: SPY), then names with a word that begins with it; one
    listing per symbol and type (the front future of a root)."""
    wanted = _normal_symbol(pattern)
    if not wanted:
        return []

    def rank(spec: Listing) -> int | None:
        symbol = _normal_symbol(spec.symbol)
        if symbol.startswith(wanted):
            return 0
        if wanted.startswith(symbol):
            return 1
        shared = len(os.path.commonprefix([symbol, wanted]))
        if shared >= 2 and shared >= len(wanted) - 2:
            return 2
        if len(wanted) >= 3 and any(w.startswith(wanted) for w in spec.long_name.upper().split()):
            return 3
        return None

    ranked = sorted(
        (r, spec.symbol, spec.sec_type, spec)
        for spec in INSTRUMENTS
        if (r := rank(spec)) is not None
    )
    seen: set[tuple[str, str]] = set()
    found = []
    for _, symbol, sec_type, spec in ranked:
        if (symbol, sec_type) not in seen:
            seen.add((symbol, sec_type))
            found.append(spec)
    return found[:MATCHES_MAX]
