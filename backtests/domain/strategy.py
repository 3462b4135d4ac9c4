"""The strategy contract: a Strategy subclass declares its parameters (name, default and so type,
bounds), its warm-up and its signals on the whole OHLCV bars; every call into it is checked."""

from __future__ import annotations

import math
import sys
import traceback
from dataclasses import dataclass

import numpy as np

from fetcher.domain.bars import BarBatch

from .problems import FieldProblem, InvalidRequest

Value = int | float


@dataclass(frozen=True)
class Parameter:
    """One parameter of a strategy: its default gives its type (an int or a float); values
    outside [minimum, maximum] are refused with the parameter named."""

    name: str
    default: Value
    help: str = ""
    minimum: Value | None = None
    maximum: Value | None = None

    def __post_init__(self) -> None:
        if not str(self.name).isidentifier():
            raise TypeError(f"a parameter's name must be a Python name, not {self.name!r}")
        if isinstance(self.default, bool) or not isinstance(self.default, int | float):
            raise TypeError(
                f"parameter {self.name!r}: its default must be an int or a float, "
                f"not {self.default!r}"
            )

    @property
    def kind(self) -> type:
        return int if isinstance(self.default, int) else float

    def value(self, raw) -> Value:
        """`raw` (a number, or a text as typed) as this parameter's type, within its bounds;
        InvalidRequest about the parameter otherwise."""
        name = self.name
        try:
            if self.kind is int:
                if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                    raise ValueError
                value = int(raw) if isinstance(raw, float) else int(str(raw).strip())
            else:
                value = float(str(raw).strip())
                if not math.isfinite(value):
                    raise ValueError
        except ValueError:
            kind = "a whole number" if self.kind is int else "a number"
            raise InvalidRequest.about(name, f"{{{name}}} {raw!r} is not {kind}") from None
        if self.minimum is not None and value < self.minimum:
            raise InvalidRequest.about(name, f"{{{name}}} {value} must be at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidRequest.about(name, f"{{{name}}} {value} must be at most {self.maximum}")
        return value


class Strategy:
    """What a strategy is: a subclass names itself, declares its `parameters`, and defines
    `warmup(params)` and `signals(bars, params, cache)`; `check(params)` is optional.

    - `warmup(params)`: the first bar at which every indicator has a value (backtesting.py's
      warm-up); trading starts on the bar after it.
    - `signals(bars, params, cache)`: `bars` is a BarBatch (numpy columns ts, open, high, low,
      close, volume, wap, bar_count); returns one value per bar, decided on its close: +1 be
      long, -1 be short (flat when long-only), 0 keep what is held. `cache` is a dict kept
      across the points of a sweep on the same bars, for indicators.
    - `check(params)`: raise InvalidRequest.about("fast", "{fast} 30 must be smaller than
      {slow} 10") for parameter sets that cannot work; a sweep skips them.
    """

    name: str = ""  # as users pick it and runs record it; the class's name in lower case if ""
    description: str = ""
    parameters: tuple[Parameter, ...] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__.lower()

    def __init__(self, reference: str = "", digest: str = ""):
        # How to load it again (a worker does): the registry's name, a file, or a module.
        self.reference = reference or self.name
        self.digest = digest  # the file's SHA-256 when it came from a file

    def warmup(self, params: dict) -> int:
        raise NotImplementedError

    def signals(self, bars: BarBatch, params: dict, cache: dict) -> np.ndarray:
        raise NotImplementedError

    def check(self, params: dict) -> None:
        return None

    @property
    def builtin(self) -> bool:
        return self.reference == self.name

    @property
    def defaults(self) -> dict[str, Value]:
        return {p.name: p.default for p in self.parameters}

    def parameter(self, name: str) -> Parameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        known = ", ".join(p.name for p in self.parameters) or "none"
        raise InvalidRequest.about(
            name, f"{self.name} has no parameter {{{name}}} (its parameters: {known})"
        )

    def params_resolve(self, given: dict) -> dict[str, Value]:
        """Every parameter's value: the given one (None: the default), checked alone and then
        together (check); InvalidRequest naming the parameter otherwise."""
        for name in given:
            self.parameter(name)
        params = {
            p.name: p.value(given[p.name]) if given.get(p.name) is not None else p.default
            for p in self.parameters
        }
        self._guarded("check", lambda: self.check(params))
        return params

    def warmup_bars(self, params: dict) -> int:
        """warmup(params), checked: a whole number of bars, at least 0."""
        bars = self._guarded("warmup", lambda: self.warmup(params))
        if isinstance(bars, bool) or not isinstance(bars, int | np.integer) or bars < 0:
            self._fail(f"{self._qualified('warmup')} returned {bars!r}: give a whole number >= 0")
        return int(bars)

    def events(self, bars: BarBatch, params: dict, cache: dict) -> np.ndarray:
        """signals(bars, params, cache), checked: one of -1, 0, +1 per bar, as int8."""
        out = self._guarded("signals", lambda: self.signals(bars, params, cache))
        events = np.asarray(out)
        if events.shape != (len(bars),):
            self._fail(
                f"{self._qualified('signals')} returned {events.shape} values for "
                f"{len(bars)} bars: give one per bar"
            )
        bad = (events != -1) & (events != 0) & (events != 1)
        if bad.any():
            self._fail(
                f"{self._qualified('signals')} returned {_plain(events[bad][0])!r} at bar "
                f"{int(np.flatnonzero(bad)[0])}: give +1 (long), -1 (short or flat) or 0"
            )
        return events.astype(np.int8, copy=False)

    def _qualified(self, method: str) -> str:
        return f"{type(self).__name__}.{method}"

    def _fail(self, problem: str):
        raise strategy_problem(self.reference, problem)

    def _guarded(self, method: str, call):
        """call(), its exceptions as one line naming the strategy, the method and the line of
        the strategy's file where it was raised; InvalidRequest (check's) as it is."""
        try:
            return call()
        except InvalidRequest:
            raise
        except Exception as exc:  # the strategy's own code, whatever it raised
            self._fail(f"{self._qualified(method)} raised {exception_line(exc, self._file())}")

    def _file(self) -> str:
        module = sys.modules.get(type(self).__module__)
        return getattr(module, "__file__", "") or ""


def _plain(value):
    """A numpy scalar as the Python value it holds (shown as 2, not np.int64(2))."""
    return value.item() if isinstance(value, np.generic) else value


def exception_line(exc: BaseException, file: str) -> str:
    """'ZeroDivisionError: division by zero (line 12)': the exception on one line, and the last
    line of `file` it went through."""
    lines = [
        f.lineno for f in traceback.extract_tb(exc.__traceback__) if file and f.filename == file
    ]
    text = " ".join(str(exc).split())
    where = f" (line {lines[-1]})" if lines else ""
    return f"{type(exc).__name__}{': ' + text if text else ''}{where}"


def strategy_problem(reference: str, problem: str) -> InvalidRequest:
    """A problem of the strategy option: '{strategy} mine.py: ...'."""
    return InvalidRequest([FieldProblem("strategy", f"{{strategy}} {reference}: {problem}")])
