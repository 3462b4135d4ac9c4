"""Several gateways on one fetch (IBKR_GATEWAYS), on the deployed shape: two simulators in
processes of their own, an ibkr worker for each (queues ibkr.g1 and ibkr.g2), Redis and
PostgreSQL. One gateway killed mid-run (its worker and its simulator, SIGKILL): the run
completes on the other, every bar once, and the chunks record both gateways; `fetch_status`,
the admin's run page, its gateways' health and `connect_ibkr` say so. A run cancelled while the
gateways' answers are in flight: the catalog still equals the database."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pyarrow as pa
import pytest
from celery.result import AsyncResult
from django.urls import reverse
from django.utils import timezone

from fetcher.models import Bar, ChunkStatus, FetchChunk, FetchRun, GatewayState, RunStatus
from fetcher.selectors import gateway_health
from fetcher.storage.catalog import catalog_dataset
from tests.support import (
    DEPLOYED_SHAPE,
    deployed_env,
    enqueue,
    free_port,
    manage,
    minute_truth,
    wait_finished,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), *DEPLOYED_SHAPE, pytest.mark.slow]

SYMBOLS = ("AAPL", "MSFT", "NVDA")
START, END = dt.date(2025, 1, 1), dt.date(2025, 12, 31)


def gateways_setting(ports: dict[str, int]) -> str:
    return ",".join(
        f"{name}=127.0.0.1:{port}:{60 + i}" for i, (name, port) in enumerate(ports.items())
    )


def gateway_workers(workers, ports: dict[str, int], **env: str) -> dict:
    """One ibkr worker per gateway, each on its ibkr.<name> queue, all knowing every gateway."""
    env["IBKR_GATEWAYS"] = gateways_setting(ports)
    return {name: workers(None, name=name, queues=(f"ibkr.{name}",), env=env) for name in ports}


def test_a_gateway_killed_mid_run_leaves_its_chunks_to_the_other(
    sim_processes, workers, tmp_path, admin_client
):
    ports = {"g1": sim_processes(), "g2": sim_processes()}
    started = gateway_workers(workers, ports)
    for worker in started.values():  # each connected, taking runs from the ibkr queue
        worker.wait_for("connected to gateway", 60)
    run = enqueue(",".join(SYMBOLS), START.isoformat(), END.isoformat(), "1-MINUTE")

    def lead() -> str | None:  # the gateway of the worker that took the run (it plans it)
        port = FetchRun.objects.get(pk=run.pk).gateway_port
        return next((name for name, p in ports.items() if p == port), None)

    leader = wait_until(lead, 60, "a worker took the run")
    [other] = [name for name in started if name != leader]

    def both_served() -> bool:
        served = FetchChunk.objects.filter(run=run, status=ChunkStatus.DONE)
        return served.filter(gateway=other).count() >= 20 and served.count() >= 100

    wait_until(both_served, 120, "both gateways serving the run", poll=0.05)

    def flower_shows_both() -> bool:  # the task's progress (Flower's): what each gateway answered
        info = AsyncResult(FetchRun.objects.get(pk=run.pk).task_id).info
        shared = isinstance(info, dict) and info.get("requests_per_gateway") or {}
        return set(shared) == set(ports) and info["chunks_done"] >= 100

    wait_until(flower_shows_both, 30, "the task's progress per gateway", poll=0.05)
    started[other].kill()  # kill -9 its worker, and its gateway
    sim_processes.kill(ports[other])
    assert FetchChunk.objects.filter(run=run, status=ChunkStatus.PENDING).exists()

    done = wait_finished(run.pk, 600)
    assert done.status == RunStatus.SUCCEEDED, done.error
    total = 0
    for symbol in SYMBOLS:
        want = minute_truth(symbol, START, END)
        stored = Bar.objects.filter(instrument__symbol=symbol, timeframe=done.timeframe)
        rows = np.array(list(stored.order_by("ts").values_list("ts", "close", "volume")))
        np.testing.assert_array_equal([int(ts.timestamp()) for ts in rows[:, 0]], want.time)
        np.testing.assert_allclose(rows[:, 1].astype(float), want.close, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(rows[:, 2].astype(float), want.volume)
        total += len(want.time)
    assert done.bars_stored == total  # each bar stored once
    check = manage(deployed_env(tmp_path), "bars", "check", "--timeframe", "1-MINUTE")
    assert check.returncode == 0, check.stdout + check.stderr  # and in the catalog, the same
    chunks = FetchChunk.objects.filter(run=done)
    assert chunks.count() == done.chunks_done == len(SYMBOLS) * 250
    assert set(chunks.values_list("status", flat=True)) == {ChunkStatus.DONE}
    assert set(chunks.values_list("attempts", flat=True)) == {1}  # none answered twice
    served = {name: chunks.filter(gateway=name).count() for name in ports}
    assert served[leader] > 0 and served[other] >= 20
    assert sum(served.values()) == chunks.count()
    seen_everywhere(done, served, leader, other, ports, tmp_path, admin_client)


def test_a_shared_run_whose_leading_worker_is_killed_is_ended_by_the_other_gateway(
    sim_processes, workers, tmp_path
):
    """The worker that took the run (it planned it and follows it) is killed (-9) mid-run, with
    its gateway: the other gateway serves on, takes over the dead one's claims once they lapse,
    and once the run's heartbeat is FETCH_STALE_AFTER_S old (10 s here) its worker resumes the
    run and ends it: every bar once, and the catalog equal to the database."""
    symbols = SYMBOLS[:2]
    ports = {"g1": sim_processes(), "g2": sim_processes()}
    started = gateway_workers(workers, ports, FETCH_STALE_AFTER_S="10")
    for worker in started.values():
        worker.wait_for("connected to gateway", 60)
    run = enqueue(",".join(symbols), START.isoformat(), END.isoformat(), "1-MINUTE")
    port = wait_until(lambda: FetchRun.objects.get(pk=run.pk).gateway_port, 60, "a leader")
    [leader] = [name for name, p in ports.items() if p == port]
    [other] = [name for name in ports if name != leader]

    def both_served() -> bool:
        served = FetchChunk.objects.filter(run=run, status=ChunkStatus.DONE)
        return served.filter(gateway=leader).count() >= 20 and served.count() >= 100

    wait_until(both_served, 60, "both gateways serving the run", poll=0.05)
    started[leader].kill()
    sim_processes.kill(ports[leader])
    assert FetchChunk.objects.filter(run=run, status=ChunkStatus.PENDING).exists()

    done = wait_finished(run.pk, 180)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.recoveries == 1
    total = 0
    for symbol in symbols:
        want = minute_truth(symbol, START, END)
        stored = Bar.objects.filter(instrument__symbol=symbol, timeframe=done.timeframe)
        times = [int(ts.timestamp()) for ts in stored.order_by("ts").values_list("ts", flat=True)]
        np.testing.assert_array_equal(times, want.time)
        total += len(want.time)
    assert done.bars_stored == total
    chunks = FetchChunk.objects.filter(run=done)
    assert chunks.count() == done.chunks_done == len(symbols) * 250
    assert set(chunks.values_list("status", flat=True)) == {ChunkStatus.DONE}
    env = deployed_env(tmp_path, IBKR_GATEWAYS=gateways_setting(ports))
    check = manage(env, "bars", "check", "--timeframe", "1-MINUTE")
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_shared_run_cancelled_part_way_leaves_the_catalog_equal_to_the_database(
    sim_processes, workers, tmp_path
):
    """Cancelled while both gateways have a round in flight (answers take `latency`): the run
    that took it ends and exports what was stored; the answers that come after it are not
    stored, so the catalog equals the database (bars check would also find the sessions the
    cancel left unfetched). A fetch then completes the year, and bars check finds nothing."""
    latency = 2.0
    ports = {name: sim_processes("--latency", str(latency)) for name in ("g1", "g2")}
    started = gateway_workers(workers, ports)
    for worker in started.values():
        worker.wait_for("connected to gateway", 60)
    run = enqueue("AAPL", START.isoformat(), END.isoformat(), "1-MINUTE")

    def both_answered() -> bool:
        done = FetchChunk.objects.filter(run=run, status=ChunkStatus.DONE)
        return done.count() >= 60 and done.values("gateway").distinct().count() == 2

    wait_until(both_answered, 60, "both gateways answering", poll=0.05)
    env = deployed_env(tmp_path, IBKR_GATEWAYS=gateways_setting(ports))
    cancel = manage(env, "fetch", "--cancel", str(run.pk))
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    task = AsyncResult(FetchRun.objects.get(pk=run.pk).task_id)
    wait_until(task.ready, 60, "the run's task ended")
    # the requests the gateways held when it was cancelled: sent within a second (their
    # pacing), answered within `latency` of it
    time.sleep(latency + 2)

    ended = FetchRun.objects.get(pk=run.pk)
    chunks = FetchChunk.objects.filter(run=run)
    done = chunks.filter(status=ChunkStatus.DONE)
    assert ended.status == RunStatus.CANCELLED
    assert set(chunks.values_list("status", flat=True)) == {ChunkStatus.DONE, ChunkStatus.CANCELLED}
    assert ended.chunks_done == done.count() < 250
    stored = Bar.objects.filter(instrument__symbol="AAPL", timeframe=ended.timeframe)
    assert ended.bars_stored == stored.count() == sum(done.values_list("bars_received", flat=True))
    assert catalog_bars(tmp_path / "data" / "catalog") == [
        (int(ts.timestamp()), close)
        for ts, close in stored.order_by("ts").values_list("ts", "close")
    ]

    again = wait_finished(enqueue("AAPL", START.isoformat(), END.isoformat(), "1-MINUTE").pk, 120)
    assert again.status == RunStatus.SUCCEEDED, again.error
    want = minute_truth("AAPL", START, END)
    times = [int(ts.timestamp()) for ts in stored.order_by("ts").values_list("ts", flat=True)]
    np.testing.assert_array_equal(times, want.time)
    check = manage(env, "bars", "check", "--timeframe", "1-MINUTE")
    assert check.returncode == 0, check.stdout + check.stderr


def catalog_bars(root) -> list[tuple[int, float]]:
    """(bar start, close) of every bar in the catalog, in time order."""
    table = catalog_dataset(root).to_table(columns=["ts", "close"])
    ts = table.column("ts").cast(pa.int64()).to_pylist()
    return sorted(zip(ts, table.column("close").to_pylist(), strict=True))


def seen_everywhere(run, served, leader, other, ports, tmp_path, admin_client) -> None:
    """Requests per gateway in `fetch_status` and on the admin's run page; each gateway's
    health in the admin; `connect_ibkr` checks both, one row each."""
    env = deployed_env(tmp_path, IBKR_GATEWAYS=gateways_setting(ports))
    status = manage(env, "fetch_status", str(run.pk))
    assert status.returncode == 0, status.stderr
    per_gateway = ", ".join(f"{name} {served[name]:,}" for name in sorted(served))
    assert f"Requests per gateway: {per_gateway}" in status.stdout

    page = admin_client.get(reverse("admin:fetcher_fetchrun_change", args=[run.pk])).content
    shown = " &middot; ".join(f"{name}: {served[name]}" for name in sorted(served))
    assert f"requests per gateway: {shown}</p>" in page.decode()

    def health() -> dict[str, str]:
        now = timezone.now()
        return {s.name: gateway_health(s, now) for s in GatewayState.objects.all()}

    wait_until(lambda: health() == {leader: "connected", other: "no worker"}, 30, "health")
    listing = admin_client.get(reverse("admin:fetcher_gatewaystate_changelist")).content.decode()
    assert "connected" in listing and "no worker" in listing and "simulator" in listing

    check = manage(env | {"COLUMNS": "250"}, "connect_ibkr")  # a row a line
    assert check.returncode == 1
    lines = check.stdout.splitlines()
    assert any(leader in line and "✅ connected" in line for line in lines), check.stdout
    assert any(other in line and "❌" in line for line in lines), check.stdout
    assert check.stderr.strip() == f"❌ 1 of 2 gateways unreachable: {other}"


def test_fetch_says_gateway_unreachable_when_it_is_and_no_worker_when_there_is_none(
    workers, tmp_path
):
    """Honest status: a queued run waits either for a worker (none heard of) or for its gateway
    (the worker is there and tells why it cannot connect), and `fetch` says which."""
    env = deployed_env(tmp_path, IBKR_HOST="127.0.0.1", IBKR_PORT=str(free_port()))
    args = ("fetch", "--instruments", "AAPL", "--start", "2024-01-02", "--end", "2024-01-05")
    alone = manage(env, *args, "--no-wait")
    assert alone.returncode == 0, alone.stderr
    assert "⚠️  No ibkr worker answers" in alone.stdout

    class Closed:  # a gateway whose port refuses connections
        port = int(env["IBKR_PORT"])

    worker = workers(Closed, wait=False)
    worker.wait_for("refuses connections", 60)

    def told() -> bool:
        return (
            GatewayState.objects.filter(name="default", connected=False)
            .exclude(last_error="")
            .exists()
        )

    wait_until(told, 30, "the worker told its gateway's state")
    waiting = manage(env, *args, "--no-wait")
    assert waiting.returncode == 0, waiting.stderr
    assert f"⚠️  gateway default (127.0.0.1:{Closed.port}) unreachable: " in waiting.stdout
    assert "connection refused" in waiting.stdout.lower()
    assert "No ibkr worker" not in waiting.stdout
