"""`manage.py fetch_status [RUN_ID]`: recent fetch runs, or one run per instrument with its errors."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from fetcher.cli import UserError, console, user_errors
from fetcher.cli.runs import run_detail, runs_table
from fetcher.execution.preflight import database_check
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
        database_check()
        run_id = opts["run_id"]
        if run_id is None:
            console().print(runs_table(fetch_runs_recent(limit=opts["limit"])))
            return
        if fetch_run_get(run_id=run_id) is None:
            raise UserError(f"There is no fetch run {run_id}: see manage.py fetch_status")
        run_detail(fetch_run_summary(run_id=run_id), fetch_run_chunk_errors(run_id=run_id))
