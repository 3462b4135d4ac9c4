"""The strategy registry: the built-in strategies (each module here defines one Strategy
subclass: sma, donchian), and strategy_get, which also loads a user's own from a file or module.

Adding a built-in strategy is adding one module here; the contract is backtests.domain.strategy's
(docs/backtests.md)."""

from __future__ import annotations

import importlib
import pkgutil

from ..problems import InvalidRequest
from ..strategy import Parameter, Strategy
from ..strategy_loader import is_user_reference, strategy_classes, strategy_load

# What a strategy module, built in or the user's own, imports from here.
__all__ = ["STRATEGIES", "InvalidRequest", "Parameter", "Strategy", "strategy_get"]


def _discover() -> dict[str, Strategy]:
    found: dict[str, Strategy] = {}
    for module in pkgutil.iter_modules(__path__):
        for cls in strategy_classes(importlib.import_module(f"{__name__}.{module.name}")):
            strategy = cls()
            found[strategy.name] = strategy
    return found


STRATEGIES: dict[str, Strategy] = _discover()


def strategy_get(reference: str, *, digest: str = "") -> Strategy:
    """A built-in strategy by its name (any case), or a user's own: a file path/to/mine.py
    (mine.py:NAME when it defines several) or package.module:NAME (strategy_load)."""
    text = str(reference).strip()
    if is_user_reference(text):
        return strategy_load(text, digest=digest)
    strategy = STRATEGIES.get(text.lower())
    if strategy is None:
        raise InvalidRequest.about(
            "strategy",
            f"unknown strategy {reference!r}: use one of {', '.join(sorted(STRATEGIES))}, or "
            "your own as path/to/mine.py or package.module:NAME",
        )
    return strategy
