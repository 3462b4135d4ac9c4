"""`manage.py fetch`: fetch historical bars for instruments into PostgreSQL and the Parquet catalog."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from fetcher.cli import (
    UserError,
    check_broker,
    check_database,
    console,
    display_path,
    gateway_probe,
    ibkr_workers_alive,
    parse_date,
    property_table,
    rth_arguments,
    run_source_label,
    tasks_in_process,
    user_errors,
)
from fetcher.domain.instruments import instrument_specs_parse
from fetcher.domain.timeframes import WhatToShow, timeframe_parse
from fetcher.exceptions import InvalidInput
from fetcher.execution.executor import fetch_run_in_thread
from fetcher.models import ItemStatus, RunStatus
from fetcher.selectors import fetch_run_finished, fetch_run_stalled, fetch_run_summary
from fetcher.services.fetch_runs import (
    fetch_request_check,
    fetch_run_cancel,
    fetch_run_create,
    fetch_run_enqueue,
)
from fetcher.storage.catalog import default_root
from fetcher.timings import STALE_AFTER_S

FOLLOW_POLL_S = 0.2  # how often the command reads the run's progress


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
            default="TRADES",
            help="TRADES, MIDPOINT, BID, ASK, BID_ASK, ADJUSTED_LAST",
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
        parser.add_argument("--cancel", type=int, metavar="RUN_ID", help="cancel a running fetch")

    @user_errors
    def handle(self, *args, **opts):
        if opts["cancel"] is not None:
            check_database()
            run = fetch_run_cancel(run_id=opts["cancel"])
            self.stdout.write(f"Run {run.pk} cancelled.")
            return
        if opts["instruments"] is None:
            raise InvalidInput("no instruments given: use --instruments AAPL,MSFT")
        specs = instrument_specs_parse(
            opts["instruments"],
            sec_type=opts["sec_type"],
            exchange=opts["exchange"],
            currency=opts["currency"],
        )
        timeframe = timeframe_parse(opts["timeframe"])
        what = WhatToShow.parse(opts["what_to_show"])
        start, end = parse_date(opts["start"], "--start"), parse_date(opts["end"], "--end")
        fetch_request_check(
            specs=specs,
            start=start,
            end=end,
            what_to_show=what,
            since_head=opts["since_head"],
            timeframe=timeframe,
        )
        check_database()
        in_process = tasks_in_process()
        if in_process:
            gateway_probe()
        else:
            check_broker()
        run = fetch_run_create(
            specs=specs,
            timeframe=timeframe,
            start=start,
            end=end,
            what_to_show=what,
            use_rth=opts["use_rth"],
            since_head=opts["since_head"],
        )
        if in_process:
            worker = fetch_run_in_thread(run_id=run.pk)

            def finished() -> bool:
                return not worker.is_alive()
        else:
            fetch_run_enqueue(run_id=run.pk)
            if not ibkr_workers_alive():
                console().print(
                    "⚠️  No ibkr worker answers: the run waits in the queue until one starts "
                    "(celery -A ibdata_project worker -Q ibkr --pool solo)"
                )

            def finished() -> bool:
                if fetch_run_stalled(run_id=run.pk, stale_after_s=STALE_AFTER_S):
                    raise UserError(
                        f"run {run.pk} stopped: the worker running it is gone (no heartbeat for "
                        f"{STALE_AFTER_S:.0f}s); it resumes when an ibkr worker starts "
                        f"(manage.py fetch_status {run.pk})"
                    )
                return fetch_run_finished(run_id=run.pk)

        if opts["no_wait"]:
            self.stdout.write(
                f"Run {run.pk} started. Follow it with: manage.py fetch_status {run.pk}"
            )
            if in_process:
                worker.join()
            return
        self._follow(run.pk, finished)
        summary = fetch_run_summary(run_id=run.pk)
        self._report(summary)
        if summary.run.status != RunStatus.SUCCEEDED:
            raise SystemExit(1)

    def _follow(self, run_id: int, finished) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        out = console()
        columns = (
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
        tasks: dict[int, int] = {}
        try:
            with Progress(
                *columns, console=out, transient=False, disable=not out.is_terminal
            ) as progress:
                while True:
                    done = finished()
                    summary = fetch_run_summary(run_id=run_id)
                    for item in summary.items:
                        if item.pk not in tasks:
                            tasks[item.pk] = progress.add_task(item.spec, total=None, bars=0)
                        total = item.chunks_planned if item.status != ItemStatus.PENDING else None
                        progress.update(
                            tasks[item.pk],
                            total=total or None,
                            completed=item.chunks_done,
                            bars=item.bars_stored,
                        )
                    if done:
                        break
                    time.sleep(FOLLOW_POLL_S)
        except KeyboardInterrupt:
            raise UserError(
                f"Stopped following run {run_id}; cancel it with: manage.py fetch --cancel {run_id}"
            ) from None

    def _report(self, summary) -> None:
        out = console()
        run = summary.run
        for item in summary.items:
            if item.status == ItemStatus.SUCCEEDED:
                extra = (
                    " (already stored)"
                    if item.bars_stored == 0 and item.chunks_planned == 0
                    else ""
                )
                out.print(f"✅ {item.spec}: {item.bars_stored} bars fetched{extra}")
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
                f"⚠️  Fetched {run.bars_stored} bars; {failed} of {len(summary.items)} instruments failed{reason}"
            )
        out.print()
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
        if run.requests_made or summary.run.status != RunStatus.SUCCEEDED:
            rows.append(("Requests", f"{run.requests_made} ({run.errors_count} errors)"))
        rows.append(("Run", str(run.pk)))
        out.print(property_table("Fetch Summary", rows))
