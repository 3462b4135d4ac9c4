"""`manage.py bars SUBCOMMAND`: the stored bars as a whole. A thin dispatcher: each subcommand's
options, service calls and lines live in its own module (fetcher/cli/bars_*.py)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from fetcher.cli import (
    bars_check,
    bars_export,
    bars_import,
    parse_errors_on_one_line,
    user_errors,
)

# name -> module with HELP, add_arguments(parser) and handle(command, opts) -> exit code
SUBCOMMANDS = {"check": bars_check, "export": bars_export, "import": bars_import}


class Command(BaseCommand):
    help = (
        "The stored bars as a whole: "
        + ", ".join(f"`bars {name}`" for name in SUBCOMMANDS)
        + " (manage.py bars SUBCOMMAND --help)."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        return parse_errors_on_one_line(super().create_parser(prog_name, subcommand, **kwargs))

    def add_arguments(self, parser):
        subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        for name, module in SUBCOMMANDS.items():
            sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
            module.add_arguments(parse_errors_on_one_line(sub))

    @user_errors
    def handle(self, *args, **opts):
        code = SUBCOMMANDS[opts["subcommand"]].handle(self, opts)
        if code:
            raise SystemExit(code)
