"""What the management commands share: one-line errors, rich tables, date parsing."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import re
import sys
from pathlib import Path

from celery import current_app as app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection
from rich.console import Console
from rich.table import Table

from fetcher.domain.requests import RequestInvalid, date_parse
from fetcher.exceptions import IbdataError, InvalidInput
from fetcher.queues import Queue


class UserError(Exception):
    """Shown as one line on stderr; the command exits with `code`."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def console(stderr: bool = False) -> Console:
    return Console(highlight=False, soft_wrap=True, stderr=stderr)


def redacted_database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"SQLite file {db['NAME']}"
    return f"{db.get('USER') or ''}@{db.get('HOST') or 'localhost'}:{db.get('PORT') or ''}/{db['NAME']}"


def check_database() -> None:
    """A one-line error when the database cannot be reached or has no tables yet."""
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
    except DatabaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"Cannot reach the database ({redacted_database_url()}): {first}. "
            "Check DATABASE_URL, or run `bash scripts/services.sh` to start PostgreSQL"
        ) from None
    if "fetcher_fetchrun" not in tables:
        raise UserError("The database has no ibdata tables yet: run `python manage.py migrate`")


def user_errors(handle):
    """Turn the project's errors into one line on stderr and a non-zero exit code."""

    @functools.wraps(handle)
    def wrapper(self: BaseCommand, *args, **options):
        try:
            return handle(self, *args, **options)
        except UserError as exc:
            self.stderr.write(f"❌ {exc}")
            sys.exit(exc.code)
        except RequestInvalid as exc:
            self.stderr.write(f"❌ {option_of(self, exc.field)}: {exc.problem}")
            sys.exit(2)
        except InvalidInput as exc:
            self.stderr.write(f"❌ {exc}")
            sys.exit(2)
        except IbdataError as exc:
            self.stderr.write(f"❌ {exc}")
            sys.exit(1)
        except DatabaseError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.stderr.write(f"❌ Database error ({redacted_database_url()}): {first}")
            sys.exit(1)

    return wrapper


def option_of(command: BaseCommand, field: str) -> str:
    """The command-line option of a request's field: the command's own name for it
    (`request_options`, e.g. backtest's --symbols for instruments), else --field-name."""
    return getattr(command, "request_options", {}).get(field) or "--" + field.replace("_", "-")


def parse_errors_on_one_line(parser: CommandParser) -> CommandParser:
    """Argparse's errors (an unknown option, a missing value) as one line on stderr, exit 2,
    instead of the usage text; call_command still gets a CommandError."""

    def error(message: str):
        if not parser.called_from_command_line:
            raise CommandError(f"Error: {message}")
        sys.stderr.write(f"❌ {message}: see {parser.prog} --help\n")
        sys.exit(2)

    parser.error = error
    return parser


def parse_date(text: str | None, name: str) -> dt.date | None:
    """A YYYY-MM-DD option's date (None when not given); InvalidInput naming the option."""
    try:
        return date_parse(text, name)
    except RequestInvalid as exc:
        raise InvalidInput(f"{name} {exc.problem}") from None


def rth_arguments(parser) -> None:
    """--rth (the default) / --no-rth: regular trading hours only, or extended hours too."""
    rth = parser.add_mutually_exclusive_group()
    rth.add_argument(
        "--rth",
        dest="use_rth",
        action="store_true",
        default=True,
        help="regular trading hours only (default)",
    )
    rth.add_argument(
        "--no-rth", dest="use_rth", action="store_false", help="include extended hours"
    )


def property_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column("Property")
    table.add_column("Value")
    for key, value in rows:
        table.add_row(key, value)
    return table


def display_path(path: Path) -> str:
    """'./data/catalog' when under the current directory, else the absolute path."""
    try:
        return "./" + str(Path(path).resolve().relative_to(Path(os.getcwd()).resolve()))
    except ValueError:
        return str(path)


def tasks_in_process() -> bool:
    """True on the embedded default (no broker): runs execute in this process."""
    return bool(app.conf.task_always_eager)


def gateway_probe() -> None:
    """Fail before writing anything when the gateway cannot be reached, or when its bars would
    mix with the store's (simulator and real bars never share a store)."""
    # Imported here: commands that never connect (fetch_status) do not load ib_insync.
    from fetcher.ibkr.connect import gateway_from_settings
    from fetcher.services.provenance import gateway_kind, store_source_check
    from fetcher.storage.catalog import default_root

    gateway = gateway_from_settings()

    async def probe():
        try:
            return await gateway.connect()
        finally:
            gateway.disconnect()

    info = asyncio.run(probe())
    store_source_check(source=gateway_kind(info), account=info.account, catalog_root=default_root())


def submit_preflight() -> None:
    """Before a command starts a fetch: the database reachable, and the gateway (runs in this
    process) or the broker (runs on the ibkr worker), so a mistake costs no half-made run."""
    check_database()
    if tasks_in_process():
        gateway_probe()
    else:
        check_broker()


def check_broker() -> None:
    """A one-line error when the Celery broker (Redis) cannot be reached."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # kombu raises transport-specific errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"Cannot reach the task broker ({_redacted(app.conf.broker_url)}): {first}. "
            "Start Redis (bash scripts/services.sh) or unset REDIS_URL to run fetches in-process"
        ) from None


def ibkr_workers_alive(timeout: float = 1.0) -> bool:
    try:
        queues = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:  # a broker hiccup here only means "cannot tell"
        return False
    return any(q.get("name") == Queue.IBKR for qs in queues.values() for q in qs)


def _redacted(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url or "")


def run_source_label(run) -> str:
    """'ibdata simulator (DU1234567) at 127.0.0.1:7497': which gateway served a run."""
    if not run.source:
        return "-"
    account = f" ({run.account})" if run.account else ""
    return f"{run.get_source_display()}{account} at {run.gateway_host}:{run.gateway_port}"
