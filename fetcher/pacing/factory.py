"""The one place that picks a pacer: Redis, shared by every process, when Redis is configured;
else one for this process alone (the embedded default)."""

from __future__ import annotations

import threading

from django.conf import settings

from .local import LocalPacer
from .redis_pacer import RedisPacer
from .rules import PacingRules

_pacers: dict[tuple, RedisPacer] = {}
_lock = threading.Lock()


def pacer_for(gateway_key: str) -> LocalPacer | RedisPacer:
    """The pacer of the gateway `gateway_key` ('host:port'), whose rules every request obeys.

    With Redis, one pacer per gateway and process, whatever the number of runs: its admission
    loop and bounded pool are the process's only pacing connections to Redis."""
    rules = PacingRules(
        time_scale=settings.IBKR_PACING_TIME_SCALE, margin_s=settings.IBKR_PACING_MARGIN_S
    )
    if not settings.REDIS_URL:
        return LocalPacer(rules=rules)
    with _lock:
        key = (settings.REDIS_URL, gateway_key, rules)
        if key not in _pacers:
            _pacers[key] = RedisPacer(
                redis_url=settings.REDIS_URL, gateway=gateway_key, rules=rules
            )
        return _pacers[key]
