"""Reads: run status and summaries for the CLI and admin, coverage, orphaned runs, stored bars."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
from celery.schedules import ParseException
from django.db import connections, models, router
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from .domain.bars import BarBatch
from .domain.estimates import FetchEstimate, pacing_seconds, plan_bars
from .domain.instruments import InstrumentSpec, spec_time_zone
from .domain.planning import FetchPlan, Listing, fetch_plan, intervals_merge
from .domain.requests import FetchRequest
from .domain.time import DEFAULT_ZONE, epoch, from_epoch
from .domain.timeframes import BY_CODE, TimeframeSpec
from .models import (
    Bar,
    ChunkStatus,
    Coverage,
    FetchChunk,
    FetchRun,
    FetchRunItem,
    GatewayState,
    Instrument,
    ItemStatus,
    RunStatus,
    Series,
)
from .queues import TaskName
from .storage.bars import bars_select
from .timings import CLAIM_S, EMPTY_RETRY_S, EMPTY_RETRY_TRIES

FINISHED_RUN = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.CANCELLED)
FINISHED_ITEM = (ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.CANCELLED)
# Requests that stored nothing: what "Retry failed chunks" fetches again.
UNFINISHED_CHUNK = (ChunkStatus.FAILED, ChunkStatus.PENDING, ChunkStatus.CANCELLED)


@dataclass(frozen=True)
class RunSummary:
    run: FetchRun
    items: list[FetchRunItem]
    timeframe: TimeframeSpec
    start_label: str
    end_label: str
    range_note: str
    per_gateway: dict[str, tuple[int, int]]  # requests answered by each gateway, their bars


def fetch_run_summary(*, run_id: int) -> RunSummary:
    run = FetchRun.objects.get(pk=run_id)
    items = list(FetchRunItem.objects.filter(run_id=run_id).order_by("position"))
    tf = BY_CODE[run.timeframe]
    starts = [i.start for i in items if i.start]
    ends = [i.end for i in items if i.end]
    if run.start:
        start_label = run.start.isoformat()
    elif starts:
        start_label = min(starts).date().isoformat()
    else:
        start_label = "-"
    if run.end:
        end_label = run.end.isoformat()
    elif ends:
        # the range ends before this instant: for daily bars that is the next day's 00:00
        last = max(ends) - (dt.timedelta(days=1) if not tf.intraday else dt.timedelta(0))
        end_label = last.date().isoformat()
    else:
        end_label = "-"
    notes = sorted({i.note for i in items if i.note})
    range_note = ""
    if not run.start and notes:
        range_note = (
            notes[0]
            if len(notes) == 1
            else "; ".join(f"{i.spec}: {i.note}" for i in items if i.note)
        )
    per_gateway = fetch_run_requests_per_gateway(run_id=run_id)
    return RunSummary(run, items, tf, start_label, end_label, range_note, per_gateway)


def fetch_run_get(*, run_id: int) -> FetchRun | None:
    return FetchRun.objects.filter(pk=run_id).first()


def fetch_run_finished(*, run_id: int) -> bool:
    status = FetchRun.objects.values_list("status", flat=True).get(pk=run_id)
    return status in FINISHED_RUN


def fetch_run_stalled(*, run_id: int, stale_after_s: float) -> bool:
    """A running run not heard of for `stale_after_s`: the worker running it is gone."""
    silent_since = timezone.now() - dt.timedelta(seconds=stale_after_s)
    return FetchRun.objects.filter(
        pk=run_id, status=RunStatus.RUNNING, heartbeat_at__lt=silent_since
    ).exists()


def fetch_runs_of(*, run_ids: list[int]) -> list[FetchRun]:
    return list(FetchRun.objects.filter(pk__in=run_ids).order_by("pk"))


def fetch_runs_recent(*, limit: int) -> list[FetchRun]:
    return list(FetchRun.objects.order_by("-pk")[: max(1, limit)])


def fetch_run_items_todo(*, run_id: int) -> list[FetchRunItem]:
    """A run's items still to do, in the order the user gave them."""
    return list(
        FetchRunItem.objects.filter(run_id=run_id)
        .exclude(status__in=FINISHED_ITEM)
        .order_by("position")
    )


