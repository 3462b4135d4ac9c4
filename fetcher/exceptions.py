"""Project exceptions: every failure a user can meet, with a message that says what to do."""

from __future__ import annotations


class IbdataError(Exception):
    """Base of the project's errors; str() is the one line shown to the user."""


class InvalidInput(IbdataError):
    """The user asked for something that cannot be done (bad dates, unknown timeframe...)."""


class GatewayError(IbdataError):
    """An error answered by (or about) the IBKR gateway, carrying IBKR's code."""

    retryable = False

    def __init__(self, code: int, message: str, req_id: int = -1):
        super().__init__(f"{message} (IBKR error {code})")
        self.code = code
        self.message = message
        self.req_id = req_id


class PermanentGatewayError(GatewayError):
    """Retrying will fail again: fix the request, the contract or the permissions."""


class RetryableGatewayError(GatewayError):
    """May succeed after a back-off: pacing, transient service errors, lost connectivity."""

    retryable = True


class PacingViolation(RetryableGatewayError):
    """The gateway refused a request for pacing (162 pacing violation)."""


class NoData(GatewayError):
    """The gateway has no bars in the window (162 'HMDS query returned no data'): not an error."""


class UnknownContract(PermanentGatewayError):
    """No security definition (200)."""


class NoPermission(PermanentGatewayError):
    """The account has no market data subscription for the contract (354, 162 "No market data
    permissions"): the instrument fails at once, never retried; the message says how to fix it."""


class GatewayTrouble(RetryableGatewayError):
    """A passing trouble of the whole gateway session, not of one request: every request is
    held, one probes after a back-off, and all go again once one is answered."""


class CompetingSession(GatewayTrouble):
    """Another login of the same user took the market data (10197)."""


class FalseUnknownContract(GatewayTrouble):
    """200 for a contract the gateway defined before: its nightly reset, not a missing contract."""


class HeldTooLong(GatewayError):
    """Requests were held for the gateway (a farm, its link to IBKR, a trouble) longer than a
    run waits: the request fails for this run, to be fetched again later."""


class GatewayUnavailable(RetryableGatewayError):
    """Could not connect, or the connection was lost (502, 504, 507, 1100, socket EOF)."""


class ConnectionRefused(GatewayUnavailable):
    """Nothing accepts connections on the gateway's port: not running, restarting, or logged off
    (a gateway waiting for its login with 2FA keeps its API port closed)."""


class ClientIdInUse(PermanentGatewayError):
    """Another API client uses this client id (326): retrying the same id fails again."""


class RequestTimeout(RetryableGatewayError):
    """The gateway did not answer in time; the request was cancelled on the gateway."""


class ServiceUnavailable(IbdataError):
    """A service a command needs (the database, the task broker) cannot be reached."""


class RunHandedBack(IbdataError):
    """An ibkr worker not connected to its gateway does not execute a run: it puts it back on
    the queue, untouched, for a worker that is (or for itself, once connected)."""


class RunStalled(IbdataError):
    """A followed run stopped moving: the worker (or thread) running it is gone."""


class FetchTimeout(IbdataError):
    """A followed run did not end in the time given."""


class FetchCancelled(IbdataError):
    """The run was cancelled by the user."""


class SourceMismatch(IbdataError):
    """The store holds bars of another gateway kind: simulator bars never mix with real ones."""


class HistoryChanged(IbdataError):
    """IBKR's history changed under the stored bars (a split) and the series could not be
    fetched again: no bar is added to it on the new scale beside its old ones."""


class CatalogBound(IbdataError):
    """The catalog belongs to another database: two stores never write into one catalog."""


class CatalogUnshared(IbdataError):
    """A catalog on object storage without the PostgreSQL database that keeps its writers apart."""
