"""Bars for backtests: the missing part of a range fetched first (--data-source ibkr) through the
fetch service, and bars loaded once per process (every chunk of a sweep on a worker shares them)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import OrderedDict

from fetcher.domain.instruments import InstrumentSpec
from fetcher.domain.timeframes import TimeframeSpec, WhatToShow
from fetcher.exceptions import IbdataError
from fetcher.models import FetchRun, ItemStatus, RunStatus
from fetcher.selectors import fetch_run_finished, fetch_run_summary

from ..domain.bars import BarsRequest
from ..selectors import BarSet, backtest_bars_load, bars_version, instrument_find, range_covered

log = logging.getLogger("ibdata.backtests")
FETCH_POLL_S = 0.5
CACHE_SIZE = 4  # bar sets kept per process
_cache: OrderedDict[tuple, BarSet] = OrderedDict()


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


def backtest_bars(*, request: BarsRequest) -> BarSet:
    """The bars a request names, read once per process while the series is unchanged (its
    version keys the cache); each read is logged ("bars read: ...")."""
    instrument = instrument_find(spec=request.spec)
    version = (
        bars_version(
            instrument_id=instrument.pk,
            timeframe=request.timeframe.code,
            what_to_show=int(request.what_to_show),
            rth=request.rth,
        )
        if instrument
        else ()
    )
    key = (request, version)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    barset = backtest_bars_load(
        spec=request.spec,
        timeframe=request.timeframe,
        what_to_show=request.what_to_show,
        rth=request.rth,
        start=request.start,
        end=request.end,
        data_source=request.data_source,
        catalog_root=request.catalog_root,
    )
    log.info(
        "bars read: %s %s %s..%s from %s, %d bars",
        barset.label,
        request.timeframe.name,
        request.start,
        request.end,
        request.data_source,
        len(barset.bars),
    )
    _cache[key] = barset
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return barset
