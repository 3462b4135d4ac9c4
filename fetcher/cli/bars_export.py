"""`manage.py bars export`: its options, the export it asks the services for, a progress bar on a
terminal, and one line per file written."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.core.management.base import BaseCommand
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fetcher.domain.timeframes import WhatToShow, timeframe_parse
from fetcher.execution.preflight import database_check
from fetcher.services.barfiles import TZ_MODES, bars_export
from fetcher.storage.barfiles import FORMATS

from . import console, display_path, parse_date, rth_arguments
from .runs import plural

HELP = (
    "Write stored bars to CSV or Parquet: --out FILE (.csv or .parquet: every series in it) or "
    "--out FOLDER (one file per series); times in UTC or the exchange's zone (--tz). Streamed a "
    "page at a time: memory stays flat however many bars."
)
PROGRESS_COLUMNS = (
    TextColumn("{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TextColumn("{task.fields[unit]}"),
    TimeElapsedColumn(),
    TextColumn("elapsed,"),
    TimeRemainingColumn(),
    TextColumn("left"),
)


@contextlib.contextmanager
def progress_shown(description: str, unit: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on stderr when it is a terminal (nothing otherwise), gone when done; yields
    what the services call with (done, total)."""
    err = console(stderr=True)
    with Progress(
        *PROGRESS_COLUMNS, console=err, transient=True, disable=not err.is_terminal
    ) as progress:
        task = progress.add_task(description, total=None, unit=unit)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def add_arguments(parser) -> None:
    parser.add_argument("--instruments", help="comma-separated symbols: AAPL,MSFT (default: all)")
    parser.add_argument("--timeframe", default="DAILY", help="DAILY (default), 1-MINUTE, ...")
    parser.add_argument("--what-to-show", default="TRADES", help="TRADES (default), MIDPOINT, ...")
    rth_arguments(parser)
    parser.add_argument("--start", help="first date YYYY-MM-DD, in the exchange's zone")
    parser.add_argument("--end", help="last date YYYY-MM-DD (included), in the exchange's zone")
    parser.add_argument(
        "--format", choices=FORMATS, help="csv or parquet (default: --out's suffix, else csv)"
    )
    parser.add_argument(
        "--out", required=True, help="a .csv or .parquet file, or a folder (one file per series)"
    )
    parser.add_argument(
        "--tz",
        choices=TZ_MODES,
        default="utc",
        help="times in UTC (default) or in the exchange's zone",
    )


def handle(command: BaseCommand, opts: dict) -> int:
    symbols = [s.strip() for s in (opts["instruments"] or "").split(",") if s.strip()] or None
    timeframe = timeframe_parse(opts["timeframe"])
    what = WhatToShow.parse(opts["what_to_show"])
    start, end = parse_date(opts["start"], "--start"), parse_date(opts["end"], "--end")
    database_check()
    out = console()
    began = time.monotonic()
    with progress_shown("export", "bars") as show:
        files = bars_export(
            symbols=symbols,
            timeframe=timeframe,
            what_to_show=what,
            rth=opts["use_rth"],
            start=start,
            end=end,
            fmt=opts["format"],
            out=Path(opts["out"]),
            tz=opts["tz"],
            on_progress=show,
        )
    seconds = time.monotonic() - began
    for file in files:
        out.print(
            f"✅ {', '.join(file.labels)}: {plural(file.bars, 'bar')} → {display_path(file.path)}"
        )
    total = sum(f.bars for f in files)
    rate = total / seconds if seconds else 0
    out.print(
        f"{plural(total, 'bar')} in {plural(len(files), 'file')}, {seconds:.1f} s ({rate:,.0f} bars/s)"
    )
    return 0
