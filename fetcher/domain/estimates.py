"""How big a fetch is before it starts: its requests, its bars, and the time IBKR's pacing needs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .planning import FetchPlan
from .timeframes import TimeframeSpec

# IBKR's pacing (docs/ibkr.md): 45 requests a second for bars of 1 minute and up; 60 in any
# ten minutes for bars of 30 s or less.
REQUESTS_PER_S = 45
SMALL_REQUESTS_PER_WINDOW, SMALL_WINDOW_S = 60, 600
SESSIONS_PER_BAR = {"WEEKLY": 5, "MONTHLY": 21}  # about: weeks and months of sessions


@dataclass(frozen=True)
class FetchEstimate:
    """What a fetch will cost, as planned from what is stored; `unknown` names the instruments
    whose first data point the gateway has not told yet (their part may be larger)."""

    requests: int
    bars: int
    seconds: float
    unknown: tuple[str, ...] = ()


def pacing_seconds(requests: int, timeframe: TimeframeSpec) -> float:
    """The least time IBKR's pacing lets `requests` requests of this bar size take."""
    if not requests:
        return 0.0
    if timeframe.small:
        return (requests - 1) // SMALL_REQUESTS_PER_WINDOW * SMALL_WINDOW_S
    return requests / REQUESTS_PER_S


def plan_bars(plan: FetchPlan, timeframe: TimeframeSpec, use_rth: bool) -> int:
    """About how many bars a plan's requests bring: the session time their windows cover, in
    bars (intraday), or the sessions they cover (daily; a week or month of them for longer)."""
    total = 0
    for request in plan.requests:
        lo, hi = request.window_start, request.window_end
        _, opens, closes = plan.sessions.between(lo, hi, use_rth)
        if timeframe.intraday:
            covered = np.minimum(closes, hi) - np.maximum(opens, lo)
            total += int(np.ceil(covered / timeframe.seconds).sum())
        else:
            total += -(-len(opens) // SESSIONS_PER_BAR.get(timeframe.name, 1))
    return total
