"""Celery queue names, in one place."""

from enum import StrEnum


class Queue(StrEnum):
    IBKR = "ibkr"  # one worker per gateway connection, concurrency 1
    DEFAULT = "default"  # housekeeping
    BACKTESTS = "backtests"
