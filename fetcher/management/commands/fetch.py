"""`manage.py fetch`: fetch historical bars for instruments into PostgreSQL and the Parquet catalog."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand
from django.utils import timezone

from fetcher.cli import console, rth_arguments, user_errors
from fetcher.cli.gateways import runs_waiting_note
from fetcher.cli.runs import fetch_announce, run_follow, run_report
from fetcher.domain.requests import FetchRequest
from fetcher.domain.timeframes import WhatToShow
from fetcher.execution.preflight import database_check, fetch_preflight, tasks_in_process
from fetcher.models import RequestedBy, RunStatus
from fetcher.selectors import fetch_estimate
from fetcher.services.fetch_runs import fetch_run_cancel
from fetcher.services.submit import fetch_submit


class Command(BaseCommand):
    help = (
        "Fetch historical bars from TWS / IB Gateway. With only --instruments: DAILY bars, "
        "from the bar after the last one stored (or as far back as the gateway has data) to now."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--instruments", help="comma-separated: AAPL,MSFT  SPY:ARCA  EUR.USD  ES:CME"
        )
        parser.add_argument("--start", help="first date, YYYY-MM-DD (exchange time zone)")
        parser.add_argument("--end", help="last date, inclusive, YYYY-MM-DD (default: today)")
        parser.add_argument(
            "--timeframe",
            default="DAILY",
            help="DAILY, 1-HOUR, 5-MINUTE, 1-MINUTE, ... (default DAILY)",
        )
        parser.add_argument(
            "--what-to-show",
            help="TRADES (default; forex: MIDPOINT), MIDPOINT, BID, ASK, BID_ASK, ADJUSTED_LAST",
        )
        rth_arguments(parser)
        parser.add_argument(
            "--since-head", action="store_true", help="start at the gateway's first data point"
        )
        parser.add_argument(
            "--sec-type", default="", help="security type for every instrument: STK, CASH, FUT, IND"
        )
        parser.add_argument(
            "--exchange", default="", help="exchange for every instrument (default SMART)"
        )
        parser.add_argument(
            "--currency", default="", help="currency for every instrument (default USD)"
        )
        parser.add_argument("--no-wait", action="store_true", help="print the run id and return")
        parser.add_argument(
            "--yes", action="store_true", help="start a big fetch without asking first"
        )
        parser.add_argument("--cancel", type=int, metavar="RUN_ID", help="cancel a running fetch")

    @user_errors
    def handle(self, *args, **opts):
        if opts["cancel"] is not None:
            database_check()
            run = fetch_run_cancel(run_id=opts["cancel"])
            self.stdout.write(f"Run {run.pk} cancelled.")
            return
        request = FetchRequest.parse(
            **{name: opts[name] for name in ("instruments", "start", "end", "timeframe")},
            what_to_show=opts["what_to_show"],
            use_rth=opts["use_rth"],
            since_head=opts["since_head"],
            sec_type=opts["sec_type"],
            exchange=opts["exchange"],
            currency=opts["currency"],
        )
        if opts["what_to_show"] is None and request.what_to_show == WhatToShow.MIDPOINT:
            console().print(
                f"{', '.join(request.labels)}: forex has no trades at IBKR: fetching MIDPOINT bars"
            )
        database_check()
        estimate = fetch_estimate(request=request, now=time.time())
        fetch_announce(estimate, request.timeframe, yes=opts["yes"])
        fetch_preflight()
        handle = fetch_submit(request=request, requested_by=RequestedBy.CLI)
        note = None if tasks_in_process() else runs_waiting_note(timezone.now())
        if note:
            console().print(note)
        if opts["no_wait"]:
            self.stdout.write(
                f"Run {handle.run_id} started. Follow it with: manage.py fetch_status {handle.run_id}"
            )
            if tasks_in_process():
                handle.wait()  # the run lives in this process: it ends before the process does
            return
        summary = run_follow(handle)
        run_report(summary)
        if summary.run.status != RunStatus.SUCCEEDED:
            raise SystemExit(1)
