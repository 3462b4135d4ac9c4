"""Historical-data requests as the gateway validates them (ibsim.historical): bar size, duration,
end time, age and pacing, directly and for the real ib_insync client."""

from __future__ import annotations

import pytest
from ib_insync import Stock
from ib_insync.wrapper import RequestError

from tests.support import historical_bars as hist
from tests.support import recent_sessions

# A recent full session: bars of 30 s or less exist for six months only.
RECENT = recent_sessions(1)[0].strftime("%Y%m%d")


# --- for the real client -------------------------------------------------------------------


def test_adjusted_last_needs_empty_end(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, "20240105 17:00:00 US/Eastern", "1 M", "1 day", what="ADJUSTED_LAST")
    assert info.value.code == 321
    assert len(hist(ib, aapl, "", "1 M", "1 day", what="ADJUSTED_LAST")) >= 15


def test_bad_end_date_is_10314(ib):
    with pytest.raises(RequestError) as info:
        hist(ib, Stock("AAPL", "SMART", "USD"), "2024-13-45 99:00", "1 D", "1 min")
    assert info.value.code == 10314


@pytest.mark.parametrize(
    "end",
    [
        "20240105 16:00:00 US/Eastern",
        "20240105-21:00:00",
        "20240105 21:00:00 UTC",
        "20240105 16:00:00",
    ],
)
def test_every_end_format_is_accepted(ib, end):
    bars = hist(ib, Stock("AAPL", "SMART", "USD"), end, "1800 S", "1 min")
    assert len(bars) == 30
    assert bars[-1].date.strftime("%H:%M") == "15:59"


def test_too_long_duration_is_invalid_step(ib):
    with pytest.raises(RequestError) as info:
        hist(ib, Stock("AAPL", "SMART", "USD"), "20240105 16:00:00 US/Eastern", "2 D", "1 min")
    assert info.value.code == 162 and "invalid step" in info.value.message
    with pytest.raises(RequestError) as info:
        hist(ib, Stock("AAPL", "SMART", "USD"), "20240105 16:00:00 US/Eastern", "3601 S", "5 secs")
    assert "invalid step" in info.value.message


def test_small_bars_older_than_six_months_are_refused(ib):
    aapl = Stock("AAPL", "SMART", "USD")
    with pytest.raises(RequestError) as info:
        hist(ib, aapl, "20240105 16:00:00 US/Eastern", "1800 S", "5 secs")
    assert info.value.code == 162 and "six months only" in info.value.message
    assert hist(ib, aapl, "20240105 16:00:00 US/Eastern", "1800 S", "1 min")  # 1 min: kept
    assert hist(ib, aapl, f"{RECENT} 16:00:00 US/Eastern", "1800 S", "5 secs")
