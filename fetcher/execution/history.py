"""Splits never leave mixed scales. Before a run adds bars to a stored series it asks the gateway
for the last stored bar again: IBKR serves history adjusted for the splits up to the day it is
asked, so after a split that bar comes back divided by the ratio. Then every stored series of the
instrument is fetched again from its first bar and swapped whole, in the database and the
catalog, before the run goes on; the run's item says what was seen and done."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from fetcher import selectors
from fetcher.domain.bars import BarBatch
from fetcher.domain.history import HistoryChange, history_change
from fetcher.domain.planning import PlannedRequest, fetch_plan, probe_request
from fetcher.domain.ranges import complete_until
from fetcher.domain.time import zone_info
from fetcher.domain.timeframes import BY_CODE, TimeframeSpec, WhatToShow
from fetcher.exceptions import GatewayError, GatewayUnavailable, HistoryChanged, IbdataError
from fetcher.ibkr.types import BarRequest, QualifiedInstrument
from fetcher.models import Instrument, Series
from fetcher.services.history import item_history_record, series_replace

from .outages import db

log = logging.getLogger("ibdata.fetch")


async def refetch_on_history_change(
    ex,
    *,
    item_id: int,
    instrument: Instrument,
    qualified: QualifiedInstrument,
    covered: list[tuple[int, int]],
) -> bool:
    """Probe the run's series of `instrument` (`ex` is the run's RunExecutor); when its history
    changed, fetch every stored series of the instrument again and swap it in, record what
    happened on the item, and return True."""
    change = await _probe(ex, instrument.pk, qualified, covered)
    if change is None:
        return False
    refetched, failed, bars, requests, own_failed = [], [], 0, 1, False
    for series in await db(selectors.instrument_series)(instrument_id=instrument.pk):
        if not series.bar_count:
            continue
        name = _series_name(series)
        try:
            stored, asked = await _refetch(ex, instrument, qualified, series)
        except GatewayUnavailable:
            raise
        except IbdataError as exc:  # the old bars stay; its next update sees the change again
            failed.append(f"{name} ({getattr(exc, 'message', exc)})")
            own = (series.timeframe, series.what_to_show, series.rth)
            own_failed |= own == (ex.tf.code, ex.what, ex.run.use_rth)
            continue
        refetched.append(name)
        bars, requests = bars + stored, requests + asked
    text = change.describe(qualified.local_symbol or qualified.symbol, daily=not ex.tf.intraday)
    text += f"; {len(refetched)} series refetched"
    if failed:
        text += f"; not refetched: {', '.join(failed)}"
    log.warning("%s (run %s)", text, ex.run_id)
    await db(item_history_record)(
        run_id=ex.run_id, item_id=item_id, text=text, bars=bars, requests=requests
    )
    if own_failed:  # adding new bars to its old ones would mix two scales
        raise HistoryChanged(f"{text}: nothing added to the old bars; fetch it again later")
    return True


async def _probe(
    ex, instrument_id: int, q: QualifiedInstrument, covered: list[tuple[int, int]]
) -> HistoryChange | None:
    """The last complete stored bar of the run's series, as stored and as served now, compared;
    None when the gateway cannot say (it refused: bars of 30 s or less after six months)."""
    run, tf = ex.run, ex.tf
    stored = await db(selectors.bars_read)(
        instrument_id=instrument_id,
        timeframe=tf.code,
        what_to_show=ex.what,
        rth=run.use_rth,
        start=0,
        end=covered[-1][1],
        last=1,
    )
    if not len(stored):
        return None
    probe = probe_request(timeframe=tf, ts=int(stored.ts[-1]), zone=zone_info(q.time_zone))
    try:
        served = await ex.fetch_bars(q, _request(probe, tf, ex.what, run.use_rth), tf.small)
    except GatewayUnavailable:
        raise
    except GatewayError as exc:
        log.info("history of %s not checked: %s", q.symbol, exc)
        return None
    return history_change(stored, served)


async def _refetch(
    ex, instrument: Instrument, q: QualifiedInstrument, series: Series
) -> tuple[int, int]:
    """One stored series fetched again from its first bar up to now and swapped in; (bars,
    requests)."""
    tf, what = BY_CODE[series.timeframe], WhatToShow(series.what_to_show)
    zone = zone_info(q.time_zone)
    head = await ex.gateway_call(lambda: ex.gateway.head_timestamp(q, what.name, series.rth))
    # its first bar's date: in the exchange's zone intraday, in date space for daily bars
    first = series.first_ts.astimezone(zone if tf.intraday else dt.UTC).date()
    plan = fetch_plan(
        listing=q,
        timeframe=tf,
        use_rth=series.rth,
        start=first,
        end=None,
        since_head=False,
        head=head,
        covered=[],
        now=ex.now(),
    )
    complete = complete_until(tf, ex.now(), zone)

    async def one(p: PlannedRequest) -> tuple[BarBatch, tuple[int, int]]:
        batch = await ex.fetch_bars(q, _request(p, tf, what, series.rth), tf.small)
        inside = (batch.ts >= p.window_start) & (batch.ts < p.window_end)
        return batch.slice(inside), (p.window_start, min(p.window_end, complete))

    answers = await asyncio.gather(*(one(p) for p in plan.requests))
    batch = BarBatch.concat([b for b, _ in answers])
    stored = await db(series_replace)(
        instrument_id=instrument.pk,
        timeframe=series.timeframe,
        what_to_show=series.what_to_show,
        rth=series.rth,
        batch=batch,
        covered=[w for _, w in answers if w[1] > w[0]],
        source=ex.run.source,
        account=ex.run.account,
        catalog_root=ex.catalog_root,
    )
    return stored, len(plan.requests)


def _request(p: PlannedRequest, tf: TimeframeSpec, what: WhatToShow, rth: bool) -> BarRequest:
    return BarRequest(
        end=p.end, duration=p.duration, bar_size=tf.bar_size, what_to_show=what.name, use_rth=rth
    )


def _series_name(series: Series) -> str:
    """'1-MINUTE TRADES (all hours)'."""
    session = "" if series.rth else " (all hours)"
    return f"{BY_CODE[series.timeframe].name} {WhatToShow(series.what_to_show).name}{session}"
