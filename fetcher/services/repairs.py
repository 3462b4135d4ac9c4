"""`bars check --repair`: what a check found missing or suspect fetched again through the one way
in (fetch_submit, requested by REPAIR), a split since the bars were stored noticed and the series
fetched whole (never left on two scales), counters and catalog files rebuilt from the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.db import transaction

from fetcher.domain.bars import BarBatch
from fetcher.domain.checks import REFETCHED, inside
from fetcher.domain.planning import intervals_merge
from fetcher.domain.requests import FetchRequest, RequestInvalid, utc_today
from fetcher.domain.time import DAY, from_epoch, zone_info
from fetcher.domain.timeframes import BY_CODE, WhatToShow
from fetcher.models import RequestedBy, RunStatus, Series
from fetcher.selectors import RunSummary, bars_read, coverage_windows, series_stats

from .checks import SeriesCheck, series_check, series_confirm
from .chunks import coverage_forget
from .instruments import instrument_spec
from .items import series_catalog_rebuild, series_store_finish
from .submit import FetchHandle, fetch_submit

# The gateway's prices of a session fetched again, against the stored ones: all of them this
# close to one factor, and that factor this far from 1, is a change of scale (a split since
# they were stored; IBKR's TRADES bars are adjusted for splits as of the day they are asked).
SCALE_SAME = 0.01
SCALE_CHANGED = 0.02


@dataclass
class RepairOutcome:
    runs: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each, what was done or not

    def ran(self, check: SeriesCheck, summary: RunSummary) -> None:
        run = summary.run
        self.runs.append(run.pk)
        self.notes.append(
            f"{check.label}: run {run.pk} {run.status}, {run.bars_stored:,} bars fetched again"
        )


@dataclass
class _Refetch:
    check: SeriesCheck
    handle: FetchHandle
    windows: list[tuple[int, int]]  # fetched again (the reference session included)
    reference: tuple[int, int] | None
    snapshot: BarBatch | None
    succeeded: bool = False


def bars_repair(
    *,
    checks: list[SeriesCheck],
    catalog_root: Path,
    wait: Callable[[FetchHandle], RunSummary],
) -> RepairOutcome:
    """Repair what `checks` found: windows of missing, thin or suspect bars fetched again (their
    coverage forgotten first, with one complete session beside them to compare: a change of
    scale refetches the whole series), then counters refreshed, bars stored but not exported
    exported, and each catalog year with a finding rebuilt from the database. `wait` waits
    for a run (the command follows its progress)."""
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
    whole = set()
    for refetch in refetches:
        check = refetch.check
        summary = wait(refetch.handle)
        refetch.succeeded = summary.run.status == RunStatus.SUCCEEDED
        outcome.ran(check, summary)
        factor = _rescaled(refetch)
        if factor is None:
            continue
        try:
            handle = _refetch_whole(check)
        except RequestInvalid as exc:
            outcome.notes.append(
                f"{check.label}: the gateway's prices are now {factor:.4g}x the stored ones, "
                f"but the series cannot be fetched again whole: {exc.problem}"
            )
            continue
        outcome.notes.append(
            f"{check.label}: the gateway's prices are now {factor:.4g}x the stored ones (a "
            f"split since they were stored?): the whole series fetched again, run {handle.run_id}"
        )
        summary = wait(handle)
        outcome.ran(check, summary)
        whole.add(check.label)
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
        if check.label in whole:
            years |= set(check.catalog.years(root=catalog_root))
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
        if refetch.succeeded and refetch.check.label not in whole:
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


def _key(series: Series) -> dict:
    return {
        "instrument_id": series.instrument_id,
        "timeframe": series.timeframe,
        "what_to_show": series.what_to_show,
        "rth": series.rth,
    }


def _refetch(check: SeriesCheck, windows: list[tuple[int, int]]) -> _Refetch:
    """Forget the coverage of the windows (and of the reference session) and submit one run
    that fetches them again."""
    series = check.series
    reference = check.reference
    if reference is not None and any(a < reference[1] and reference[0] < b for a, b in windows):
        reference = None
    asked = windows + ([reference] if reference else [])
    request = _request(series, asked)
    snapshot = None
    if reference is not None:
        snapshot = bars_read(**_key(series), start=reference[0], end=reference[1])
    with transaction.atomic():  # coverage forgotten only if the run is started
        coverage_forget(**_key(series), windows=asked)
        handle = fetch_submit(request=request, requested_by=RequestedBy.REPAIR)
    return _Refetch(check, handle, asked, reference, snapshot)


def _refetch_whole(check: SeriesCheck) -> FetchHandle:
    """The whole series fetched again (every bar rewritten on the gateway's present scale)."""
    series = check.series
    count, first, last = series_stats(**_key(series))
    spans = coverage_windows(**_key(series))
    if count:
        step = BY_CODE[series.timeframe].seconds or DAY
        spans = intervals_merge([*spans, (int(first.timestamp()), int(last.timestamp()) + step)])
    hull = [(spans[0][0], spans[-1][1])]
    request = _request(series, hull)
    with transaction.atomic():
        coverage_forget(**_key(series), windows=hull)
        return fetch_submit(request=request, requested_by=RequestedBy.REPAIR)


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


def _rescaled(refetch: _Refetch) -> float | None:
    """The factor between the reference session's bars as fetched again and as stored before,
    when every price moved by one factor (a change of scale); None otherwise."""
    before, reference = refetch.snapshot, refetch.reference
    if before is None or not len(before):
        return None
    after = bars_read(**_key(refetch.check.series), start=reference[0], end=reference[1])
    common, i, j = np.intersect1d(before.ts, after.ts, assume_unique=True, return_indices=True)
    if not len(common):
        return None
    names = ("open", "high", "low", "close")
    old = np.concatenate([getattr(before, n)[i] for n in names])
    new = np.concatenate([getattr(after, n)[j] for n in names])
    if (old <= 0).any() or (new <= 0).any():
        return None
    ratios = new / old
    factor = float(np.median(ratios))
    if abs(factor - 1) <= SCALE_CHANGED or (np.abs(ratios / factor - 1) > SCALE_SAME).any():
        return None
    return factor
