"""Pictures: equity curves with their drawdown, and a sweep's heatmap, as PNG files (matplotlib)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..domain.metrics import drawdown
from ..domain.problems import InvalidRequest
from ..models import BacktestRun


def picture_path_check(*, field: str, path: Path) -> None:
    """A picture can be written at `path`: not a folder, and its folder exists (or can be made)
    and is writable; InvalidRequest about `field` otherwise, so that it fails before any work."""
    path = Path(path)
    if path.is_dir():
        raise InvalidRequest.about(field, f"{{{field}}} '{path}' is a folder: name a .png file")
    folder = path.absolute().parent
    while not folder.exists():  # _save makes the missing folders
        folder = folder.parent
    if not folder.is_dir():
        raise InvalidRequest.about(field, f"{{{field}}} '{path}': {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidRequest.about(field, f"{{{field}}} '{path}': cannot write in {folder}")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, works on servers
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    """Write the PNG next to its final name, then rename: never half a picture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    try:
        figure.savefig(temp, dpi=110, bbox_inches="tight")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def equity_picture_write(
    *, path: Path, title: str, curves: list[tuple[str, np.ndarray, np.ndarray]]
) -> Path:
    """Equity (top) and drawdown (bottom) of each (label, epoch seconds, equity) curve."""
    plt = _pyplot()
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for label, ts, equity in curves:
        when = ts.astype("datetime64[s]")
        (line,) = top.plot(when, equity, linewidth=1.1, label=label)
        bottom.fill_between(
            when, -drawdown(equity) * 100, 0, alpha=0.3, color=line.get_color(), label=label
        )
    top.set_title(title)
    top.set_ylabel("Equity [$]")
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize=8)
    bottom.set_ylabel("Drawdown [%]")
    bottom.grid(alpha=0.3)
    figure.autofmt_xdate()
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)


def sweep_heatmap_write(
    *, path: Path, runs: list[BacktestRun], x: str, y: str, metric: str, title: str
) -> Path:
    """`metric` over the grid of parameters `x` (columns) and `y` (rows); blank where undefined."""
    plt = _pyplot()
    xs = sorted({r.params[x] for r in runs})
    ys = sorted({r.params[y] for r in runs})
    grid = np.full((len(ys), len(xs)), np.nan)
    for run in runs:
        value = run.metrics.get(metric)
        if isinstance(value, int | float) and math.isfinite(value):
            grid[ys.index(run.params[y]), xs.index(run.params[x])] = value
    figure, axes = plt.subplots(figsize=(max(5, 0.55 * len(xs) + 2), max(4, 0.4 * len(ys) + 1.5)))
    image = axes.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap="viridis")
    axes.set_xticks(range(len(xs)), [str(v) for v in xs])
    axes.set_yticks(range(len(ys)), [str(v) for v in ys])
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label=metric)
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)
