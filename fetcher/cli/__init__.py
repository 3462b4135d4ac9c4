"""What the management commands share: one-line errors, rich tables, date parsing."""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from rich import box
from rich.console import Console
from rich.table import Table

from fetcher.domain.requests import RequestInvalid, date_parse
from fetcher.exceptions import IbdataError, InvalidInput
from fetcher.execution.preflight import redacted_database_url


class UserError(Exception):
    """Shown as one line on stderr; the command exits with `code`."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def console(stderr: bool = False) -> Console:
    """rich's console: on a terminal, long lines wrap between words at its width; piped or
    redirected, each line stays whole (for grep and logs)."""
    out = Console(highlight=False, stderr=stderr)
    out.soft_wrap = not out.is_terminal
    return out


def narrow_table(title: str | None = None) -> Table:
    """A table for 80 columns: no side borders, a rule under the header, two spaces between
    columns (give its columns overflow="fold": a word too long folds, never ends in '…')."""
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )


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
    table.add_column("Property", overflow="fold")
    table.add_column("Value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


def display_path(path: Path | str) -> str:
    """'./data/catalog' when under the current directory, else the absolute path (a URL, such
    as an S3 catalog's, as it is)."""
    if "://" in str(path):
        return str(path)
    try:
        return "./" + str(Path(path).resolve().relative_to(Path(os.getcwd()).resolve()))
    except ValueError:
        return str(path)


def run_source_label(run) -> str:
    """'ibdata simulator (DU1234567) at 127.0.0.1:7497': which gateway served a run."""
    if not run.source:
        return "-"
    account = f" ({run.account})" if run.account else ""
    return f"{run.get_source_display()}{account} at {run.gateway_host}:{run.gateway_port}"
