"""`bars check --repair`: what a check found missing or suspect fetched again through the one way
in (fetch_submit, requested by REPAIR; a split since the bars were stored is the executor's to
notice, and it swaps the instrument's series whole), what the gateway answers the same kept as
confirmed, counters and catalog files rebuilt from the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from fetcher.domain.checks import REFETCHED, inside
from fetcher.domain.planning import intervals_merge
from fetcher.domain.requests import FetchRequest, RequestInvalid, utc_today
from fetcher.domain.time import from_epoch, zone_info
from fetcher.domain.timeframes import BY_CODE, WhatToShow
from fetcher.models import RequestedBy, RunStatus, Series
from fetcher.selectors import RunSummary

from .checks import SeriesCheck, series_check, series_confirm
from .chunks import coverage_forget
from .instruments import instrument_spec
from .items import series_catalog_rebuild, series_store_finish
from .series import series_key
from .submit import FetchHandle, fetch_submit


@dataclass
class RepairOutcome:
    runs: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each, what was done or not

    def ran(self, check: SeriesCheck, summary: RunSummary) -> None:
        """Note a repair run's outcome, and what it saw of the series' history (a split)."""
        run = summary.run
        self.runs.append(run.pk)
        self.notes.append(
            f"{check.label}: run {run.pk} {run.status}, {run.bars_stored:,} bars fetched again"
        )
        self.notes += [f"{check.label}: {item.history}" for item in summary.items if item.history]


@dataclass
class _Refetch:
    check: SeriesCheck
    handle: FetchHandle
    windows: list[tuple[int, int]]  # fetched again
    succeeded: bool = False


def bars_repair(
    *,
    checks: list[SeriesCheck],
    catalog_root: Path,
    wait: Callable[[FetchHandle], RunSummary],
) -> RepairOutcome:
    """Repair what `checks` found: windows of missing, thin or suspect bars fetched again (their
    coverage forgotten first; a run into a stored series first asks whether its history changed,
    a split, and then swaps the instrument's series whole), then counters refreshed, bars
    stored but not exported exported, each catalog year with a finding rebuilt from the
    database, and what the gateway answered the same kept as confirmed. `wait` waits for a run
    (the command follows its progress)."""
    outcome = RepairOutcome()
    todo = [c for c in checks if c.findings and not c.skipped]
    refetches = []
    for check in todo:
        windows = intervals_merge([w for f in check.findings for w in f.refetch])
        if check.series is None or not windows:
            continue
        try:
            refetches.append(_refetch(check, windows))
        except RequestInvalid as exc:
            outcome.notes.append(f"{check.label}: not fetched again: {exc.problem}")
    for refetch in refetches:
        summary = wait(refetch.handle)
        refetch.succeeded = summary.run.status == RunStatus.SUCCEEDED
        outcome.ran(refetch.check, summary)
    for check in todo:
        years = {y for f in check.findings for y in f.rebuild}
        series = check.series
        if series is None:
            series_catalog_rebuild(
                catalog=check.catalog, years=sorted(years), catalog_root=catalog_root
            )
            outcome.notes.append(f"{check.label}: removed from the catalog (years {_years(years)})")
            continue
        key = {
            "timeframe": series.timeframe,
            "what_to_show": series.what_to_show,
            "rth": series.rth,
        }
        series_store_finish(instrument=series.instrument, catalog_root=catalog_root, **key)
        if years:
            series_catalog_rebuild(
                catalog=check.catalog,
                years=sorted(years),
                catalog_root=catalog_root,
                instrument_id=series.instrument_id,
                **key,
            )
            outcome.notes.append(
                f"{check.label}: catalog rebuilt from the database (year {_years(years)})"
            )
    for refetch in refetches:
        if refetch.succeeded:
            _confirm(refetch, catalog_root, outcome)
    return outcome


def _confirm(refetch: _Refetch, catalog_root: Path, outcome: RepairOutcome) -> None:
    """What the gateway answered the same when fetched again (a session it has no bars for, a
    thin one, a spike it keeps) is what IBKR has: kept on the series, not a finding again."""
    series = Series.objects.select_related("instrument").get(pk=refetch.check.series.pk)
    again = series_check(series=series, catalog_root=catalog_root)
    held = [
        f
        for f in again.findings
        if f.kind in REFETCHED and f.refetch and all(inside(w, refetch.windows) for w in f.refetch)
    ]
    if not held:
        return
    series_confirm(series_id=series.pk, windows=[w for f in held for w in f.refetch])
    for finding in held:
        outcome.notes.append(
            f"{refetch.check.label}: {finding.text}: asked again, the gateway answered the "
            "same; kept, not reported again"
        )


def _years(years) -> str:
    return ", ".join(str(y) for y in sorted(years))


def _refetch(check: SeriesCheck, windows: list[tuple[int, int]]) -> _Refetch:
    """Forget the coverage of the windows and submit one run that fetches them again."""
    series = check.series
    request = _request(series, windows)
    with transaction.atomic():  # coverage forgotten only if the run is started
        coverage_forget(**series_key(series), windows=windows)
        handle = fetch_submit(request=request, requested_by=RequestedBy.REPAIR)
    return _Refetch(check, handle, windows)


def _request(series: Series, windows: list[tuple[int, int]]) -> FetchRequest:
    """The fetch asking for the dates of these windows (planning subtracts what is covered,
    so only the forgotten windows, and anything never fetched between them, are requested)."""
    tf = BY_CODE[series.timeframe]
    # daily and larger bars live in date space (00:00 UTC of the date); intraday windows are
    # instants, dated in the exchange's zone
    zone = zone_info(series.instrument.time_zone) if tf.intraday else dt.UTC
    start = min(from_epoch(a).astimezone(zone).date() for a, _ in windows)
    end = max(from_epoch(b - 1).astimezone(zone).date() for _, b in windows)
    return FetchRequest(
        instruments=(instrument_spec(series.instrument),),
        timeframe=tf,
        what_to_show=WhatToShow(series.what_to_show),
        use_rth=series.rth,
        start=start,
        end=min(end, utc_today()),
    )
