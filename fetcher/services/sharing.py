"""Chunks shared among several gateways: a gateway claims the next pending chunk of the running
runs (FOR UPDATE SKIP LOCKED: two gateways never take the same one), keeps its claims alive with
its heartbeat and lets go of what it did not finish; each gateway's health as its worker tells it."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from fetcher.domain.timeframes import BY_CODE
from fetcher.models import ChunkStatus, FetchChunk, GatewayState, RunStatus

from .fetch_runs import ERROR_MAX_CHARS


def chunks_claim(
    *,
    gateway: str,
    claim_s: float,
    limit: int,
    small_limit: int | None = None,
    exclude_runs: list[int] | None = None,
) -> list[FetchChunk]:
    """The next pending chunks (at most `limit`, of which at most `small_limit` of runs of bars
    of 30 s or less) of the running runs that no live gateway holds, now held by `gateway` for
    `claim_s` seconds (chunks_claims_renew keeps them); rows another gateway is claiming at this
    moment are skipped, not waited for. A claim that lapsed (its gateway went away) is taken
    over. `exclude_runs`: runs this gateway may not serve. Each chunk comes with its run's
    `run_timeframe`."""
    now = timezone.now()
    until = now + dt.timedelta(seconds=claim_s)
    pending = (
        FetchChunk.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(run__status=RunStatus.RUNNING, status=ChunkStatus.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .exclude(run_id__in=exclude_runs or [])
        .annotate(run_timeframe=F("run__timeframe"))
        .order_by("pk")
    )
    small = [t.code for t in BY_CODE.values() if t.small]
    with transaction.atomic():
        if small_limit is None or small_limit >= limit:
            chunks = list(pending[:limit])
        else:  # the small ones apart: each holds its gateway's pacing for longer
            chunks = (
                list(pending.filter(run__timeframe__in=small)[:small_limit]) if small_limit else []
            )
            chunks += pending.exclude(run__timeframe__in=small)[: limit - len(chunks)]
        FetchChunk.objects.filter(pk__in=[c.pk for c in chunks]).update(
            gateway=gateway, claimed_until=until, updated_at=now
        )
    for chunk in chunks:
        chunk.gateway, chunk.claimed_until = gateway, until
    return chunks


def chunks_claims_renew(*, gateway: str, chunk_ids: list[int], claim_s: float) -> int:
    """Keep `gateway`'s claims on these chunks for `claim_s` seconds more (its heartbeat)."""
    if not chunk_ids:
        return 0
    until = timezone.now() + dt.timedelta(seconds=claim_s)
    return FetchChunk.objects.filter(
        pk__in=chunk_ids, gateway=gateway, status=ChunkStatus.PENDING
    ).update(claimed_until=until)


def chunk_release(*, gateway: str, chunk_id: int) -> None:
    """Let go of a chunk `gateway` did not finish (another gateway may take it at once)."""
    FetchChunk.objects.filter(pk=chunk_id, gateway=gateway, status=ChunkStatus.PENDING).update(
        claimed_until=None
    )


def gateway_state_set(
    *,
    name: str,
    host: str,
    port: int,
    client_id: int,
    worker: str,
    connected: bool,
    simulated: bool = False,
    server_version: int | None = None,
    last_error: str = "",
) -> None:
    """Record what a gateway's worker sees now (each heartbeat): `since` moves only when the
    gateway goes up or down."""
    now = timezone.now()
    with transaction.atomic():
        state, created = GatewayState.objects.select_for_update().get_or_create(name=name)
        if created or state.connected != connected or state.since is None:
            state.since = now
        state.host, state.port, state.client_id, state.worker = host, port, client_id, worker
        state.connected, state.simulated = connected, simulated
        state.server_version = server_version
        state.last_error = last_error[:ERROR_MAX_CHARS]
        state.seen_at = now
        state.save()
