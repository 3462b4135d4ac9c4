"""IBKR's historical-data rules as the simulated gateway enforces them: bar sizes, durations, limits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class BarUnit(StrEnum):
    SECONDS = "seconds"  # intraday bars with a fixed length in seconds
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True)
class BarSize:
    """One IBKR barSizeSetting, e.g. '5 mins'. `seconds` is the bar length for intraday sizes."""

    setting: str
    unit: BarUnit
    seconds: int = 0

    @property
    def intraday(self) -> bool:
        return self.unit is BarUnit.SECONDS

    @property
    def small(self) -> bool:
        """Bars of 30 seconds or less: the hard pacing rules apply to them."""
        return self.unit is BarUnit.SECONDS and self.seconds <= 30


def _intraday(setting: str, seconds: int) -> BarSize:
    return BarSize(setting, BarUnit.SECONDS, seconds)


# IBKR's documented barSizeSetting strings (docs/ibkr.md, "Request parameters").
BAR_SIZES: dict[str, BarSize] = {
    b.setting: b
    for b in (
        _intraday("1 secs", 1),
        _intraday("5 secs", 5),
        _intraday("10 secs", 10),
        _intraday("15 secs", 15),
        _intraday("30 secs", 30),
        _intraday("1 min", 60),
        _intraday("2 mins", 120),
        _intraday("3 mins", 180),
        _intraday("5 mins", 300),
        _intraday("10 mins", 600),
        _intraday("15 mins", 900),
        _intraday("20 mins", 1200),
        _intraday("30 mins", 1800),
        _intraday("1 hour", 3600),
        _intraday("2 hours", 7200),
        _intraday("3 hours", 10800),
        _intraday("4 hours", 14400),
        _intraday("8 hours", 28800),
        BarSize("1 day", BarUnit.DAY),
        BarSize("1 week", BarUnit.WEEK),
        BarSize("1 month", BarUnit.MONTH),
    )
}

# Approximate length of one duration unit in seconds, used only to compare a requested
# duration's span with the most IBKR serves of a bar size.
UNIT_SECONDS = {"S": 1, "D": 86_400, "W": 7 * 86_400, "M": 31 * 86_400, "Y": 366 * 86_400}

_DURATION_RE = re.compile(r"^(\d+) ([SDWMY])$")


@dataclass(frozen=True)
class Duration:
    count: int
    unit: str  # S, D, W, M or Y

    def __str__(self) -> str:
        return f"{self.count} {self.unit}"

    @property
    def approx_seconds(self) -> int:
        return self.count * UNIT_SECONDS[self.unit]


def parse_duration(text: str) -> Duration | None:
    """'2 D' -> Duration(2, 'D'); None when the string is not a valid IBKR duration."""
    m = _DURATION_RE.match(text.strip())
    if not m or int(m.group(1)) <= 0:
        return None
    return Duration(int(m.group(1)), m.group(2))


# How long a duration may be written in each unit; longer ones must be asked in years (IBKR's
# error 321, docs/tws-protocol.md "Durations"), whatever the bar size.
LONGEST_IN_UNIT = {"S": 86_400, "D": 365, "W": 52, "M": 12}
IN_YEARS_CAUSE = {
    "S": "Historical data request for greater than 86400 seconds rejected.",
    "D": "Historical data requests for durations longer than 365 days must be made in years.",
    "W": "Historical data request for durations longer than 52 weeks must be made in years.",
    "M": "Historical data request for durations longer than 12 months must be made in years.",
}

# IBKR's step-size table (a duration and the smallest bar size it allows) is, in its own words,
# a guideline: 5 D of 1-minute bars is served. What it refuses is an intraday request whose span
# holds more than this many bar lengths ("Time length exceed max."). IBKR publishes no number;
# this one is the simulator's: a week of 1-minute bars.
MAX_STEPS = 10_080


def duration_refusal(duration: Duration) -> str | None:
    """Why IBKR refuses to read `duration` (the cause of its error 321), or None."""
    longest = LONGEST_IN_UNIT.get(duration.unit)
    if longest is not None and duration.count > longest:
        return IN_YEARS_CAUSE[duration.unit]
    return None


def time_length_exceeded(bar_size: BarSize, duration: Duration) -> bool:
    """True when an intraday request spans more than MAX_STEPS bars (IBKR's 162 'Time length
    exceed max.'); bars of a day and longer have no such limit."""
    return bar_size.intraday and duration.approx_seconds > MAX_STEPS * bar_size.seconds


def duration_accepted(bar_size: BarSize, duration: Duration) -> bool:
    """True when IBKR serves `duration` of `bar_size` bars (neither 321 nor 162)."""
    return duration_refusal(duration) is None and not time_length_exceeded(bar_size, duration)


WHAT_TO_SHOW = (
    "TRADES",
    "MIDPOINT",
    "BID",
    "ASK",
    "BID_ASK",
    "ADJUSTED_LAST",
    "HISTORICAL_VOLATILITY",
    "OPTION_IMPLIED_VOLATILITY",
)

# Gateway limits (docs/ibkr.md, "Pacing"); the windows are divided by the simulator's time scale.
MAX_OPEN_HISTORICAL = 50
IDENTICAL_WINDOW_S = 15.0
SAME_CONTRACT_WINDOW_S = 2.0
SAME_CONTRACT_MAX = 5  # the 6th within the window is a violation
TOTAL_WINDOW_S = 600.0
TOTAL_MAX = 60
MESSAGES_PER_SECOND = 50

# Bars of 30 s or less older than this are refused (IBKR keeps them for six months).
SMALL_BARS_MAX_AGE_S = 183 * 86_400
