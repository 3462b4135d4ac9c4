"""The part of a backtest's range not stored yet, fetched first (--data-source ibkr): the fetch
`manage.py fetch` makes (fetch_submit), in this process or on the ibkr worker, awaited."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from fetcher.cli import submit_preflight
from fetcher.domain.instruments import InstrumentSpec
from fetcher.domain.requests import FetchRequest
from fetcher.domain.timeframes import TimeframeSpec, WhatToShow
from fetcher.exceptions import IbdataError
from fetcher.models import FetchRun, ItemStatus, RequestedBy, RunStatus
from fetcher.selectors import fetch_run_finished, fetch_run_summary
from fetcher.services.submit import fetch_submit

from ..selectors import instrument_find, range_covered

FETCH_POLL_S = 0.5
FETCH_TIMEOUT_S = 3600.0


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
    was missing; FetchFailed when it did not succeed."""
    missing = backtest_missing(
        specs=specs, timeframe=timeframe, what_to_show=what_to_show, rth=rth, start=start, end=end
    )
    if not missing:
        return None
    submit_preflight()
    labels = ",".join(s.label for s in missing)
    notes(f"Fetching the missing {timeframe.name} bars of {labels} first ...")
    request = FetchRequest(
        instruments=tuple(missing),
        timeframe=timeframe,
        what_to_show=what_to_show,
        use_rth=rth,
        start=start,
        end=end,
    )
    handle = fetch_submit(request=request, requested_by=RequestedBy.BACKTEST)
    run = backtest_fetch_wait(run_id=handle.run_id, timeout_s=FETCH_TIMEOUT_S)
    notes(f"✅ fetch run {run.pk}: {run.bars_stored} bars stored")
    return run.pk