def fetch_run_chunk_errors(*, run_id: int, limit: int = 10) -> list[FetchChunk]:
    """The first requests of a run that met an error (failed, or retried), oldest window first."""
    return list(
        FetchChunk.objects.filter(run_id=run_id)
        .exclude(last_error="")
        .select_related("instrument")
        .order_by("window_start")[:limit]
    )


def fetch_runs_orphaned(*, stale_after_s: float) -> list[int]:
    """Running runs whose executor has not beaten for `stale_after_s`: its worker is gone. A
    run another worker is executing beats every HEARTBEAT_S, and is never among them."""
    stale_before = timezone.now() - dt.timedelta(seconds=stale_after_s)
    runs = FetchRun.objects.filter(status=RunStatus.RUNNING).filter(
        models.Q(heartbeat_at__lt=stale_before) | models.Q(heartbeat_at=None)
    )
    return list(runs.values_list("pk", flat=True))


def instrument_find(*, spec: InstrumentSpec) -> Instrument | None:
    """The stored instrument a spec names: by conId when known, else by its fields (the
    exchange for anything but a stock, the listing exchange for a stock that names one)."""
    if spec.con_id:
        return Instrument.objects.filter(con_id=spec.con_id).first()
    found = Instrument.objects.filter(
        symbol=spec.symbol, sec_type=spec.sec_type, currency=spec.currency
    )
    if spec.sec_type != "STK":
        found = found.filter(exchange=spec.exchange)
    elif spec.primary_exchange:
        found = found.filter(primary_exchange=spec.primary_exchange)
    return found.order_by("pk").first()


def fetch_plans(
    *, request: FetchRequest, now: float
) -> list[tuple[InstrumentSpec, FetchPlan, bool]]:
    """Each instrument's plan, as the executor will make it from what is stored: the stored
    instrument's listing, coverage and first data point (a new instrument: its listing as its
    spec tells, its first data point unknown), and whether that first data point was known."""
    tf, what = request.timeframe, request.what_to_show
    plans = []
    for spec in request.instruments:
        instrument = instrument_find(spec=spec)
        listing = instrument or Listing(
            spec.sec_type,
            spec.exchange,
            spec.primary_exchange,
            spec_time_zone(spec) or DEFAULT_ZONE,
        )
        covered, retry, head = [], [], None
        if instrument is not None:
            series = {
                "instrument_id": instrument.pk,
                "timeframe": tf.code,
                "what_to_show": what,
                "rth": request.use_rth,
            }
            covered, retry = coverage_windows(**series), coverage_retry(**series)
            stored_head = instrument.head_timestamps.get(what.name)
            head = dt.datetime.fromisoformat(stored_head) if stored_head else None
        plan = fetch_plan(
            listing=listing,
            timeframe=tf,
            use_rth=request.use_rth,
            start=request.start,
            end=request.end,
            since_head=request.since_head,
            head=head,
            covered=covered,
            now=now,
            retry=retry,
        )
        plans.append((spec, plan, head is not None))
    return plans


def fetch_estimate(*, request: FetchRequest, now: float) -> FetchEstimate:
    """What a request will cost: its plans' requests, bars and pacing time; the instruments
    whose part reaches back to a first data point the gateway has not told yet."""
    tf = request.timeframe
    requests = bars = 0
    unknown = []
    for spec, plan, head_known in fetch_plans(request=request, now=now):
        requests += len(plan.requests)
        bars += plan_bars(plan, tf, request.use_rth)
        if not head_known and plan.note.startswith("since the gateway's first data"):
            unknown.append(spec.label)
    return FetchEstimate(requests, bars, pacing_seconds(requests, tf), tuple(unknown))


