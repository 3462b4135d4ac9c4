"""The simulated market the gateway server asks for contracts, sessions and bars."""

from __future__ import annotations

import math

import numpy as np

from ibsim import texts, universe
from ibsim.aggregate import BarArrays
from ibsim.barformat import decimals_for
from ibsim.bars import intraday_bars, period_bars
from ibsim.calendars import sessions
from ibsim.calendars import trading_hours as _trading_hours
from ibsim.model import model
from ibsim.rules import WHAT_TO_SHOW, BarSize, BarUnit
from ibsim.universe import QUOTE_TYPES, Listing, head_of

__all__ = ["BarArrays", "Listing", "Market", "MarketError"]

# What each security type has data for (IBKR: forex has no TRADES, only stocks ADJUSTED_LAST).
SUPPORTED_WHAT: dict[str, frozenset[str]] = {
    "STK": frozenset(WHAT_TO_SHOW),
    "FUT": frozenset(WHAT_TO_SHOW) - {"ADJUSTED_LAST"},
    "IND": frozenset({"TRADES", "HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY"}),
    "CASH": frozenset({"MIDPOINT", "BID", "ASK", "BID_ASK"}),
}

# The words IBKR's data farm uses for a tick type in its error texts.
_WHAT_WORD = {
    "TRADES": "Last",
    "MIDPOINT": "Midpoint",
    "BID": "Bid",
    "ASK": "Ask",
    "BID_ASK": "BidAsk",
    "ADJUSTED_LAST": "AdjustedLast",
    "HISTORICAL_VOLATILITY": "HV",
    "OPTION_IMPLIED_VOLATILITY": "IV",
}
_UNIT_WORD = {BarUnit.DAY: "1d", BarUnit.WEEK: "1w", BarUnit.MONTH: "1M"}
# Decimals beyond the tick's of prices adjusted for splits or dividends.
ADJUSTED_DECIMALS = 2
# An expired future's bars are kept this long after its expiry, then it is gone.
EXPIRED_KEPT_S = 2 * 365 * 86_400


def no_data(spec: Listing, exchange: str, what_to_show: str) -> tuple[int, str]:
    """IBKR's 162 for a window without bars, naming the instrument as its data farm does."""
    return texts.no_data(spec.data_name, exchange, what_to_show)


