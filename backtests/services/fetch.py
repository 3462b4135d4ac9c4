"""The part of a backtest's range not stored yet, fetched first (--data-source ibkr): the fetch
`manage.py fetch` makes (fetch_submit), in this process or on the ibkr worker, awaited."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import replace

from fetcher.domain.instruments import InstrumentSpec
from fetcher.domain.requests import FetchRequest
from fetcher.domain.timeframes import TimeframeSpec, WhatToShow
from fetcher.exceptions import IbdataError
from fetcher.execution.preflight import fetch_preflight
from fetcher.models import ItemStatus, RequestedBy, RunStatus
from fetcher.selectors import fetch_plans
from fetcher.services.submit import fetch_submit

FETCH_TIMEOUT_S = 3600.0


class FetchFailed(IbdataError):
    """The fetch of the missing bars did not succeed."""


def backtest_fetch_missing(
    *,
    specs: list[InstrumentSpec],
    timeframe: TimeframeSpec,
    what_to_show: WhatToShow,
    rth: bool,
    start: dt.date,
    end: dt.date,
    notes: Callable[[str], None],
) -> int | None:
    """Fetch what the range is missing and wait for it: the fetch run's id, None when nothing
    was missing (the fetcher's own plan, from what is stored, makes no request); FetchFailed
    when it did not succeed."""
    request = FetchRequest(
        instruments=tuple(specs),
        timeframe=timeframe,
        what_to_show=what_to_show,
        use_rth=rth,
        start=start,
        end=end,
    )
    plans = fetch_plans(request=request, now=time.time())
    missing = tuple(spec for spec, plan, _ in plans if plan.requests)
    if not missing:
        return None
    fetch_preflight()
    notes(
        f"Fetching the missing {timeframe.name} bars of {','.join(s.label for s in missing)} first ..."
    )
    handle = fetch_submit(
        request=replace(request, instruments=missing), requested_by=RequestedBy.BACKTEST
    )
    summary = handle.wait(timeout_s=FETCH_TIMEOUT_S)
    run = summary.run
    if run.status != RunStatus.SUCCEEDED:
        errors = [
            f"{i.spec}: {i.error or i.status}"
            for i in summary.items
            if i.status != ItemStatus.SUCCEEDED
        ]
        reason = "; ".join(errors) or run.error or run.status
        raise FetchFailed(f"fetching the missing bars failed (run {run.pk}): {reason}")
    notes(f"✅ fetch run {run.pk}: {run.bars_stored:,} bars stored")
    return run.pk
