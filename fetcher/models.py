"""Instruments, bars, fetch runs and their planned requests (chunks), incidents told to the admins."""

from __future__ import annotations

import uuid

from django.db import models

from .domain.timeframes import TIMEFRAMES, WhatToShow

TIMEFRAME_CHOICES = [(t.code, t.name) for t in TIMEFRAMES.values()]
WHAT_TO_SHOW_CHOICES = [(w.value, w.name) for w in WhatToShow]


class Instrument(models.Model):
    """A tradable contract, qualified against the gateway (con_id set once qualified)."""

    # 4-byte key: it is repeated in every Bar row.
    id = models.AutoField(primary_key=True)
    symbol = models.CharField(max_length=32)
    sec_type = models.CharField(max_length=8, default="STK")
    exchange = models.CharField(max_length=16, default="SMART")
    primary_exchange = models.CharField(max_length=16, blank=True, default="")
    currency = models.CharField(max_length=8, default="USD")
    con_id = models.BigIntegerField(null=True, blank=True, unique=True)
    local_symbol = models.CharField(max_length=32, blank=True, default="")
    long_name = models.CharField(max_length=128, blank=True, default="")
    time_zone = models.CharField(max_length=64, blank=True, default="")
    # Earliest data point the gateway has, per what_to_show name: {"TRADES": "<iso UTC>"}.
    head_timestamps = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.UniqueConstraint(
                fields=["symbol", "sec_type", "exchange", "currency"], name="instrument_spec_unique"
            )
        ]

    def __str__(self) -> str:
        return self.local_symbol or self.symbol


class Bar(models.Model):
    """One OHLCV bar.

    Sized for hundreds of millions of rows: no surrogate id (the composite primary key
    is the one index, and it serves "bars of X between t1 and t2" as a range scan);
    timeframe and what_to_show are 2-byte codes, not strings; prices are 8-byte floats
    (exact for IBKR's tick sizes, and what the Parquet catalog and backtests use) rather
    than variable-length numerics; columns are ordered so rows pack without padding.
    """

    pk = models.CompositePrimaryKey("instrument_id", "timeframe", "what_to_show", "rth", "ts")
    # No foreign-key constraint in the database: checking it costs more than half of the
    # time of every COPY (measured: ~3.8 of ~6 us a bar). Bars are only ever written for an
    # instrument the same fetch has just stored, and Django still cascades deletions.
    instrument = models.ForeignKey(
        Instrument, on_delete=models.CASCADE, db_index=False, db_constraint=False
    )
    timeframe = models.SmallIntegerField(choices=TIMEFRAME_CHOICES)
    what_to_show = models.SmallIntegerField(choices=WHAT_TO_SHOW_CHOICES, default=WhatToShow.TRADES)
    # Regular trading hours only (the default), or extended hours too: two different series
    # (a daily or hourly bar of the whole session is not the one of regular hours). The
    # flag fits in the row's alignment padding, so it costs no space.
    rth = models.BooleanField(default=True, db_default=True)
    ts = models.DateTimeField(help_text="bar start, UTC")
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    # Missing (NaN; NULL where the database has no NaN, as SQLite) where IBKR sends -1: quote
    # bars (MIDPOINT, BID, ASK, BID_ASK) have no volume or WAP.
    volume = models.FloatField(default=0, null=True)
    wap = models.FloatField(default=0, null=True)
    bar_count = models.IntegerField(default=0)

    class Meta:
        ordering = ["instrument_id", "timeframe", "what_to_show", "rth", "ts"]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.get_timeframe_display()} {self.ts:%Y-%m-%d %H:%M}"


class GatewayKind(models.TextChoices):
    """Where the bars came from: the built-in simulator (synthetic bars), a real TWS / IB Gateway,
    or files imported by `manage.py bars import` (real bars from elsewhere: they may share a store
    with a real gateway's, never with the simulator's)."""

    SIMULATOR = "simulator", "ibdata simulator"
    IBKR = "ibkr", "TWS / IB Gateway"
    IMPORT = "import", "imported files"


