"""`manage.py bars check`: its options, the check (and repair) it asks the services for, and its
lines: one per finding, a summary, exit 1 when anything is wrong."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from fetcher.domain.timeframes import timeframe_parse
from fetcher.execution.preflight import database_check, fetch_preflight
from fetcher.services.checks import (
    CHECK_SCHEDULE,
    StoreCheck,
    bars_check,
    bars_check_schedule,
    bars_check_unschedule,
)
from fetcher.services.repairs import bars_repair
from fetcher.storage.catalog import default_root

from . import console, display_path
from .runs import run_follow

HELP = (
    "Check every stored series (or those of --instruments / --timeframe): sessions of the "
    "exchange calendar with no bars or far fewer than expected, OHLC rules, spikes, the "
    "database against the catalog, the series' counters. One line per finding, a summary; "
    "exit 1 when anything is wrong. --repair fetches again what is missing or suspect and "
    "rebuilds catalog files from the database."
)


def add_arguments(parser) -> None:
    parser.add_argument("--instruments", help="comma-separated symbols: AAPL,MSFT (default: all)")
    parser.add_argument("--timeframe", help="only this timeframe: DAILY, 1-MINUTE, ...")
    parser.add_argument(
        "--repair",
        action="store_true",
        help="fetch again what is missing or suspect, rebuild the catalog from the database, "
        "then check again",
    )
    parser.add_argument(
        "--cron",
        help='have beat run this check on a cron, e.g. "0 2 * * *" (read in --timezone, '
        "default UTC); the admin's Periodic tasks shows it as 'bars check'",
    )
    parser.add_argument("--timezone", default="UTC", help="the zone --cron is read in")
    parser.add_argument("--unschedule", action="store_true", help="stop beat running the check")


def handle(command: BaseCommand, opts: dict) -> int:
    symbols = [s.strip() for s in (opts["instruments"] or "").split(",") if s.strip()] or None
    timeframe = timeframe_parse(opts["timeframe"]) if opts["timeframe"] else None
    database_check()
    if opts["unschedule"]:
        removed = bars_check_unschedule()
        console().print(
            f"Schedule {CHECK_SCHEDULE!r} removed." if removed else "The check was not scheduled."
        )
        return 0
    if opts["cron"]:
        task = bars_check_schedule(
            cron=opts["cron"],
            time_zone=opts["timezone"],
            instruments=",".join(symbols or ()),
            timeframe=timeframe.name if timeframe else "",
        )
        console().print(
            f'✅ Beat runs the check ({task.name!r}) at "{opts["cron"]}" {opts["timezone"]}; '
            "results on each series in the admin, findings in the default worker's log."
        )
        return 0
    root = default_root()
    report = bars_check(catalog_root=root, symbols=symbols, timeframe=timeframe)
    report_print(report, root)
    if not opts["repair"] or not report.findings:
        return 1 if report.findings else 0
    if any(f.refetch for c in report.checks for f in c.findings if not c.skipped):
        fetch_preflight()
    out = console()
    out.print()
    out.print("Repairing:")
    outcome = bars_repair(checks=report.checks, catalog_root=root, wait=run_follow)
    for note in outcome.notes:
        out.print(f"🔧 {note}")
    out.print()
    out.print("Checking again:")
    again = bars_check(catalog_root=root, symbols=symbols, timeframe=timeframe)
    report_print(again, root)
    return 1 if again.findings else 0


def report_print(report: StoreCheck, root) -> None:
    """One line per finding (and per skipped series), then the summary."""
    out = console()
    for check in report.checks:
        for line in check.lines:
            out.print(f"{'⏭️ ' if check.skipped else '❌'} {line}")
    catalog = sum(c.catalog_bars for c in report.checks)
    rate = report.bars / report.seconds if report.seconds else 0  # database bars checked
    checked = sum(not c.skipped for c in report.checks)
    unknown = sum(not c.calendar_known for c in report.checks if c.series and not c.skipped)
    confirmed = sum(c.confirmed for c in report.checks)
    summary = (
        f"{checked} series checked: {report.bars:,} bars in the database, {catalog:,} in the "
        f"catalog {display_path(root)}, in {report.seconds:.1f} s ({rate:,.0f} bars/s)"
        + (
            f" (sessions not checked for {unknown} series: their exchange's calendar is not "
            "known here)"
            if unknown
            else ""
        )
        + (f" ({confirmed} confirmed by the gateway before: not counted)" if confirmed else "")
    )
    if not report.findings:
        out.print(f"✅ {summary}: nothing wrong")
        return
    wrong = sum(bool(c.findings) for c in report.checks)
    out.print(
        f"❌ {summary}: {report.findings} finding{'s' if report.findings > 1 else ''} in "
        f"{wrong} series (bars check --repair fetches again what is missing or suspect and "
        "rebuilds the catalog from the database)"
    )
