"""Hand-made inputs for the backtests' tests: bars from arrays, trades from columns, requests."""

from __future__ import annotations

import datetime as dt

import numpy as np

from backtests.domain.bars import BarsRequest, DataSource
from backtests.domain.engine import Trades
from fetcher.domain.bars import BarBatch
from fetcher.domain.instruments import instrument_spec_parse
from fetcher.domain.timeframes import WhatToShow, timeframe_parse


def batch_of(ts, open_, close) -> BarBatch:
    """Bars with these times, opens and closes (high and low span them; no volume)."""
    open_, close = np.asarray(open_, dtype=float), np.asarray(close, dtype=float)
    n = len(close)
    high, low = np.maximum(open_, close), np.minimum(open_, close)
    return BarBatch(
        np.asarray(ts, np.int64), open_, high, low, close, np.zeros(n), close, np.zeros(n, np.int64)
    )


def trades_of(pnl, returns, entry_bar, exit_bar, commission: float = 0.0) -> Trades:
    """Closed trades of one share at 1.0 with these P&Ls, returns and bars."""
    n = len(pnl)
    return Trades(
        size=np.ones(n, dtype=np.int64),
        entry_bar=np.asarray(entry_bar, dtype=np.int64),
        exit_bar=np.asarray(exit_bar, dtype=np.int64),
        entry_price=np.ones(n),
        exit_price=np.ones(n),
        pnl=np.asarray(pnl, dtype=float),
        return_pct=np.asarray(returns, dtype=float),
        commission=np.full(n, commission),
    )


def daily_bars_request(
    symbol: str = "AAPL",
    start: dt.date = dt.date(2024, 1, 1),
    end: dt.date = dt.date(2024, 12, 31),
    data_source: DataSource = DataSource.DB,
) -> BarsRequest:
    """The DAILY TRADES bars (regular hours) of `symbol` over start..end."""
    return BarsRequest(
        spec=instrument_spec_parse(symbol),
        timeframe=timeframe_parse("DAILY"),
        what_to_show=WhatToShow.TRADES,
        rth=True,
        start=start,
        end=end,
        data_source=data_source,
    )
