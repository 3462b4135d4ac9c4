"""Parameter sweeps: grids typed as '5:50:5' (start:stop:step, stop included), '10,20,30' or '10'
(whole numbers or, for a float parameter, '0.5:2:0.5'), sized before they are built; the points a
strategy can run; a task's chunk of them."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .bars import BarsRequest
from .engine import TradingConfig
from .problems import InvalidRequest
from .strategy import Strategy

MAX_POINTS = 100_000  # a sweep's points: each is a stored BacktestRun


def grid_parse(text: str | int | float | None, field: str, kind: type = int) -> list | None:
    """'5:50:5' -> [5, 10, ..., 50]; '10,20' -> [10, 20]; '10' -> [10]; None -> None; with
    `kind` float, '0.5:2:0.5' -> [0.5, 1.0, 1.5, 2.0] (stepped exactly). A range of more than
    MAX_POINTS values is refused before it is built."""
    if text is None:
        return None
    raw = str(text).strip()
    try:
        if ":" in raw:
            parts = [_number(p, kind) for p in raw.split(":")]
            if len(parts) == 2:
                parts.append(kind(1))
            if len(parts) != 3:
                raise ValueError
            values = _range_values(text, field, kind, *parts)
        else:
            values = [kind(_number(p, kind)) for p in raw.split(",")]
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        example = "(10,20) or a range (5:50:5)" if kind is int else "(0.5,1) or a range (0.5:2:0.5)"
        raise InvalidRequest.about(
            field, f"{{{field}}} {text!r} is not {what}, a list {example}"
        ) from None
    return sorted(set(values))


def _number(text: str, kind: type):
    """A whole number as int; a number as an exact Decimal (float ranges step exactly)."""
    if kind is int:
        return int(text)
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(text) from None
    if not value.is_finite():
        raise ValueError(text)
    return value


def _range_values(text, field: str, kind: type, start, stop, step) -> list:
    if step <= 0 or stop < start:
        raise InvalidRequest.about(
            field, f"{{{field}}} {text!r}: use start:stop:step with start <= stop and step > 0"
        )
    count = int((stop - start) // step) + 1
    if count > MAX_POINTS:
        raise InvalidRequest.about(
            field, f"{{{field}}} {text!r} has {count:,} values: a sweep has at most {MAX_POINTS:,}"
        )
    return [kind(start + i * step) for i in range(count)]


def grid_points(grids: dict[str, list]) -> list[dict]:
    """Every combination of the grids' values, in order; a grid of more than MAX_POINTS
    points is refused before any is built."""
    size = math.prod(len(values) for values in grids.values())
    if size > MAX_POINTS:
        names = " × ".join(f"{{{name}}}" for name in grids)
        raise InvalidRequest.about(
            "grids", f"the sweep has {size:,} points ({names}): at most {MAX_POINTS:,}"
        )
    names = list(grids)
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(grids[n] for n in names))
    ]


def sweep_points(strategy: Strategy, grids: dict[str, list]) -> tuple[list[dict], int]:
    """The grid's points the strategy can run (its defaults filled in), and how many it cannot
    (fast >= slow ...); InvalidRequest when it can run none."""
    points: list[dict] = []
    skipped, example = 0, ""
    for point in grid_points(grids):
        try:
            points.append(strategy.params_resolve(point))
        except InvalidRequest as exc:
            if exc.field == "strategy":  # the strategy's own code failed: not a point to skip
                raise
            skipped += 1
            example = example or exc.problems[0].problem
    if not points:
        raise InvalidRequest.about(
            "grids", f"no point of the grid is valid for {strategy.name} (e.g. {example})"
        )
    return points, skipped


def chunks_of(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]


@dataclass(frozen=True)
class SweepChunk:
    """A sweep task's work: some points of the grid, on which bars, traded how, in which sweep.
    `strategy` is how a worker loads the strategy (strategy_get): a built-in's name, a file's
    absolute path (its SHA-256 in `strategy_digest`, so every chunk runs the same code) or
    package.module:NAME."""

    bars: BarsRequest
    strategy: str
    points: tuple[dict, ...]
    trading: TradingConfig
    group: str  # the sweep's runs share it
    strategy_digest: str = ""

    def to_json(self) -> dict:
        return {
            "bars": self.bars.to_json(),
            "strategy": self.strategy,
            "strategy_digest": self.strategy_digest,
            "points": list(self.points),
            "trading": self.trading.to_json(),
            "group": self.group,
        }

    @classmethod
    def from_json(cls, data: dict) -> SweepChunk:
        return cls(
            bars=BarsRequest.from_json(data["bars"]),
            strategy=data["strategy"],
            points=tuple(data["points"]),
            trading=TradingConfig.from_json(data["trading"]),
            group=data["group"],
            strategy_digest=data.get("strategy_digest", ""),
        )
