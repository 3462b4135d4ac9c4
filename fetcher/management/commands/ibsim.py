"""`manage.py ibsim`: run the built-in IB Gateway simulator in the foreground (see ibsim.cli)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ibsim.cli import UsageError, add_arguments, config_from, serve


class Command(BaseCommand):
    help = (
        "Run the built-in IB Gateway simulator: a TCP server speaking the TWS API protocol, "
        "serving deterministic bars on real exchange calendars with IBKR's pacing rules."
    )

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **opts):
        try:
            serve(config_from(opts), stats_file=opts["stats_file"], out=self.stdout)
        except UsageError as exc:
            raise CommandError(str(exc)) from None
