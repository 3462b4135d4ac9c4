"""A split on the deployed shape: the simulator in a process of its own at a present before NVDA's
10:1 split of 2024-06-10, NVDA's daily and 1-minute bars fetched through the ibkr worker; the
simulator restarted two sessions after the split; then beat fires a scheduled update of the daily
bars. Every stored NVDA bar then equals the simulator's adjusted history, in PostgreSQL and in
the catalog: no series is left on the old scale."""

from __future__ import annotations

import datetime as dt
import re
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from fetcher.domain.time import date_epoch
from fetcher.domain.timeframes import TIMEFRAMES, WhatToShow
from fetcher.models import FetchRunItem, Instrument, RunStatus
from fetcher.selectors import bars_read
from fetcher.storage.catalog import CatalogSeries
from ibsim.market import Market
from ibsim.rules import BAR_SIZES
from tests.support import (
    DEPLOYED_SHAPE,
    ROOT,
    deployed_env,
    epoch_at,
    free_port,
    manage,
    scheduled_run_fired,
    wait_finished,
)

pytestmark = [pytest.mark.django_db(transaction=True), *DEPLOYED_SHAPE, pytest.mark.slow]

BEFORE = "2024-06-07T20:30-04:00"  # Friday evening, the last session before the split
AFTER = "2024-06-12T20:30-04:00"  # Wednesday evening: two sessions on the new scale


def simulator(port: int, now: str) -> subprocess.Popen:
    """`python -m ibsim --port PORT --now NOW`, once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibsim", "--port", str(port), "--now", now],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline()
    assert re.search(rf"listening on 127\.0\.0\.1:{port} .*present", line), line
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


def truth(bar_size: str, start: str, now: str):
    """NVDA's bars as the simulator serves them at `now` (after the close: none partial), with
    the prices as they travel."""
    market, present = Market(), dt.datetime.fromisoformat(now).timestamp()
    [nvda] = market.find("NVDA", "STK", "SMART", "USD")
    bars = market.bars(nvda, BAR_SIZES[bar_size], "TRADES", True, epoch_at(start), present, present)
    decimals = market.price_decimals(nvda, "TRADES")
    if bars.dates is not None:
        days = [dt.date(d // 10000, d // 100 % 100, d % 100) for d in bars.dates.tolist()]
        times = [date_epoch(day) for day in days]
    else:
        times = bars.time.tolist()
    prices = {p: np.round(getattr(bars, p), decimals) for p in ("open", "high", "low", "close")}
    return times, prices, bars.volume


def assert_is_truth(batch, times, prices, volume, where: str) -> None:
    assert batch.ts.tolist() == times, where
    for name, values in prices.items():
        np.testing.assert_array_equal(getattr(batch, name), values, err_msg=f"{where} {name}")
    np.testing.assert_array_equal(batch.volume, volume, err_msg=f"{where} volume")


def test_a_scheduled_update_after_a_split_leaves_every_nvda_bar_on_the_new_scale(workers, tmp_path):
    port = free_port()
    sim = simulator(port, BEFORE)
    try:
        gateway = SimpleNamespace(port=port)
        workers(gateway)
        workers(gateway, queues=("default",), name="default0")
        env = deployed_env(tmp_path, gateway)
        for timeframe, start in (("DAILY", "2024-05-01"), ("1-MINUTE", "2024-06-05")):
            done = manage(
                env, "fetch", "--instruments", "NVDA", "--timeframe", timeframe, "--start", start
            )
            assert done.returncode == 0, done.stdout + done.stderr
        stop(sim)
        sim = simulator(port, AFTER)  # time moves on: the split has happened

        scheduled = scheduled_run_fired(env, tmp_path, "NVDA", "DAILY")
        run = wait_finished(scheduled.pk, 180)
        assert run.status == RunStatus.SUCCEEDED, run.error
    finally:
        stop(sim)

    [item] = FetchRunItem.objects.filter(run=run)
    assert item.history == "NVDA: history changed 10:1 after 2024-06-06; 2 series refetched"
    nvda = Instrument.objects.get(symbol="NVDA")
    root = tmp_path / "data" / "catalog"
    for timeframe, bar_size, start in (("DAILY", "1 day", "2024-05-01 00:00"),
                                       ("1-MINUTE", "1 min", "2024-06-05 00:00")):  # fmt: skip
        tf = TIMEFRAMES[timeframe]
        expected = truth(bar_size, start, AFTER)
        database = bars_read(
            instrument_id=nvda.pk, timeframe=tf.code, what_to_show=WhatToShow.TRADES, rth=True,
            start=0, end=date_epoch(dt.date(2030, 1, 1)),
        )  # fmt: skip
        assert_is_truth(database, *expected, f"database {timeframe}")
        catalog = CatalogSeries.of_instrument(
            nvda, timeframe=tf, what_to_show="TRADES", use_rth=True
        ).read(root=root)
        assert_is_truth(catalog, *expected, f"catalog {timeframe}")
