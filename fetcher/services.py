"""Fetch services: create runs from user input, and the database steps of executing them."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .bars import BarBatch
from .catalog import catalog_write
from .exceptions import InvalidInput
from .ibkr.gateway import GatewayInfo, QualifiedInstrument
from .instruments import InstrumentSpec
from .models import (
    ChunkStatus,
    Coverage,
    FetchChunk,
    FetchRun,
    FetchRunItem,
    Instrument,
    ItemStatus,
    RequestedBy,
    RunStatus,
)
from .planning import PlannedRequest, intervals_merge
from .selectors import bars_read
from .storage import SeriesBatch, bars_upsert_many
from .timeframes import BY_CODE, TimeframeSpec, WhatToShow

UTC = dt.UTC
DAY_S = 86_400


def epoch(value: dt.datetime) -> int:
    return int(value.timestamp())


def from_epoch(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, UTC)


def fetch_request_check(
    *,
    specs: list[InstrumentSpec],
    start: dt.date | None,
    end: dt.date | None,
    what_to_show: WhatToShow = WhatToShow.TRADES,
    since_head: bool = False,
    today: dt.date | None = None,
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
        )
        FetchRunItem.objects.bulk_create(
            FetchRunItem(run=run, spec=s.label, position=i) for i, s in enumerate(specs)
        )
    return run


def fetch_run_enqueue(*, run_id: int) -> None:
    """Queue a run on the ibkr worker once the transaction that created it commits."""
    from .tasks import fetch_run_task

    def send() -> None:
        result = fetch_run_task.apply_async((run_id,))
        FetchRun.objects.filter(pk=run_id).update(task_id=result.id)

    transaction.on_commit(send)


def fetch_run_start(*, run_id: int, info: GatewayInfo) -> FetchRun:
    """Mark a run as running on the given gateway (again, if it is redelivered)."""
    run = FetchRun.objects.get(pk=run_id)
    if run.status in (RunStatus.SUCCEEDED, RunStatus.CANCELLED):
        return run
    run.status = RunStatus.RUNNING
    run.started_at = run.started_at or timezone.now()
    run.heartbeat_at = timezone.now()
    run.gateway_host, run.gateway_port = info.host, info.port
    run.server_version, run.account = info.server_version, info.account
    run.save()
    return run


def instrument_store_qualified(
    *, spec: InstrumentSpec, qualified: QualifiedInstrument
) -> Instrument:
    """Create or update the Instrument for a qualified contract (keyed by conId)."""
    fields = {
        "symbol": qualified.symbol,
        "sec_type": qualified.sec_type,
        "exchange": qualified.exchange,
        "primary_exchange": qualified.primary_exchange,
        "currency": qualified.currency,
        "local_symbol": qualified.local_symbol,
        "long_name": qualified.long_name,
        "time_zone": qualified.time_zone,
        "active": True,
    }
    with transaction.atomic():
        instrument = Instrument.objects.select_for_update().filter(con_id=qualified.con_id).first()
        if instrument is None:
            instrument = Instrument.objects.filter(
                symbol=qualified.symbol,
                sec_type=qualified.sec_type,
                exchange=qualified.exchange,
                currency=qualified.currency,
            ).first() or Instrument(con_id=qualified.con_id)
        for name, value in fields.items():
            setattr(instrument, name, value)
        instrument.con_id = qualified.con_id
        instrument.save()
    return instrument


def instrument_head_set(*, instrument_id: int, what_to_show: str, head: dt.datetime) -> None:
    instrument = Instrument.objects.get(pk=instrument_id)
    instrument.head_timestamps = {**instrument.head_timestamps, what_to_show: head.isoformat()}
    instrument.save(update_fields=["head_timestamps", "updated_at"])


def item_fail(*, item_id: int, message: str, code: int | None = None) -> None:
    FetchRunItem.objects.filter(pk=item_id).update(
        status=ItemStatus.FAILED, error=message[:2000], error_code=code
    )
    FetchRun.objects.filter(pk=FetchRunItem.objects.get(pk=item_id).run_id).update(
        errors_count=F("errors_count") + 1
    )


def item_plan(
    *,
    item_id: int,
    instrument_id: int,
    start: int,
    end: int,
    note: str,
    plan: list[PlannedRequest],
) -> list[FetchChunk]:
    """Record an item's range and its planned requests; a redelivered item keeps its chunks."""
    with transaction.atomic():
        item = FetchRunItem.objects.select_for_update().get(pk=item_id)
        existing = list(FetchChunk.objects.filter(item=item).order_by("window_start"))
        if existing:
            return existing
        item.instrument_id = instrument_id
        item.start, item.end, item.note = from_epoch(start), from_epoch(end), note[:200]
        item.status = ItemStatus.RUNNING if plan else ItemStatus.SUCCEEDED
        item.chunks_planned = len(plan)
        item.save()
        chunks = FetchChunk.objects.bulk_create(
            FetchChunk(
                run_id=item.run_id,
                item=item,
                instrument_id=instrument_id,
                window_start=from_epoch(p.window_start),
                window_end=from_epoch(p.window_end),
                duration=p.duration,
                request_end=p.end,
            )
            for p in plan
        )
        FetchRun.objects.filter(pk=item.run_id).update(
            chunks_planned=F("chunks_planned") + len(plan)
        )
    return chunks


