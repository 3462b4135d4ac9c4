"""The one place that picks a pacer: Redis, shared by every process, when Redis is configured;
else one for this process alone (the embedded default)."""

from __future__ import annotations

from django.conf import settings

from .local import LocalPacer
from .redis_pacer import RedisPacer
from .rules import PacingRules


def pacer_for(gateway_key: str) -> LocalPacer | RedisPacer:
    """The pacer of the gateway `gateway_key` ('host:port'), whose rules every request obeys."""
    rules = PacingRules(time_scale=settings.IBKR_PACING_TIME_SCALE)
    if settings.REDIS_URL:
        return RedisPacer(redis_url=settings.REDIS_URL, gateway=gateway_key, rules=rules)
    return LocalPacer(rules=rules)
