"""The fetcher's timings in one place: heartbeats, staleness, recovery, connections, task limits."""

# A running run's executor records that it is alive this often...
HEARTBEAT_S = 2.0
# ... so a running run silent for this long has lost its worker (the default of the setting
# FETCH_STALE_AFTER_S).
STALE_AFTER_S = 60.0
# Several gateways (IBKR_GATEWAYS): a gateway's claim on a chunk lasts this long, renewed every
# heartbeat of its worker, so the chunks of a gateway that went away pass to the others soon.
CLAIM_S = 10.0
# A gateway with nothing to claim looks again this often; a run's executor looks this often
# whether the gateways have served its item's chunks (one cheap count).
SHARE_POLL_S = 0.1
ITEM_POLL_S = 0.05
# Beat looks for such runs this often (more often when FETCH_STALE_AFTER_S is shorter), and
# resumes each at most this many times.
RECOVER_EVERY_S = 60.0
MAX_RECOVERIES = 3

# A fetch task may run this long (years of small bars take hours); the broker must not hand
# its message to another worker before (Redis' visibility_timeout is set above it).
FETCH_TASK_TIME_LIMIT_S = 24 * 3600
FETCH_TASK_SOFT_TIME_LIMIT_S = FETCH_TASK_TIME_LIMIT_S - 60
BROKER_VISIBILITY_TIMEOUT_S = FETCH_TASK_TIME_LIMIT_S + 3600

# The ibkr worker's connection: its first attempt waited for at start-up, waited for by a run
# that lost it, and re-tried with backoff. The worker consumes the ibkr queue only while
# connected, and checks that this often.
WORKER_CONNECT_WAIT_S = 30.0
RUN_RECONNECT_WAIT_S = 300.0
RECONNECT_MAX_S = 60.0
CONNECTION_CHECK_S = 0.2
CONSUMER_SYNC_S = 1.0
# An incident the database or the mail server would not take is tried again after this long.
ALERT_RETRY_S = 60.0

# A run waits this long for PostgreSQL to come back before it fails.
DATABASE_OUTAGE_MAX_S = 300.0

# The gateway's passing troubles (fetcher/ibkr/holds.py). Requests wait while its link to IBKR
# (1100) or its historical farm (2105) is down, at most this long before they fail for the run;
# a competing session (10197) or the nightly reset's false 200 holds them a back-off that doubles
# from the first to the last value here, then one request probes.
HOLD_MAX_S = 1800.0
TROUBLE_PROBE_FIRST_S = 1.0
TROUBLE_PROBE_MAX_S = 60.0
# A 200 for a contract being qualified counts as the reset's false 200 this long after the
# gateway's link to IBKR came back (1101/1102) or the connection did (a restart).
RESET_GRACE_S = 300.0

# A window answered "no data" although the calendar says it traded is asked again by later
# fetches until it has been answered empty this many times, over at least this long; then it
# counts as covered (a halted or thin day, not a passing glitch of the gateway).
EMPTY_RETRY_TRIES = 3
EMPTY_RETRY_S = 2 * 86_400.0

# A scheduled `bars check` of the whole store (a year of minutes for three instruments takes
# seconds; this bounds a very large store).
CHECK_TASK_TIME_LIMIT_S = 6 * 3600
