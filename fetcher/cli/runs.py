"""A fetch run on the terminal: progress bars while it goes, its summary once it has ended."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fetcher.models import ItemStatus, RunStatus
from fetcher.selectors import RunSummary
from fetcher.services.submit import FetchHandle
from fetcher.storage.catalog import default_root

from . import UserError, console, display_path, property_table, run_source_label

PROGRESS_COLUMNS = (
    TextColumn("{task.description:<10}"),
    BarColumn(),
    MofNCompleteColumn(),
    TextColumn("requests"),
    TextColumn("{task.fields[bars]:>10,} bars"),
    TimeElapsedColumn(),
    TextColumn("elapsed,"),
    TimeRemainingColumn(),  # from the recent rate: years of minutes take a while
    TextColumn("left"),
)


def run_follow(handle: FetchHandle) -> RunSummary:
    """Wait for a run, with one progress bar per instrument on a terminal; Ctrl-C stops
    following (the run goes on) and says how to cancel it."""
    out = console()
    bars: dict[int, int] = {}

    def show(summary: RunSummary) -> None:
        for item in summary.items:
            if item.pk not in bars:
                bars[item.pk] = progress.add_task(item.spec, total=None, bars=0)
            total = item.chunks_planned if item.status != ItemStatus.PENDING else None
            progress.update(
                bars[item.pk],
                total=total or None,
                completed=item.chunks_done,
                bars=item.bars_stored,
            )

    try:
        with Progress(*PROGRESS_COLUMNS, console=out, disable=not out.is_terminal) as progress:
            return handle.wait(on_progress=show)
    except KeyboardInterrupt:
        raise UserError(
            f"Stopped following run {handle.run_id}; cancel it with: "
            f"manage.py fetch --cancel {handle.run_id}"
        ) from None


def run_report(summary: RunSummary) -> None:
    """One line per instrument, the outcome, then the run's properties."""
    out = console()
    run = summary.run
    for item in summary.items:
        if item.status == ItemStatus.SUCCEEDED:
            stored = item.bars_stored == 0 and item.chunks_planned == 0
            out.print(
                f"✅ {item.spec}: {item.bars_stored} bars fetched"
                + (" (already stored)" if stored else "")
            )
        else:
            out.print(f"❌ {item.spec}: {item.error or item.status}")
    out.print()
    ok = sum(item.status == ItemStatus.SUCCEEDED for item in summary.items)
    if run.status == RunStatus.SUCCEEDED:
        out.print(f"✅ Successfully fetched {run.bars_stored} bars for {ok} instruments")
    else:
        failed = len(summary.items) - ok
        reason = f": {run.error}" if run.error else ""
        out.print(
            f"⚠️  Fetched {run.bars_stored} bars; {failed} of {len(summary.items)} "
            f"instruments failed{reason}"
        )
    out.print()
    out.print(property_table("Fetch Summary", _properties(summary)))


def _properties(summary: RunSummary) -> list[tuple[str, str]]:
    run = summary.run
    rows = [
        ("Instruments", ",".join(run.instruments)),
        ("Start Date", summary.start_label),
        ("End Date", summary.end_label),
        ("Timeframe", summary.timeframe.name),
        ("Total Bars", str(run.bars_stored)),
        ("Data Location", display_path(default_root())),
        ("Source", run_source_label(run)),
    ]
    if summary.range_note:
        rows.insert(3, ("Range", summary.range_note))
    if run.requests_made or run.status != RunStatus.SUCCEEDED:
        rows.append(("Requests", f"{run.requests_made} ({run.errors_count} errors)"))
    rows.append(("Run", str(run.pk)))
    return rows
