"""IBKR error codes mapped to the project's exceptions (docs/ibkr.md, "Error codes")."""

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

# Connection-level codes: the link to the gateway (or the gateway's to IB) is down.
CONNECTION = frozenset({502, 504, 507, 1100, 1300})
RETRYABLE = frozenset({322, 2103, 2105, 1101}) | CONNECTION


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
    # Everything else (166, 203, 321, 354, 10314, ...) fails the same way when asked again.
    return PermanentGatewayError(code, message, req_id)
