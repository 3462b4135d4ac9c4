"""Error codes and texts the simulated gateway sends, worded as IBKR words them."""

HMDS = "Historical Market Data Service error message:"

# The simulator's farms say whose they are: a client can tell synthetic bars from real ones.
FARM_SUFFIX = ".ibsim"


def farm_ok(identify: bool, hmds_ok: bool = True) -> tuple[tuple[int, str], ...]:
    """The data-farm notices sent at connect; without `identify`, worded as a real TWS words them.
    In a farm outage the historical farm is reported broken (2105) instead of OK."""
    suffix = FARM_SUFFIX if identify else ""
    return (
        (2104, f"Market data farm connection is OK:usfarm{suffix}"),
        hmds_farm(identify, ok=hmds_ok),
        (2158, f"Sec-def data farm connection is OK:secdefnj{suffix}"),
    )


def hmds_farm(identify: bool, *, ok: bool) -> tuple[int, str]:
    """2106 (the historical data farm is OK) or 2105 (broken), as TWS words them."""
    suffix = FARM_SUFFIX if identify else ""
    if ok:
        return 2106, f"HMDS data farm connection is OK:ushmds{suffix}"
    return 2105, f"HMDS data farm connection is broken:ushmds{suffix}"


NO_SECURITY = (200, "No security definition has been found for the request")
CLIENT_ID_IN_USE = (
    326,
    "Unable to connect as the client id is already in use. Retry with a unique client id.",
)
PACING_VIOLATION = (162, HMDS + "Historical data request pacing violation")
SMALL_BARS_TOO_OLD = (
    162,
    HMDS + "Historical data for bar sizes of 30 secs or less is available for six months only",
)
NO_DATA = 162  # text: HMDS + "HMDS query returned no data: ..."
CANCELLED = 162  # text: HMDS + "API historical data query cancelled: <reqId>"
TOO_MANY_OPEN = (
    322,
    "Error processing request:-'bY' : cause - Only 50 simultaneous API historical data "
    "requests allowed.",
)
MESSAGE_RATE = 100  # text: "Max rate of messages per second has been exceeded:max=50 rec=N (1)"
VALIDATION = 321  # text: "Error validating request.-'bX' : cause - ..."
NO_TZ_WARNING = (
    2174,
    "Warning: You submitted request with date-time attributes without explicit time zone. "
    "Please switch to use yyyymmdd-hh:mm:ss in UTC or use instrument time zone, like "
    "US/Eastern. Implied time zone functionality will be removed in the next API release",
)
BAD_END_DATE = (
    10314,
    "End Date/Time: The date, time, or time-zone entered is invalid. The correct format is "
    "yyyymmdd hh:mm:ss xx/xxxx where yyyymmdd and xx/xxxx are optional. E.g.: 20031126 "
    "15:59:00 US/Eastern  Note that there is a space between the date and time, and between "
    "the time and time-zone.  If no date is specified, current date is assumed. If no "
    "time-zone is specified, local time-zone is assumed(deprecated).  You can also provide "
    "yyyymmddd-hh:mm:ss time is in UTC. Note that there is a dash between the date and time "
    "in UTC notation.",
)
CONNECTIVITY_LOST = (1100, "Connectivity between IB and Trader Workstation has been lost.")
CONNECTIVITY_RESTORED = (
    1102,
    "Connectivity between IB and Trader Workstation has been restored - data maintained. "
    f"All data farms are connected: usfarm{FARM_SUFFIX}; ushmds{FARM_SUFFIX}; "
    f"secdefnj{FARM_SUFFIX}.",
)
CONNECTIVITY_RESTORED_DATA_LOST = (
    1101,
    "Connectivity between IB and Trader Workstation has been restored - data lost.*",
)
# Another login of the same user took the market data (ibkr.info article 1719): session-wide.
COMPETING_SESSION = (10197, "No market data during competing live session")
# No market data subscription: head timestamps answer 354, historical data 162 (ib_insync
# issues 19, 234, 461). IBKR names the venue as its data farm knows it.
NOT_SUBSCRIBED = (354, "Requested market data is not subscribed.")
PERMISSION_VENUES = {"NASDAQ": "ISLAND", "ARCA": "AMEX"}
UNSUPPORTED_VERSION = 503  # text names the versions this gateway serves
NOT_SUPPORTED = 10000  # any message id the simulator does not serve


def validation(cause: str) -> tuple[int, str]:
    return VALIDATION, f"Error validating request.-'bX' : cause - {cause}"


def no_data(symbol: str, exchange: str, what_to_show: str) -> tuple[int, str]:
    return (
        NO_DATA,
        HMDS + f"HMDS query returned no data: {symbol}@{exchange} {what_to_show.title()}",
    )


def no_permissions(primary_exchange: str, sec_type: str) -> tuple[int, str]:
    venue = PERMISSION_VENUES.get(primary_exchange, primary_exchange)
    return 162, HMDS + f"No market data permissions for {venue} {sec_type}"


def cancelled(req_id: int) -> tuple[int, str]:
    return CANCELLED, HMDS + f"API historical data query cancelled: {req_id}"


def message_rate(received: int) -> tuple[int, str]:
    return MESSAGE_RATE, (
        f"Max rate of messages per second has been exceeded:max=50 rec={received} (1)"
    )


# Durations and contracts (docs/tws-protocol.md, "Durations", "Futures").
TIME_LENGTH_EXCEEDED = (162, HMDS + "Time length exceed max.")
CONTINUOUS_END_DATE = (
    10339,
    "Setting end date/time for continuous future security type is not allowed.",
)
