"""Rows of a bar file as pure functions: the timeframe's grid (IBKR's first hourly bar at the open),
repeats across blocks of a file, the windows imported bars cover, the words for a bad row."""

from __future__ import annotations

import datetime as dt

import numpy as np

from fetcher.domain.barfiles import (
    GRID,
    OK,
    OUTSIDE,
    PRICES,
    Rows,
    TimesSeen,
    bars_windows,
    on_grid,
    row_problem,
    rows_check,
    series_file_name,
)
from fetcher.domain.bars import BarBatch
from fetcher.domain.sessions import session_table
from fetcher.domain.time import DAY
from fetcher.domain.timeframes import timeframe_parse

NYSE = session_table(sec_type="STK", exchange="SMART", primary_exchange="NASDAQ", time_zone="")
MINUTE, HOUR, DAILY = (timeframe_parse(n) for n in ("1-MINUTE", "1-HOUR", "DAILY"))


def ny(day: str, hour: int, minute: int = 0, second: int = 0) -> int:
    """Epoch seconds of a New York time in November (UTC-5)."""
    moment = dt.datetime.fromisoformat(day).replace(hour=hour, minute=minute, second=second)
    return int(moment.replace(tzinfo=dt.timezone(dt.timedelta(hours=-5))).timestamp())


def batch(ts, **prices) -> BarBatch:
    n = len(ts)
    values = {name: np.full(n, 100.0) for name in ("open", "high", "low", "close")}
    values |= {name: np.asarray(v, dtype=np.float64) for name, v in prices.items()}
    return BarBatch(
        ts=np.asarray(ts, dtype=np.int64),
        volume=np.full(n, 10.0),
        wap=np.full(n, 100.0),
        bar_count=np.ones(n, dtype=np.int64),
        **values,
    )


def rows(ts, **prices) -> Rows:
    return Rows(np.arange(2, len(ts) + 2), batch(ts, **prices), np.full(len(ts), "", dtype=object))


def test_hourly_bars_start_on_the_hour_in_new_york_or_at_the_open():
    ts = np.array([ny("2024-11-25", 9, 30), ny("2024-11-25", 10), ny("2024-11-25", 10, 30)])
    assert on_grid(ts, HOUR, NYSE, True).tolist() == [True, True, False]
    minutes = np.array([ny("2024-11-25", 9, 31), ny("2024-11-25", 9, 31, 30)])
    assert on_grid(minutes, MINUTE, NYSE, True).tolist() == [True, False]
    days = np.array([20052 * DAY, 20052 * DAY + 3600])
    assert on_grid(days, DAILY, NYSE, True).tolist() == [True, False]


def test_rows_are_checked_for_prices_grid_and_sessions_in_that_order():
    ts = [
        ny("2024-11-25", 9, 30),
        ny("2024-11-25", 9, 31),
        ny("2024-11-25", 9, 32, 15),
        ny("2024-11-28", 10),  # Thanksgiving
        ny("2024-11-25", 8),  # before the open
    ]
    checked = rows(
        ts,
        high=[100, 99.5, 100, 100, 100],
        low=[100, 99, 100, 100, 100],
        close=[100, 99.2, 100, 100, 100],
    )
    codes = rows_check(checked, MINUTE, NYSE, True, volume_signed=False)
    assert codes.tolist() == [OK, PRICES, GRID, OUTSIDE, OUTSIDE]
    assert (
        row_problem(PRICES, checked, 1, MINUTE)
        == "2024-11-25 14:31 UTC: high 99.5 below the open 100"
    )
    low = rows([ny("2024-11-25", 9, 30)], open=[101], low=[100.5], high=[102], close=[100.2])
    assert (
        row_problem(PRICES, low, 0, MINUTE)
        == "2024-11-25 14:30 UTC: low 100.5 above the close 100.2"
    )


def test_repeats_are_found_within_a_block_and_across_blocks_of_a_file():
    seen = TimesSeen()
    ts, lines = np.array([5, 3, 5, 7]), np.array([2, 3, 4, 5])
    assert seen.repeats(ts, lines, np.ones(4, dtype=bool)).tolist() == [0, 0, 2, 0]
    later = seen.repeats(np.array([8, 3, 9]), np.array([6, 7, 8]), np.ones(3, dtype=bool))
    assert later.tolist() == [0, 3, 0]
    # rows already refused are not candidates, and do not count as seen
    assert seen.repeats(np.array([10]), np.array([9]), np.zeros(1, dtype=bool)).tolist() == [0]
    assert seen.repeats(np.array([10]), np.array([10]), np.ones(1, dtype=bool)).tolist() == [0]


def test_the_windows_bars_cover_leave_out_a_session_missing_from_them():
    days = ["2024-11-25", "2024-11-26", "2024-11-29"]  # the 27th missing, the 28th a holiday
    ts = np.array([ny(d, h, m) for d in days for h, m in ((9, 30), (10, 0))])
    ts[-1] = ny("2024-11-29", 12, 59)  # the early close's last minute
    windows = bars_windows(ts, MINUTE, NYSE, True)
    assert windows == [
        (ny("2024-11-25", 9, 30), ny("2024-11-26", 16)),
        (ny("2024-11-29", 9, 30), ny("2024-11-29", 13)),
    ]
    dates = np.array([20052, 20053, 20056]) * DAY  # 2024-11-25, 26, 29
    assert bars_windows(dates, DAILY, NYSE, True) == [
        (20052 * DAY, 20054 * DAY),
        (20056 * DAY, 20057 * DAY),
    ]


def test_a_series_file_name_is_safe_on_any_file_system():
    name = series_file_name(
        symbol="BRK B",
        exchange="NYSE",
        currency="USD",
        timeframe="1-MINUTE",
        what_to_show="TRADES",
        session="RTH",
    )
    assert name == "BRK%20B_NYSE_USD_1-MINUTE_TRADES_RTH"
