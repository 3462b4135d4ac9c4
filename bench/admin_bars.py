"""Bars admin benchmark: one changelist page over 10 million bars, against Django's paginator.

Loads --bars bars (default 10 million: --instruments instruments, each a 1-minute series and a
daily one) into a scratch PostgreSQL database with INSERT ... SELECT FROM generate_series, then
requests pages of the Bars list (`/admin/fetcher/bar/`) with Django's test client, logged in:

- `first`: the newest page, no filter;
- `series`: one series (instrument + timeframe), newest page;
- `timeframe`: every DAILY bar (a filter that is not a prefix of the primary key);
- `deep`: one series, the page in its middle (the cursor a user reaches by following "older").

The reference, measured in the same run, is what the default admin changelist would do over
the same rows (Django's Paginator: a COUNT(*) of the filtered rows, then LIMIT/OFFSET) for
the first page and the deep page, without rendering (so the ratios understate the gap).
Figures: milliseconds per page (median of --repeat), `vs_paginator_first` and
`vs_paginator_deep` (the reference's time divided by the page's).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ibdata .venv/bin/python bench/admin_bars.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ibdata_project.settings")

import django  # noqa: E402

MINUTE, DAILY, TRADES = 6, 19, 1
DAILY_BARS = 10_000  # per instrument; the rest of its share is 1-minute bars
PAGE = 100


def load(instruments: int, bars: int) -> list[int]:
    """Instruments, their bars (generated in the database) and their Series rows."""
    from django.db import connection

    from fetcher.models import Instrument, Series

    per_minute = bars // instruments - DAILY_BARS
    ids = []
    for i in range(instruments):
        instrument = Instrument.objects.create(symbol=f"BENCH{i}", con_id=900_000 + i)
        ids.append(instrument.pk)
        for timeframe, n, step in ((MINUTE, per_minute, "1 minute"), (DAILY, DAILY_BARS, "1 day")):
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO fetcher_bar (instrument_id, timeframe, what_to_show, rth, ts,"
                    " open, high, low, close, volume, wap, bar_count)"
                    " SELECT %s, %s, %s, true, timestamptz '1990-01-01' + g * %s::interval,"
                    " 100 + g %% 7, 101 + g %% 7, 99 + g %% 7, 100.5 + g %% 7, g %% 1000, 100, g %% 50"
                    " FROM generate_series(0, %s - 1) AS g",
                    [instrument.pk, timeframe, TRADES, step, n],
                )
            Series.objects.create(
                instrument=instrument,
                timeframe=timeframe,
                what_to_show=TRADES,
                rth=True,
                source="simulator",
                bar_count=n,
            )
        print(f"  loaded {instrument.symbol}: {per_minute:,} 1-minute + {DAILY_BARS:,} daily bars")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE fetcher_bar")
    return ids


def timed(call: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of `call`."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=10_000_000, help="bars in total")
    parser.add_argument("--instruments", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5, help="requests of each page; median kept")
    parser.add_argument("--bench-db", default="ibdata_bench_admin", help="scratch database")
    args = parser.parse_args(argv)

    django.setup()
    from django.contrib.auth.models import User
    from django.core.paginator import Paginator
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from bench.ingest import _use_scratch_database
    from fetcher.admin.bars import cursor_text
    from fetcher.models import Bar

    if connection.vendor != "postgresql":
        print(f"bench/admin_bars.py: needs PostgreSQL, not {connection.vendor}", file=sys.stderr)
        return 2
    _use_scratch_database(args.bench_db)
    started = time.perf_counter()
    ids = load(args.instruments, args.bars)
    print(f"  {args.bars:,} bars loaded in {time.perf_counter() - started:.0f} s")

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.create_superuser("bench", password="bench"))
    url = reverse("admin:fetcher_bar_changelist")
    one_series = {"instrument": ids[0], "timeframe": MINUTE}
    series_rows = Bar.objects.filter(instrument_id=ids[0], timeframe=MINUTE).order_by("-ts")
    middle = Bar.objects.filter(instrument_id=ids[0], timeframe=MINUTE).count() // 2
    cursor = series_rows[middle : middle + 1].get()
    cursor_key = (
        cursor.instrument_id,
        cursor.timeframe,
        cursor.what_to_show,
        cursor.rth,
        cursor.ts,
    )

    def page(**params) -> Callable[[], object]:
        def get() -> None:
            response = client.get(url, params)
            assert response.status_code == 200 and response.content.count(b"<tr><td>") == PAGE

        return get

    def paginator(queryset, number: int) -> Callable[[], object]:
        def read() -> None:
            pages = Paginator(queryset.select_related("instrument"), PAGE)
            assert pages.count and len(list(pages.page(number).object_list)) == PAGE

        return read

    by_key = ("-instrument_id", "-timeframe", "-what_to_show", "-rth", "-ts")
    figures = {
        "first_ms": timed(page(), args.repeat),
        "series_ms": timed(page(**one_series), args.repeat),
        "timeframe_ms": timed(page(timeframe=DAILY), args.repeat),
        "deep_ms": timed(page(**one_series, older=cursor_text(cursor_key)), args.repeat),
        "paginator_first_ms": timed(paginator(Bar.objects.order_by(*by_key), 1), args.repeat),
        "paginator_deep_ms": timed(
            paginator(series_rows, middle // PAGE + 1), max(1, args.repeat // 2)
        ),
    }
    figures["vs_paginator_first"] = figures["paginator_first_ms"] / figures["first_ms"]
    figures["vs_paginator_deep"] = figures["paginator_deep_ms"] / figures["deep_ms"]
    print(f"\n  Bars list over {args.bars:,} bars, {PAGE} a page (median of {args.repeat})")
    for name, value in figures.items():
        unit = "x" if name.startswith("vs_") else "ms"
        print(f"  {name:<22} {value:>10,.1f} {unit}")
    print(" ".join(f"{k}={v:.1f}" for k, v in figures.items()) + f" bars={args.bars}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
