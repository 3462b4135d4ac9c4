"""IBKR's historical-data rules (ibsim.rules): bar sizes, durations and the largest duration per
bar size."""

from __future__ import annotations

import pytest

from ibsim.rules import (
    BAR_SIZES,
    MAX_DURATION,
    WHAT_TO_SHOW,
    BarUnit,
    Duration,
    duration_allowed,
    parse_duration,
)


def test_bar_sizes_are_ibkrs_settings():
    assert len(BAR_SIZES) == 21 and set(MAX_DURATION) == set(BAR_SIZES)
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
    ("bar_size", "duration", "allowed"),
    [
        ("1 secs", "1800 S", True),
        ("1 secs", "1801 S", False),
        ("5 secs", "3600 S", True),
        ("5 secs", "3601 S", False),
        ("1 min", "1 D", True),
        ("1 min", "86400 S", True),  # the same length in another unit
        ("1 min", "2 D", False),
        ("5 mins", "1 W", True),
        ("5 mins", "8 D", False),
        ("1 hour", "4 W", True),
        ("1 hour", "5 W", False),
        ("1 day", "30 Y", True),
    ],
)
def test_the_largest_duration_per_bar_size(bar_size, duration, allowed):
    assert duration_allowed(BAR_SIZES[bar_size], parse_duration(duration)) is allowed
