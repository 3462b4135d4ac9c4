"""`bars check`: every stored series read once, year by year, from the database and the catalog,
and looked at (fetcher.domain.checks); the result kept on its Series row."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from fetcher.domain.bars import BarBatch
from fetcher.domain.checks import (
    Finding,
    calendar_findings,
    findings_unconfirmed,
    ohlc_findings,
    spike_findings,
    stores_compare,
    utc_text,
)
from fetcher.domain.planning import intervals_merge
from fetcher.domain.sessions import listing_sessions
from fetcher.domain.time import DAY, date_epoch, epoch, from_epoch
from fetcher.domain.timeframes import (
    BY_CODE,
    TIMEFRAMES,
    TimeframeSpec,
    WhatToShow,
    timeframe_parse,
)
from fetcher.exceptions import InvalidInput
from fetcher.models import IncidentKind, Series
from fetcher.queues import TaskName
from fetcher.selectors import (
    bars_read,
    coverage_windows,
    series_listed,
    series_run_going,
    series_stats,
)
from fetcher.storage.catalog import CatalogSeries, catalog_series_keys, session_name

from .alerts import incident_close, incident_open
from .provenance import catalog_binding_check
from .schedules import cron_fields

CHECK_SCHEDULE = "bars check"  # the periodic task `bars check --cron` adds
REPORT_MAX_LINES = 50  # kept on the Series row for the admin
# Quote bars (and volatilities) carry -1 where trades bars carry volume.
TRADED = (WhatToShow.TRADES, WhatToShow.ADJUSTED_LAST)


@dataclass
class SeriesCheck:
    """One series checked: its findings (none: all is well), or why it was skipped. A series
    found only in the catalog has no `series` row."""

    label: str
    catalog: CatalogSeries
    series: Series | None = None
    bars: int = 0  # rows in the database
    catalog_bars: int = 0
    findings: list[Finding] = field(default_factory=list)
    skipped: str = ""
    # False: the exchange's calendar is not known here, its sessions were not checked
    calendar_known: bool = True
    confirmed: int = 0  # findings set aside: the gateway confirmed them before

    @property
    def lines(self) -> list[str]:
        if self.skipped:
            return [f"{self.label}: skipped, {self.skipped}"]
        return [f"{self.label}: {f.text}" for f in self.findings]


@dataclass
class StoreCheck:
    checks: list[SeriesCheck]
    seconds: float

    @property
    def findings(self) -> int:
        return sum(len(c.findings) for c in self.checks)

    @property
    def bars(self) -> int:
        return sum(c.bars for c in self.checks)


def series_label(series: CatalogSeries) -> str:
    """'AAPL 1-MINUTE TRADES RTH': a series as the check names it (the catalog's words)."""
    return (
        f"{series.symbol} {series.timeframe.name} {series.what_to_show} "
        f"{session_name(series.use_rth)}"
    )


def bars_check(
    *,
    catalog_root: Path,
    symbols: list[str] | None = None,
    timeframe: TimeframeSpec | None = None,
    record: bool = True,
) -> StoreCheck:
    """Check every stored series (or those of `symbols` and `timeframe`): its sessions against
    the exchange calendar, OHLC rules, spikes, the database against the catalog (counts and
    content) and its Series counters against the rows. Series a run is storing into are
    skipped. With `record`, each result is kept on its Series row (the admin shows it).
    CatalogBound when the catalog belongs to another database."""
    began = time.monotonic()
    catalog_binding_check(catalog_root=catalog_root)
    rows = series_listed(symbols=symbols, timeframe=timeframe.code if timeframe else None)
    if symbols:
        found = {s.instrument.symbol.upper() for s in rows}
        found |= {s.instrument.local_symbol.upper() for s in rows}
        unknown = [s for s in symbols if s.upper() not in found]
        if unknown:
            raise InvalidInput(f"no stored series of {', '.join(unknown)}")
    checks = [series_check(series=s, catalog_root=catalog_root) for s in rows]
    checks += catalog_only(
        known=[c.catalog for c in checks] if not (symbols or timeframe) else None,
        symbols=symbols,
        timeframe=timeframe,
        catalog_root=catalog_root,
    )
    if record:
        now = timezone.now()
        for check in checks:
            if check.series is not None and not check.skipped:
                Series.objects.filter(pk=check.series.pk).update(
                    checked_at=now,
                    check_findings=len(check.findings),
                    check_report="\n".join(check.lines[:REPORT_MAX_LINES]),
                )
    return StoreCheck(checks, time.monotonic() - began)


def catalog_only(
    *,
    known: list[CatalogSeries] | None,
    symbols: list[str] | None,
    timeframe: TimeframeSpec | None,
    catalog_root: Path,
) -> list[SeriesCheck]:
    """Series the catalog holds and the database does not."""
    if known is None:  # filtered: the known series are every stored one
        known = [catalog_series(s) for s in series_listed()]
    held = {
        (
            c.what_to_show,
            c.timeframe.name,
            session_name(c.use_rth),
            c.symbol,
            c.exchange,
            c.currency,
        )
        for c in known
    }
    checks = []
    for key in catalog_series_keys(catalog_root):
        what, tf_name, session, symbol, exchange, currency = key
        if key in held or tf_name not in TIMEFRAMES:
            continue
        if symbols and symbol.upper() not in {s.upper() for s in symbols}:
            continue
        if timeframe and tf_name != timeframe.name:
            continue
        series = CatalogSeries(
            symbol, exchange, currency, TIMEFRAMES[tf_name], what, use_rth=session == "RTH"
        )
        years = series.years(root=catalog_root)
        bars = sum(len(series.year_read(y, root=catalog_root)) for y in years)
        checks.append(
            SeriesCheck(
                label=series_label(series),
                catalog=series,
                catalog_bars=bars,
                findings=[
                    Finding(
                        "catalog",
                        f"in the catalog only ({bars:,} bars in years "
                        f"{', '.join(map(str, years))}); the database has no such series",
                        rebuild=tuple(years),
                    )
                ],
            )
        )
    return checks


def catalog_series(series: Series) -> CatalogSeries:
    return CatalogSeries.of_instrument(
        series.instrument,
        timeframe=BY_CODE[series.timeframe],
        what_to_show=WhatToShow(series.what_to_show).name,
        use_rth=series.rth,
    )


def series_check(*, series: Series, catalog_root: Path) -> SeriesCheck:
    """One series, read a UTC year (a catalog partition) at a time."""
    instrument, tf = series.instrument, BY_CODE[series.timeframe]
    key = {
        "timeframe": series.timeframe,
        "what_to_show": series.what_to_show,
        "rth": series.rth,
    }
    catalog = catalog_series(series)
    check = SeriesCheck(label=series_label(catalog), catalog=catalog, series=series)
    going = series_run_going(instrument=instrument, **key)
    if going is not None:
        check.skipped = f"run {going} is storing into it"
        return check
    count, first, last = series_stats(instrument_id=instrument.pk, **key)
    covered = coverage_windows(instrument_id=instrument.pk, **key)
    step = tf.seconds or DAY
    spans = list(covered)
    if count:
        spans.append((epoch(first), epoch(last) + step))
    spans = intervals_merge(spans)
    sessions = listing_sessions(instrument)
    check.calendar_known = sessions.holidays_known
    years = set(catalog.years(root=catalog_root))
    if spans:
        years |= set(range(from_epoch(spans[0][0]).year, from_epoch(spans[-1][1] - 1).year + 1))
    times: list[np.ndarray] = []
    before = None
    for year in sorted(years):
        lo, hi = date_epoch_year(year), date_epoch_year(year + 1)
        stored = bars_read(instrument_id=instrument.pk, start=lo, end=hi, **key)
        filed = catalog.year_read(year, root=catalog_root)
        check.bars += len(stored)
        check.catalog_bars += len(filed) if filed is not None else 0
        compared = stores_compare(stored, filed, year)
        if compared:
            check.findings.append(compared)
        check.findings += ohlc_findings(
            stored, tf, sessions, series.rth, volume_signed=series.what_to_show not in TRADED
        )
        check.findings += spike_findings(stored, tf, sessions, series.rth, before=before)
        if len(stored):
            times.append(stored.ts)
            before = float(stored.close[-1])
    ts = np.concatenate(times) if times else BarBatch.empty().ts
    if spans:
        lo, hi = spans[0][0], spans[-1][1]
        check.findings += calendar_findings(
            sessions=sessions, tf=tf, use_rth=series.rth, ts=ts, lo=lo, hi=hi, covered=covered
        )
    counters = (series.bar_count, series.first_ts, series.last_ts)
    if counters != (count, first, last):
        check.findings.append(
            Finding(
                "counters",
                f"Series counters say {series.bar_count:,} bars {_when(series.first_ts)}.."
                f"{_when(series.last_ts)}; the rows: {count:,} bars {_when(first)}..{_when(last)}",
            )
        )
    check.findings, check.confirmed = findings_unconfirmed(
        sorted(check.findings, key=_order), [tuple(w) for w in series.confirmed]
    )
    return check


def series_confirm(*, series_id: int, windows: list[tuple[int, int]]) -> None:
    """Keep windows the gateway confirmed as they are on the series (see Series.confirmed)."""
    with transaction.atomic():
        series = Series.objects.select_for_update().get(pk=series_id)
        merged = intervals_merge([*(tuple(w) for w in series.confirmed), *windows])
        series.confirmed = [list(w) for w in merged]
        series.save(update_fields=["confirmed"])


def date_epoch_year(year: int) -> int:
    return date_epoch(dt.date(year, 1, 1))


def _when(value) -> str:
    return utc_text(epoch(value)) if value is not None else "-"


_KINDS = ("counters", "catalog", "gap", "thin", "outside", "ohlc", "spike")


def _order(finding: Finding) -> tuple:
    first = min((w[0] for w in finding.refetch), default=0)
    return (_KINDS.index(finding.kind), first, finding.rebuild)


def bars_check_scheduled(
    *, catalog_root: Path, instruments: str = "", timeframe: str = ""
) -> StoreCheck:
    """The check beat runs (CHECK_SCHEDULE's arguments, as the admin may have edited them):
    findings open an incident (the admins are mailed once), a clean store closes it."""
    report = bars_check(
        catalog_root=catalog_root,
        symbols=[s.strip() for s in instruments.split(",") if s.strip()] or None,
        timeframe=timeframe_parse(timeframe) if timeframe else None,
    )
    key = " ".join(["bars check", instruments, timeframe]).strip()
    if not report.findings:
        incident_close(
            kind=IncidentKind.STORE_CHECK, key=key, message="bars check: nothing wrong any more"
        )
        return report
    lines = [line for check in report.checks if check.findings for line in check.lines]
    incident_open(
        kind=IncidentKind.STORE_CHECK,
        key=key,
        message=(
            f"bars check found {report.findings} finding(s) in "
            f"{sum(bool(c.findings) for c in report.checks)} series:\n"
            + "\n".join(lines[:REPORT_MAX_LINES])
            + "\n\npython manage.py bars check --repair fetches again what is missing or "
            "suspect and rebuilds the catalog from the database."
        ),
    )
    return report


def bars_check_schedule(
    *,
    cron: str,
    time_zone: str = "UTC",
    instruments: str = "",
    timeframe: str = "",
) -> PeriodicTask:
    """Have beat run the check (task fetcher.bars_check on the default queue) on a cron, read
    in `time_zone`: the one periodic task named CHECK_SCHEDULE, added or changed."""
    fields = cron_fields(cron)
    try:
        zone = ZoneInfo(time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {time_zone!r}: use a name like America/New_York"
        ) from None
    kwargs = {"instruments": instruments, "timeframe": timeframe}
    with transaction.atomic():
        crontab, _ = CrontabSchedule.objects.get_or_create(**fields, timezone=zone)
        task, _ = PeriodicTask.objects.update_or_create(
            name=CHECK_SCHEDULE,
            defaults={
                "task": TaskName.BARS_CHECK,
                "crontab": crontab,
                "interval": None,
                "kwargs": json.dumps(kwargs),
                "enabled": True,
                "description": "manage.py bars check: the store against the calendar and itself",
            },
        )
    return task


def bars_check_unschedule() -> bool:
    """Stop beat running the check; False when it was not scheduled."""
    deleted, _ = PeriodicTask.objects.filter(name=CHECK_SCHEDULE, task=TaskName.BARS_CHECK).delete()
    return bool(deleted)