def instrument_time_zone(*, symbol: str, sec_type: str, exchange: str, currency: str) -> str:
    """The time zone IBKR reported for a stored instrument ('' when not fetched yet)."""
    zone = (
        Instrument.objects.filter(
            symbol=symbol, sec_type=sec_type, exchange=exchange, currency=currency
        )
        .exclude(time_zone="")
        .values_list("time_zone", flat=True)
        .first()
    )
    return zone or ""


def fetch_schedule_run_going(*, schedule: str) -> FetchRun | None:
    """The run a schedule started that has not ended yet (pending or running), if any."""
    return (
        FetchRun.objects.filter(
            schedule=schedule, status__in=(RunStatus.PENDING, RunStatus.RUNNING)
        )
        .order_by("pk")
        .first()
    )


# A cron that does not fire within this long is refused when added (29 February fires within
# four years; celery's crontab needs day of month, month and day of week to meet).
CRON_HORIZON = dt.timedelta(days=5 * 366)


def crontab_next_fire(schedule, zone) -> dt.datetime | None:
    """The minute a celery crontab fires next, on `zone`'s clock; None when that is not within
    CRON_HORIZON."""
    now = timezone.now().astimezone(zone)
    remaining = schedule.remaining_estimate(now)
    if remaining > CRON_HORIZON:
        return None
    # crons fire on whole minutes; the estimate is off by the current second's fraction
    due = now + remaining + dt.timedelta(seconds=30)
    return due.replace(second=0, microsecond=0)


@dataclass(frozen=True)
class ScheduleSummary:
    name: str
    kwargs: dict
    when: str  # "30 17 * * 1-5", or the interval
    time_zone: str
    enabled: bool
    last_fired: dt.datetime | None
    next_fire: dt.datetime | None
    last_run: FetchRun | None
    problem: str = ""  # why the row cannot be read as it is (edited in the admin), if it cannot


def fetch_schedules() -> list[ScheduleSummary]:
    """Every fetch schedule beat knows, with its last firing, next firing and last run. A row
    that cannot be read as it is (an impossible cron, arguments that are not a JSON object)
    is listed with its problem, never an exception."""
    tasks = PeriodicTask.objects.filter(task=TaskName.FETCH_SCHEDULE).select_related(
        "crontab", "interval"
    )
    return [_schedule_summary(task) for task in tasks.order_by("name")]


def _schedule_summary(task: PeriodicTask) -> ScheduleSummary:
    when, zone, next_fire, problems = "", "", None, []
    cron = task.crontab
    if cron is not None:
        when = " ".join(
            (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week)
        )
        zone = str(cron.timezone)
        try:
            next_fire = crontab_next_fire(cron.schedule, cron.timezone)
        except (ValueError, ParseException) as exc:  # celery's crontab refuses it
            problems.append(f"its cron {when!r} is invalid: {str(exc).rstrip('.')}")
        else:
            if next_fire is None:
                problems.append(f"its cron {when!r} does not fire within 5 years")
    else:
        when = str(task.interval or task.solar or task.clocked or "no schedule")
    try:
        kwargs = json.loads(task.kwargs or "{}")
    except ValueError as exc:
        kwargs = {}
        problems.append(f"its arguments are not JSON ({exc})")
    if not isinstance(kwargs, dict):
        kwargs = {}
        problems.append("its arguments are not a JSON object")
    last_run = FetchRun.objects.filter(schedule=task.name).order_by("-pk").first()
    return ScheduleSummary(
        task.name,
        kwargs,
        when,
        zone,
        task.enabled,
        task.last_run_at,
        next_fire,
        last_run,
        "; ".join(problems),
    )


def coverage_windows(
    *, instrument_id: int, timeframe: int, what_to_show: int, rth: bool
) -> list[tuple[int, int]]:
    """The windows of one series known stored (or known empty), merged, in epoch seconds: not
    the suspect ones still asked again (coverage_suspect)."""
    rows = (
        Coverage.objects.filter(
            instrument_id=instrument_id, timeframe=timeframe, what_to_show=what_to_show, rth=rth
        )
        .filter(_settled())
        .values_list("start", "end")
    )
    return intervals_merge([(epoch(a), epoch(b)) for a, b in rows])


