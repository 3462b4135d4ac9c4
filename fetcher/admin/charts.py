"""The instrument page's chart: stored bars as candlesticks with their volume, drawn by plotly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly
from plotly import graph_objects as go
from plotly.subplots import make_subplots

from fetcher.domain.bars import BarBatch
from fetcher.domain.timeframes import TimeframeSpec

CHART_ID = "bars-chart"
# plotly.js as the installed plotly package carries it: the page needs no network.
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def candlestick_html(batch: BarBatch, *, timeframe: TimeframeSpec, title: str) -> str:
    """A <div> and the script that draws it (plotly.js must be on the page)."""
    unit = "s" if timeframe.intraday else "D"
    x = np.datetime_as_string(batch.ts.astype("datetime64[s]").astype(f"datetime64[{unit}]"))
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.03
    )
    fig.add_trace(
        go.Candlestick(
            x=x.tolist(),
            open=batch.open,
            high=batch.high,
            low=batch.low,
            close=batch.close,
            name="price",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(x=x.tolist(), y=batch.volume, name="volume", marker_color="#7f8c9d"), row=2, col=1
    )
    fig.update_layout(
        title=title,
        height=560,
        showlegend=False,
        xaxis_rangeslider_visible=False,
        margin={"l": 50, "r": 20, "t": 50, "b": 30},
    )
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=CHART_ID,
        config={"displaylogo": False, "responsive": True},
    )
