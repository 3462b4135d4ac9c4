"""Bar storage: writes BarBatch windows into the Bar table (binary COPY on PostgreSQL, ORM elsewhere)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice

import numpy as np
from django.db import IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from fetcher.domain.bars import BarBatch
from fetcher.models import Bar, Instrument

_KEY_COLUMNS = ("instrument_id", "timeframe", "what_to_show", "rth", "ts")
_VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "wap", "bar_count")
_COLUMNS = _KEY_COLUMNS + _VALUE_COLUMNS
_ORM_BATCH_SIZE = 1000
# Per-session staging table for re-fetched windows; emptied by every commit.
_STAGE_TABLE = "ibdata_bar_stage"

# COPY ... (FORMAT BINARY): a signature, then per row a field count and each field as its
# byte length followed by its big-endian value, then a -1 trailer. A numpy record per row
# lets whole columns be written with one assignment each, with no per-row Python.
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # + flags and header-extension length
_COPY_TRAILER = b"\xff\xff"
_FIELD_TYPES = {
    "instrument_id": ">i4",
    "timeframe": ">i2",
    "what_to_show": ">i2",
    "rth": "u1",  # bool: one byte, 0 or 1
    "ts": ">i8",  # timestamptz: microseconds since 2000-01-01 UTC
    "open": ">f8",
    "high": ">f8",
    "low": ">f8",
    "close": ">f8",
    "volume": ">f8",
    "wap": ">f8",
    "bar_count": ">i4",
}
_ROW_DTYPE = np.dtype(
    [("n_fields", ">i2")]
    + [item for name in _COLUMNS for item in ((f"{name}_len", ">i4"), (name, _FIELD_TYPES[name]))]
)
_PG_EPOCH = 946_684_800  # 2000-01-01T00:00:00Z in Unix seconds


def _row_template() -> np.ndarray:
    """A row with its field count and every field's length set; the values come per batch."""
    row = np.zeros((), dtype=_ROW_DTYPE)
    row["n_fields"] = len(_COLUMNS)
    for name in _COLUMNS:
        row[f"{name}_len"] = np.dtype(_FIELD_TYPES[name]).itemsize
    return row


_ROW_TEMPLATE = _row_template()

# What bars_select reads back: ts as stored (microseconds since 2000-01-01), then the values.
_READ_COLUMNS = ("ts",) + _VALUE_COLUMNS
_READ_DTYPE = np.dtype(
    [("n_fields", ">i2")]
    + [
        item
        for name in _READ_COLUMNS
        for item in ((f"{name}_len", ">i4"), (name, _FIELD_TYPES[name]))
    ]
)
_COPY_HEADER_BYTES = len(_COPY_SIGNATURE)


@dataclass(frozen=True)
class SeriesBatch:
    """Bars of one series (instrument, timeframe, what_to_show, session) to write."""

    instrument_id: int
    timeframe: int
    what_to_show: int
    rth: bool
    batch: BarBatch


def bars_upsert(
    *,
    instrument_id: int,
    timeframe: int,
    what_to_show: int,
    rth: bool = True,
    batch: BarBatch,
    fresh: bool = False,
) -> int:
    """Write one window of bars, updating bars already stored in place; returns len(batch).

    When it returns, every bar of the batch is stored as given: new ones inserted, changed
    ones updated, identical ones left as they are (not rewritten, so re-fetching history
    leaves no dead rows behind). fresh=True says the window is known to hold no rows yet:
    on PostgreSQL the bars are then copied straight into the table. Should some exist after
    all (a redelivered chunk), the write falls back to the upsert, so a wrong hint costs
    time, never correctness.
    """
    return bars_upsert_many(
        series=[SeriesBatch(instrument_id, timeframe, what_to_show, rth, batch)], fresh=fresh
    )