class MarketError(Exception):
    """A request the market cannot serve, with IBKR's error code and text."""

    def __init__(self, code: int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _bar_word(bar_size: BarSize | None) -> str:
    if bar_size is None:
        return "1d"
    if bar_size.intraday:
        seconds = bar_size.seconds
        return f"{seconds} secs" if seconds < 60 else f"{seconds // 60} mins"
    return _UNIT_WORD[bar_size.unit]


class Market:
    """Deterministic bars for the instruments of `universe`; `seed` varies every price path."""

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    def warm_up(self) -> None:
        """Build every calendar the universe trades on (cached for the process)."""
        for key in {(i.calendar, i.session_kind, i.time_zone_id) for i in universe.INSTRUMENTS}:
            sessions(*key)

    def matching(self, pattern: str) -> list[Listing]:
        """The instruments a symbol search (reqMatchingSymbols) answers, closest first."""
        return universe.matching(pattern)

    def find(
        self,
        symbol: str,
        sec_type: str,
        exchange: str,
        currency: str,
        con_id: int = 0,
        local_symbol: str = "",
        primary_exchange: str = "",
        *,
        include_expired: bool = False,
        now: float | None = None,
    ) -> list[Listing]:
        """The listings a contract request matches at `now` (None: whatever the time): none
        listed after it; an expired future only with `include_expired`, and for two years
        after its expiry; CONTFUT, the continuous future, never expires."""
        found = universe.find(
            symbol, sec_type, exchange, currency, con_id, local_symbol, primary_exchange
        )
        if now is None:
            return found
        continuous = sec_type.strip().upper() == "CONTFUT"
        return [
            spec
            for spec in found
            if spec.head_timestamp <= now
            and (
                continuous
                or spec.expiry is None
                or now < spec.expiry
                or (include_expired and now < spec.expiry + EXPIRED_KEPT_S)
            )
        ]

    def check(self, spec: Listing, what_to_show: str, bar_size: BarSize | None = None) -> None:
        """Raise MarketError when `spec` has no `what_to_show` data (IBKR's codes and texts)."""
        if what_to_show not in WHAT_TO_SHOW:
            raise MarketError(321, "Error validating request.-'bX' : cause - Invalid whatToShow")
        if what_to_show not in SUPPORTED_WHAT.get(spec.sec_type, frozenset()):
            venue = "FXSUBPIP" if spec.sec_type == "CASH" else spec.exchange
            raise MarketError(
                162,
                "Historical Market Data Service error message:No historical market data for "
                f"{spec.symbol}/{spec.sec_type}@{venue} {_WHAT_WORD[what_to_show]} "
                f"{_bar_word(bar_size)}",
            )

    def head_timestamp(
        self, spec: Listing, what_to_show: str, use_rth: bool, now: float | None = None
    ) -> int:
        """Epoch seconds UTC of the first bar of `what_to_show` that exists (at `now`)."""
        self.check(spec, what_to_show)
        m = model(spec, self.seed)
        head = head_of(spec, what_to_show)
        starts, ends = m.sessions.bounds(use_rth)
        first = max(m.first, int(np.searchsorted(ends, head, side="right")))
        has_hours = ends > np.maximum(starts, head)
        i = first + int(np.argmax(has_hours[first:]))
        found = max(int(starts[i]), head)
        if now is not None and found > now:
            raise MarketError(*no_data(spec, spec.exchange, what_to_show))
        return found

    def sessions_back(self, spec: Listing, end: int, n: int, use_rth: bool) -> int:
        """Start of the n-th last session starting before `end` (`end` when there is none)."""
        m = model(spec, self.seed)
        starts, ends = m.sessions.bounds(use_rth)
        starts = np.maximum(starts, m.head)
        candidates = np.flatnonzero((starts < end) & (ends > starts))
        if len(candidates) == 0 or n <= 0:
            return end
        return int(starts[candidates[max(len(candidates) - n, 0)]])

    def bars(
        self,
        spec: Listing,
        bar_size: BarSize,
        what_to_show: str,
        use_rth: bool,
        start: int,
        end: int,
        now: float | None = None,
    ) -> BarArrays:
        """Bars whose start is in [start, end) as IBKR serves them at `now` (None: every bar
        there will be): none after it, the one in progress partial, history adjusted for the
        splits since. A day or a month is in the window when its first session opens there, a
        week when its last session that has begun does. Quote bars carry no volume, WAP or count
        (-1)."""
        self.check(spec, what_to_show, bar_size)
        m = model(spec, self.seed)
        head = head_of(spec, what_to_show)
        start = max(int(start), head)
        end = int(end) if now is None else min(int(end), math.ceil(now))
        if end <= start:
            return BarArrays.empty(daily=not bar_size.intraday)
        if bar_size.intraday:
            b = intraday_bars(
                m, what_to_show, use_rth, bar_size.seconds, start, end, head=head, now=now
            )
        else:
            b = period_bars(
                m, what_to_show, use_rth, bar_size.unit.value, start, end, head=head, now=now
            )
        if what_to_show in QUOTE_TYPES:
            return b.without_volume()
        return b

    def price_decimals(self, spec: Listing, what_to_show: str) -> int:
        """Decimals of the prices in bar rows: the tick's, and ADJUSTED_DECIMALS more for
        prices that splits or dividends may have adjusted (IBKR: 74.0575, a quarter of 296.23);
        WAPs carry two more."""
        adjusted = bool(spec.splits) or what_to_show == "ADJUSTED_LAST"
        return decimals_for(spec.min_tick) + (ADJUSTED_DECIMALS if adjusted else 0)

    def trading_hours(self, spec: Listing, around: int, days: int = 7) -> tuple[str, str]:
        """IBKR's (tradingHours, liquidHours) for contract details, from the day of `around`."""
        s = sessions(spec.calendar, spec.session_kind, spec.time_zone_id)
        return _trading_hours(s, spec.time_zone_id, around, days)
