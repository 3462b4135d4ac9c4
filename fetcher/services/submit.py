"""The one way a fetch starts (fetch_submit), the handle that waits on, follows or cancels it, and
the fetches made of stored state: update to latest, retry of what a run failed to store."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from fetcher.domain.requests import FetchRequest
from fetcher.domain.time import zone_info
from fetcher.domain.timeframes import BY_CODE, WhatToShow
from fetcher.exceptions import FetchTimeout, InvalidInput, RunStalled
from fetcher.models import FetchRun, Instrument, RequestedBy
from fetcher.queues import task_join, task_running
from fetcher.selectors import (
    FINISHED_RUN,
    RunSummary,
    fetch_run_chunks_unfinished,
    fetch_run_finished,
    fetch_run_get,
    fetch_run_stalled,
    fetch_run_summary,
    series_keys,
)

from .fetch_runs import fetch_run_cancel, fetch_run_create, fetch_run_enqueue
from .instruments import instrument_spec

WAIT_POLL_S = 0.2  # how often a handle reads its run's progress


@dataclass(frozen=True)
class FetchHandle:
    """A submitted run: wait for it (following its progress), or cancel it."""

    run_id: int

    def summary(self) -> RunSummary:
        return fetch_run_summary(run_id=self.run_id)

    def finished(self) -> bool:
        """True once the run has ended (its in-process thread too); RunStalled when the worker
        running it is gone."""
        run = fetch_run_get(run_id=self.run_id)
        running_here = task_running(run.task_id) if run.task_id else None
        if run.status in FINISHED_RUN:
            if running_here is not None:
                task_join(run.task_id)
            return True
        if running_here is False and not fetch_run_finished(run_id=self.run_id):
            raise RunStalled(f"run {self.run_id} stopped: the thread running it ended early")
        stale_s = settings.FETCH_STALE_AFTER_S
        if running_here is None and fetch_run_stalled(run_id=self.run_id, stale_after_s=stale_s):
            raise RunStalled(
                f"run {self.run_id} stopped: the worker running it is gone (no heartbeat for "
                f"{stale_s:.0f}s); it resumes when an ibkr worker starts "
                f"(manage.py fetch_status {self.run_id})"
            )
        return False

    def wait(
        self,
        *,
        on_progress: Callable[[RunSummary], None] | None = None,
        timeout_s: float | None = None,
        poll_s: float = WAIT_POLL_S,
    ) -> RunSummary:
        """The run's summary once it has ended, telling `on_progress` of it meanwhile;
        FetchTimeout after `timeout_s`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            done = self.finished()
            summary = self.summary()
            if on_progress is not None:
                on_progress(summary)
            if done:
                return summary
            if deadline is not None and time.monotonic() > deadline:
                raise FetchTimeout(
                    f"fetch run {self.run_id} has not finished after {timeout_s:.0f} s: is an "
                    f"ibkr worker running? Follow it with manage.py fetch_status {self.run_id}"
                )
            time.sleep(poll_s)

    def cancel(self) -> FetchRun:
        return fetch_run_cancel(run_id=self.run_id)


def fetch_submit(*, request: FetchRequest, requested_by: str, schedule: str = "") -> FetchHandle:
    """Record the request as a run and start it once the caller's transaction commits: on the
    ibkr queue, or (no broker: the embedded default) on a thread of this process. Every way
    in (the fetch command, the admin, schedules, backtests, update, retry) starts runs here."""
    with transaction.atomic():
        run = fetch_run_create(request=request, requested_by=requested_by, schedule=schedule)
        fetch_run_enqueue(run_id=run.pk)
    return FetchHandle(run.pk)


def fetch_updates_submit(
    *, instruments: list[Instrument], requested_by: str = RequestedBy.ADMIN
) -> tuple[list[FetchHandle], list[Instrument]]:
    """'Update to latest': every stored series of these instruments fetched from its last stored
    bar to now, as `manage.py fetch` without a start does. One run per (timeframe, whatToShow,
    session) for the instruments that have that series; returns the runs and the instruments
    with nothing stored yet (there is no last bar to start from)."""
    by_id = {i.pk: i for i in instruments}
    groups: dict[tuple[int, int, bool], list[Instrument]] = {}
    for instrument_id, timeframe, what_to_show, rth in series_keys(instrument_ids=list(by_id)):
        groups.setdefault((timeframe, what_to_show, rth), []).append(by_id[instrument_id])
    handles = []
    with transaction.atomic():  # every run started, or none
        for (timeframe, what_to_show, rth), members in sorted(groups.items()):
            request = FetchRequest(
                instruments=tuple(instrument_spec(i) for i in members),
                timeframe=BY_CODE[timeframe],
                what_to_show=WhatToShow(what_to_show),
                use_rth=rth,
            )
            handles.append(fetch_submit(request=request, requested_by=requested_by))
    updated = {i.pk for members in groups.values() for i in members}
    return handles, [i for i in instruments if i.pk not in updated]


def fetch_retry_submit(*, run_id: int, requested_by: str = RequestedBy.ADMIN) -> list[FetchHandle]:
    """Fetch again what a finished run failed to store, as new runs (the first run's record
    stays as it ended). A new run covers, per instrument, the dates of its failed, cancelled
    (or never answered) requests; planning subtracts what is stored, so it asks only for the missing
    windows. Instruments whose dates match share one run."""
    run = fetch_run_get(run_id=run_id)
    if run is None:
        raise InvalidInput(f"there is no fetch run {run_id}")
    if run.status not in FINISHED_RUN:
        raise InvalidInput(f"run {run_id} is still {run.status}: wait for it to end, or cancel it")
    chunks = fetch_run_chunks_unfinished(run_id=run_id)
    if not chunks:
        raise InvalidInput(f"run {run_id} has no failed requests: nothing to retry")
    tf = BY_CODE[run.timeframe]
    spans: dict[int, tuple[dt.date, dt.date]] = {}
    instruments: dict[int, Instrument] = {}
    for chunk in chunks:
        instrument = instruments.setdefault(chunk.instrument_id, chunk.instrument)
        # daily and larger bars live in date space (00:00 UTC of the date); intraday windows
        # are instants, dated in the exchange's zone
        zone = zone_info(instrument.time_zone) if tf.intraday else dt.UTC
        first = chunk.window_start.astimezone(zone).date()
        last = (chunk.window_end - dt.timedelta(seconds=1)).astimezone(zone).date()
        low, high = spans.get(instrument.pk, (first, last))
        spans[instrument.pk] = (min(low, first), max(high, last))
    groups: dict[tuple[dt.date, dt.date], list[Instrument]] = {}
    for instrument_id, span in spans.items():
        groups.setdefault(span, []).append(instruments[instrument_id])
    handles = []
    with transaction.atomic():  # every run started, or none
        for (start, end), members in sorted(groups.items()):
            request = FetchRequest(
                instruments=tuple(instrument_spec(i) for i in members),
                timeframe=tf,
                what_to_show=WhatToShow(run.what_to_show),
                use_rth=run.use_rth,
                start=start,
                end=end,
            )
            handles.append(fetch_submit(request=request, requested_by=requested_by))
    return handles
