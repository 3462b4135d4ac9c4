"""Pictures: equity curves with their drawdown, and a sweep's heatmap, as PNG files (matplotlib)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..domain.metrics import drawdown
from ..models import BacktestRun
from .exports import file_replace


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, works on servers
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    return file_replace(path, lambda temp: figure.savefig(temp, dpi=110, bbox_inches="tight"))


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
