"""The strategy contract: parameters typed by their defaults and checked against their bounds,
and every call into a strategy checked (what it returns, what it raises) in one line."""

from __future__ import annotations

import numpy as np
import pytest

from backtests.domain.problems import InvalidRequest
from backtests.domain.strategy import Parameter, Strategy
from tests.support.backtest_data import batch_of


def flags(field: str) -> str:
    return f"--{field}"


def test_a_parameters_type_is_its_defaults():
    window, level = Parameter("window", 20, minimum=1), Parameter("level", 30.0, maximum=100)
    assert (window.kind, level.kind) == (int, float)
    assert window.value("15") == 15 and window.value(15.0) == 15 and level.value("2") == 2.0
    for parameter, raw, message in (
        (window, "1.5", "window '1.5' is not a whole number"),
        (window, 2.5, "window 2.5 is not a whole number"),
        (window, "0", "window 0 must be at least 1"),
        (level, "x", "level 'x' is not a number"),
        (level, "nan", "level 'nan' is not a number"),
        (level, "101", "level 101.0 must be at most 100"),
    ):
        with pytest.raises(InvalidRequest) as raised:
            parameter.value(raw)
        assert raised.value.phrase() == message
        assert raised.value.problems[0].field == parameter.name


def test_a_parameter_needs_a_name_and_a_number_for_default():
    with pytest.raises(TypeError, match="default must be an int or a float"):
        Parameter("window", "20")
    with pytest.raises(TypeError, match="default must be an int or a float"):
        Parameter("long", True)
    with pytest.raises(TypeError, match="must be a Python name"):
        Parameter("two words", 1)


class Threshold(Strategy):
    parameters = (Parameter("level", 1.5), Parameter("lag", 1, minimum=0))

    def warmup(self, params):
        return params["lag"]

    def signals(self, bars, params, cache):
        return np.where(bars.close > params["level"], 1, -1)


def bars_of(closes):
    closes = np.asarray(closes, dtype=float)
    return batch_of(np.arange(len(closes)) * 60, closes, closes)


def test_a_subclass_is_named_after_its_class_and_resolves_its_parameters():
    strategy = Threshold()
    assert strategy.name == "threshold" and strategy.reference == "threshold"
    assert strategy.defaults == {"level": 1.5, "lag": 1}
    assert strategy.params_resolve({"level": "2", "lag": None}) == {"level": 2.0, "lag": 1}
    with pytest.raises(InvalidRequest) as raised:
        strategy.params_resolve({"windw": 3})
    assert raised.value.phrase(flags) == (
        "threshold has no parameter --windw (its parameters: level, lag)"
    )
    events = strategy.events(bars_of([1, 2, 1]), strategy.defaults, {})
    assert events.dtype == np.int8 and events.tolist() == [-1, 1, -1]


class Broken(Strategy):
    parameters = (Parameter("mode", 0),)

    def warmup(self, params):
        return [None, -1, 2.5, 3][params["mode"]]

    def signals(self, bars, params, cache):
        mode = params["mode"]
        if mode == 0:
            return 1 / 0
        if mode == 1:
            return np.zeros(len(bars) - 1)
        return np.full(len(bars), 2 if mode == 2 else np.nan)


@pytest.mark.parametrize(
    ("mode", "method", "message"),
    [
        (0, "signals", "Broken.signals raised ZeroDivisionError: division by zero (line "),
        (1, "signals", "Broken.signals returned (2,) values for 3 bars: give one per bar"),
        (2, "signals", "Broken.signals returned 2 at bar 0: give +1 (long), -1 (short or flat)"),
        (3, "signals", "Broken.signals returned nan at bar 0"),
        (0, "warmup", "Broken.warmup returned None: give a whole number >= 0"),
        (1, "warmup", "Broken.warmup returned -1"),
        (2, "warmup", "Broken.warmup returned 2.5"),
    ],
)
def test_what_a_strategy_returns_or_raises_is_one_line_naming_it(mode, method, message):
    strategy = Broken()
    with pytest.raises(InvalidRequest) as raised:
        if method == "signals":
            strategy.events(bars_of([1, 2, 3]), {"mode": mode}, {})
        else:
            strategy.warmup_bars({"mode": mode})
    line = raised.value.phrase(flags)
    assert line.startswith("--strategy broken: ") and message in line, line
    assert "\n" not in line and raised.value.problems[0].field == "strategy"
    assert Broken().warmup_bars({"mode": 3}) == 3
