"""`manage.py demo`: the main job on the embedded defaults, against the built-in simulator, in a
store of its own (data/demo): simulator bars never land in the store real fetches use."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from fetcher.cli import console, display_path, user_errors
from fetcher.exceptions import CatalogBound, InvalidInput
from fetcher.execution.preflight import redacted_database_url
from fetcher.services.provenance import catalog_binding_check
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
# Then a backtest on the demo's bars: two years, so the missing ones are fetched first.
DEMO_BACKTEST = [
    "--strategy",
    "sma",
    "--symbols",
    "AAPL,MSFT,GOOGL",
    "--start",
    "2023-01-01",
    "--end",
    "2024-12-31",
    "--data-source",
    "ibkr",
]


def demo_dir() -> Path:
    return Path(settings.BASE_DIR) / "data" / "demo"


def demo_environment() -> dict[str, str]:
    """The demo's settings: its own SQLite file and catalog, tasks in-process, the simulator.
    Set explicitly, so a .env pointing at the real store cannot fill them in."""
    return {
        **os.environ,
        "DATA_DIR": str(demo_dir()),
        "DATA_CATALOG_URL": "",
        "DATABASE_URL": f"sqlite:///{demo_dir() / 'ibdata.sqlite3'}",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "",
        "CELERY_RESULT_BACKEND": "",
        "IBKR_HOST": "sim",
    }


def in_demo_store() -> bool:
    return (
        Path(settings.DATA_DIR) == demo_dir()
        and not settings.DATA_CATALOG_URL
        and settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
        and not settings.CELERY_BROKER_URL
        and settings.IBKR_HOST == "sim"
    )


class Command(BaseCommand):
    help = (
        "Start the built-in gateway simulator, connect to it, fetch a month of daily bars, then "
        "backtest an SMA crossover on two years of them, in the demo's own store (data/demo)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--admin",
            action="store_true",
            help="serve the Django admin on the demo's store instead (make admin): asks for a "
            "first admin user when there is none",
        )
        parser.add_argument("--port", type=int, default=8000, help="the admin's port (8000)")

    @user_errors
    def handle(self, *args, **options):
        if not in_demo_store():
            # Settings are read once, at start-up: start again with the demo's own.
            manage = Path(settings.BASE_DIR) / "manage.py"
            sys.stdout.flush()
            os.execve(
                sys.executable, [sys.executable, str(manage), *sys.argv[1:]], demo_environment()
            )
        if options["admin"]:
            return _serve_admin(options["port"])
        out = console()
        out.rule("ibdata demo: the built-in IB Gateway simulator, SQLite, in-process tasks")
        out.print(f"Database: {redacted_database_url()} (the demo's own store)")
        call_command("migrate", verbosity=0, interactive=False)
        try:
            catalog_binding_check(catalog_root=default_root())
        except CatalogBound:  # the demo's database was deleted, its catalog not: start anew
            aside = default_root().with_name(f"catalog.old-{int(time.time())}")
            default_root().rename(aside)
            out.print(
                f"The demo's catalog belonged to an earlier demo database: moved to "
                f"{display_path(aside)}, a new one starts"
            )
        picture = demo_dir() / "backtest.png"
        _step("connect_ibkr", [])
        _step("fetch", DEMO_FETCH)
        _step(
            "backtest",
            [*DEMO_BACKTEST, "--plot", str(picture)],
            shown={str(picture): display_path(picture)},
        )
        _next_steps(picture)


def _step(name: str, args: list[str], shown: dict[str, str] | None = None) -> None:
    """Show a command as a user types it, then run it; stop the demo if it fails."""
    out = console()
    out.print()
    out.print(" ".join(["$ python manage.py", name, *((shown or {}).get(a, a) for a in args)]))
    try:
        call_command(name, *args)
    except SystemExit as exc:
        if exc.code:
            raise


def _next_steps(picture: Path) -> None:
    out = console()
    catalog = display_path(default_root())
    store = display_path(demo_dir())
    out.print()
    out.rule("Where to look next")
    out.print(
        f"- Parquet catalog: ls {catalog}  (read it with pyarrow, DuckDB or polars: docs/catalog.md)"
    )
    out.print(
        f"- The backtest's equity and drawdown: {display_path(picture)}; its runs in the admin "
        "(Backtest runs); a sweep: python manage.py backtest --symbols AAPL --start "
        "2023-01-01 --end 2024-12-31 --fast 5:50:5 --slow 20:200:10 --heatmap sweep.png"
    )
    out.print("- Run it again: the second fetch makes no request (everything is stored)")
    out.print(
        f"- More, in the demo's store: DATA_DIR={store} DATABASE_URL=sqlite:///{store}/"
        "ibdata.sqlite3 IBKR_HOST=sim python manage.py fetch --instruments AAPL "
        "--timeframe 1-MINUTE"
    )
    out.print(
        "- Its admin: make admin (python manage.py demo --admin), then http://127.0.0.1:8000/admin/"
    )
    out.print(
        "- A real gateway: set IBKR_HOST / IBKR_PORT in .env (see .env.example); its bars "
        "go to data/ (or DATA_DIR / DATABASE_URL), never mixed with the simulator's"
    )


def _serve_admin(port: int) -> None:
    """The admin on the demo's store: its tables, its secret key, a first admin user, then
    Django's server (static files through whitenoise, DEBUG or not)."""
    out = console()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("init_secrets")
    if not _admin_user_exists():
        if sys.stdin.isatty():
            out.print("The demo's store has no admin user yet: make one (it stays in data/demo)")
            call_command("createsuperuser")
        elif os.environ.get("DJANGO_SUPERUSER_USERNAME") and os.environ.get(
            "DJANGO_SUPERUSER_PASSWORD"
        ):
            call_command("createsuperuser", interactive=False, email="", verbosity=0)
        else:
            raise InvalidInput(
                "the demo's store has no admin user: run make admin on a terminal, or set "
                "DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD"
            )
    out.print(f"The demo's admin: http://127.0.0.1:{port}/admin/ (Ctrl+C stops it)")
    sys.stdout.flush()
    call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, skip_checks=True)


def _admin_user_exists() -> bool:
    return get_user_model().objects.filter(is_superuser=True, is_active=True).exists()
