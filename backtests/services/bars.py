"""Bars for backtests, read once per process (every chunk of a sweep on a worker shares them)."""

from __future__ import annotations

import logging
from collections import OrderedDict

from fetcher.selectors import instrument_find

from ..domain.bars import BarsRequest
from ..selectors import BarSet, backtest_bars_load, bars_version

log = logging.getLogger("ibdata.backtests")
CACHE_SIZE = 4  # bar sets kept per process
_cache: OrderedDict[tuple, BarSet] = OrderedDict()


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