def coverage_get(
    *, instrument_id: int, timeframe: int, what_to_show: int, rth: bool
) -> list[tuple[int, int]]:
    rows = Coverage.objects.filter(
        instrument_id=instrument_id, timeframe=timeframe, what_to_show=what_to_show, rth=rth
    ).values_list("start", "end")
    return intervals_merge([(epoch(a), epoch(b)) for a, b in rows])


FINISHED_CHUNK = (ChunkStatus.DONE, ChunkStatus.EMPTY)


def chunks_store(*, results: list[tuple[int, BarBatch, int]]) -> int:
    """Store answered requests, each given as (chunk id, its bars, covered until): their bars
    (one COPY for all of them), coverage and chunk states, in one transaction.

    Safe to repeat: bars are upserted, and a chunk already stored is not counted again."""
    chunks = {
        c.pk: c
        for c in FetchChunk.objects.select_related("run").filter(pk__in=[r[0] for r in results])
    }
    todo = [
        (chunks[pk], batch, until)
        for pk, batch, until in results
        if chunks[pk].status not in FINISHED_CHUNK
    ]
    if not todo:
        return 0
    run = todo[0][0].run
    with transaction.atomic():
        written = bars_upsert_many(
            series=[
                SeriesBatch(c.instrument_id, run.timeframe, run.what_to_show, run.use_rth, batch)
                for c, batch, _ in todo
            ],
            fresh=True,
        )
        Coverage.objects.bulk_create(
            Coverage(
                instrument_id=c.instrument_id,
                timeframe=run.timeframe,
                what_to_show=run.what_to_show,
                rth=run.use_rth,
                start=c.window_start,
                end=from_epoch(min(epoch(c.window_end), until)),
            )
            for c, _, until in todo
            if min(epoch(c.window_end), until) > epoch(c.window_start)
        )
        stored = 0
        per_item: dict[int, list[int]] = {}
        for c, batch, _ in todo:
            updated = (
                FetchChunk.objects.filter(pk=c.pk)
                .exclude(status__in=FINISHED_CHUNK)
                .update(
                    status=ChunkStatus.DONE if len(batch) else ChunkStatus.EMPTY,
                    bars_received=len(batch),
                    attempts=F("attempts") + 1,
                )
            )
            if updated:
                counts = per_item.setdefault(c.item_id, [0, 0])
                counts[0] += len(batch)
                counts[1] += 1
                stored += 1
        for item_id, (bars, done) in per_item.items():
            FetchRunItem.objects.filter(pk=item_id).update(
                bars_stored=F("bars_stored") + bars, chunks_done=F("chunks_done") + done
            )
        FetchRun.objects.filter(pk=run.pk).update(
            bars_stored=F("bars_stored") + sum(b for b, _ in per_item.values()),
            chunks_done=F("chunks_done") + stored,
            requests_made=F("requests_made") + stored,
            heartbeat_at=timezone.now(),
        )
    return written


CATALOG_SLICE_BARS = 250_000  # bars read back from the database at a time


