"""Before a fetch starts: the database, and the gateway (runs in this process) or the broker
(runs on the ibkr worker) are checked, so a mistake costs one line and no half-made run."""

from __future__ import annotations

import asyncio
import re

from celery import current_app as app
from django.conf import settings
from django.db import DatabaseError, connection

from fetcher.exceptions import ServiceUnavailable
from fetcher.services.provenance import gateway_kind, store_source_check
from fetcher.storage.catalog import default_root


def redacted_database_url() -> str:
    """Where the database is, without its password: for messages."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"SQLite file {db['NAME']}"
    return f"{db.get('USER') or ''}@{db.get('HOST') or 'localhost'}:{db.get('PORT') or ''}/{db['NAME']}"


def database_check() -> None:
    """A one-line error when the database cannot be reached or has no tables yet."""
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
    except DatabaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceUnavailable(
            f"Cannot reach the database ({redacted_database_url()}): {first}. "
            "Check DATABASE_URL, or run `bash scripts/services.sh` to start PostgreSQL"
        ) from None
    if "fetcher_fetchrun" not in tables:
        raise ServiceUnavailable(
            "The database has no ibdata tables yet: run `python manage.py migrate`"
        )


def tasks_in_process() -> bool:
    """True on the embedded default (no broker): runs execute in this process."""
    return bool(app.conf.task_always_eager)


def gateway_check() -> None:
    """Fail before writing anything when the gateway cannot be reached, or when its bars would
    mix with the store's (simulator and real bars never share a store)."""
    # Imported here: commands that never connect (fetch_status) do not load ib_insync.
    from fetcher.ibkr.connect import gateway_from_settings

    gateway = gateway_from_settings()

    async def probe():
        try:
            return await gateway.connect()
        finally:
            gateway.disconnect()

    info = asyncio.run(probe())
    store_source_check(source=gateway_kind(info), account=info.account, catalog_root=default_root())


def fetch_preflight() -> None:
    """Before a command starts a fetch: the database reachable, and the gateway (runs in this
    process) or the broker (runs on the ibkr worker), so a mistake costs no half-made run."""
    database_check()
    if tasks_in_process():
        gateway_check()
    else:
        broker_check()


def broker_check() -> None:
    """A one-line error when the Celery broker (Redis) cannot be reached."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # kombu raises transport-specific errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceUnavailable(
            f"Cannot reach the task broker ({_redacted(app.conf.broker_url)}): {first}. "
            "Start Redis (bash scripts/services.sh) or unset REDIS_URL to run fetches in-process"
        ) from None


def _redacted(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url or "")