@dataclass(frozen=True)
class SuspectWindow:
    """A window answered "no data" although the calendar says it traded."""

    start: dt.datetime
    end: dt.datetime
    first_empty: dt.datetime  # when first answered empty
    tries: int  # times answered empty
    settled: bool  # counts as covered now (asked often and long enough); else asked again


def coverage_suspect(
    *, instrument_id: int, timeframe: int, what_to_show: int, rth: bool
) -> list[SuspectWindow]:
    """One series' windows answered empty for sessions that traded, oldest first: those later
    fetches still ask again, and those settled as covered (EMPTY_RETRY_TRIES answers over
    EMPTY_RETRY_S). For `bars check` and the planner."""
    rows = Coverage.objects.filter(
        instrument_id=instrument_id,
        timeframe=timeframe,
        what_to_show=what_to_show,
        rth=rth,
        empty_since__isnull=False,
    ).annotate(is_settled=models.ExpressionWrapper(_settled(), output_field=models.BooleanField()))
    return [
        SuspectWindow(c.start, c.end, c.empty_since, c.empty_tries, c.is_settled)
        for c in rows.order_by("start")
    ]


def coverage_retry(
    *, instrument_id: int, timeframe: int, what_to_show: int, rth: bool
) -> list[tuple[int, int]]:
    """The suspect windows of one series later fetches still ask for (epoch seconds): what
    `fetch_plan` takes as `retry`."""
    return [
        (epoch(w.start), epoch(w.end))
        for w in coverage_suspect(
            instrument_id=instrument_id, timeframe=timeframe, what_to_show=what_to_show, rth=rth
        )
        if not w.settled
    ]


def _settled() -> models.Q:
    """Coverage that counts: a window stored (or empty on no session), or suspect but answered
    empty often and long enough."""
    long_ago = timezone.now() - dt.timedelta(seconds=EMPTY_RETRY_S)
    return models.Q(empty_since__isnull=True) | models.Q(
        empty_tries__gte=EMPTY_RETRY_TRIES, empty_since__lte=long_ago
    )


def chunks_export_pending(
    *, instrument_id: int, timeframe: int, what_to_show: int, rth: bool
) -> list[tuple[int, dt.datetime, dt.datetime]]:
    """(id, window start, window end) of a series' stored requests whose bars are not in the
    catalog yet, whichever run stored them (an index of the few such rows)."""
    return list(
        FetchChunk.objects.filter(
            instrument_id=instrument_id,
            status=ChunkStatus.DONE,
            exported=False,
            run__timeframe=timeframe,
            run__what_to_show=what_to_show,
            run__use_rth=rth,
        )
        .order_by("window_start")
        .values_list("pk", "window_start", "window_end")
    )


def fetch_run_items_export_pending(*, run_id: int) -> list[int]:
    """The items of a run that stored bars not yet in the catalog."""
    return sorted(
        set(
            FetchChunk.objects.filter(
                run_id=run_id, status=ChunkStatus.DONE, exported=False
            ).values_list("item_id", flat=True)
        )
    )


def store_source(*, kinds: list[str] | None = None) -> tuple[str, str] | None:
    """(source, account) of stored bars of one of these kinds (None: any kind), if any."""
    series = Series.objects.all() if kinds is None else Series.objects.filter(source__in=kinds)
    return series.values_list("source", "account").first()


def series_stats(
    *, instrument_id: int, timeframe: int, what_to_show: int, rth: bool
) -> tuple[int, dt.datetime | None, dt.datetime | None]:
    """(bar count, first bar, last bar) of one series, from the Bar table's primary key."""
    stats = Bar.objects.filter(
        instrument_id=instrument_id, timeframe=timeframe, what_to_show=what_to_show, rth=rth
    ).aggregate(count=models.Count("*"), first=models.Min("ts"), last=models.Max("ts"))
    return stats["count"], stats["first"], stats["last"]


