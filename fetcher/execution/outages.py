"""Brief outages of the services a run depends on: PostgreSQL gone for a moment is waited for.

A run's database work is retried (each call is one transaction, rolled back when the link
drops) on a fresh connection, with backoff, for up to DATABASE_OUTAGE_MAX_S; the log says
once that the run waits and once that it goes on. Redis outages are waited out by the pacer.
"""

from __future__ import annotations

import functools
import logging

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, connection
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from fetcher.timings import DATABASE_OUTAGE_MAX_S

log = logging.getLogger("ibdata.fetch")

DATABASE_GONE = (OperationalError, InterfaceError)


def database_patient(fn):
    """`fn`, retried on a new connection while the database is unreachable."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        retrying = Retrying(
            retry=retry_if_exception_type(DATABASE_GONE),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
            stop=stop_after_delay(DATABASE_OUTAGE_MAX_S),
            before=_reconnect,
            before_sleep=lambda state: _waiting(state, fn),
            reraise=True,
        )
        result = retrying(fn, *args, **kwargs)
        if retrying.statistics["attempt_number"] > 1:
            log.warning("database reachable again: %s goes on", fn.__name__)
        return result

    return call


def _reconnect(state) -> None:
    """Before a retry: drop the broken link, so the next query opens a new one."""
    if state.attempt_number > 1:
        connection.close()


def _waiting(state, fn) -> None:
    if state.attempt_number == 1:
        log.warning(
            "database unreachable (%s): %s waits for it (up to %.0fs)",
            one_line(state.outcome.exception()),
            fn.__name__,
            DATABASE_OUTAGE_MAX_S,
        )


def one_line(exc: BaseException | None) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def db(fn):
    """`fn` on the run's one database thread (in order), waiting out a database outage."""
    return sync_to_async(database_patient(fn))
