"""What a user asks a backtest for: a frozen BacktestRequest, checked when it is built, every
problem tied to its field (FieldProblem) for each way in to phrase with its own names."""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path

from fetcher.domain.instruments import InstrumentSpec, instrument_specs_parse
from fetcher.domain.requests import RequestInvalid, date_parse, utc_today
from fetcher.domain.timeframes import TimeframeSpec, WhatToShow, timeframe_parse
from fetcher.exceptions import InvalidInput

from .bars import BarsRequest, DataSource
from .commissions import FractionCommission, commission_parse
from .engine import TradingConfig
from .metrics import RANKABLE, metric_named
from .problems import FieldProblem, InvalidRequest
from .strategies import Strategy, strategy_get
from .sweeps import grid_parse, sweep_points

DEFAULT_CASH = 100_000.0
DEFAULT_CHUNK = 10  # grid points per sweep task


@dataclass(frozen=True)
class BacktestRequest:
    """A backtest of one strategy: a run per symbol (and their equal-weight portfolio), or a
    sweep on one symbol when a parameter has several values. Problems name the fields as
    {start}, {cash}, ... and a strategy's parameters as {fast}; names (strategy, data source,
    metric) are taken in any case. `strategy` is a built-in's name or a user's own strategy
    (path/to/mine.py, mine.py:NAME, package.module:NAME: its code runs when the request is
    built); `grids` give parameters values as texts ('10', '5:50:5', '10,20') or as values."""

    symbols: tuple[InstrumentSpec, ...]
    start: dt.date | None
    end: dt.date | None = None  # today when None
    strategy: str = "sma"
    grids: Mapping[str, str | Sequence[int | float]] = field(default_factory=dict)
    timeframe: TimeframeSpec = field(default_factory=lambda: timeframe_parse("DAILY"))
    what_to_show: WhatToShow = WhatToShow.TRADES
    rth: bool = True
    data_source: DataSource = DataSource.IBKR
    trading: TradingConfig = TradingConfig(DEFAULT_CASH, FractionCommission(0.0))
    maximize: str = "Sharpe Ratio"  # the metric ranking a sweep's points
    top: int = 5  # a sweep's best points shown
    chunk: int = DEFAULT_CHUNK
    plot: Path | None = None  # equity and drawdown (PNG)
    heatmap: Path | None = None  # a sweep's metric over its grid (PNG)
    trades_csv: Path | None = None  # the closed trades of every symbol (CSV)
    equity_csv: Path | None = None  # the equity curves, every bar (CSV)
    # the date the checks take as today (UTC); the clock's when not given
    today: InitVar[dt.date | None] = field(default=None, kw_only=True)
    # Worked out when built: the strategy, the parameter sets to run, the grid's points skipped.
    strategy_spec: Strategy | None = field(init=False, repr=False, compare=False, default=None)
    points: tuple[dict, ...] = field(init=False, repr=False, default=())
    skipped: int = field(init=False, repr=False, default=0)

    def __post_init__(self, today: dt.date | None) -> None:
        problems = self._names_resolved()
        problems += self._range_problems(today or utc_today())
        problems += [*self._amount_problems(), *self._picture_problems()]
        if self.strategy_spec is not None:
            problems += self._grid_problems()
            problems += self._export_problems()
        if problems:
            raise InvalidRequest(problems)

    @classmethod
    def parse(
        cls,
        *,
        symbols: str | None,
        start: str | dt.date | None,
        end: str | dt.date | None = None,
        grids: Mapping[str, str | None] | None = None,
        params: Sequence[str] = (),
        cash: str = f"{DEFAULT_CASH:g}",
        commission: str = "0",
        trade_on_close: bool = False,
        long_short: bool = False,
        timeframe: str = "DAILY",
        what_to_show: str = "TRADES",
        top: str = "5",
        chunk: str = str(DEFAULT_CHUNK),
        plot: str | None = None,
        heatmap: str | None = None,
        trades_csv: str | None = None,
        equity_csv: str | None = None,
        **fields,
    ) -> BacktestRequest:
        """A request from what a user types: each text read, the problems of every field at
        once. `grids` are parameters' texts by name (the command's --fast and --slow), `params`
        more as 'name=value' (--param); `fields` are given as they are (strategy, rth,
        data_source, maximize, today)."""
        texts = _Texts()
        given = {
            "symbols": texts.read("symbols", _symbols, symbols),
            "start": texts.read("start", date_parse, start),
            "end": texts.read("end", date_parse, end),
        }
        grid_texts = _grids_read(grids or {}, params, texts.problems)
        strategy = texts.read("strategy", _strategy, fields.get("strategy", "sma"))
        given |= {
            "grids": {
                name: texts.read(name, functools.partial(_grid_values, strategy), text)
                for name, text in grid_texts.items()
            }
            if strategy
            else {},
            "timeframe": texts.read("timeframe", _timeframe, timeframe),
            "what_to_show": texts.read("what_to_show", _what_to_show, what_to_show),
            "top": texts.read("top", _whole, top),
            "chunk": texts.read("chunk", _whole, chunk),
            "plot": Path(plot) if plot else None,
            "heatmap": Path(heatmap) if heatmap else None,
            "trades_csv": Path(trades_csv) if trades_csv else None,
            "equity_csv": Path(equity_csv) if equity_csv else None,
        }
        cash_value = texts.read("cash", _number, cash)
        fee = texts.read("commission", commission_parse, commission)
        if texts.problems:
            raise InvalidRequest(texts.problems)
        trading = TradingConfig(cash_value, fee, trade_on_close, long_short)
        return cls(trading=trading, **given, **fields)

    @property
    def is_sweep(self) -> bool:
        return any(len(values) > 1 for values in self.grids.values())

    @property
    def params(self) -> dict[str, int]:
        """The one parameter set of a backtest that is not a sweep."""
        return self.points[0]

    @property
    def title(self) -> str:
        """'sma fast=10 slow=30'; a sweep's: 'sma fast=5,10 slow=30'."""
        values = {k: ",".join(map(str, v)) for k, v in self.grids.items()}
        name = self.strategy_spec.name if self.strategy_spec else self.strategy
        return " ".join([name, *(f"{k}={v}" for k, v in values.items())])

    def bars_requests(self) -> tuple[BarsRequest, ...]:
        """Each symbol's bars over the range, from the request's data source."""
        return tuple(
            BarsRequest(
                spec=spec,
                timeframe=self.timeframe,
                what_to_show=self.what_to_show,
                rth=self.rth,
                start=self.start,
                end=self.end,
                data_source=self.data_source,
            )
            for spec in self.symbols
        )

    def _set(self, name: str, value) -> None:
        object.__setattr__(self, name, value)  # frozen: only while it is being built

    def _names_resolved(self) -> list[FieldProblem]:
        """Names as the request keeps them: the strategy's, the data source, the metric's."""
        problems: list[FieldProblem] = []
        try:
            spec = strategy_get(self.strategy)
            self._set("strategy_spec", spec)
            self._set("strategy", spec.reference)
        except InvalidRequest as exc:
            problems += exc.problems
        source = str(self.data_source).strip().lower()
        if source in list(DataSource):
            self._set("data_source", DataSource(source))
        else:
            names = ", ".join(DataSource)
            problem = f"{{data_source}} {self.data_source!r}: use one of {names}"
            problems.append(FieldProblem("data_source", problem))
        if metric := metric_named(self.maximize):
            self._set("maximize", metric)
        else:
            problem = (
                f"{{maximize}} {self.maximize!r} is not a metric: use one of {', '.join(RANKABLE)}"
            )
            problems.append(FieldProblem("maximize", problem))
        return problems

    def _range_problems(self, today: dt.date) -> list[FieldProblem]:
        if self.end is None:
            self._set("end", today)
        problems = []
        if not self.symbols:
            problems.append(FieldProblem("symbols", "no symbols given: use {symbols} AAPL,MSFT"))
        if self.start is None:
            problem = "no {start} given: use {start} 2024-01-01 (and {end})"
            problems.append(FieldProblem("start", problem))
        elif self.end < self.start:
            problem = f"empty range: {{end}} {self.end} is before {{start}} {self.start}"
            problems.append(FieldProblem("end", problem))
        elif self.start > today:
            problem = f"{{start}} {self.start} is in the future (today is {today})"
            problems.append(FieldProblem("start", problem))
        return problems

    def _amount_problems(self) -> list[FieldProblem]:
        problems = []
        cash = self.trading.cash
        if not math.isfinite(cash) or cash <= 0:
            problems.append(FieldProblem("cash", f"{{cash}} {cash:g} must be a positive amount"))
        for name in ("top", "chunk"):
            if (value := getattr(self, name)) < 1:
                problems.append(FieldProblem(name, f"{{{name}}} {value} must be at least 1"))
        return problems

    def _picture_problems(self) -> list[FieldProblem]:
        return [
            FieldProblem(name, f"{{{name}}} '{path}' must name a .png file")
            for name in ("plot", "heatmap")
            if (path := getattr(self, name)) is not None and Path(path).suffix.lower() != ".png"
        ]

    def _grid_problems(self) -> list[FieldProblem]:
        """Each parameter's values (texts read as the parameter's type, each checked; the
        strategy's default when not given), and the points to run: the one set of a backtest,
        the grid's valid ones of a sweep."""
        strategy = self.strategy_spec
        problems: list[FieldProblem] = []
        grids: dict[str, tuple] = {}
        for name, given in self.grids.items():
            try:
                grids[name] = _grid_values(strategy, given, name)
            except InvalidRequest as exc:
                problems += exc.problems
        if problems:
            return problems
        grids = {p.name: grids.get(p.name) or (p.default,) for p in strategy.parameters}
        self._set("grids", grids)
        if self.is_sweep and len(self.symbols) > 1:
            return [FieldProblem("symbols", "a sweep takes one symbol: give {symbols} one symbol")]
        try:
            if self.is_sweep:
                points, skipped = sweep_points(strategy, grids)
            else:
                points, skipped = [strategy.params_resolve({k: v[0] for k, v in grids.items()})], 0
        except InvalidRequest as exc:
            return list(exc.problems)
        self._set("points", tuple(points))
        self._set("skipped", skipped)
        return []

    def _export_problems(self) -> list[FieldProblem]:
        """A sweep keeps no trades or curves; two exports cannot share one file."""
        named = [n for n in ("trades_csv", "equity_csv") if getattr(self, n) is not None]
        if named and self.is_sweep:
            problem = (
                f"{{{named[0]}}}: a sweep keeps no trades or equity curves: backtest one point"
            )
            return [FieldProblem(named[0], problem)]
        if len(named) == 2 and Path(self.trades_csv).absolute() == Path(self.equity_csv).absolute():
            return [FieldProblem("equity_csv", "{equity_csv} is the file of {trades_csv}")]
        return []


