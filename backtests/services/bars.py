"""Bars for backtests: the missing part of a range fetched first (--data-source ibkr) through the
fetch service, and bars loaded once per process (every chunk of a sweep on a worker shares them)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import OrderedDict

from fetcher.domain.instruments import InstrumentSpec
from fetcher.domain.timeframes import TimeframeSpec, WhatToShow, timeframe_parse
from fetcher.exceptions import IbdataError
from fetcher.models import FetchRun, ItemStatus, RunStatus
from fetcher.selectors import fetch_run_finished, fetch_run_summary

from ..selectors import BarSet, backtest_bars_load, bars_version, instrument_find, range_covered

log = logging.getLogger("ibdata.backtests")
FETCH_POLL_S = 0.5
CACHE_SIZE = 4  # bar sets kept per process
_cache: OrderedDict[tuple, BarSet] = OrderedDict()
# How many times this process read bars from the store (tests check a sweep reads them once).
loads = {"count": 0}


class FetchFailed(IbdataError):
    """The fetch of the missing bars did not succeed."""


def backtest_missing(
    *,
    specs: list[InstrumentSpec],
    timeframe: TimeframeSpec,
    what_to_show: WhatToShow,
    rth: bool,
    start: dt.date,
    end: dt.date,
) -> list[InstrumentSpec]:
    """The instruments whose range is not all stored (or known empty) yet."""
    now = time.time()
    missing = []
    for spec in specs:
        instrument = instrument_find(spec=spec)
        if instrument is None or not range_covered(
            instrument=instrument,
            timeframe=timeframe,
            what_to_show=what_to_show,
            rth=rth,
            start=start,
            end=end,
            now=now,
        ):
            missing.append(spec)
    return missing


def backtest_fetch_wait(*, run_id: int, timeout_s: float) -> FetchRun:
    """The fetch once it has ended; FetchFailed with each failed instrument's error otherwise."""
    deadline = time.monotonic() + timeout_s
    while not fetch_run_finished(run_id=run_id):
        if time.monotonic() > deadline:
            raise FetchFailed(
                f"fetch run {run_id} has not finished after {timeout_s:.0f} s: is an ibkr worker "
                f"running? Follow it with manage.py fetch_status {run_id}"
            )
        time.sleep(FETCH_POLL_S)
    summary = fetch_run_summary(run_id=run_id)
    if summary.run.status != RunStatus.SUCCEEDED:
        errors = [
            f"{i.spec}: {i.error or i.status}"
            for i in summary.items
            if i.status != ItemStatus.SUCCEEDED
        ]
        reason = "; ".join(errors) or summary.run.error or summary.run.status
        raise FetchFailed(f"fetching the missing bars failed (run {run_id}): {reason}")
    return summary.run


def backtest_bars(*, request: dict) -> BarSet:
    """The bars a JSON-able request names (see bars_request), read once per process while the
    series is unchanged."""
    spec = InstrumentSpec(**request["spec"])
    timeframe = timeframe_parse(request["timeframe"])
    what = WhatToShow[request["what_to_show"]]
    start, end = dt.date.fromisoformat(request["start"]), dt.date.fromisoformat(request["end"])
    instrument = instrument_find(spec=spec)
    version = (
        bars_version(
            instrument_id=instrument.pk,
            timeframe=timeframe.code,
            what_to_show=int(what),
            rth=request["rth"],
        )
        if instrument
        else ()
    )
    key = (
        tuple(sorted(request["spec"].items())),
        timeframe.code,
        int(what),
        request["rth"],
        start,
        end,
        request["data_source"],
        request.get("catalog_root"),
        version,
    )
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    barset = backtest_bars_load(
        spec=spec,
        timeframe=timeframe,
        what_to_show=what,
        rth=request["rth"],
        start=start,
        end=end,
        data_source=request["data_source"],
        catalog_root=request.get("catalog_root"),
    )
    loads["count"] += 1
    log.info(
        "bars read: %s %s %s..%s from %s, %d bars",
        barset.label,
        timeframe.name,
        start,
        end,
        request["data_source"],
        len(barset.bars),
    )
    _cache[key] = barset
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return barset


def bars_request(
    *,
    spec: InstrumentSpec,
    timeframe: TimeframeSpec,
    what_to_show: WhatToShow,
    rth: bool,
    start: dt.date,
    end: dt.date,
    data_source: str,
    catalog_root: str | None = None,
) -> dict:
    """What names one series' bars over a range, as JSON (task arguments)."""
    return {
        "spec": {
            "symbol": spec.symbol,
            "sec_type": spec.sec_type,
            "exchange": spec.exchange,
            "primary_exchange": spec.primary_exchange,
            "currency": spec.currency,
            "last_trade_date": spec.last_trade_date,
            "text": spec.text,
        },
        "timeframe": timeframe.name,
        "what_to_show": what_to_show.name,
        "rth": rth,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "data_source": data_source,
        "catalog_root": catalog_root,
    }
