"""Fetch runs: created from user input, queued, started, settled, cancelled."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from fetcher.domain.instruments import InstrumentSpec
from fetcher.domain.time import zone_info
from fetcher.domain.timeframes import BY_CODE, SMALL_BARS_DAYS, TimeframeSpec, WhatToShow
from fetcher.exceptions import InvalidInput
from fetcher.ibkr.types import GatewayInfo
from fetcher.models import (
    ChunkStatus,
    FetchChunk,
    FetchRun,
    FetchRunItem,
    Instrument,
    ItemStatus,
    RequestedBy,
    RunStatus,
)
from fetcher.queues import TaskName, task_send
from fetcher.selectors import FINISHED_RUN, fetch_run_chunks_unfinished, series_keys

from .instruments import instrument_spec
from .provenance import gateway_kind, store_source_check

ERROR_MAX_CHARS = 2000


def fetch_request_check(
    *,
    specs: list[InstrumentSpec],
    start: dt.date | None,
    end: dt.date | None,
    what_to_show: WhatToShow = WhatToShow.TRADES,
    since_head: bool = False,
    today: dt.date | None = None,
    timeframe: TimeframeSpec | None = None,
) -> None:
    """Raise InvalidInput, with the fix in its message, for a request that cannot be served."""
    today = today or timezone.now().date()
    if not specs:
        raise InvalidInput("no instruments given: use --instruments AAPL,MSFT")
    if start and start > today:
        raise InvalidInput(f"start date {start} is in the future (today is {today})")
    if end and end > today:
        raise InvalidInput(f"end date {end} is in the future (today is {today})")
    if start and end and end < start:
        raise InvalidInput(f"end date {end} is before start date {start}")
    if since_head and start:
        raise InvalidInput("--since-head and --start contradict each other: give one of them")
    if what_to_show == WhatToShow.ADJUSTED_LAST and end and end < today:
        raise InvalidInput("ADJUSTED_LAST bars can only be fetched up to now: leave --end out")
    oldest = today - dt.timedelta(days=SMALL_BARS_DAYS)
    if timeframe is not None and timeframe.small and start and start < oldest:
        raise InvalidInput(
            f"IBKR keeps {timeframe.name} bars (30 s or less) for six months only: "
            f"--start must be {oldest} or later"
        )


def fetch_run_create(
    *,
    specs: list[InstrumentSpec],
    timeframe: TimeframeSpec,
    start: dt.date | None = None,
    end: dt.date | None = None,
    what_to_show: WhatToShow = WhatToShow.TRADES,
    use_rth: bool = True,
    since_head: bool = False,
    requested_by: str = RequestedBy.CLI,
    schedule: str = "",
    today: dt.date | None = None,
) -> FetchRun:
    """Validate a fetch request and record it as a pending run with one item per instrument."""
    fetch_request_check(
        specs=specs,
        start=start,
        end=end,
        what_to_show=what_to_show,
        since_head=since_head,
        today=today,
        timeframe=timeframe,
    )
    with transaction.atomic():
        run = FetchRun.objects.create(
            instruments=[s.label for s in specs],
            start=start,
            end=end,
            timeframe=timeframe.code,
            what_to_show=what_to_show,
            use_rth=use_rth,
            since_head=since_head,
            requested_by=requested_by,
            schedule=schedule,
        )
        FetchRunItem.objects.bulk_create(
            FetchRunItem(
                run=run,
                spec=s.label,
                position=i,
                symbol=s.symbol,
                sec_type=s.sec_type,
                exchange=s.exchange,
                primary_exchange=s.primary_exchange,
                currency=s.currency,
                last_trade_date=s.last_trade_date,
                con_id=s.con_id,
            )
            for i, s in enumerate(specs)
        )
    return run


def fetch_run_enqueue(*, run_id: int) -> None:
    """Queue a run on the ibkr worker once the transaction that created it commits."""

    def send() -> None:
        task_id = task_send(TaskName.FETCH_RUN, run_id)
        FetchRun.objects.filter(pk=run_id).update(task_id=task_id)

    transaction.on_commit(send)


def fetch_run_start(*, run_id: int, info: GatewayInfo, catalog_root: Path) -> FetchRun:
    """Mark a run as running on the given gateway (again, if it is redelivered), once the store
    is known to hold no bars of another gateway kind (SourceMismatch otherwise)."""
    run = FetchRun.objects.get(pk=run_id)
    if run.status in (RunStatus.SUCCEEDED, RunStatus.CANCELLED):
        return run
    run.source = gateway_kind(info)
    run.gateway_host, run.gateway_port = info.host, info.port
    run.server_version, run.account = info.server_version, info.account
    run.save(update_fields=["source", "gateway_host", "gateway_port", "server_version", "account"])
    store_source_check(source=run.source, account=run.account, catalog_root=catalog_root)
    run.status = RunStatus.RUNNING
    run.started_at = run.started_at or timezone.now()
    run.heartbeat_at = timezone.now()
    run.save()
    return run


def fetch_run_finish(*, run_id: int, error: str = "") -> FetchRun:
    """Settle item and run statuses from their chunks."""
    with transaction.atomic():
        run = FetchRun.objects.select_for_update().get(pk=run_id)
        if run.status == RunStatus.CANCELLED:
            return run
        for item in run.items.all():
            if item.status in (ItemStatus.FAILED, ItemStatus.CANCELLED):
                continue
            failed = item.chunks.filter(status=ChunkStatus.FAILED)
            pending = item.chunks.filter(status=ChunkStatus.PENDING)
            if failed.exists() or pending.exists():
                last = failed.order_by("-updated_at").first()
                item.status = ItemStatus.FAILED
                item.error = (
                    f"{failed.count() + pending.count()} of {item.chunks.count()} requests failed"
                    + (f": {last.last_error}" if last else "")
                )
                item.error_code = last.last_error_code if last else None
            elif item.instrument_id is not None:
                item.status = ItemStatus.SUCCEEDED
            item.save()
        statuses = list(run.items.values_list("status", flat=True))
        ok = sum(s == ItemStatus.SUCCEEDED for s in statuses)
        if error and not ok:
            run.status = RunStatus.FAILED
        elif ok == len(statuses):
            run.status = RunStatus.SUCCEEDED
        else:
            run.status = RunStatus.PARTIAL if ok else RunStatus.FAILED
        run.error = error[:ERROR_MAX_CHARS]
        run.finished_at = timezone.now()
        run.save()
    return run


def fetch_run_fail(*, run_id: int, error: str) -> None:
    """End a run as failed with its one-line error (a cancelled run stays cancelled)."""
    FetchRun.objects.filter(pk=run_id).exclude(status=RunStatus.CANCELLED).update(
        status=RunStatus.FAILED, error=error[:ERROR_MAX_CHARS], finished_at=timezone.now()
    )
    FetchRunItem.objects.filter(
        run_id=run_id, status__in=(ItemStatus.PENDING, ItemStatus.RUNNING)
    ).update(status=ItemStatus.FAILED, error=error[:ERROR_MAX_CHARS])


def fetch_run_heartbeat(*, run_id: int) -> str:
    """Record that the run's executor is alive; returns the run's status (it may be cancelled)."""
    FetchRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())
    return FetchRun.objects.values_list("status", flat=True).get(pk=run_id)


def fetch_run_cancel(*, run_id: int) -> FetchRun:
    run = FetchRun.objects.filter(pk=run_id).first()
    if run is None:
        raise InvalidInput(f"there is no fetch run {run_id}: see manage.py fetch_status")
    if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
        raise InvalidInput(f"run {run_id} is already {run.status}: nothing to cancel")
    with transaction.atomic():
        FetchRun.objects.filter(pk=run_id).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now()
        )
        FetchChunk.objects.filter(run_id=run_id, status=ChunkStatus.PENDING).update(
            status=ChunkStatus.CANCELLED
        )
        FetchRunItem.objects.filter(
            run_id=run_id, status__in=(ItemStatus.PENDING, ItemStatus.RUNNING)
        ).update(status=ItemStatus.CANCELLED)
    run.refresh_from_db()
    return run


def fetch_runs_update_create(
    *, instruments: list[Instrument], requested_by: str = RequestedBy.ADMIN
) -> tuple[list[FetchRun], list[Instrument]]:
    """'Update to latest': every stored series of these instruments fetched from its last stored
    bar to now, through the same runs as `manage.py fetch` without --start. One queued run per
    (timeframe, whatToShow, session) for the instruments that have that series; returns the
    runs and the instruments that have nothing stored yet (there is no last bar to start from)."""
    by_id = {i.pk: i for i in instruments}
    groups: dict[tuple[int, int, bool], list[Instrument]] = {}
    for instrument_id, timeframe, what_to_show, rth in series_keys(instrument_ids=list(by_id)):
        groups.setdefault((timeframe, what_to_show, rth), []).append(by_id[instrument_id])
    runs = []
    with transaction.atomic():  # every run queued, or none
        for (timeframe, what_to_show, rth), members in sorted(groups.items()):
            run = fetch_run_create(
                specs=[instrument_spec(i) for i in members],
                timeframe=BY_CODE[timeframe],
                what_to_show=WhatToShow(what_to_show),
                use_rth=rth,
                requested_by=requested_by,
            )
            fetch_run_enqueue(run_id=run.pk)
            runs.append(run)
    updated = {i.pk for members in groups.values() for i in members}
    return runs, [i for i in instruments if i.pk not in updated]


def fetch_run_retry(*, run_id: int, requested_by: str = RequestedBy.ADMIN) -> list[FetchRun]:
    """Fetch again what a finished run failed to store, as new runs (the first run's record
    stays as it ended). A new run covers, per instrument, the dates of its failed (or never
    answered) requests; planning subtracts what is stored, so it asks only for the missing
    windows. Instruments whose dates match share one run."""
    run = FetchRun.objects.filter(pk=run_id).first()
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
    retries = []
    with transaction.atomic():  # every run queued, or none
        for (start, end), members in sorted(groups.items()):
            retry = fetch_run_create(
                specs=[instrument_spec(i) for i in members],
                timeframe=tf,
                start=start,
                end=end,
                what_to_show=WhatToShow(run.what_to_show),
                use_rth=run.use_rth,
                requested_by=requested_by,
            )
            fetch_run_enqueue(run_id=retry.pk)
            retries.append(retry)
    return retries