class _Texts:
    """Reads texts into values, keeping every problem instead of stopping at the first."""

    def __init__(self):
        self.problems: list[FieldProblem] = []

    def read(self, name: str, convert, text):
        try:
            return convert(text, name)
        except InvalidRequest as exc:
            self.problems += exc.problems
        except RequestInvalid as exc:  # its problem does not name the field
            self.problems.append(FieldProblem(name, f"{{{name}}} {exc.problem}"))
        except InvalidInput as exc:  # fetcher's parsers: their text says what is wrong
            self.problems.append(FieldProblem(name, str(exc)))
        return None


def _grids_read(
    grids: Mapping[str, str | None], params: Sequence[str], problems: list[FieldProblem]
) -> dict[str, str]:
    """Parameters' texts by name: `grids` as they are, then each 'name=value' of `params`; a
    malformed one, or a parameter given twice, is a problem."""
    texts = {name: text for name, text in grids.items() if text is not None}
    for item in params:
        name, sep, value = str(item).partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.isidentifier() or not value:
            problem = (
                f"{{param}} {item!r}: use {{param}} name=value (10, a list 10,20, a range 5:50:5)"
            )
            problems.append(FieldProblem("param", problem))
        elif name in texts:
            problems.append(FieldProblem(name, f"{{{name}}} is given twice"))
        else:
            texts[name] = value
    return texts


def _strategy(text: str, name: str) -> Strategy:
    return strategy_get(text)


def _grid_values(strategy: Strategy, given: str | Sequence, name: str) -> tuple:
    """A parameter's values: a text read as a grid of the parameter's type, or values; each
    checked (its type, its bounds)."""
    parameter = strategy.parameter(name)
    values = grid_parse(given, name, parameter.kind) if isinstance(given, str) else given
    return tuple(parameter.value(v) for v in values)


def _symbols(text: str | None, name: str) -> tuple[InstrumentSpec, ...]:
    if text is None or not text.strip():
        return ()  # the request says what is missing
    return tuple(instrument_specs_parse(text))


def _timeframe(text: str, name: str) -> TimeframeSpec:
    return timeframe_parse(text)


def _what_to_show(text: str, name: str) -> WhatToShow:
    return WhatToShow.parse(text)


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidRequest.about(name, f"{{{name}}} {text!r} is not a number") from None


def _whole(text: str, name: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise InvalidRequest.about(name, f"{{{name}}} {text!r} is not a whole number") from None
