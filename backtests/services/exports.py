"""Files a backtest writes besides its pictures: the trades and the equity curves as CSV (the
command's --trades-csv and --equity-csv, the admin's downloads); paths checked before any work,
each file written whole or not at all."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from ..domain.metrics import time_text
from ..domain.problems import InvalidRequest

# The trades' columns: the symbol, then backtesting.py's (as runs store them); times UTC.
TRADE_COLUMNS = (
    "Symbol",
    "Size",
    "EntryBar",
    "ExitBar",
    "EntryPrice",
    "ExitPrice",
    "PnL",
    "ReturnPct",
    "Commission",
    "EntryTime",
    "ExitTime",
)
EQUITY_COLUMNS = ("Symbol", "Time", "Equity")  # one row per bar and curve; times UTC


def output_path_check(*, field: str, path: Path, kind: str = "") -> None:
    """A file can be written at `path`: not a folder, and its folder exists (or can be made)
    and is writable; InvalidRequest about `field` otherwise, so that it fails before any work.
    `kind` (".png") names what the file should be."""
    path = Path(path)
    if path.is_dir():
        name = f"a {kind} file" if kind else "a file"
        raise InvalidRequest.about(field, f"{{{field}}} '{path}' is a folder: name {name}")
    folder = path.absolute().parent
    while not folder.exists():  # file_replace makes the missing folders
        folder = folder.parent
    if not folder.is_dir():
        raise InvalidRequest.about(field, f"{{{field}}} '{path}': {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidRequest.about(field, f"{{{field}}} '{path}': cannot write in {folder}")


def file_replace(path: Path, write: Callable[[Path], None]) -> Path:
    """`write(temporary path)`, then the temporary file renamed over `path`: never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def trades_csv(out: TextIO, runs: Iterable[tuple[str, Sequence[dict]]]) -> None:
    """The closed trades of each (symbol, trades as runs store them), one row each."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TRADE_COLUMNS)
    for symbol, trades in runs:
        for trade in trades:
            writer.writerow([symbol, *(trade[column] for column in TRADE_COLUMNS[1:])])


def equity_csv(out: TextIO, curves: Iterable[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Each (label, epoch seconds, equity) curve, one row per point."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EQUITY_COLUMNS)
    for label, ts, equity in curves:
        writer.writerows(
            (label, time_text(t), e)
            for t, e in zip(np.asarray(ts).tolist(), np.asarray(equity).tolist(), strict=True)
        )


def csv_write(path: Path, fill: Callable[[TextIO], None]) -> Path:
    """A CSV file at `path`, filled by `fill(stream)`, written whole (file_replace)."""

    def write(temp: Path) -> None:
        with open(temp, "w", newline="", encoding="utf-8") as out:
            fill(out)

    return file_replace(path, write)
