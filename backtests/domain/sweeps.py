"""Parameter sweeps: grids typed as '5:50:5' (start:stop:step, stop included), '10,20,30' or '10',
sized before they are built; the points a strategy can run; a task's chunk of them."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from .bars import BarsRequest
from .engine import TradingConfig
from .problems import InvalidRequest
from .strategies import Strategy

MAX_POINTS = 100_000  # a sweep's points: each is a stored BacktestRun


def grid_parse(text: str | int | None, field: str) -> list[int] | None:
    """'5:50:5' -> [5, 10, ..., 50]; '10,20' -> [10, 20]; '10' -> [10]; None -> None. A range
    of more than MAX_POINTS values is refused before it is built."""
    if text is None:
        return None
    raw = str(text).strip()
    try:
        if ":" in raw:
            parts = [int(p) for p in raw.split(":")]
            if len(parts) == 2:
                parts.append(1)
            if len(parts) != 3:
                raise ValueError
            values = _range_values(text, field, *parts)
        else:
            values = [int(p) for p in raw.split(",")]
    except ValueError:
        raise InvalidRequest.about(
            field,
            f"{{{field}}} {text!r} is not a whole number, a list (10,20) or a range (5:50:5)",
        ) from None
    return sorted(set(values))


def _range_values(text, field: str, start: int, stop: int, step: int) -> range:
    if step <= 0 or stop < start:
        raise InvalidRequest.about(
            field, f"{{{field}}} {text!r}: use start:stop:step with start <= stop and step > 0"
        )
    count = (stop - start) // step + 1
    if count > MAX_POINTS:
        raise InvalidRequest.about(
            field, f"{{{field}}} {text!r} has {count:,} values: a sweep has at most {MAX_POINTS:,}"
        )
    return range(start, stop + 1, step)


def grid_points(grids: dict[str, list[int]]) -> list[dict[str, int]]:
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


def sweep_points(strategy: Strategy, grids: dict[str, list[int]]) -> tuple[list[dict], int]:
    """The grid's points the strategy can run (its defaults filled in), and how many it cannot
    (fast >= slow ...); InvalidRequest when it can run none."""
    points: list[dict] = []
    skipped, example = 0, ""
    for point in grid_points(grids):
        try:
            points.append(strategy.params_resolve(point))
        except InvalidRequest as exc:
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
    """A sweep task's work: some points of the grid, on which bars, traded how, in which sweep."""

    bars: BarsRequest
    strategy: str
    points: tuple[dict[str, int], ...]
    trading: TradingConfig
    group: str  # the sweep's runs share it

    def to_json(self) -> dict:
        return {
            "bars": self.bars.to_json(),
            "strategy": self.strategy,
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
        )
