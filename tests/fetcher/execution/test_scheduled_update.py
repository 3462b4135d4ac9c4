"""A schedule kept for real: `manage.py schedule add`, then celery beat (DatabaseScheduler) fires
it, the default worker starts the update run and the ibkr worker brings six instruments of
1-minute bars from their last stored bar up to now (about 250 requests); every bar once, equal
to the simulator's ground truth."""

from __future__ import annotations

import datetime as dt

import pytest

from fetcher.models import RunStatus
from tests.support import (
    DEPLOYED_SHAPE,
    bars_of,
    deployed_env,
    manage,
    scheduled_run_fired,
    truth_times,
    wait_finished,
)

pytestmark = [pytest.mark.django_db(transaction=True), *DEPLOYED_SHAPE, pytest.mark.slow]

SYMBOLS = ("AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META")


def test_beat_fires_a_schedule_that_brings_six_instruments_up_to_date(
    sim_factory, workers, tmp_path
):
    sim = sim_factory()
    workers(sim)
    workers(sim, queues=("default",), name="default0")
    env = deployed_env(tmp_path, sim)
    today = dt.date.today()
    # history up to two months ago, then a schedule that fetches from the last stored bar on
    start, seeded_to = today - dt.timedelta(days=90), today - dt.timedelta(days=60)
    instruments = ",".join(SYMBOLS)
    seeded = manage(
        env,
        "fetch",
        "--instruments",
        instruments,
        "--start",
        start.isoformat(),
        "--end",
        seeded_to.isoformat(),
        "--timeframe",
        "1-MINUTE",
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    scheduled = scheduled_run_fired(env, tmp_path, instruments, "1-MINUTE")
    assert scheduled.schedule and scheduled.start is None and scheduled.end is None
    done = wait_finished(scheduled.pk, 180)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.requests_made >= 30 * len(SYMBOLS)  # each from two months ago to now

    yesterday = (today - dt.timedelta(days=1)).isoformat()
    first_today = dt.datetime.combine(today, dt.time(), dt.timezone(dt.timedelta(hours=-5)))
    for symbol in SYMBOLS:
        stored = [int(r[0].timestamp()) for r in bars_of(symbol, "1-MINUTE")]
        stored = [t for t in stored if t < first_today.timestamp()]  # today's may be partial
        assert stored == truth_times(sim, symbol, "1 min", start.isoformat(), yesterday), symbol