def bars_read(
    *,
    instrument_id: int,
    timeframe: int,
    what_to_show: int,
    rth: bool,
    start: int,
    end: int,
    last: int | None = None,
    first: int | None = None,
) -> BarBatch:
    """Stored bars of one series with start <= ts < end (epoch seconds), sorted, as columns;
    only the `first` or the `last` ones of the range when given.

    One primary-key range scan, with no datetime or model objects: PostgreSQL sends binary
    records numpy reads as they are (storage.bars.bars_select); elsewhere the database turns
    timestamps into epoch seconds."""
    connection = connections[router.db_for_read(Bar)]
    where = (
        "instrument_id = %s AND timeframe = %s AND what_to_show = %s AND rth = %s "
        "AND ts >= %s AND ts < %s"
    )
    # Bound as the database stores the column (SQLite: UTC text without an offset, compared as
    # text), so [start, end) means the same on every database.
    adapt = connection.ops.adapt_datetimefield_value
    params = [
        instrument_id,
        timeframe,
        what_to_show,
        rth,
        adapt(from_epoch(start)),
        adapt(from_epoch(end)),
    ]
    if connection.vendor == "postgresql":
        return bars_select(connection, where=where, params=params, first=first, last=last)
    epoch_sql = "CAST(strftime('%%s', ts) AS INTEGER)" if connection.vendor == "sqlite" else "ts"
    columns = "open, high, low, close, volume, wap, bar_count"
    sql = f"SELECT {epoch_sql}, {columns} FROM fetcher_bar WHERE {where} ORDER BY ts"
    if last is not None:
        sql, params = f"{sql} DESC LIMIT %s", [*params, last]
    elif first is not None:
        sql, params = f"{sql} LIMIT %s", [*params, first]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if last is not None:
        rows.reverse()
    if not rows:
        return BarBatch.empty()
    if connection.vendor != "sqlite":
        rows = [(int(r[0].timestamp()), *r[1:]) for r in rows]
    values = np.array(rows, dtype=np.float64)
    return BarBatch(
        ts=values[:, 0].astype(np.int64),
        open=values[:, 1],
        high=values[:, 2],
        low=values[:, 3],
        close=values[:, 4],
        volume=values[:, 5],
        wap=values[:, 6],
        bar_count=values[:, 7].astype(np.int64),
    )


def bars_count(
    *, instrument_id: int, timeframe: int, what_to_show: int, rth: bool, start: int, end: int
) -> int:
    """How many bars one series holds with start <= ts < end (epoch seconds): a primary-key range
    count."""
    return Bar.objects.filter(
        instrument_id=instrument_id,
        timeframe=timeframe,
        what_to_show=what_to_show,
        rth=rth,
        ts__gte=from_epoch(start),
        ts__lt=from_epoch(end),
    ).count()


def fetch_run_chunks_unfinished(*, run_id: int) -> list[FetchChunk]:
    """The requests of a run that stored nothing: failed, cancelled, or never answered."""
    return list(
        FetchChunk.objects.filter(run_id=run_id, status__in=UNFINISHED_CHUNK)
        .select_related("instrument")
        .order_by("instrument_id", "window_start")
    )


def fetch_run_item_get(*, item_id: int) -> FetchRunItem:
    return FetchRunItem.objects.get(pk=item_id)


def item_chunks_pending(*, item_id: int) -> tuple[int, int]:
    """How many of an item's requests no gateway has finished yet (served, empty or failed),
    and how many of those no live gateway holds (unclaimed, or their claim lapsed)."""
    now = timezone.now()
    counts = FetchChunk.objects.filter(item_id=item_id, status=ChunkStatus.PENDING).aggregate(
        pending=models.Count("pk"),
        unclaimed=models.Count(
            "pk", filter=Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
        ),
    )
    return counts["pending"], counts["unclaimed"]


