"""Reads: the bars a backtest runs on (from the database or the Parquet catalog, with where they
came from), coverage of a range, and stored runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery

from fetcher.domain.bars import BarBatch
from fetcher.domain.instruments import InstrumentSpec
from fetcher.domain.time import dates_epochs, zone_info
from fetcher.domain.timeframes import BY_CODE, TimeframeSpec, WhatToShow
from fetcher.exceptions import InvalidInput
from fetcher.models import Instrument, Series
from fetcher.selectors import bars_read, instrument_find
from fetcher.storage.catalog import CatalogSeries, catalog_source, default_root

from .domain.bars import DataSource
from .models import BacktestRun, RunKind


@dataclass(frozen=True)
class BarSet:
    """The bars of one series over the range asked for, and where they came from."""

    label: str  # the symbol as the user typed it
    instrument: Instrument
    timeframe: TimeframeSpec
    what_to_show: WhatToShow
    rth: bool
    start: dt.date
    end: dt.date
    data_source: str
    source: str  # GatewayKind of the bars
    account: str
    bars: BarBatch

    @property
    def key(self) -> tuple:
        return (
            self.data_source,
            self.instrument.pk,
            self.timeframe.code,
            self.what_to_show,
            self.rth,
            self.start,
            self.end,
        )


def _series_of(instrument: Instrument) -> list[Series]:
    return list(Series.objects.filter(instrument=instrument, bar_count__gt=0))


def _stored_elsewhere(series: list[Series], rth: bool) -> str:
    names = sorted(
        {
            f"{BY_CODE[s.timeframe].name}{'' if s.rth == rth else (' RTH' if s.rth else ' ALL')}"
            for s in series
        }
    )
    return ", ".join(names)


def backtest_bars_load(
    *,
    spec: InstrumentSpec,
    timeframe: TimeframeSpec,
    what_to_show: WhatToShow,
    rth: bool,
    start: dt.date,
    end: dt.date,
    data_source: str,
    catalog_root: Path | str | None = None,
) -> BarSet:
    """One series' bars over start..end (inclusive dates), or InvalidInput saying what is
    missing and how to get it."""
    hint = (
        f"python manage.py fetch --instruments {spec.label} --start {start} --end {end} "
        f"--timeframe {timeframe.name}"
    )
    instrument, stored = _stored_series(spec, timeframe, what_to_show, rth, hint)
    first, last = dates_epochs(start, end, timeframe, zone_info(instrument.time_zone))
    source, account = stored.source, stored.account
    if data_source == DataSource.CATALOG:
        root = catalog_root or default_root()
        series = CatalogSeries.of_instrument(
            instrument, timeframe=timeframe, what_to_show=what_to_show.name, use_rth=rth
        )
        bars = series.read(root=root, start=first, end=last)
        recorded = catalog_source(root) or {}
        source, account = recorded.get("source", source), recorded.get("account", account)
        where = f"the catalog {root}"
    else:
        bars = bars_read(
            instrument_id=instrument.pk,
            timeframe=timeframe.code,
            what_to_show=int(what_to_show),
            rth=rth,
            start=first,
            end=last,
        )
        where = "the database"
    if not len(bars):
        held = (
            f"{stored.first_ts:%Y-%m-%d} to {stored.last_ts:%Y-%m-%d}"
            if stored.first_ts and stored.last_ts
            else "none"
        )
        raise InvalidInput(
            f"no {timeframe.name} bars of {spec.label} from {start} to {end} in {where} "
            f"(stored: {held}): widen the range or run `{hint}`"
        )
    return BarSet(
        label=spec.label,
        instrument=instrument,
        timeframe=timeframe,
        what_to_show=what_to_show,
        rth=rth,
        start=start,
        end=end,
        data_source=data_source,
        source=source,
        account=account,
        bars=bars,
    )


def _stored_series(
    spec: InstrumentSpec, timeframe: TimeframeSpec, what_to_show: WhatToShow, rth: bool, hint: str
) -> tuple[Instrument, Series]:
    """The stored instrument and series a backtest reads; InvalidInput naming what is stored
    instead, and the fetch that would store it."""
    instrument = instrument_find(spec=spec)
    series = _series_of(instrument) if instrument else []
    if instrument is None or not series:
        raise InvalidInput(f"no bars of {spec.label} are stored (never fetched): run `{hint}`")
    wanted = [
        s
        for s in series
        if s.timeframe == timeframe.code and s.what_to_show == what_to_show and s.rth == rth
    ]
    if not wanted:
        raise InvalidInput(
            f"{spec.label} has no {timeframe.name} {what_to_show.name} bars stored (stored: "
            f"{_stored_elsewhere(series, rth)}): fetch them with `{hint}`"
        )
    return instrument, wanted[0]


def bars_version(*, instrument_id: int, timeframe: int, what_to_show: int, rth: bool) -> tuple:
    """What changes when a series gains bars: keys a cache of loaded bars."""
    row = (
        Series.objects.filter(
            instrument_id=instrument_id, timeframe=timeframe, what_to_show=what_to_show, rth=rth
        )
        .values_list("bar_count", "last_ts", "updated_at")
        .first()
    )
    return tuple(str(v) for v in row) if row else ()


def backtest_runs_of_group(*, group: str, kind: str | None = None) -> list[BacktestRun]:
    runs = BacktestRun.objects.filter(group=group)
    if kind:
        runs = runs.filter(kind=kind)
    return list(runs.order_by("pk"))


def backtest_runs_count(*, group: str, kind: str = RunKind.SWEEP) -> int:
    return BacktestRun.objects.filter(group=group, kind=kind).count()


def sweep_points_done(*, group: str) -> set[tuple]:
    """The parameter sets of a sweep already stored (a chunk delivered twice skips them)."""
    rows = BacktestRun.objects.filter(group=group, kind=RunKind.SWEEP).values_list(
        "params", flat=True
    )
    return {tuple(sorted(p.items())) for p in rows}


def backtest_runs_listed(*, queryset: QuerySet[BacktestRun]) -> QuerySet[BacktestRun]:
    """Runs as the list shows them: a sweep as one row (its first point), annotated with how
    many points it has (`sweep_points`; none for other runs)."""
    sweeps = BacktestRun.objects.filter(kind=RunKind.SWEEP)
    firsts = sweeps.values("group").annotate(first=Min("pk")).values("first")
    points = (
        sweeps.filter(group=OuterRef("group"))
        .order_by()
        .values("group")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return queryset.filter(~Q(kind=RunKind.SWEEP) | Q(pk__in=firsts)).annotate(
        sweep_points=Subquery(points)
    )


@dataclass(frozen=True)
class SweepSummary:
    """A sweep's points: how many, the grid's values of each parameter, the best by Sharpe."""

    points: int
    grid: dict[str, list]
    best: BacktestRun | None


def sweep_summary(*, group: str) -> SweepSummary:
    runs = backtest_runs_of_group(group=group, kind=RunKind.SWEEP)
    grid: dict[str, set] = {}
    for run in runs:
        for name, value in run.params.items():
            grid.setdefault(name, set()).add(value)
    ranked = [r for r in runs if isinstance(r.metrics.get("Sharpe Ratio"), int | float)]
    best = max(ranked, key=lambda r: r.metrics["Sharpe Ratio"], default=None)
    return SweepSummary(len(runs), {k: sorted(v) for k, v in grid.items()}, best)
