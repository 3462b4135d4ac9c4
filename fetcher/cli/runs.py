"""Fetch runs on the terminal: progress bars while one goes, its summary once it has ended, and
the tables of `fetch_status`."""

from __future__ import annotations

import sys

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from fetcher.domain.estimates import FetchEstimate
from fetcher.domain.timeframes import TimeframeSpec
from fetcher.models import FetchChunk, FetchRun, ItemStatus, RunStatus
from fetcher.selectors import RunSummary
from fetcher.services.submit import FetchHandle
from fetcher.storage.catalog import default_root

from . import UserError, console, display_path, narrow_table, property_table, run_source_label

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


# A fetch planned to make this many requests is announced (and confirmed on a terminal) first:
# a year of 1-minute bars for one instrument.
BIG_FETCH_REQUESTS = 250


def fetch_announce(estimate: FetchEstimate, timeframe: TimeframeSpec, *, yes: bool) -> None:
    """Before a big fetch: say what it will cost, and on a terminal ask to go ahead (`yes`, or
    no terminal to ask on: it goes ahead); UserError when the answer is no."""
    if estimate.requests < BIG_FETCH_REQUESTS and not (estimate.unknown and timeframe.intraday):
        return
    out = console()
    unknown = (
        f", and as far back as the gateway has data for {', '.join(estimate.unknown)}"
        if estimate.unknown
        else ""
    )
    out.print(
        f"This fetch plans {plural(estimate.requests, 'request')} for about "
        f"{plural(estimate.bars, f'{timeframe.name} bar')}{unknown}: at least "
        f"{duration_text(estimate.seconds)} at IBKR's pacing."
    )
    if yes or not sys.stdin.isatty():
        return
    answer = input("Go ahead? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise UserError("Not started.", code=1)


def duration_text(seconds: float) -> str:
    """'15 s', '4 min', '2 h 30 min'."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def plural(count: int, noun: str) -> str:
    """'1 request', '1,250 requests'."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def run_follow(handle: FetchHandle) -> RunSummary:
    """Wait for a run, with one progress bar per instrument on a terminal; Ctrl-C stops
    following (the run goes on) and says how to cancel it."""
    out = console()
    bars: dict[int | str, int] = {}

    def show(summary: RunSummary) -> None:
        if len(summary.per_gateway) > 1:  # several gateways share the run: each one's requests
            for name, (n, stored) in summary.per_gateway.items():
                if name not in bars:
                    bars[name] = progress.add_task(f"via {name}", total=None, bars=0)
                progress.update(bars[name], completed=n, bars=stored)
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
            out.print(f"✅ {item.spec}: {plural(item.bars_stored, 'bar')} fetched{_why_none(item)}")
        else:
            out.print(f"❌ {item.spec}: {item.error or item.status}")
        if item.history:
            out.print(f"   ⚠️  {item.history}")
    out.print()
    ok = sum(item.status == ItemStatus.SUCCEEDED for item in summary.items)
    if run.status == RunStatus.SUCCEEDED:
        out.print(
            f"✅ Successfully fetched {plural(run.bars_stored, 'bar')} for "
            f"{plural(ok, 'instrument')}"
        )
    else:
        failed = len(summary.items) - ok
        reason = f": {run.error}" if run.error else ""
        out.print(
            f"⚠️  Fetched {plural(run.bars_stored, 'bar')}; {failed} of "
            f"{plural(len(summary.items), 'instrument')} failed{reason}"
        )
    out.print()
    out.print(property_table("Fetch Summary", _properties(summary)))


def _why_none(item) -> str:
    """Why an instrument that succeeded asked the gateway for nothing: the range was empty
    (before the gateway's first data, say), or it was stored already."""
    if item.bars_stored or item.chunks_planned:
        return ""
    if item.start is not None and item.start == item.end:
        return f" (nothing to fetch: {item.note})"
    return " (already stored)"


def _properties(summary: RunSummary) -> list[tuple[str, str]]:
    run = summary.run
    rows = [
        ("Instruments", ",".join(run.instruments)),
        ("Start Date", summary.start_label),
        ("End Date", summary.end_label),
        ("Timeframe", summary.timeframe.name),
        ("Total Bars", f"{run.bars_stored:,}"),
        ("Data Location", display_path(default_root())),
        ("Source", run_source_label(run)),
    ]
    if summary.range_note:
        rows.insert(3, ("Range", summary.range_note))
    if run.requests_made or run.status != RunStatus.SUCCEEDED:
        rows.append(("Requests", f"{run.requests_made:,} ({plural(run.errors_count, 'error')})"))
    if len(summary.per_gateway) > 1:
        rows.append(("Per Gateway", per_gateway_text(summary.per_gateway)))
    rows.append(("Run", str(run.pk)))
    return rows


def per_gateway_text(per_gateway: dict[str, tuple[int, int]]) -> str:
    """'paper1 130, paper2 120' (requests answered by each gateway)."""
    return ", ".join(f"{name} {n:,}" for name, (n, _) in per_gateway.items())


def runs_table(runs: list[FetchRun]) -> Table:
    """Recent runs, one row each, fitting 80 columns: who asked under the status, the source
    (one per store) in the title."""
    sources = sorted({run.get_source_display() for run in runs if run.source})
    title = "Fetch runs" + (f" (from {', '.join(sources)})" if sources else "")
    table = narrow_table(title)
    for column in ("Run", "Created (UTC)", "Timeframe", "Symbols", "Status"):
        table.add_column(column, overflow="fold")
    for column in ("Requests", "Bars", "Errors"):
        table.add_column(column, justify="right", overflow="fold")
    for run in runs:
        by = f"schedule {run.schedule}" if run.schedule else run.requested_by
        table.add_row(
            str(run.pk),
            f"{run.created_at:%Y-%m-%d %H:%M}",
            run.get_timeframe_display(),
            ", ".join(run.instruments),
            f"{run.status} by {by}",
            f"{run.chunks_done:,}/{run.chunks_planned:,}",
            f"{run.bars_stored:,}",
            f"{run.errors_count:,}",
        )
    return table


def run_detail(summary: RunSummary, chunk_errors: list[FetchChunk]) -> None:
    """One run: its line, its error, a row per instrument, each one's error in full under the
    table, then the requests that met errors."""
    out = console()
    run = summary.run
    out.print(
        f"Run {run.pk}: {run.status} · {summary.timeframe.name} · {summary.start_label} to "
        f"{summary.end_label} · {run.chunks_done:,}/{plural(run.chunks_planned, 'request')} · "
        f"{run.bars_stored:,} bars · from {run_source_label(run)} (server {run.server_version})"
    )
    if run.error:
        out.print(f"Error: {run.error}")
    if len(summary.per_gateway) > 1:
        out.print(f"Requests per gateway: {per_gateway_text(summary.per_gateway)}")
    table = narrow_table()
    for column in ("Instrument", "Status", "Requests", "Bars", "Range"):
        table.add_column(column, overflow="fold")
    for item in summary.items:
        table.add_row(
            item.spec,
            item.status,
            f"{item.chunks_done:,}/{item.chunks_planned:,}",
            f"{item.bars_stored:,}",
            item.note,
        )
    out.print(table)
    # errors under the table, a line each: the whole width for their words
    for item in summary.items:
        if item.error:
            out.print(f"❌ {item.spec}: {item.error}")
        if item.history:
            out.print(f"⚠️  {item.history}")
    for chunk in chunk_errors:
        out.print(
            f"  {chunk.instrument} {chunk.window_start:%Y-%m-%d %H:%M}.."
            f"{chunk.window_end:%Y-%m-%d %H:%M} {chunk.status} after "
            f"{plural(chunk.attempts, 'attempt')}: [{chunk.last_error_code}] {chunk.last_error}"
        )
