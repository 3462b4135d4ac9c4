"""Timeframes: names and aliases users type, IBKR's bar sizes and largest durations, whatToShow."""

from __future__ import annotations

import pytest

from fetcher.domain.planning import MAX_SECONDS_DURATION
from fetcher.domain.timeframes import (
    BY_CODE,
    TIMEFRAMES,
    WhatToShow,
    timeframe_parse,
)
from fetcher.exceptions import InvalidInput


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("DAILY", "DAILY"),
        ("daily", "DAILY"),
        (" Daily ", "DAILY"),
        ("1-day", "DAILY"),
        ("day", "DAILY"),
        ("1-week", "WEEKLY"),
        ("1-month", "MONTHLY"),
        ("minute", "1-MINUTE"),
        ("1-min", "1-MINUTE"),
        ("1 minute", "1-MINUTE"),
        ("1_minute", "1-MINUTE"),
        ("5-min", "5-MINUTE"),
        ("5 min", "5-MINUTE"),
        ("hourly", "1-HOUR"),
        ("30-second", "30-SECOND"),
    ],
)
def test_parse_accepts_names_aliases_and_spellings(text, name):
    assert timeframe_parse(text).name == name


@pytest.mark.parametrize("text", ["2-DAYS", "1-SECONDS", "", "MIN", "45-MINUTE"])
def test_parse_refuses_the_unknown_and_lists_the_names(text):
    with pytest.raises(InvalidInput) as caught:
        timeframe_parse(text)
    message = str(caught.value)
    assert message.startswith(f"unknown timeframe {text!r}: use one of ")
    assert all(name in message for name in TIMEFRAMES)


def test_codes_are_unique_and_find_their_timeframe():
    assert len(BY_CODE) == len(TIMEFRAMES)
    for spec in TIMEFRAMES.values():
        assert BY_CODE[spec.code] is spec


def test_intraday_small_and_step():
    minute, daily = TIMEFRAMES["1-MINUTE"], TIMEFRAMES["DAILY"]
    assert minute.intraday and not minute.small and minute.step.total_seconds() == 60
    assert not daily.intraday and not daily.small and daily.step.days == 1
    small = {name for name, spec in TIMEFRAMES.items() if spec.small}
    assert small == {"1-SECOND", "5-SECOND", "10-SECOND", "15-SECOND", "30-SECOND"}
    assert {n for n, s in TIMEFRAMES.items() if not s.intraday} == {"DAILY", "WEEKLY", "MONTHLY"}


@pytest.mark.parametrize(
    ("name", "bar_size", "max_duration"),
    [
        ("1-SECOND", "1 secs", "1800 S"),
        ("5-SECOND", "5 secs", "3600 S"),
        ("30-SECOND", "30 secs", "28800 S"),
        ("1-MINUTE", "1 min", "1 D"),
        ("2-MINUTE", "2 mins", "2 D"),
        ("5-MINUTE", "5 mins", "1 W"),
        ("30-MINUTE", "30 mins", "1 M"),
        ("1-HOUR", "1 hour", "1 M"),
        ("8-HOUR", "8 hours", "1 M"),
        ("DAILY", "1 day", "1 Y"),
        ("WEEKLY", "1 week", "5 Y"),
        ("MONTHLY", "1 month", "10 Y"),
    ],
)
def test_bar_sizes_and_largest_durations(name, bar_size, max_duration):
    spec = TIMEFRAMES[name]
    assert (spec.bar_size, spec.max_duration) == (bar_size, max_duration)


def test_durations_in_seconds_are_whole_bars_within_a_day():
    """Planning chains 'N S' requests a largest duration apart: a partial bar would make two
    windows overlap."""
    for spec in TIMEFRAMES.values():
        count, unit = spec.max_duration.split()
        if unit == "S":
            assert int(count) % spec.seconds == 0, spec.name
            assert int(count) <= MAX_SECONDS_DURATION, spec.name


def test_every_timeframe_asks_what_the_gateway_accepts():
    """The client's table (timeframes.py) against the gateway's rules (the simulator's)."""
    from ibsim.rules import BAR_SIZES, duration_accepted, parse_duration

    assert {t.bar_size for t in TIMEFRAMES.values()} == set(BAR_SIZES)
    for tf in TIMEFRAMES.values():
        assert duration_accepted(BAR_SIZES[tf.bar_size], parse_duration(tf.max_duration)), tf.name


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("TRADES", WhatToShow.TRADES),
        ("midpoint", WhatToShow.MIDPOINT),
        (" bid_ask ", WhatToShow.BID_ASK),
        ("Adjusted_Last", WhatToShow.ADJUSTED_LAST),
    ],
)
def test_what_to_show_parse(text, what):
    assert WhatToShow.parse(text) is what


def test_what_to_show_parse_refuses_the_unknown_and_lists_the_names():
    with pytest.raises(InvalidInput, match=r"unknown what-to-show 'PRICES': use one of TRADES"):
        WhatToShow.parse("PRICES")


def test_what_to_show_numbers_are_what_the_database_stores():
    assert [(w.name, int(w)) for w in WhatToShow][:6] == [
        ("TRADES", 1),
        ("MIDPOINT", 2),
        ("BID", 3),
        ("ASK", 4),
        ("BID_ASK", 5),
        ("ADJUSTED_LAST", 6),
    ]
