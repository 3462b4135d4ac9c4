"""IBKR error codes mapped to the project's exceptions (IBKR.md 'Error codes a fetcher meets')."""

from __future__ import annotations

from fetcher.exceptions import (
    ClientIdInUse,
    GatewayError,
    GatewayUnavailable,
    NoData,
    PacingViolation,
    PermanentGatewayError,
    RetryableGatewayError,
    UnknownContract,
)

# Codes that only inform: logged, never raised.
INFORMATIONAL = frozenset({165, 366, 2104, 2106, 2107, 2108, 2158, 2174, 10167, 1102})
# Connection-level codes: the link to the gateway (or the gateway's to IB) is down.
CONNECTION = frozenset({502, 504, 507, 1100, 1300})
RETRYABLE = frozenset({322, 2103, 2105, 1101}) | CONNECTION
PERMANENT = frozenset({166, 200, 203, 321, 354, 10314, 10090, 10197, 326})


def gateway_error(code: int, message: str, req_id: int = -1) -> GatewayError:
    """The project exception for one IBKR error, classified by code and, for 162, by text."""
    text = message.lower()
    if code == 162:
        if "pacing violation" in text:
            return PacingViolation(code, message, req_id)
        if "returned no data" in text or "no data" in text and "hmds" in text:
            return NoData(code, message, req_id)
        if "query cancelled" in text:
            return RetryableGatewayError(code, message, req_id)
        # invalid step, no market data permissions, no data of this type for the contract...
        return PermanentGatewayError(code, message, req_id)
    if code == 200:
        return UnknownContract(code, message, req_id)
    if code == 326:
        return ClientIdInUse(code, message, req_id)
    if code in CONNECTION:
        return GatewayUnavailable(code, message, req_id)
    if code in RETRYABLE:
        return RetryableGatewayError(code, message, req_id)
    if code in INFORMATIONAL or 2100 <= code < 2200:
        error = GatewayError(code, message, req_id)
        error.informational = True
        return error
    return PermanentGatewayError(code, message, req_id)
