"""IBKR's historical-data rules (ibsim.rules): bar sizes, durations, what a duration may say in
each unit and how many bars one request may span."""

from __future__ import annotations

import pytest

from ibsim.rules import (
    BAR_SIZES,
    IN_YEARS_CAUSE,
    WHAT_TO_SHOW,
    BarUnit,
    Duration,
    duration_accepted,
    duration_refusal,
    parse_duration,
    time_length_exceeded,
)


def test_bar_sizes_are_ibkrs_settings():
    assert len(BAR_SIZES) == 21
    assert [b.setting for b in BAR_SIZES.values() if b.small] == [
        "1 secs",
        "5 secs",
        "10 secs",
        "15 secs",
        "30 secs",
    ]
    assert (BAR_SIZES["1 min"].seconds, BAR_SIZES["8 hours"].seconds) == (60, 28800)
    assert [b.unit for b in BAR_SIZES.values() if not b.intraday] == [
        BarUnit.DAY,
        BarUnit.WEEK,
        BarUnit.MONTH,
    ]
    assert len(WHAT_TO_SHOW) == 8 and "ADJUSTED_LAST" in WHAT_TO_SHOW


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 D", Duration(2, "D")),
        (" 3600 S ", Duration(3600, "S")),
        ("10 Y", Duration(10, "Y")),
        ("0 D", None),
        ("2D", None),
        ("2 X", None),
        ("-1 D", None),
        ("1.5 D", None),
    ],
)
def test_durations_parse_as_ibkr_reads_them(text, expected):
    assert parse_duration(text) == expected


def test_a_duration_prints_as_ibkr_writes_it_and_has_a_rough_length():
    assert str(Duration(1800, "S")) == "1800 S"
    assert Duration(2, "W").approx_seconds == 14 * 86_400


@pytest.mark.parametrize(
    ("duration", "unit"),
    [
        ("86400 S", None),
        ("86401 S", "S"),
        ("365 D", None),
        ("400 D", "D"),  # 321: "... durations longer than 365 days must be made in years."
        ("52 W", None),
        ("60 W", "W"),
        ("12 M", None),
        ("13 M", "M"),
        ("30 Y", None),
    ],
)
def test_a_duration_longer_than_a_year_must_be_asked_in_years(duration, unit):
    expected = IN_YEARS_CAUSE[unit] if unit else None
    assert duration_refusal(parse_duration(duration)) == expected
    assert duration_accepted(BAR_SIZES["1 day"], parse_duration(duration)) is (unit is None)


@pytest.mark.parametrize(
    ("bar_size", "duration", "exceeded"),
    [
        ("1 min", "1 D", False),
        ("1 min", "5 D", False),  # served, though the step table says 1 D (ib_insync #268)
        ("1 min", "1 W", False),
        ("1 min", "8 D", True),
        ("1 min", "1 M", True),
        ("1 secs", "1800 S", False),
        ("1 secs", "1 D", True),
        ("5 mins", "4 W", False),
        ("1 hour", "1 Y", False),
        ("1 hour", "2 Y", True),
        ("1 day", "30 Y", False),  # bars of a day and longer: no limit
        ("1 week", "30 Y", False),
    ],
)
def test_an_intraday_request_spans_at_most_so_many_bars(bar_size, duration, exceeded):
    assert time_length_exceeded(BAR_SIZES[bar_size], parse_duration(duration)) is exceeded
