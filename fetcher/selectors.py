"""Read-side queries: run summaries for the CLI and admin, stored bars for checks and backtests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .models import FetchRun, FetchRunItem, RunStatus
from .timeframes import BY_CODE, TimeframeSpec


@dataclass(frozen=True)
class RunSummary:
    run: FetchRun
    items: list[FetchRunItem]
    timeframe: TimeframeSpec
    start_label: str
    end_label: str
    range_note: str


def fetch_run_summary(*, run_id: int) -> RunSummary:
    run = FetchRun.objects.get(pk=run_id)
    items = list(FetchRunItem.objects.filter(run_id=run_id).order_by("position"))
    tf = BY_CODE[run.timeframe]
    starts = [i.start for i in items if i.start]
    ends = [i.end for i in items if i.end]
    if run.start:
        start_label = run.start.isoformat()
    elif starts:
        start_label = min(starts).date().isoformat()
    else:
        start_label = "-"
    if run.end:
        end_label = run.end.isoformat()
    elif ends:
        # the range ends before this instant: for daily bars that is the next day's 00:00
        last = max(ends) - (dt.timedelta(days=1) if not tf.intraday else dt.timedelta(0))
        end_label = last.date().isoformat()
    else:
        end_label = "-"
    notes = sorted({i.note for i in items if i.note})
    range_note = ""
    if not run.start and notes:
        range_note = (
            notes[0]
            if len(notes) == 1
            else "; ".join(f"{i.spec}: {i.note}" for i in items if i.note)
        )
    return RunSummary(run, items, tf, start_label, end_label, range_note)


def fetch_run_finished(*, run_id: int) -> bool:
    status = FetchRun.objects.values_list("status", flat=True).get(pk=run_id)
    return status not in (RunStatus.PENDING, RunStatus.RUNNING)
