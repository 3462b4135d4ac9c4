"""`manage.py demo`: the main job on the embedded defaults, against the built-in simulator."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from fetcher.cli import console, display_path, redacted_database_url
from fetcher.storage.catalog import default_root

DEMO_FETCH = [
    "--instruments",
    "AAPL,MSFT,GOOGL",
    "--start",
    "2024-01-01",
    "--end",
    "2024-01-31",
    "--timeframe",
    "DAILY",
]


class Command(BaseCommand):
    help = "Start the built-in gateway simulator, connect to it and fetch a month of daily bars."

    def handle(self, *args, **options):
        out = console()
        settings.IBKR_HOST = "sim"  # only the demo (and IBKR_HOST=sim) ever uses the simulator
        out.rule("ibdata demo: the built-in IB Gateway simulator, SQLite, in-process tasks")
        out.print(f"Database: {redacted_database_url()}")
        call_command("migrate", verbosity=0, interactive=False)
        out.print()
        out.print("$ python manage.py connect_ibkr")
        call_command("connect_ibkr")
        out.print()
        out.print("$ python manage.py fetch " + " ".join(DEMO_FETCH))
        try:
            call_command("fetch", *DEMO_FETCH)
        except SystemExit as exc:
            if exc.code:
                raise
        catalog = display_path(default_root())
        out.print()
        out.rule("Where to look next")
        out.print(
            f"- Parquet catalog: ls {catalog}  (read it with pyarrow, DuckDB or polars: docs/catalog.md)"
        )
        out.print("- Run it again: the second fetch makes no request (everything is stored)")
        out.print(
            "- More: IBKR_HOST=sim python manage.py fetch --instruments AAPL --timeframe 1-MINUTE"
        )
        out.print("- Admin: python manage.py createsuperuser && python manage.py runserver")
        out.print("- A real gateway: set IBKR_HOST / IBKR_PORT in .env (see .env.example)")
