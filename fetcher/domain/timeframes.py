"""Timeframes users name (DAILY, 1-MINUTE, ...), what IBKR calls them and allows per request, and
the whatToShow values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import IntEnum

from fetcher.exceptions import InvalidInput


class WhatToShow(IntEnum):
    """IBKR's whatToShow values; the number is what the database stores, the name what IBKR reads."""

    TRADES = 1
    MIDPOINT = 2
    BID = 3
    ASK = 4
    BID_ASK = 5
    ADJUSTED_LAST = 6
    HISTORICAL_VOLATILITY = 7
    OPTION_IMPLIED_VOLATILITY = 8

    @classmethod
    def parse(cls, text: str) -> WhatToShow:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(w.name for w in cls)
            raise InvalidInput(f"unknown what-to-show {text!r}: use one of {names}") from None


# BID_ASK counts as two requests in IBKR's pacing rules.
BID_ASK_WEIGHT = 2


@dataclass(frozen=True)
class TimeframeSpec:
    name: str  # what users type: DAILY, 1-MINUTE
    code: int  # what the Bar table stores
    bar_size: str  # IBKR's barSizeSetting
    max_duration: str  # the largest durationStr IBKR accepts for this bar size
    seconds: int  # bar length; 0 for day, week and month bars

    @property
    def intraday(self) -> bool:
        return self.seconds > 0

    @property
    def small(self) -> bool:
        """Bars of 30 s or less: IBKR's hard pacing rules apply."""
        return 0 < self.seconds <= 30

    @property
    def step(self) -> timedelta:
        return timedelta(seconds=self.seconds) if self.seconds else timedelta(days=1)


# IBKR keeps bars of 30 s or less for six months only (docs/ibkr.md); a day less, to be safe.
SMALL_BARS_DAYS = 180


_SPECS = (
    TimeframeSpec("1-SECOND", 1, "1 secs", "1800 S", 1),
    TimeframeSpec("5-SECOND", 2, "5 secs", "3600 S", 5),
    TimeframeSpec("10-SECOND", 3, "10 secs", "14400 S", 10),
    TimeframeSpec("15-SECOND", 4, "15 secs", "14400 S", 15),
    TimeframeSpec("30-SECOND", 5, "30 secs", "28800 S", 30),
    TimeframeSpec("1-MINUTE", 6, "1 min", "1 D", 60),
    TimeframeSpec("2-MINUTE", 7, "2 mins", "2 D", 120),
    TimeframeSpec("3-MINUTE", 8, "3 mins", "1 W", 180),
    TimeframeSpec("5-MINUTE", 9, "5 mins", "1 W", 300),
    TimeframeSpec("10-MINUTE", 10, "10 mins", "1 W", 600),
    TimeframeSpec("15-MINUTE", 11, "15 mins", "1 W", 900),
    TimeframeSpec("20-MINUTE", 12, "20 mins", "1 W", 1200),
    TimeframeSpec("30-MINUTE", 13, "30 mins", "1 M", 1800),
    TimeframeSpec("1-HOUR", 14, "1 hour", "1 M", 3600),
    TimeframeSpec("2-HOUR", 15, "2 hours", "1 M", 7200),
    TimeframeSpec("3-HOUR", 16, "3 hours", "1 M", 10800),
    TimeframeSpec("4-HOUR", 17, "4 hours", "1 M", 14400),
    TimeframeSpec("8-HOUR", 18, "8 hours", "1 M", 28800),
    TimeframeSpec("DAILY", 19, "1 day", "1 Y", 0),
    TimeframeSpec("WEEKLY", 20, "1 week", "5 Y", 0),
    TimeframeSpec("MONTHLY", 21, "1 month", "10 Y", 0),
)

TIMEFRAMES: dict[str, TimeframeSpec] = {t.name: t for t in _SPECS}

# IBKR reads at most this many of each unit; longer durations must be asked in years (its
# error 321, docs/ibkr.md "Request parameters").
LONGEST_IN_UNIT = {"S": 86_400, "D": 365, "W": 52, "M": 12}
_UNIT_DAYS = {"D": 1, "W": 7, "M": 31, "Y": 366}


def duration_accepted(tf: TimeframeSpec, duration: str) -> bool:
    """Whether IBKR accepts `duration` of `tf`'s bars: no more of a unit than it reads (else
    321), and for intraday bars no longer than the largest duration of IBKR's step table, which
    IBKR serves however long its unpublished limit ('Time length exceed max.') is."""
    count, unit = duration.split()
    if int(count) <= 0 or int(count) > LONGEST_IN_UNIT.get(unit, int(count)):
        return False
    if not tf.intraday:
        return True
    largest, largest_unit = tf.max_duration.split()

    def seconds(n: str, u: str) -> int:
        return int(n) if u == "S" else int(n) * _UNIT_DAYS[u] * 86_400

    return seconds(count, unit) <= seconds(largest, largest_unit)


BY_CODE: dict[int, TimeframeSpec] = {t.code: t for t in _SPECS}
# Accepted spellings beyond the canonical names.
ALIASES = {
    "1-DAY": "DAILY",
    "DAY": "DAILY",
    "1-WEEK": "WEEKLY",
    "1-MONTH": "MONTHLY",
    "MINUTE": "1-MINUTE",
    "HOURLY": "1-HOUR",
    "1-MIN": "1-MINUTE",
    "5-MIN": "5-MINUTE",
}


def timeframe_parse(text: str) -> TimeframeSpec:
    """'daily' -> DAILY spec; InvalidInput that lists the valid names otherwise."""
    key = text.strip().upper().replace("_", "-").replace(" ", "-")
    key = ALIASES.get(key, key)
    spec = TIMEFRAMES.get(key)
    if spec is None:
        raise InvalidInput(f"unknown timeframe {text!r}: use one of {', '.join(TIMEFRAMES)}")
    return spec
