"""Historical-data requests as the gateway validates them: bar size, duration, end time, pacing."""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import messages as msg
from . import rules, texts
from .market import Market
from .pacing import HistoricalPacing
from .timewindow import BadEndDate, calendar_start, parse_end
from .universe import Listing


@dataclass(frozen=True)
class Window:
    spec: Listing
    bar_size: rules.BarSize
    start: int
    end: int


class Reject(Exception):
    """A request the gateway refuses: IBKR's code and text; `pacing` names the broken pacing rule."""

    def __init__(self, code: int, text: str, pacing: str = ""):
        super().__init__(text)
        self.code, self.text, self.pacing = code, text, pacing


def request_window(
    req: msg.HistoricalRequest,
    *,
    listings: list[Listing],
    market: Market,
    pacing: HistoricalPacing,
    now: float,
    time_zone: str,
) -> tuple[Window, bool]:
    """Validate a request the way the gateway does; its time window, and whether its end time
    came without a time zone (the gateway then warns with 2174). `listings` are the contracts
    the request names; `pacing` counts it when it is admitted."""
    if len(listings) != 1:
        raise Reject(*texts.NO_SECURITY)
    spec = listings[0]
    bar_size = rules.BAR_SIZES.get(req.bar_size)
    if bar_size is None:
        raise Reject(
            *texts.validation(f"Historical data bar size setting is invalid: {req.bar_size!r}")
        )
    duration = rules.parse_duration(req.duration)
    if duration is None:
        raise Reject(*texts.validation(f"Historical data duration is invalid: {req.duration!r}"))
    cause = rules.duration_refusal(duration)
    if cause is not None:
        raise Reject(*texts.validation(cause))
    if req.what_to_show not in rules.WHAT_TO_SHOW:
        raise Reject(*texts.validation(f"Invalid whatToShow {req.what_to_show!r}"))
    if req.what_to_show == "ADJUSTED_LAST" and req.end.strip():
        raise Reject(*texts.validation("End date not supported with adjusted last"))
    if req.keep_up_to_date and req.end.strip():
        raise Reject(*texts.validation("End date not supported with live updates"))
    if req.contract.sec_type.strip().upper() == "CONTFUT" and req.end.strip():
        raise Reject(*texts.CONTINUOUS_END_DATE)
    try:
        end = parse_end(req.end, now=now, local_zone=time_zone)
    except BadEndDate:
        raise Reject(*texts.BAD_END_DATE) from None
    end_epoch = min(end.epoch, int(math.ceil(now)))
    if duration.unit == "D":
        start = market.sessions_back(spec, end_epoch, duration.count, req.use_rth)
    else:
        start = calendar_start(end_epoch, duration, spec.time_zone_id)
    if bar_size.small and start < now - rules.SMALL_BARS_MAX_AGE_S:
        raise Reject(*texts.SMALL_BARS_TOO_OLD)  # refused before pacing counts it
    if rules.time_length_exceeded(bar_size, duration):
        raise Reject(*texts.TIME_LENGTH_EXCEEDED)
    if bar_size.small:
        weight = 2 if req.what_to_show == "BID_ASK" else 1
        key = (spec.con_id, req.contract.exchange, req.what_to_show)
        broken = pacing.admit(req.identity, key, weight)
        if broken is not None:
            raise Reject(*texts.PACING_VIOLATION, pacing=broken)
    return Window(spec, bar_size, start, end_epoch), end.implied_zone
