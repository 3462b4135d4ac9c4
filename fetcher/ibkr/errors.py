"""IBKR error codes mapped to the project's exceptions (docs/ibkr.md, "Error codes")."""

from __future__ import annotations

from fetcher.exceptions import (
    ClientIdInUse,
    CompetingSession,
    GatewayError,
    GatewayUnavailable,
    NoData,
    NoPermission,
    PacingViolation,
    PermanentGatewayError,
    RetryableGatewayError,
    UnknownContract,
)

# Connection-level codes: the link to the gateway (or the gateway's to IB) is down.
CONNECTION = frozenset({502, 504, 507, 1100, 1300})
RETRYABLE = frozenset({322, 2103, 2105, 1101}) | CONNECTION
COMPETING_SESSION = 10197  # another login of the same user took the market data
NOT_SUBSCRIBED = 354
HMDS_PREFIX = "Historical Market Data Service error message:"
PERMISSION_FIX = (
    "subscribe to this market data in IBKR Account Management (Settings > Market Data "
    "Subscriptions); delayed data (IBKR_MARKET_DATA_TYPE) does not serve historical bars"
)


def gateway_error(code: int, message: str, req_id: int = -1) -> GatewayError:
    """The project exception for one IBKR error, classified by code and, for 162, by text."""
    text = message.lower()
    if code == COMPETING_SESSION:
        return CompetingSession(code, message, req_id)
    if code == NOT_SUBSCRIBED or code == 162 and "no market data permissions" in text:
        return NoPermission(code, permission_message(message), req_id)
    if code == 162:
        if "pacing violation" in text:
            return PacingViolation(code, message, req_id)
        if "returned no data" in text or "no data" in text and "hmds" in text:
            return NoData(code, message, req_id)
        if "query cancelled" in text:
            return RetryableGatewayError(code, message, req_id)
        if "connected from a different ip address" in text:  # HMDS's word for 10197
            return CompetingSession(code, message, req_id)
        # invalid step, no data of this type for the contract, too old...
        return PermanentGatewayError(code, message, req_id)
    if code == 200:
        return UnknownContract(code, message, req_id)
    if code == 326:
        return ClientIdInUse(code, message, req_id)
    if code in CONNECTION:
        return GatewayUnavailable(code, message, req_id)
    if code in RETRYABLE:
        return RetryableGatewayError(code, message, req_id)
    # Everything else (166, 203, 321, 10314, ...) fails the same way when asked again.
    return PermanentGatewayError(code, message, req_id)


def permission_message(message: str) -> str:
    """IBKR's text for a missing market data subscription, and how to fix it, in one line."""
    text = message.removeprefix(HMDS_PREFIX).strip().rstrip(".")
    return f"{text}: {PERMISSION_FIX}"
