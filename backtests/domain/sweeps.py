"""Parameter sweeps: grids typed as '5:50:5' (start:stop:step, stop included), '10,20,30' or '10'."""

from __future__ import annotations

import itertools

from fetcher.exceptions import InvalidInput

MAX_POINTS = 100_000


def grid_parse(text: str | int | None, name: str) -> list[int] | None:
    """'5:50:5' -> [5, 10, ..., 50]; '10,20' -> [10, 20]; '10' -> [10]; None -> None."""
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
            start, stop, step = parts
            if step <= 0 or stop < start:
                raise InvalidInput(
                    f"{name} {text!r}: use start:stop:step with start <= stop and step > 0"
                )
            values = list(range(start, stop + 1, step))
        else:
            values = [int(p) for p in raw.split(",")]
    except ValueError:
        raise InvalidInput(
            f"{name} {text!r} is not a whole number, a list (10,20) or a range (5:50:5)"
        ) from None
    return sorted(set(values))


def grid_points(grids: dict[str, list[int]]) -> list[dict[str, int]]:
    """Every combination of the grids' values, in order."""
    names = list(grids)
    points = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(grids[n] for n in names))
    ]
    if len(points) > MAX_POINTS:
        raise InvalidInput(f"the sweep has {len(points)} points: at most {MAX_POINTS}")
    return points


def chunks_of(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]