def bars_upsert_many(*, series: list[SeriesBatch], fresh: bool = False) -> int:
    """bars_upsert for several windows at once: one COPY (one statement, one round trip) for
    all of them, which is what makes small windows (a day of minutes) cheap to write.

    The windows must not overlap one another."""
    series = [s for s in series if len(s.batch)]
    if not series:
        return 0
    for s in series:
        _check_batch(s.batch)
    # The table has no foreign-key constraint (see Bar.instrument): check the instruments
    # here, once per call rather than once per row.
    wanted = {s.instrument_id for s in series}
    missing = wanted - set(Instrument.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    if missing:
        raise IntegrityError(f"bars for instruments that do not exist: {sorted(missing)}")
    connection = connections[router.db_for_write(Bar)]
    if connection.vendor != "postgresql":
        return sum(
            _bars_upsert_orm(
                instrument_id=s.instrument_id,
                timeframe=s.timeframe,
                what_to_show=s.what_to_show,
                rth=s.rth,
                batch=s.batch,
            )
            for s in series
        )
    payload = _copy_payload(series)
    if fresh:
        # Outside a transaction the COPY is one of its own (one round trip fewer than
        # BEGIN ... COMMIT); inside the caller's, a savepoint keeps a failure from ending it.
        own_transaction = not connection.in_atomic_block and connection.get_autocommit()
        guard = nullcontext() if own_transaction else transaction.atomic(using=connection.alias)
        try:
            with guard:
                return _copy(connection, Bar._meta.db_table, payload)
        except IntegrityError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != "23505":  # unique_violation
                raise
    return _upsert_via_stage(connection, payload)


def _check_batch(batch: BarBatch) -> None:
    n = len(batch.ts)
    if any(len(getattr(batch, name)) != n for name in _VALUE_COLUMNS):
        raise ValueError("bar batch columns differ in length")
    if n > 1 and not np.all(batch.ts[1:] > batch.ts[:-1]):
        raise ValueError("bar batch timestamps must be strictly increasing (sorted, no repeats)")


def _copy_payload(series: list[SeriesBatch]) -> memoryview:
    """The windows as one COPY BINARY stream, built column by column."""
    head, size = len(_COPY_SIGNATURE), _ROW_DTYPE.itemsize
    total = sum(len(s.batch) for s in series)
    buffer = np.empty(head + total * size + len(_COPY_TRAILER), dtype=np.uint8)
    buffer[:head] = np.frombuffer(_COPY_SIGNATURE, dtype=np.uint8)
    buffer[head + total * size :] = np.frombuffer(_COPY_TRAILER, dtype=np.uint8)
    rows = buffer[head : head + total * size].view(_ROW_DTYPE)
    rows[...] = _ROW_TEMPLATE
    at = 0
    for s in series:
        n = len(s.batch)
        part = rows[at : at + n]
        part["instrument_id"] = s.instrument_id
        part["timeframe"] = s.timeframe
        part["what_to_show"] = s.what_to_show
        part["rth"] = bool(s.rth)
        part["ts"] = (np.asarray(s.batch.ts, dtype=np.int64) - _PG_EPOCH) * 1_000_000
        for name in _VALUE_COLUMNS:
            part[name] = getattr(s.batch, name)
        at += n
    return buffer.data


def _copy(connection: BaseDatabaseWrapper, table: str, payload: memoryview) -> int:
    columns = ", ".join(_COLUMNS)
    statement = f"COPY {connection.ops.quote_name(table)} ({columns}) FROM STDIN (FORMAT BINARY)"
    with connection.cursor() as cursor:
        # Django's cursor wrapper passes copy() through unwrapped: map psycopg's errors
        # to Django's (IntegrityError and friends) as for any other statement.
        with connection.wrap_database_errors, cursor.copy(statement) as copy:
            copy.write(payload)
        return cursor.rowcount


def _upsert_via_stage(connection: BaseDatabaseWrapper, payload: memoryview) -> int:
    """COPY into the session's staging table, then one INSERT ... ON CONFLICT DO UPDATE."""
    table = connection.ops.quote_name(Bar._meta.db_table)
    columns = ", ".join(_COLUMNS)
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in _VALUE_COLUMNS)
    stored = ", ".join(f"{table}.{name}" for name in _VALUE_COLUMNS)
    given = ", ".join(f"EXCLUDED.{name}" for name in _VALUE_COLUMNS)
    # Only a commit empties the staging table: inside a caller's transaction, empty it here.
    commits_on_exit = not connection.in_atomic_block and connection.get_autocommit()
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE_TABLE}"
            f" (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        staged = _copy(connection, _STAGE_TABLE, payload)
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {_STAGE_TABLE}"
            f" ON CONFLICT ({', '.join(_KEY_COLUMNS)}) DO UPDATE SET {updates}"
            f" WHERE ({stored}) IS DISTINCT FROM ({given})"
        )
        if not commits_on_exit:
            cursor.execute(f"TRUNCATE {_STAGE_TABLE}")
    return staged


