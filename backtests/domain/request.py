"""What a user asks a backtest for: a frozen BacktestRequest, checked when it is built, every
problem tied to its field (FieldProblem) for each way in to phrase with its own names."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
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
from .strategies import STRATEGIES, Strategy, strategy_get
from .sweeps import grid_parse, sweep_points

DEFAULT_CASH = 100_000.0
DEFAULT_CHUNK = 10  # grid points per sweep task


@dataclass(frozen=True)
class BacktestRequest:
    """A backtest of one strategy: a run per symbol (and their equal-weight portfolio), or a
    sweep on one symbol when a parameter has several values. Problems name the fields as
    {start}, {cash}, ... and a strategy's parameters as {fast}; names (strategy, data source,
    metric) are taken in any case."""

    symbols: tuple[InstrumentSpec, ...]
    start: dt.date | None
    end: dt.date | None = None  # today when None
    strategy: str = "sma"
    grids: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # else the defaults
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
    # the date the checks take as today (UTC); the clock's when not given
    today: InitVar[dt.date | None] = field(default=None, kw_only=True)
    # Worked out when built: the parameter sets to run, and the grid's points skipped.
    points: tuple[dict[str, int], ...] = field(init=False, repr=False, default=())
    skipped: int = field(init=False, repr=False, default=0)

    def __post_init__(self, today: dt.date | None) -> None:
        problems = self._names_resolved()
        problems += self._range_problems(today or utc_today())
        problems += [*self._amount_problems(), *self._picture_problems()]
        if self.strategy in STRATEGIES:
            problems += self._grid_problems()
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
        **fields,
    ) -> BacktestRequest:
        """A request from what a user types: each text read, the problems of every field at
        once. `fields` are given as they are (strategy, rth, data_source, maximize, today)."""
        texts = _Texts()
        given = {
            "symbols": texts.read("symbols", _symbols, symbols),
            "start": texts.read("start", date_parse, start),
            "end": texts.read("end", date_parse, end),
            "grids": {
                n: texts.read(n, grid_parse, t) for n, t in (grids or {}).items() if t is not None
            },
            "timeframe": texts.read("timeframe", _timeframe, timeframe),
            "what_to_show": texts.read("what_to_show", _what_to_show, what_to_show),
            "top": texts.read("top", _whole, top),
            "chunk": texts.read("chunk", _whole, chunk),
            "plot": Path(plot) if plot else None,
            "heatmap": Path(heatmap) if heatmap else None,
        }
        cash_value = texts.read("cash", _number, cash)
        fee = texts.read("commission", commission_parse, commission)
        if texts.problems:
            raise InvalidRequest(texts.problems)
        trading = TradingConfig(cash_value, fee, trade_on_close, long_short)
        return cls(trading=trading, **given, **fields)

    @property
    def strategy_spec(self) -> Strategy:
        return STRATEGIES[self.strategy]

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
        return " ".join([self.strategy, *(f"{k}={v}" for k, v in values.items())])

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
            self._set("strategy", strategy_get(self.strategy).name)
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
        """Each parameter's values (the strategy's default when not given), and the points to
        run: the one set of a backtest, the grid's valid ones of a sweep."""
        strategy = self.strategy_spec
        unknown = [name for name in self.grids if name not in strategy.defaults]
        if unknown:
            problem = f"{strategy.name} has no parameter {{{unknown[0]}}}"
            return [FieldProblem(unknown[0], problem)]
        grids = {k: tuple(self.grids.get(k) or (v,)) for k, v in strategy.defaults.items()}
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
