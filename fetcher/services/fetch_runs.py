"""A fetch run's record through its life: created, queued, started, settled, failed, cancelled."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction
from django.utils import timezone

from fetcher.domain.requests import FetchRequest
from fetcher.exceptions import InvalidInput
from fetcher.ibkr.types import GatewayInfo
from fetcher.models import (
    ChunkStatus,
    FetchChunk,
    FetchRun,
    FetchRunItem,
    ItemStatus,
    RequestedBy,
    RunStatus,
)
from fetcher.queues import TaskName, task_send

from .provenance import gateway_kind, store_source_check

ERROR_MAX_CHARS = 2000


def fetch_run_create(
    *, request: FetchRequest, requested_by: str = RequestedBy.CLI, schedule: str = ""
) -> FetchRun:
    """Record a request as a pending run with one item per instrument (fetch_submit starts it)."""
    with transaction.atomic():
        run = FetchRun.objects.create(
            instruments=request.labels,
            start=request.start,
            end=request.end,
            timeframe=request.timeframe.code,
            what_to_show=request.what_to_show,
            use_rth=request.use_rth,
            since_head=request.since_head,
            requested_by=requested_by,
            schedule=schedule,
        )
        FetchRunItem.objects.bulk_create(
            FetchRunItem(run=run, spec=spec.label, position=i, **spec.contract_fields())
            for i, spec in enumerate(request.instruments)
        )
    return run


def fetch_run_enqueue(*, run_id: int) -> None:
    """Start a run once the transaction that created it commits: on the ibkr queue, or (with no
    broker, the embedded default) on a thread of this process."""

    def send() -> None:
        task_id = task_send(TaskName.FETCH_RUN, run_id, background=True)
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
