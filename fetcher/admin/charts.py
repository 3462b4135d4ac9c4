"""The admin's charts, drawn by plotly: an instrument's stored bars as candlesticks with their
volume (closed hours left out), a backtest's equity and drawdown."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import plotly
from django.template.loader import render_to_string
from plotly import graph_objects as go
from plotly.subplots import make_subplots

from fetcher.domain.bars import BarBatch
from fetcher.domain.sessions import SessionTable
from fetcher.domain.time import DAY, zone_name
from fetcher.domain.timeframes import TimeframeSpec

CHART_ID = "bars-chart"
# plotly.js as the installed plotly package carries it: the page needs no network.
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
UP, DOWN = "#26a69a", "#ef5350"


def chart_html(fig: go.Figure, *, chart_id: str) -> str:
    """The figure in a <div> of the page's width, drawn once the page is laid out."""
    # no "<" at all: nothing in it may end the <script> (in JSON, "<" is only inside strings)
    figure = fig.to_json().replace("<", "\\u003c")
    return render_to_string(
        "admin/fetcher/chart.html",
        {"chart_id": chart_id, "figure": figure, "height": fig.layout.height},
    )


def local_times(ts: np.ndarray, zone: str) -> pd.DatetimeIndex:
    """Epoch seconds as wall-clock times of `zone` (naive: plotly draws them as written)."""
    return pd.to_datetime(ts, unit="s", utc=True).tz_convert(zone).tz_localize(None)


def closed_hours(
    sessions: SessionTable, ts: np.ndarray, *, timeframe: TimeframeSpec, use_rth: bool
) -> list[dict]:
    """plotly rangebreaks for the stretches the exchange is closed between the first and the
    last bar: nights, weekends and holidays of its calendar (whole days for daily bars)."""
    if len(ts) < 2:
        return []
    if not timeframe.intraday:
        days = np.arange(int(ts[0]) // DAY, int(ts[-1]) // DAY + 1)
        closed = np.setdiff1d(days, sessions.days_between(int(days[0]), int(days[-1])))
        if not len(closed):
            return []
        values = np.datetime_as_string(closed.astype("datetime64[D]")).tolist()
        return [{"values": values, "dvalue": DAY * 1000}]
    froms, tos = sessions.gaps(int(ts[0]), int(ts[-1]) + 1, use_rth)
    zone = zone_name(sessions.zone)
    starts, ends = local_times(froms, zone), local_times(tos, zone)
    # one rangebreak per length of gap: `values` share one `dvalue`
    by_length: dict[int, list[str]] = defaultdict(list)
    for start, end in zip(starts, ends, strict=True):
        by_length[int((end - start).total_seconds() * 1000)].append(start.isoformat(sep=" "))
    return [{"values": v, "dvalue": ms} for ms, v in sorted(by_length.items()) if ms > 0]


def candlestick_html(
    batch: BarBatch,
    *,
    timeframe: TimeframeSpec,
    title: str,
    zone: str,
    breaks: list[dict],
) -> str:
    """A <div> and the script that draws it (plotly.js must be on the page): candles above,
    volume below, times in the exchange's zone, `breaks` (closed_hours) left out."""
    if timeframe.intraday:
        x = local_times(batch.ts, zone).strftime("%Y-%m-%d %H:%M:%S").tolist()
    else:
        x = np.datetime_as_string(batch.ts.astype("datetime64[s]").astype("datetime64[D]"))
        x = x.tolist()
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04
    )
    fig.add_trace(
        go.Candlestick(
            x=x,
            open=batch.open,
            high=batch.high,
            low=batch.low,
            close=batch.close,
            name="price",
            increasing={"line": {"color": UP}, "fillcolor": UP},
            decreasing={"line": {"color": DOWN}, "fillcolor": DOWN},
        ),
        row=1,
        col=1,
    )
    colors = np.where(batch.close >= batch.open, UP, DOWN).tolist()
    fig.add_trace(
        go.Bar(x=x, y=batch.volume, name="volume", marker={"color": colors, "line_width": 0}),
        row=2,
        col=1,
    )
    fig.update_xaxes(rangebreaks=breaks)
    fig.update_xaxes(title_text=f"time ({zone})" if timeframe.intraday else "", row=2, col=1)
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="volume", rangemode="tozero", row=2, col=1)
    fig.update_layout(
        title=title,
        height=640,
        autosize=True,
        showlegend=False,
        bargap=0,
        xaxis_rangeslider_visible=False,
        margin={"l": 70, "r": 20, "t": 50, "b": 50},
    )
    return chart_html(fig, chart_id=CHART_ID)


def equity_html(
    ts: np.ndarray, equity: np.ndarray, *, zone: str, breaks: list[dict], title: str
) -> str:
    """A backtest's equity curve above its drawdown (percent below the running peak), times in
    the exchange's zone, `breaks` (closed_hours) left out."""
    x = local_times(ts, zone).strftime("%Y-%m-%d %H:%M:%S").tolist()
    peak = np.maximum.accumulate(equity)
    drawdown = np.where(peak > 0, (equity / peak - 1) * 100, 0.0)
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04
    )
    fig.add_trace(go.Scatter(x=x, y=equity, name="equity", line={"color": "#1f77b4"}), 1, 1)
    fig.add_trace(
        go.Scatter(
            x=x, y=drawdown, name="drawdown", fill="tozeroy", line={"color": DOWN, "width": 1}
        ),
        2,
        1,
    )
    fig.update_yaxes(title_text="equity", row=1, col=1)
    fig.update_yaxes(title_text="drawdown [%]", row=2, col=1)
    fig.update_xaxes(rangebreaks=breaks)
    fig.update_xaxes(title_text=f"time ({zone})" if zone != "UTC" else "", row=2, col=1)
    fig.update_layout(
        title=title,
        height=480,
        autosize=True,
        showlegend=False,
        margin={"l": 70, "r": 20, "t": 50, "b": 50},
    )
    return chart_html(fig, chart_id="equity-chart")
