"""The strategy registry: every module in this package with a STRATEGY is one strategy.

Adding a strategy (RSI, momentum, ...) is adding one module here that defines STRATEGY."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..problems import InvalidRequest

# signals(close, params, cache) -> int8 events per bar: +1 go long, -1 go short (or flat when
# long-only), 0 nothing. `cache` is a dict the caller may keep across calls on the same bars
# (a sweep computes each indicator once).
Signals = Callable[[np.ndarray, dict, dict], np.ndarray]


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    defaults: dict[str, int]
    signals: Signals
    # The first bar where every indicator has a value (backtesting.py's warm-up): trading starts
    # on the bar after it.
    warmup: Callable[[dict], int]
    # Raises InvalidRequest for parameters that cannot work (fast >= slow ...), about the
    # parameter, named {fast} in its text.
    check: Callable[[dict], None] = field(default=lambda params: None)

    def params_resolve(self, given: dict[str, int | None]) -> dict[str, int]:
        params = {
            k: (given.get(k) if given.get(k) is not None else v) for k, v in self.defaults.items()
        }
        self.check(params)
        return params


def _discover() -> dict[str, Strategy]:
    found: dict[str, Strategy] = {}
    for module in pkgutil.iter_modules(__path__):
        strategy = getattr(importlib.import_module(f"{__name__}.{module.name}"), "STRATEGY", None)
        if isinstance(strategy, Strategy):
            found[strategy.name] = strategy
    return found


STRATEGIES: dict[str, Strategy] = _discover()


def strategy_get(name: str) -> Strategy:
    strategy = STRATEGIES.get(str(name).strip().lower())
    if strategy is None:
        raise InvalidRequest.about(
            "strategy", f"unknown strategy {name!r}: use one of {', '.join(sorted(STRATEGIES))}"
        )
    return strategy
