"""A fetch request: what a user asks for, checked when it is built, its errors naming the field."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import InitVar, dataclass, field

from fetcher.exceptions import InvalidInput

from .instruments import InstrumentSpec, instrument_specs_parse, sec_type_check
from .timeframes import SMALL_BARS_DAYS, TIMEFRAMES, TimeframeSpec, WhatToShow, timeframe_parse

DAILY = TIMEFRAMES["DAILY"]
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RequestInvalid(InvalidInput):
    """A request that cannot be served: the field at fault and the problem, in words that name
    neither a command-line flag nor a form field (each way in says which of its own it was)."""

    def __init__(self, field_name: str, problem: str):
        super().__init__(problem)
        self.field = field_name
        self.problem = problem


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@dataclass(frozen=True)
class FetchRequest:
    """What a user asks a fetch for. Dates are inclusive, in each exchange's time zone; no
    start means after the last stored bar (or from the gateway's first data point, with
    `since_head`), no end means up to now. Built only valid: RequestInvalid otherwise."""

    instruments: tuple[InstrumentSpec, ...]
    timeframe: TimeframeSpec = DAILY
    what_to_show: WhatToShow = WhatToShow.TRADES
    use_rth: bool = True
    start: dt.date | None = None
    end: dt.date | None = None
    since_head: bool = False
    # the date the checks take as today (UTC); the clock's when not given
    today: InitVar[dt.date | None] = field(default=None, kw_only=True)

    def __post_init__(self, today: dt.date | None) -> None:
        object.__setattr__(self, "instruments", tuple(self.instruments))
        _check(self, today or utc_today())

    @classmethod
    def parse(
        cls,
        *,
        instruments: str | None,
        timeframe: str = "DAILY",
        what_to_show: str | None = None,
        use_rth: bool = True,
        start: str | None = None,
        end: str | None = None,
        since_head: bool = False,
        sec_type: str = "",
        exchange: str = "",
        currency: str = "",
        today: dt.date | None = None,
    ) -> FetchRequest:
        """A request from text as users type it (command-line options, a schedule's fields).
        No what-to-show: TRADES, or MIDPOINT when every instrument is forex."""
        with _blame("sec_type"):
            sec_type_check(sec_type)
        with _blame("instruments"):
            specs = instrument_specs_parse(
                instruments or "", sec_type=sec_type, exchange=exchange, currency=currency
            )
        with _blame("timeframe"):
            tf = timeframe_parse(timeframe)
        with _blame("what_to_show"):
            what = WhatToShow.parse(what_to_show) if what_to_show else _default_what(specs)
        return cls(
            instruments=tuple(specs),
            timeframe=tf,
            what_to_show=what,
            use_rth=use_rth,
            start=date_parse(start, "start"),
            end=date_parse(end, "end"),
            since_head=since_head,
            today=today,
        )

    @property
    def labels(self) -> list[str]:
        return [spec.label for spec in self.instruments]

    def to_json(self) -> dict:
        return {
            "instruments": [spec.to_json() for spec in self.instruments],
            "timeframe": self.timeframe.name,
            "what_to_show": self.what_to_show.name,
            "use_rth": self.use_rth,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "since_head": self.since_head,
        }

    @classmethod
    def from_json(cls, data: dict, *, today: dt.date | None = None) -> FetchRequest:
        return cls(
            instruments=tuple(InstrumentSpec.from_json(s) for s in data["instruments"]),
            timeframe=timeframe_parse(data["timeframe"]),
            what_to_show=WhatToShow[data["what_to_show"]],
            use_rth=data["use_rth"],
            start=date_parse(data.get("start"), "start"),
            end=date_parse(data.get("end"), "end"),
            since_head=data.get("since_head", False),
            today=today,
        )


def _default_what(specs: list[InstrumentSpec]) -> WhatToShow:
    """TRADES; MIDPOINT for forex, which IBKR has no trades of."""
    forex = [s.label for s in specs if s.sec_type == "CASH"]
    if not forex:
        return WhatToShow.TRADES
    if len(forex) < len(specs):
        raise InvalidInput(
            f"{', '.join(forex)}: forex has no TRADES bars at IBKR (its default is MIDPOINT): "
            "fetch forex apart, or give one what-to-show for all"
        )
    return WhatToShow.MIDPOINT


def date_parse(text: str | dt.date | None, field_name: str) -> dt.date | None:
    """'2024-01-31' as a date (a date stays one); None for nothing."""
    if text is None or text == "" or isinstance(text, dt.date):
        return text or None
    value = text.strip()
    if not _DATE_RE.match(value):
        raise RequestInvalid(field_name, f"{text!r} is not a date: use YYYY-MM-DD, e.g. 2024-01-31")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise RequestInvalid(field_name, f"{text!r} is not a valid date: use YYYY-MM-DD") from None


@contextlib.contextmanager
def _blame(field_name: str):
    """Turn a parser's InvalidInput into a RequestInvalid naming the field."""
    try:
        yield
    except RequestInvalid:
        raise
    except InvalidInput as exc:
        raise RequestInvalid(field_name, str(exc)) from None


def _check(request: FetchRequest, today: dt.date) -> None:
    start, end = request.start, request.end
    if not request.instruments:
        raise RequestInvalid("instruments", "no instruments given: e.g. AAPL,MSFT")
    if start and start > today:
        raise RequestInvalid("start", f"start date {start} is in the future (today is {today})")
    if end and end > today:
        raise RequestInvalid("end", f"end date {end} is in the future (today is {today})")
    if start and end and end < start:
        raise RequestInvalid("end", f"end date {end} is before start date {start}")
    if request.since_head and start:
        raise RequestInvalid(
            "since_head",
            "'since the first data point' and a start date contradict each other: give one",
        )
    forex = [s.label for s in request.instruments if s.sec_type == "CASH"]
    if forex and request.what_to_show in (WhatToShow.TRADES, WhatToShow.ADJUSTED_LAST):
        raise RequestInvalid(
            "what_to_show",
            f"{', '.join(forex)}: IBKR has no {request.what_to_show.name} bars of forex: "
            "use MIDPOINT, BID, ASK or BID_ASK",
        )
    if request.what_to_show == WhatToShow.ADJUSTED_LAST and end and end < today:
        raise RequestInvalid("end", "ADJUSTED_LAST bars can only be fetched up to now: no end date")
    oldest = today - dt.timedelta(days=SMALL_BARS_DAYS)
    if request.timeframe.small and start and start < oldest:
        raise RequestInvalid(
            "start",
            f"IBKR keeps {request.timeframe.name} bars (30 s or less) for six months only: "
            f"the start must be {oldest} or later",
        )
