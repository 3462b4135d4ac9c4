"""Several gateways on one fetch (IBKR_GATEWAYS), on the deployed shape: two simulators in
processes of their own, an ibkr worker for each (queues ibkr.g1 and ibkr.g2), Redis and
PostgreSQL. One gateway killed mid-run (its worker and its simulator, SIGKILL): the run
completes on the other, every bar once, and the chunks record both gateways."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from fetcher.models import Bar, ChunkStatus, FetchChunk, RunStatus
from tests.support import DEPLOYED_SHAPE, enqueue, minute_truth, wait_finished, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), *DEPLOYED_SHAPE, pytest.mark.slow]

SYMBOLS = ("AAPL", "MSFT", "NVDA")
START, END = dt.date(2025, 1, 1), dt.date(2025, 12, 31)


def gateway_workers(workers, ports: dict[str, int]) -> dict:
    """One ibkr worker per gateway, each on its ibkr.<name> queue, all knowing every gateway."""
    gateways = ",".join(
        f"{name}=127.0.0.1:{port}:{60 + i}" for i, (name, port) in enumerate(ports.items())
    )
    return {
        name: workers(None, name=name, queues=(f"ibkr.{name}",), env={"IBKR_GATEWAYS": gateways})
        for name in ports
    }


def test_a_gateway_killed_mid_run_leaves_its_chunks_to_the_other(sim_processes, workers, settings):
    ports = {"g1": sim_processes(), "g2": sim_processes()}
    started = gateway_workers(workers, ports)
    for worker in started.values():  # each connected, taking runs from the ibkr queue
        worker.wait_for("connected to gateway", 60)
    run = enqueue(",".join(SYMBOLS), START.isoformat(), END.isoformat(), "1-MINUTE")

    def lead() -> str | None:
        return next((n for n, w in started.items() if "fetcher.fetch_run[" in w.text()), None)

    leader = wait_until(lead, 60, "a worker took the run")
    [other] = [name for name in started if name != leader]

    def both_served() -> bool:
        served = FetchChunk.objects.filter(run=run, status=ChunkStatus.DONE)
        return served.filter(gateway=other).count() >= 20 and served.count() >= 100

    wait_until(both_served, 120, "both gateways serving the run", poll=0.05)
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
    chunks = FetchChunk.objects.filter(run=done)
    assert chunks.count() == done.chunks_done == len(SYMBOLS) * 250
    assert set(chunks.values_list("status", flat=True)) == {ChunkStatus.DONE}
    assert set(chunks.values_list("attempts", flat=True)) == {1}  # none answered twice
    served = {name: chunks.filter(gateway=name).count() for name in ports}
    assert served[leader] > 0 and served[other] >= 20
    assert sum(served.values()) == chunks.count()
