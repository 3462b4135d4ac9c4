"""The catalog's tests share: deterministic bars, the calls docs/catalog.md shows for pyarrow,
DuckDB and polars (on a folder or on S3), and a real S3-compatible server (moto's)."""

from __future__ import annotations

import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import s3fs

from fetcher.domain.bars import COLUMNS, BarBatch
from tests.support import Process, free_port, wait_until

# The same calls docs/catalog.md shows, with the catalog root filled in.
DUCKDB_SQL = """
SELECT * FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true,
    hive_types = {{'what_to_show': VARCHAR, 'timeframe': VARCHAR, 'session': VARCHAR,
                  'symbol': VARCHAR, 'exchange': VARCHAR, 'currency': VARCHAR,
                  'year': INTEGER}})
"""
POLARS_HIVE_SCHEMA = {
    "what_to_show": pl.String,
    "timeframe": pl.String,
    "session": pl.String,
    "symbol": pl.String,
    "exchange": pl.String,
    "currency": pl.String,
    "year": pl.Int32,
}
PYARROW_PARTITIONING = ds.partitioning(
    pa.schema(
        [
            ("what_to_show", pa.string()),
            ("timeframe", pa.string()),
            ("session", pa.string()),
            ("symbol", pa.string()),
            ("exchange", pa.string()),
            ("currency", pa.string()),
            ("year", pa.int32()),
        ]
    ),
    flavor="hive",
)
# (symbol, bar start in epoch seconds, close) of every row: what each reader is compared by
KEYED = ("symbol", "ts", "close")


def epoch(*args: int) -> int:
    """Epoch seconds of a UTC date and time."""
    return int(datetime(*args, tzinfo=UTC).timestamp())


def bars(ts, version: float = 0.0) -> BarBatch:
    """Deterministic bars: every value derives from ts; `version` changes prices, not times."""
    ts = np.asarray(ts, dtype=np.int64)
    base = 100.0 + (ts % 10_007) / 100.0 + version
    return BarBatch(
        ts=ts,
        open=base,
        high=base + 1.5,
        low=base - 1.25,
        close=base + 0.5,
        volume=(ts % 997).astype(np.float64) * 10.0 + version,
        wap=base + 0.25,
        bar_count=(ts % 613) + int(version),
    )


def assert_same(actual: BarBatch, expected: BarBatch) -> None:
    for name in COLUMNS:
        got, want = getattr(actual, name), getattr(expected, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def rows_by_pyarrow(root: str, filesystem: pafs.FileSystem | None = None) -> list[tuple]:
    table = ds.dataset(
        root, filesystem=filesystem, format="parquet", partitioning=PYARROW_PARTITIONING
    ).to_table(columns=list(KEYED))
    ts = table.column("ts").cast(pa.timestamp("s", tz="UTC")).cast(pa.int64()).to_pylist()
    symbols, closes = table.column("symbol").to_pylist(), table.column("close").to_pylist()
    return sorted(zip(symbols, ts, closes, strict=True))


def rows_by_duckdb(root: str, connection=None) -> list[tuple]:
    sql = f"SELECT symbol, epoch(ts)::BIGINT, close FROM ({DUCKDB_SQL.format(root=root)})"
    return sorted((connection or duckdb).sql(sql).fetchall())


def duckdb_with_s3() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection reading s3:// through fsspec's s3fs (the AWS_* variables), as
    docs/catalog.md shows for a DuckDB without its httpfs extension (this machine cannot
    download it). A new s3fs instance: fsspec would hand back one of an earlier server's."""
    db = duckdb.connect()
    db.register_filesystem(s3fs.S3FileSystem(skip_instance_cache=True))
    return db


def rows_by_polars(root: str) -> list[tuple]:
    frame = (
        pl.scan_parquet(
            f"{root}/**/*.parquet", hive_partitioning=True, hive_schema=POLARS_HIVE_SCHEMA
        )
        .select("symbol", pl.col("ts").dt.epoch("s"), "close")
        .collect()
    )
    return sorted(frame.rows())


class S3Server(Process):
    """A real S3-compatible server of the test's own: moto's standalone server, in a process of
    its own on a free loopback port, with one bucket. `env` is what a process needs to reach
    it: the standard AWS_* variables."""

    BUCKET = "ibdata-catalog"

    def __init__(self, log: Path):
        super().__init__(dict(os.environ), log, "s3")
        self.port = free_port()
        self.env_vars = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
            "AWS_ACCESS_KEY_ID": "ibdata-test",
            "AWS_SECRET_ACCESS_KEY": "ibdata-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def url(self, prefix: str) -> str:
        """DATA_CATALOG_URL of a catalog under `prefix` in the bucket."""
        return f"s3://{self.BUCKET}/{prefix}"

    def filesystem(self, **options) -> pafs.S3FileSystem:
        """pyarrow's S3 file system on this server."""
        return pafs.S3FileSystem(
            endpoint_override=self.env_vars["AWS_ENDPOINT_URL"],
            access_key=self.env_vars["AWS_ACCESS_KEY_ID"],
            secret_key=self.env_vars["AWS_SECRET_ACCESS_KEY"],
            region=self.env_vars["AWS_DEFAULT_REGION"],
            **options,
        )

    def start(self) -> S3Server:
        self.popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            output_to_log=True,
        )
        wait_until(self._listening, 60, f"the S3 server on port {self.port}")
        self.filesystem(allow_bucket_creation=True).create_dir(self.BUCKET)
        return self

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the S3 server ended:\n{self.text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def keys(self, prefix: str) -> list[str]:
        """Every object under `prefix`, by its path below it."""
        top = f"{self.BUCKET}/{prefix}"
        selector = pafs.FileSelector(top, recursive=True, allow_not_found=True)
        return sorted(
            info.path.removeprefix(top + "/")
            for info in self.filesystem().get_file_info(selector)
            if info.type == pafs.FileType.File
        )