class Series(models.Model):
    """One stored series of bars (instrument, timeframe, whatToShow, session): where its bars
    came from, how many there are and their first and last bar (kept when a fetch ends, so
    the admin needs no count over the Bar table)."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="series")
    timeframe = models.SmallIntegerField(choices=TIMEFRAME_CHOICES)
    what_to_show = models.SmallIntegerField(choices=WHAT_TO_SHOW_CHOICES)
    rth = models.BooleanField()
    source = models.CharField(max_length=16, choices=GatewayKind.choices)
    account = models.CharField(max_length=32, blank=True, default="")
    bar_count = models.BigIntegerField(default=0)
    first_ts = models.DateTimeField(null=True, blank=True)
    last_ts = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The last `manage.py bars check` of the series: when, how many findings, their lines.
    checked_at = models.DateTimeField(null=True, blank=True)
    check_findings = models.IntegerField(null=True, blank=True)
    check_report = models.TextField(blank=True, default="")
    # Windows ([start, end] epoch seconds) a repair fetched again and the gateway answered the
    # same (an empty session, a thin one, a spike): what they hold is what IBKR has, and a check
    # does not count them as findings again.
    confirmed = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["instrument_id", "timeframe", "what_to_show", "rth"]
        constraints = [
            models.UniqueConstraint(
                fields=["instrument", "timeframe", "what_to_show", "rth"], name="series_unique"
            )
        ]
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return f"{self.instrument} {self.get_timeframe_display()} {self.get_what_to_show_display()}"


class RunStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RequestedBy(models.TextChoices):
    CLI = "cli"
    ADMIN = "admin"
    SCHEDULE = "schedule"
    BACKTEST = "backtest"  # the bars a backtest needed (backtest --data-source ibkr)
    REPAIR = "repair"  # what `bars check --repair` found missing or suspect


class FetchRun(models.Model):
    """One user-visible fetch: what was asked, who asked, which gateway served it, how it went."""

    instruments = models.JSONField(help_text="the instrument specs as the user gave them")
    # The dates the user asked for (inclusive, in each exchange's time zone); empty means
    # "choose": after the last stored bar, or as far back as the gateway has data.
    start = models.DateField(null=True, blank=True)
    end = models.DateField(null=True, blank=True)
    timeframe = models.SmallIntegerField(choices=TIMEFRAME_CHOICES)
    what_to_show = models.SmallIntegerField(choices=WHAT_TO_SHOW_CHOICES, default=WhatToShow.TRADES)
    use_rth = models.BooleanField(default=True)
    since_head = models.BooleanField(default=False)
    requested_by = models.CharField(
        max_length=16, choices=RequestedBy.choices, default=RequestedBy.CLI
    )
    # The beat schedule (django-celery-beat PeriodicTask name) that started it, if any: a
    # schedule starts no run while its previous one is still going.
    schedule = models.CharField(max_length=200, blank=True, default="")
    source = models.CharField(
        max_length=16, choices=GatewayKind.choices, blank=True, default="", help_text="set on start"
    )
    gateway_host = models.CharField(max_length=128, blank=True, default="")
    gateway_port = models.IntegerField(null=True, blank=True)
    server_version = models.IntegerField(null=True, blank=True)
    account = models.CharField(max_length=32, blank=True, default="")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    error = models.TextField(blank=True, default="")
    task_id = models.CharField(max_length=64, blank=True, default="")
    requests_made = models.IntegerField(default=0)
    bars_stored = models.BigIntegerField(default=0)
    errors_count = models.IntegerField(default=0)
    chunks_planned = models.IntegerField(default=0)
    chunks_done = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    recoveries = models.IntegerField(default=0, help_text="times resumed after its worker died")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]
        # What the admin's fetch actions require (viewing runs does not let anyone start one).
        permissions = [("fetch_bars", "Can start, update, cancel and retry fetches")]

    def __str__(self) -> str:
        return f"FetchRun {self.pk} ({self.status})"


class ItemStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FetchRunItem(models.Model):
    """One instrument of a run: its outcome line (bars fetched, or why it failed)."""

    run = models.ForeignKey(FetchRun, on_delete=models.CASCADE, related_name="items")
    spec = models.CharField(max_length=64, help_text="the instrument as the user typed it")
    position = models.IntegerField(default=0)
    # The contract asked for, as fields (never text to parse again); con_id when known.
    symbol = models.CharField(max_length=32, default="")
    sec_type = models.CharField(max_length=8, default="STK")
    exchange = models.CharField(max_length=16, default="SMART")
    primary_exchange = models.CharField(max_length=16, blank=True, default="")
    currency = models.CharField(max_length=8, default="USD")
    last_trade_date = models.CharField(max_length=16, blank=True, default="")
    con_id = models.BigIntegerField(null=True, blank=True)
    instrument = models.ForeignKey(Instrument, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    # The range actually fetched (UTC), and why it was chosen.
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True, default="")
    # When IBKR's history changed under the stored bars (a split): what was seen, and done.
    history = models.CharField(max_length=300, blank=True, default="")
    bars_stored = models.BigIntegerField(default=0)
    chunks_planned = models.IntegerField(default=0)
    chunks_done = models.IntegerField(default=0)
    error_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["run_id", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "spec"], name="run_item_unique")]

    def __str__(self) -> str:
        return f"{self.spec} ({self.status})"


class ChunkStatus(models.TextChoices):
    PENDING = "pending"
    DONE = "done"
    EMPTY = "empty"  # the gateway had no data in this window
    FAILED = "failed"
    CANCELLED = "cancelled"


class FetchChunk(models.Model):
    """One planned historical-data request: a window of one instrument's bars."""

    run = models.ForeignKey(FetchRun, on_delete=models.CASCADE, related_name="chunks")
    item = models.ForeignKey(FetchRunItem, on_delete=models.CASCADE, related_name="chunks")
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    duration = models.CharField(max_length=16, help_text="IBKR durationStr")
    request_end = models.CharField(max_length=32, help_text="IBKR endDateTime")
    status = models.CharField(
        max_length=16, choices=ChunkStatus.choices, default=ChunkStatus.PENDING
    )
    attempts = models.IntegerField(default=0)
    bars_received = models.IntegerField(default=0)
    # Its bars merged into the catalog (set when they are, whatever became of the run).
    exported = models.BooleanField(default=False)
    last_error_code = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # The gateway (IBKR_GATEWAYS name) that served it, or holds it while `claimed_until` is
    # ahead: several gateways share a run's chunks, each claiming the next pending ones.
    gateway = models.CharField(max_length=32, blank=True, default="")
    claimed_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run_id", "instrument_id", "window_start"]
        indexes = [
            models.Index(fields=["run", "status"]),
            # stored and not in the catalog yet: a handful of rows at any time
            models.Index(
                fields=["instrument"],
                name="chunk_export_pending",
                condition=models.Q(status="done", exported=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instrument} {self.window_start:%Y-%m-%d %H:%M}..{self.window_end:%Y-%m-%d %H:%M}"


class GatewayState(models.Model):
    """A gateway's health as its ibkr worker last told it (every heartbeat): connected or not,
    since when, to what (a simulator or a real TWS / IB Gateway), and why not."""

    name = models.CharField(max_length=32, primary_key=True)
    host = models.CharField(max_length=128, blank=True, default="")
    port = models.IntegerField(null=True, blank=True)
    client_id = models.IntegerField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, default="")
    connected = models.BooleanField(default=False)
    since = models.DateTimeField(null=True, blank=True, help_text="connected or down since")
    simulated = models.BooleanField(default=False)
    server_version = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    seen_at = models.DateTimeField(null=True, blank=True, help_text="the worker's last heartbeat")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Coverage(models.Model):
    """A window of one series whose bars are all stored (or known not to exist).

    Planning subtracts these windows, so a repeated fetch makes no request, and windows
    with no bars (holidays, halts) are not asked for again. A window answered empty although
    the calendar says it traded is suspect (`empty_since` set): later fetches ask for it again
    until it has been answered empty often and long enough (selectors.coverage_windows).
    """

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE)
    timeframe = models.SmallIntegerField(choices=TIMEFRAME_CHOICES)
    what_to_show = models.SmallIntegerField(choices=WHAT_TO_SHOW_CHOICES)
    rth = models.BooleanField()
    start = models.DateTimeField()
    end = models.DateTimeField()
    source = models.CharField(max_length=16, choices=GatewayKind.choices, default="")
    # Suspect windows only: when first answered empty for sessions that traded, and how often.
    empty_since = models.DateTimeField(null=True, blank=True)
    empty_tries = models.SmallIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["instrument", "timeframe", "what_to_show", "rth", "start"])]

    def __str__(self) -> str:
        return f"{self.instrument} {self.start:%Y-%m-%d %H:%M}..{self.end:%Y-%m-%d %H:%M}"