def fetch_run_requests_per_gateway(*, run_id: int) -> dict[str, tuple[int, int]]:
    """{gateway name: (requests of the run it answered, their bars)}, by name."""
    rows = (
        FetchChunk.objects.filter(run_id=run_id, status__in=(ChunkStatus.DONE, ChunkStatus.EMPTY))
        .exclude(gateway="")
        .values_list("gateway")
        .annotate(n=models.Count("*"), bars=models.Sum("bars_received"))
        .order_by("gateway")
    )
    return {name: (n, bars or 0) for name, n, bars in rows}


def gateway_states() -> list[GatewayState]:
    """Every gateway's health as its worker last told it."""
    return list(GatewayState.objects.order_by("name"))


def gateway_health(state: GatewayState, now: dt.datetime) -> str:
    """'connected', 'down: <why>', or 'no worker' when its worker has been silent longer than
    a claim lasts (it went away: its chunks pass to the other gateways)."""
    if state.seen_at is None or (now - state.seen_at).total_seconds() > CLAIM_S:
        return "no worker"
    if state.connected:
        return "connected"
    return f"down: {state.last_error}" if state.last_error else "down"


def fetch_run_chunk_counts(*, run_id: int) -> dict[str, int]:
    """How many of a run's requests are in each state."""
    rows = (
        FetchChunk.objects.filter(run_id=run_id)
        .values_list("status")
        .annotate(n=models.Count("*"))
        .order_by()
    )
    return dict(rows)


def series_keys(*, instrument_ids: list[int]) -> list[tuple[int, int, int, bool]]:
    """(instrument, timeframe, whatToShow, session) of every series holding bars of these."""
    return list(
        Series.objects.filter(instrument_id__in=instrument_ids, bar_count__gt=0)
        .order_by("instrument_id", "timeframe", "what_to_show", "rth")
        .values_list("instrument_id", "timeframe", "what_to_show", "rth")
    )


def series_listed(
    *, symbols: list[str] | None = None, timeframe: int | None = None
) -> list[Series]:
    """Every stored series (with its instrument), or those of these symbols (a stored
    instrument's symbol or local symbol, any case) and this timeframe."""
    series = Series.objects.select_related("instrument")
    if symbols:
        match = models.Q()
        for symbol in symbols:
            match |= models.Q(instrument__symbol__iexact=symbol)
            match |= models.Q(instrument__local_symbol__iexact=symbol)
        series = series.filter(match)
    if timeframe is not None:
        series = series.filter(timeframe=timeframe)
    return list(
        series.order_by("instrument__symbol", "instrument_id", "timeframe", "what_to_show", "rth")
    )


def series_run_going(
    *, instrument: Instrument, timeframe: int, what_to_show: int, rth: bool
) -> int | None:
    """A pending or running run that fetches (or may fetch, not planned yet) into this series:
    its id, else None."""
    return (
        FetchRunItem.objects.filter(
            models.Q(instrument_id=instrument.pk)
            | models.Q(instrument__isnull=True, symbol=instrument.symbol),
            run__status__in=(RunStatus.PENDING, RunStatus.RUNNING),
            run__timeframe=timeframe,
            run__what_to_show=what_to_show,
            run__use_rth=rth,
        )
        .order_by("run_id")
        .values_list("run_id", flat=True)
        .first()
    )


def instrument_series(*, instrument_id: int) -> list[Series]:
    """The stored series of one instrument, with their counts and first and last bars."""
    return list(Series.objects.filter(instrument_id=instrument_id).order_by("timeframe"))


