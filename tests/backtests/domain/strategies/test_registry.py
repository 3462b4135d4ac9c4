"""The strategy registry (backtests/domain/strategies/__init__.py): modules found, names looked
up, parameters resolved with their defaults."""

from __future__ import annotations

import pytest

from backtests.domain.problems import InvalidRequest
from backtests.domain.strategies import STRATEGIES, Strategy, strategy_get
from fetcher.exceptions import InvalidInput


def test_every_module_with_a_strategy_is_registered_under_its_name():
    assert "sma" in STRATEGIES
    assert all(isinstance(s, Strategy) and s.name == name for name, s in STRATEGIES.items())


def test_strategy_parameters_are_checked():
    sma = strategy_get("SMA")
    assert sma.params_resolve({"fast": None, "slow": None}) == {"fast": 10, "slow": 30}
    assert sma.params_resolve({"fast": 5}) == {"fast": 5, "slow": 30}
    with pytest.raises(InvalidInput, match="unknown strategy 'rsi': use one of donchian, sma"):
        strategy_get("rsi")


def test_an_unknown_strategy_is_a_problem_of_the_strategy_field():
    with pytest.raises(InvalidRequest) as raised:
        strategy_get(" momentum ")
    assert [p.field for p in raised.value.problems] == ["strategy"]
