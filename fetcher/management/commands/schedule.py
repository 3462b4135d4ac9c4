"""`manage.py schedule add|list|remove`: fetches that beat starts on a cron, in the exchange's zone."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from fetcher.cli import console, parse_errors_on_one_line, user_errors
from fetcher.exceptions import InvalidInput
from fetcher.execution.preflight import database_check
from fetcher.selectors import ScheduleSummary, fetch_schedules
from fetcher.services.schedules import (
    ScheduledFetch,
    fetch_schedule_add,
    fetch_schedule_args_problem,
    fetch_schedule_remove,
)

ADD_EXAMPLE = (
    'manage.py schedule add --instruments AAPL,MSFT --timeframe DAILY --cron "30 17 * * 1-5"'
)


class Command(BaseCommand):
    help = (
        "Fetch on a schedule: `add` a cron (in the exchange's time zone) that fetches instruments "
        "from their last stored bar to now, `list` them, `remove NAME`. Beat starts them "
        "(celery -A ibdata_project beat); the admin edits them under Periodic tasks."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        return parse_errors_on_one_line(super().create_parser(prog_name, subcommand, **kwargs))

    def add_arguments(self, parser):
        parser.add_argument("action", choices=("add", "list", "remove"), help="what to do")
        parser.add_argument("name", nargs="?", help="the schedule to remove")
        parser.add_argument("--instruments", help="comma-separated: AAPL,MSFT  SPY:ARCA  EUR.USD")
        parser.add_argument(
            "--timeframe", default="DAILY", help="DAILY, 1-HOUR, ... (default DAILY)"
        )
        parser.add_argument(
            "--cron",
            help='"minute hour day-of-month month day-of-week" in the exchange\'s time zone, '
            'e.g. "30 17 * * 1-5" (17:30 on weekdays)',
        )
        parser.add_argument(
            "--name", dest="new_name", default="", help="default: INSTRUMENTS/TIMEFRAME"
        )
        parser.add_argument(
            "--timezone",
            default="",
            help="read the cron in this zone instead of the instruments' exchange zone",
        )
        parser.add_argument(
            "--what-to-show",
            default="",
            help="TRADES (default; forex: MIDPOINT), MIDPOINT, BID, ...",
        )
        rth = parser.add_mutually_exclusive_group()
        rth.add_argument("--rth", dest="use_rth", action="store_true", default=True)
        rth.add_argument("--no-rth", dest="use_rth", action="store_false")
        parser.add_argument("--sec-type", default="", help="security type for every instrument")
        parser.add_argument("--exchange", default="", help="exchange for every instrument")
        parser.add_argument("--currency", default="", help="currency for every instrument")

    @user_errors
    def handle(self, *args, **opts):
        action = opts["action"]
        if action == "remove" and not opts["name"] and opts["new_name"]:
            opts["name"] = opts["new_name"]  # `remove --name X` reads as well as `remove X`
        if action == "remove" and not opts["name"]:
            raise InvalidInput("which schedule? use: manage.py schedule remove NAME")
        if action != "remove" and opts["name"]:
            raise InvalidInput(f"unexpected argument {opts['name']!r}: a name is only for remove")
        if action == "add":
            if not opts["instruments"]:
                raise InvalidInput(f"no instruments given: use {ADD_EXAMPLE}")
            if not opts["cron"]:
                raise InvalidInput(f"no --cron given: use {ADD_EXAMPLE}")
        database_check()
        if action == "add":
            self._add(opts)
        elif action == "remove":
            fetch_schedule_remove(name=opts["name"])
            self.stdout.write(f"Schedule {opts['name']!r} removed.")
        else:
            self._list()

    def _add(self, opts) -> None:
        fetch = ScheduledFetch(
            instruments=opts["instruments"],
            timeframe=opts["timeframe"],
            what_to_show=opts["what_to_show"],
            use_rth=opts["use_rth"],
            sec_type=opts["sec_type"],
            exchange=opts["exchange"],
            currency=opts["currency"],
        )
        task = fetch_schedule_add(
            name=opts["new_name"], fetch=fetch, cron=opts["cron"], time_zone=opts["timezone"]
        )
        [summary] = [s for s in fetch_schedules() if s.name == task.name]
        console().print(
            f"✅ Schedule {task.name!r} added: {summary.kwargs['timeframe']} bars of "
            f"{summary.kwargs['instruments']}, from the last stored bar to now, "
            f"at {_when(summary)} (next: {_next(summary)})."
        )
        console().print(
            "   Beat starts it (celery -A ibdata_project beat, or make up); "
            "change it in the admin under Periodic tasks."
        )

    def _list(self) -> None:
        """One line per schedule (greppable, whatever the terminal's width); a schedule that
        cannot start a run as it is stored says why, on its line."""
        out = console()
        schedules = fetch_schedules()
        if not schedules:
            out.print(f"No fetch schedules. Add one: {ADD_EXAMPLE}")
            return
        for s in schedules:
            problem = s.problem or fetch_schedule_args_problem(kwargs=s.kwargs)
            if problem:
                out.print(
                    f"{s.name}: ❌ {problem}; fix it in the admin (Periodic tasks) or remove it "
                    f"(manage.py schedule remove {s.name!r})",
                    markup=False,
                )
                continue
            run = s.last_run
            last = (
                f"last run {run.pk} {run.status} ({run.created_at:%Y-%m-%d %H:%M} UTC)"
                if run
                else "no run yet"
            )
            out.print(
                f"{s.name}: {s.kwargs.get('timeframe', '?')} bars of "
                f"{s.kwargs.get('instruments', '?')} at {_when(s)}; next {_next(s)}; {last}"
            )


def _when(summary: ScheduleSummary) -> str:
    return f'"{summary.when}" {summary.time_zone}' if summary.time_zone else summary.when


def _next(summary: ScheduleSummary) -> str:
    if not summary.enabled:
        return "disabled"
    return f"{summary.next_fire:%Y-%m-%d %H:%M %Z}" if summary.next_fire else "-"