def _bars_upsert_orm(
    *, instrument_id: int, timeframe: int, what_to_show: int, rth: bool, batch: BarBatch
) -> int:
    """The portable path: bulk_create with ON CONFLICT DO UPDATE, in batches."""
    rows = zip(*(getattr(batch, name).tolist() for name in ("ts",) + _VALUE_COLUMNS), strict=True)
    with transaction.atomic(using=router.db_for_write(Bar)):
        while chunk := list(islice(rows, _ORM_BATCH_SIZE)):
            Bar.objects.bulk_create(
                [
                    Bar(
                        instrument_id=instrument_id,
                        timeframe=timeframe,
                        what_to_show=what_to_show,
                        rth=rth,
                        ts=datetime.fromtimestamp(ts, UTC),
                        open=open_,
                        high=high,
                        low=low,
                        close=close,
                        volume=volume,
                        wap=wap,
                        bar_count=bar_count,
                    )
                    for ts, open_, high, low, close, volume, wap, bar_count in chunk
                ],
                update_conflicts=True,
                unique_fields=["instrument", "timeframe", "what_to_show", "rth", "ts"],
                update_fields=list(_VALUE_COLUMNS),
            )
    return len(batch)


def bars_select(
    connection: BaseDatabaseWrapper,
    *,
    where: str,
    params: list,
    first: int | None = None,
    last: int | None = None,
) -> BarBatch:
    """Bars of `fetcher_bar WHERE <where>` sorted by ts (the `first` or `last` ones when
    given), read with one binary COPY on PostgreSQL: rows arrive as fixed-width records that
    numpy takes as they are, with no Python object per value."""
    table = connection.ops.quote_name(Bar._meta.db_table)
    query = f"SELECT {', '.join(_READ_COLUMNS)} FROM {table} WHERE {where} ORDER BY ts"
    if last is not None:
        query, params = f"{query} DESC LIMIT %s", [*params, last]
    elif first is not None:
        query, params = f"{query} LIMIT %s", [*params, first]
    data = bytearray()
    statement = f"COPY ({query}) TO STDOUT (FORMAT BINARY)"
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.copy(statement, params) as copy,
    ):
        for block in copy:
            data += block
    extension = int.from_bytes(data[_COPY_HEADER_BYTES - 4 : _COPY_HEADER_BYTES], "big")
    start = _COPY_HEADER_BYTES + extension
    n = (len(data) - start - len(_COPY_TRAILER)) // _READ_DTYPE.itemsize
    rows = np.frombuffer(data, dtype=_READ_DTYPE, count=n, offset=start)
    if n and (rows["n_fields"] != len(_READ_COLUMNS)).any():
        raise ValueError("unexpected COPY row layout from the Bar table")
    if last is not None:
        rows = rows[::-1]
    ts = rows["ts"].astype(np.int64) // 1_000_000 + _PG_EPOCH
    return BarBatch(
        ts=ts,
        **{name: rows[name].astype(np.float64) for name in _VALUE_COLUMNS[:-1]},
        bar_count=rows["bar_count"].astype(np.int64),
    )
