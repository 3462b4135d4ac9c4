"""Reads: bars_read's [start, end) means the same on PostgreSQL and on the embedded SQLite
default (where timestamps are text), for the catalog export, the chart and the backtests."""

from __future__ import annotations

import json
import os

from tests.support import manage

# Bars at 00:00, 00:01 ... 00:04 UTC of a day; [00:01, 00:03) holds two of them, and so does
# the daily range [day, day + 1) of bars stored at 00:00 UTC of each date.
READ = """
import json
from fetcher.models import Instrument
from fetcher.selectors import bars_read
from fetcher.storage.bars import bars_upsert
from tests.support import make_bars

DAY = 1706745600  # 2024-02-01
inst = Instrument.objects.create(symbol="AAPL", con_id=265598)
bars_upsert(instrument_id=inst.pk, timeframe=6, what_to_show=1, batch=make_bars(
    [DAY + 60 * i for i in range(5)]))
bars_upsert(instrument_id=inst.pk, timeframe=19, what_to_show=1, batch=make_bars(
    [DAY + 86400 * i for i in range(3)]))
key = {"instrument_id": inst.pk, "what_to_show": 1, "rth": True}
print(json.dumps([
    bars_read(**key, timeframe=6, start=DAY + 60, end=DAY + 180).ts.tolist(),
    bars_read(**key, timeframe=19, start=DAY, end=DAY + 86400).ts.tolist(),
    bars_read(**key, timeframe=19, start=DAY + 86400, end=DAY + 3 * 86400, last=1).ts.tolist(),
]))
"""
WANT = [
    [1706745600 + 60, 1706745600 + 120],
    [1706745600],
    [1706745600 + 2 * 86400],
]


def test_bars_are_read_in_half_open_ranges_on_postgresql(db, capsys):
    exec(compile(READ, "read", "exec"), {})  # the same code as on SQLite, in this process
    assert json.loads(capsys.readouterr().out) == WANT


def test_bars_are_read_in_half_open_ranges_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'ibdata.sqlite3'}",
        "REDIS_URL": "",
        "DATA_DIR": str(tmp_path),
    }
    assert manage(env, "migrate", "-v0").returncode == 0
    done = manage(env, "shell", "--no-imports", "-c", READ)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == WANT
