"""IBKR's pacing rules as the client applies them, and what a request shows the pacer.

The rules (docs/ibkr.md, "Pacing") are applied with a small safety margin: at most 45 requests
a second (the setup guide's promise); for bars of 30 s or less no identical request within
15 s, at most 5 per contract and tick type in any 2 s (the 6th is the violation; BID_ASK counts
twice) and at most 60 in any 10 minutes; at most `max_open` requests open at once.
`time_scale` speeds the windows up to match a simulator running faster than real time.
"""

from __future__ import annotations

from dataclasses import dataclass

from fetcher.domain.timeframes import BID_ASK_WEIGHT


@dataclass(frozen=True)
class PacingRules:
    messages_per_s: int = 45
    identical_window_s: float = 15.0
    contract_window_s: float = 2.0
    contract_max: int = 5
    total_window_s: float = 600.0
    total_max: int = 60
    max_open: int = 50
    # Added to every window in real seconds: the gateway counts a request when it arrives,
    # a little after we count it, and arrival delays vary (network, loop, GIL).
    margin_s: float = 0.1
    time_scale: float = 1.0

    def scaled(self, seconds: float) -> float:
        return seconds / self.time_scale + self.margin_s


@dataclass(frozen=True)
class RequestKey:
    """What the pacing rules look at in one historical request."""

    identity: tuple  # equal for identical requests
    contract: tuple  # (con_id, exchange, what_to_show)
    small: bool  # bar size of 30 s or less
    weight: int = 1  # BID_ASK counts twice


# Requests other than historical data (contract details, head timestamps) only count towards
# the message rate and the open requests.
MESSAGE = RequestKey(identity=("message",), contract=("message",), small=False)
# Connecting sends a handful of messages of its own: startApi, positions, account updates (x2),
# executions, market data type... The pacer counts them so the first burst stays under 50/s.
CONNECT_MESSAGES = 8


def request_key(
    *, con_id: int, exchange: str, identity: tuple, what_to_show: str, small: bool
) -> RequestKey:
    """What the rules look at in one historical request of a contract."""
    return RequestKey(
        identity=identity,
        contract=(con_id, exchange, what_to_show),
        small=small,
        weight=BID_ASK_WEIGHT if what_to_show == "BID_ASK" else 1,
    )