def instruments_listed(*, queryset: models.QuerySet[Instrument]) -> models.QuerySet[Instrument]:
    """Instruments with what a list shows: their series (counts, first and last bar) and the
    status of the last run item that asked for them: a going run's (its items know the
    instrument by conId until planned), else the last one planned for the row. Both are index
    lookups (runs by status, items by run or by instrument), however many items pile up."""
    going = FetchRunItem.objects.filter(
        models.Q(instrument_id=models.OuterRef("pk")) | models.Q(con_id=models.OuterRef("con_id")),
        run__status__in=(RunStatus.PENDING, RunStatus.RUNNING),
    ).order_by("-pk")
    planned = FetchRunItem.objects.filter(instrument_id=models.OuterRef("pk")).order_by("-pk")

    def last(field: str) -> Coalesce:
        return Coalesce(
            models.Subquery(going.values(field)[:1]), models.Subquery(planned.values(field)[:1])
        )

    return queryset.prefetch_related(
        models.Prefetch("series", queryset=Series.objects.order_by("timeframe"))
    ).annotate(
        first_bar=models.Min("series__first_ts"),
        last_bar=models.Max("series__last_ts"),
        last_fetch_status=last("status"),
        last_fetch_run=last("run_id"),
    )


@dataclass(frozen=True)
class BarsPage:
    bars: list[Bar]
    newer: tuple | None  # cursor of the page before (newer bars), None on the first page
    older: tuple | None  # cursor of the next page (older bars), None on the last page
    total: int  # bars of the matching series, from their counts (no count over the Bar table)


def _bar_key(bar: Bar) -> tuple:
    return (bar.instrument_id, bar.timeframe, bar.what_to_show, bar.rth, bar.ts)


def bars_page(
    *,
    instrument_id: int | None = None,
    timeframe: int | None = None,
    what_to_show: int | None = None,
    rth: bool | None = None,
    older_than: tuple | None = None,
    newer_than: tuple | None = None,
    size: int = 100,
) -> BarsPage:
    """One page of stored bars, newest first in primary-key order, for any filter, fast on
    any table size.

    A page is found series by series (the Series table lists them): inside one series it is
    a primary-key range scan from the cursor (keyset paging: no OFFSET), so a filter on
    timeframe alone does not scan the bars of the other timeframes; the total comes from the
    series' counts, not from a COUNT over the bars."""
    filters = {
        name: value
        for name, value in (
            ("instrument_id", instrument_id),
            ("timeframe", timeframe),
            ("what_to_show", what_to_show),
            ("rth", rth),
        )
        if value is not None
    }
    series = Series.objects.filter(bar_count__gt=0, **filters)
    total = series.aggregate(n=models.Sum("bar_count"))["n"] or 0
    key_fields = ("instrument_id", "timeframe", "what_to_show", "rth")
    newest_first = newer_than is None
    cursor = older_than if newest_first else newer_than
    ordered = series.order_by(*(f"-{f}" if newest_first else f for f in key_fields))
    keys = list(ordered.values_list(*key_fields))
    if cursor is not None:
        keys = [k for k in keys if (k <= cursor[:4] if newest_first else k >= cursor[:4])]
    rows: list[Bar] = []
    for key in keys:
        chunk = Bar.objects.filter(**dict(zip(key_fields, key, strict=True)))
        if cursor is not None and key == tuple(cursor[:4]):
            chunk = (
                chunk.filter(ts__lt=cursor[4]) if newest_first else chunk.filter(ts__gt=cursor[4])
            )
        chunk = chunk.order_by("-ts" if newest_first else "ts").select_related("instrument")
        rows += list(chunk[: size + 1 - len(rows)])
        if len(rows) > size:
            break
    more = len(rows) > size
    rows = rows[:size]
    if not newest_first:
        rows.reverse()
    if not rows:
        return BarsPage([], None, None, total)
    first, last = _bar_key(rows[0]), _bar_key(rows[-1])
    if newest_first:
        return BarsPage(rows, first if cursor is not None else None, last if more else None, total)
    return BarsPage(rows, first if more else None, last, total)


def instruments_with_bars() -> list[Instrument]:
    """Instruments that have stored bars, for a filter's choices."""
    return list(Instrument.objects.filter(series__bar_count__gt=0).distinct().order_by("symbol"))


def series_values_stored(field: str) -> set:
    """The values of one of Series' fields (timeframe, what_to_show) that some stored series
    holds, for a filter's choices."""
    stored = Series.objects.filter(bar_count__gt=0).order_by()
    return set(stored.values_list(field, flat=True).distinct())
