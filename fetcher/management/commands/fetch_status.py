"""`manage.py fetch_status [RUN_ID]`: recent fetch runs, or one run per instrument with its errors."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from rich.table import Table

from fetcher.cli import UserError, check_database, console, run_source_label, user_errors
from fetcher.selectors import (
    fetch_run_chunk_errors,
    fetch_run_get,
    fetch_run_summary,
    fetch_runs_recent,
)


class Command(BaseCommand):
    help = "Show recent fetch runs, or one run with per-instrument progress and errors."

    def add_arguments(self, parser):
        parser.add_argument("run_id", nargs="?", type=int, help="a run id (default: recent runs)")
        parser.add_argument("--limit", type=int, default=20, help="how many recent runs to list")

    @user_errors
    def handle(self, *args, **opts):
        check_database()
        out = console()
        if opts["run_id"] is None:
            table = Table(title="Fetch runs", title_justify="left")
            for column in (
                "Run",
                "Created (UTC)",
                "By",
                "Timeframe",
                "Instruments",
                "Status",
                "Progress",
                "Bars",
                "Errors",
                "Source",
            ):
                table.add_column(column)
            for run in fetch_runs_recent(limit=opts["limit"]):
                table.add_row(
                    str(run.pk),
                    f"{run.created_at:%Y-%m-%d %H:%M}",
                    f"schedule {run.schedule}" if run.schedule else run.requested_by,
                    run.get_timeframe_display(),
                    ",".join(run.instruments)[:40],
                    run.status,
                    f"{run.chunks_done}/{run.chunks_planned}",
                    str(run.bars_stored),
                    str(run.errors_count),
                    run.get_source_display() if run.source else "-",
                )
            out.print(table)
            return
        if fetch_run_get(run_id=opts["run_id"]) is None:
            raise UserError(f"There is no fetch run {opts['run_id']}: see manage.py fetch_status")
        summary = fetch_run_summary(run_id=opts["run_id"])
        run = summary.run
        out.print(
            f"Run {run.pk}: {run.status} · {summary.timeframe.name} · {summary.start_label} to "
            f"{summary.end_label} · {run.chunks_done}/{run.chunks_planned} requests · "
            f"{run.bars_stored} bars · from {run_source_label(run)} (server {run.server_version})"
        )
        if run.error:
            out.print(f"Error: {run.error}")
        table = Table(title_justify="left")
        for column in ("Instrument", "Status", "Progress", "Bars", "Range", "Error"):
            table.add_column(column)
        for item in summary.items:
            table.add_row(
                item.spec,
                item.status,
                f"{item.chunks_done}/{item.chunks_planned}",
                str(item.bars_stored),
                item.note,
                item.error[:80],
            )
        out.print(table)
        for chunk in fetch_run_chunk_errors(run_id=run.pk):
            out.print(
                f"  {chunk.instrument} {chunk.window_start:%Y-%m-%d %H:%M}..{chunk.window_end:%Y-%m-%d %H:%M} "
                f"{chunk.status} after {chunk.attempts} attempts: [{chunk.last_error_code}] {chunk.last_error}"
            )
