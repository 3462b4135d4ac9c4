"""Parity with backtesting.py on simulator bars fetched through the project: `manage.py backtest`
fetches them, stores its run; backtesting.py runs on the same bars read back from PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from backtests.domain.commissions import IbkrFixedCommission
from backtests.models import BacktestRun
from fetcher.domain.time import dates_epochs, zone_info
from fetcher.domain.timeframes import timeframe_parse
from fetcher.models import Instrument
from fetcher.selectors import bars_read
from tests.support.backtest_reference import assert_same_stored, frame, reference_run

pytestmark = pytest.mark.django_db(transaction=True)


def stored_frame(symbol: str, timeframe: str, start: dt.date, end: dt.date):
    instrument = Instrument.objects.get(symbol=symbol)
    tf = timeframe_parse(timeframe)
    first, last = dates_epochs(start, end, tf, zone_info(instrument.time_zone))
    bars = bars_read(
        instrument_id=instrument.pk,
        timeframe=tf.code,
        what_to_show=1,
        rth=True,
        start=first,
        end=last,
    )
    return frame(bars.ts, bars.open, bars.high, bars.low, bars.close)


@pytest.mark.parametrize("long_short", [False, True], ids=["long-only", "long-short"])
@pytest.mark.parametrize(
    "timeframe,start,end,fast,slow,commission",
    [
        ("DAILY", "2015-01-01", "2024-12-31", 10, 30, "0.002"),
        ("30-MINUTE", "2024-01-01", "2024-04-30", 8, 40, "ibkr"),
    ],
    ids=["daily-10y", "30min-4m"],
)
def test_simulator_bars_give_the_same_trades_and_metrics(
    gateway, backtest, long_short, timeframe, start, end, fast, slow, commission
):
    args = [
        "--symbols",
        "MSFT",
        "--start",
        start,
        "--end",
        end,
        "--timeframe",
        timeframe,
        "--fast",
        str(fast),
        "--slow",
        str(slow),
        "--commission",
        commission,
        "--cash",
        "50000",
    ]
    if long_short:
        args.append("--long-short")
    code, out, err = backtest(*args)
    assert code == 0, err
    run = BacktestRun.objects.get()
    assert run.metrics["# Trades"] > 10
    data = stored_frame("MSFT", timeframe, dt.date.fromisoformat(start), dt.date.fromisoformat(end))
    assert len(data) == run.bars
    fee = IbkrFixedCommission() if commission == "ibkr" else float(commission)
    reference = reference_run(
        data, fast=fast, slow=slow, cash=50_000, commission=fee, long_short=long_short
    )
    assert_same_stored(reference, run)