def item_catalog_export(*, item_id: int, catalog_root=None) -> int:
    """Merge an item's stored bars into the Parquet catalog, from the database (the source of
    truth), in slices. Idempotent: after a crash the next run of the item writes it again."""
    item = FetchRunItem.objects.select_related("run", "instrument").get(pk=item_id)
    if item.instrument is None or item.start is None or item.end is None:
        return 0
    run, instrument = item.run, item.instrument
    timeframe = BY_CODE[run.timeframe]
    step = max(DAY_S, CATALOG_SLICE_BARS * timeframe.seconds) if timeframe.intraday else None
    start, end = epoch(item.start), epoch(item.end)
    written = 0
    cursor = start
    while cursor < end:
        upto = end if step is None else min(end, cursor + step)
        batch = bars_read(
            instrument_id=instrument.pk,
            timeframe=run.timeframe,
            what_to_show=run.what_to_show,
            rth=run.use_rth,
            start=cursor,
            end=upto,
        )
        if len(batch):
            written += catalog_write(
                root=catalog_root,
                symbol=instrument.local_symbol or instrument.symbol,
                timeframe=timeframe,
                what_to_show=WhatToShow(run.what_to_show).label,
                use_rth=run.use_rth,
                batch=batch,
            )
        cursor = upto
    return written


def chunk_failed(*, chunk_id: int, code: int | None, message: str, final: bool) -> None:
    """Record a failed attempt; `final` when no retry will follow."""
    chunk = FetchChunk.objects.get(pk=chunk_id)
    FetchChunk.objects.filter(pk=chunk_id).update(
        status=ChunkStatus.FAILED if final else ChunkStatus.PENDING,
        attempts=F("attempts") + 1,
        last_error_code=code,
        last_error=message[:2000],
    )
    FetchRun.objects.filter(pk=chunk.run_id).update(
        requests_made=F("requests_made") + 1,
        errors_count=F("errors_count") + 1,
        heartbeat_at=timezone.now(),
    )


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
            pending = item.chunks.filter(status__in=(ChunkStatus.PENDING, ChunkStatus.RUNNING))
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
        run.error = error[:2000]
        run.finished_at = timezone.now()
        run.save()
    return run


def fetch_run_fail(*, run_id: int, error: str) -> None:
    FetchRun.objects.filter(pk=run_id).exclude(status=RunStatus.CANCELLED).update(
        status=RunStatus.FAILED, error=error[:2000], finished_at=timezone.now()
    )
    FetchRunItem.objects.filter(
        run_id=run_id, status__in=(ItemStatus.PENDING, ItemStatus.RUNNING)
    ).update(status=ItemStatus.FAILED, error=error[:2000])


def fetch_run_heartbeat(*, run_id: int) -> str:
    """Record that the run's executor is alive; returns the run's status (it may be cancelled)."""
    FetchRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())
    return FetchRun.objects.values_list("status", flat=True).get(pk=run_id)


def fetch_runs_orphaned(*, stale_after_s: float | None = None) -> list[int]:
    """Running runs whose executor is gone: all of them when an ibkr worker starts (it is the
    only one), or those silent for `stale_after_s` when checked periodically."""
    runs = FetchRun.objects.filter(status=RunStatus.RUNNING)
    if stale_after_s is not None:
        runs = runs.filter(heartbeat_at__lt=timezone.now() - dt.timedelta(seconds=stale_after_s))
    return list(runs.values_list("pk", flat=True))


def fetch_run_recovery(*, run_id: int, max_recoveries: int) -> bool:
    """Count a resumption of an orphaned run; fail it instead after too many."""
    with transaction.atomic():
        run = FetchRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING:
            return False
        if run.recoveries >= max_recoveries:
            run.status, run.finished_at = RunStatus.FAILED, timezone.now()
            run.error = f"the worker running it died {run.recoveries + 1} times; giving up"
            run.save()
            return False
        run.recoveries += 1
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["recoveries", "heartbeat_at"])
        return True


def fetch_run_cancel(*, run_id: int) -> FetchRun:
    run = FetchRun.objects.filter(pk=run_id).first()
    if run is None:
        raise InvalidInput(f"there is no fetch run {run_id}: see manage.py fetch_status")
    if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
        raise InvalidInput(f"run {run_id} is already {run.status}: nothing to cancel")
    FetchRun.objects.filter(pk=run_id).update(
        status=RunStatus.CANCELLED, finished_at=timezone.now()
    )
    FetchChunk.objects.filter(
        run_id=run_id, status__in=(ChunkStatus.PENDING, ChunkStatus.RUNNING)
    ).update(status=ChunkStatus.CANCELLED)
    FetchRunItem.objects.filter(
        run_id=run_id, status__in=(ItemStatus.PENDING, ItemStatus.RUNNING)
    ).update(status=ItemStatus.CANCELLED)
    run.refresh_from_db()
    return run
