"""endDateTime and durationStr as the gateway reads them (ibsim.timewindow)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from ibsim.rules import Duration
from ibsim.timewindow import (
    BadEndDate,
    EndTime,
    calendar_start,
    connection_time,
    format_bar_time,
    format_utc,
    parse_end,
)
from tests.support import epoch_at

NOW = epoch_at("2024-03-01 12:34")
UTC = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", EndTime(NOW, False)),
        ("20240105 16:00:00 US/Eastern", EndTime(epoch_at("2024-01-05 16:00"), False)),
        ("20240105 21:00:00 UTC", EndTime(epoch_at("2024-01-05 21:00", UTC), False)),
        ("20240105-21:00:00", EndTime(epoch_at("2024-01-05 21:00", UTC), False)),
        ("20240105 16:00:00", EndTime(epoch_at("2024-01-05 16:00"), True)),  # the gateway's zone
        ("10:00:00 US/Eastern", EndTime(epoch_at("2024-03-01 10:00"), False)),  # today
    ],
)
def test_every_end_format(text, expected):
    assert parse_end(text, now=NOW, local_zone="US/Eastern") == expected


@pytest.mark.parametrize(
    "text",
    [
        "2024-13-45 99:00",
        "20240105-21:00:00 UTC",  # the dash means UTC: no zone after it
        "20240105 16:00:00 Mars/Olympus",
        "20241345 16:00:00 US/Eastern",
        "20240105 25:00:00 US/Eastern",
    ],
)
def test_malformed_ends_are_refused(text):
    with pytest.raises(BadEndDate):
        parse_end(text, now=NOW, local_zone="US/Eastern")


def test_calendar_start_for_each_unit():
    end = epoch_at("2024-03-31 16:00")
    assert calendar_start(end, Duration(3600, "S"), "US/Eastern") == end - 3600
    assert calendar_start(end, Duration(2, "W"), "US/Eastern") == end - 14 * 86_400
    # a month back from March 31 is the last day of February, at the same local time
    assert calendar_start(end, Duration(1, "M"), "US/Eastern") == epoch_at("2024-02-29 16:00")
    assert calendar_start(end, Duration(1, "Y"), "US/Eastern") == epoch_at("2023-03-31 16:00")


def test_times_as_the_gateway_writes_them():
    t = epoch_at("2024-01-02 09:30")
    assert format_bar_time(t, "US/Eastern") == "20240102 09:30:00 US/Eastern"
    assert format_utc(t) == "20240102-14:30:00"
    assert connection_time(t, "US/Eastern") == "20240102 09:30:00 EST"
    assert connection_time(epoch_at("2024-07-02 09:30"), "US/Eastern").endswith(" EDT")