class IncidentKind(models.TextChoices):
    SCHEDULED_RUN = "scheduled_run"  # a schedule's run failed or was partial
    GATEWAY_UNREACHABLE = "gateway_unreachable"  # the ibkr worker could not connect for a while
    LOGGED_OFF = "logged_off"  # the gateway is up but its IBKR session is logged off
    COMPETING_SESSION = "competing_session"  # 10197: another session uses the market data
    STORE_CHECK = "store_check"  # a scheduled `bars check` found something wrong


class Incident(models.Model):
    """Something the admins were told of (fetcher.services.alerts): one open row per (kind,
    key) at a time, so several processes and restarts mail it once, and once when it is over."""

    kind = models.CharField(max_length=32, choices=IncidentKind.choices)
    key = models.CharField(max_length=200, help_text="what it concerns: a schedule, a gateway")
    message = models.TextField(help_text="what was said when it opened")
    last_message = models.TextField(blank=True, default="", help_text="the latest occurrence")
    occurrences = models.IntegerField(default=1)
    opened_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    notified_at = models.DateTimeField(
        null=True, blank=True, help_text="when the admins were mailed (logged only, without admins)"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    close_message = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "key"],
                condition=models.Q(closed_at__isnull=True),
                name="incident_one_open_per_kind_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.key}"


class StoreIdentity(models.Model):
    """This database's identity, made once on first use: a catalog records it and then belongs
    to this database only (two stores never write into one catalog)."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "store identity"

    def __str__(self) -> str:
        return str(self.uuid)
