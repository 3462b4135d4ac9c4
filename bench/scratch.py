"""A scratch database for a benchmark: a fresh PostgreSQL database, or a SQLite file."""

from __future__ import annotations

import os
from pathlib import Path


def scratch_database(workdir: Path, name: str = "ibdata_bench_pacing") -> str:
    """A fresh PostgreSQL database (the product's storage path) when the server is there,
    else a SQLite file."""
    url = os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{name}")
    if url.startswith("postgres"):
        try:
            import psycopg

            admin = url.rsplit("/", 1)[0] + "/postgres"
            with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
                database = url.rsplit("/", 1)[1]
                conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
                conn.execute(f'CREATE DATABASE "{database}"')
            return url
        except Exception as exc:  # no server here: fall back to the embedded default
            print(f"(PostgreSQL unavailable: {exc}; using SQLite)")
    return f"sqlite:///{workdir / 'bench.sqlite3'}"
