"""Turn bar arrays into HISTORICAL_DATA rows quickly (vectorised dates, no per-bar datetime)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .timewindow import format_bar_time


def date_strings(
    time: np.ndarray, dates: np.ndarray | None, zone: str, format_date: int
) -> list[str]:
    """Bar dates as IBKR writes them: 'YYYYMMDD' for daily and larger bars, else
    'YYYYMMDD HH:MM:SS <zone>' (formatDate=1) or epoch seconds (formatDate=2)."""
    if dates is not None:
        return list(map(str, dates.tolist()))
    if format_date == 2:
        return list(map(str, time.tolist()))
    local = pd.DatetimeIndex(time.astype("datetime64[s]"), tz="UTC").tz_convert(zone)
    naive = local.tz_localize(None).to_numpy().astype("datetime64[s]")
    iso = np.datetime_as_string(naive)  # 'YYYY-MM-DDTHH:MM:SS'
    suffix = " " + zone
    return [s[0:4] + s[5:7] + s[8:10] + " " + s[11:19] + suffix for s in iso.tolist()]


def bar_rows(bars, zone: str, format_date: int, decimals: int) -> list[str]:
    """One NUL-joined row per bar: date, open, high, low, close, volume, WAP, barCount."""
    p, w = f"%.{decimals}f", f"%.{decimals + 2}f"
    row = "\0".join(("%s", p, p, p, p, "%d", w, "%d"))
    return [
        row % fields
        for fields in zip(
            date_strings(bars.time, bars.dates, zone, format_date),
            bars.open.tolist(),
            bars.high.tolist(),
            bars.low.tolist(),
            bars.close.tolist(),
            bars.volume.tolist(),
            bars.wap.tolist(),
            bars.count.tolist(),
            strict=True,
        )
    ]


def bar_rows_span(start: int, end: int, zone: str, format_date: int) -> tuple[str, str]:
    """The start and end strings HISTORICAL_DATA carries before its bars."""
    if format_date == 2:
        return str(start), str(end)
    return format_bar_time(start, zone), format_bar_time(end, zone)


def decimals_for(min_tick: float) -> int:
    text = f"{min_tick:.10f}".rstrip("0")
    return max(2, len(text.split(".")[1]) if "." in text else 0)
