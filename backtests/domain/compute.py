"""One backtest on bars in memory: the strategy's signals, the engine's fills, the metrics."""

from __future__ import annotations

from fetcher.domain.bars import BarBatch

from .engine import BacktestResult, TradingConfig, backtest_run
from .metrics import metrics_compute
from .strategies import Strategy


def backtest_simulate(
    *,
    bars: BarBatch,
    strategy: Strategy,
    params: dict,
    trading: TradingConfig,
    indicators: dict | None = None,
) -> BacktestResult:
    """The strategy's trades and equity on `bars`; `indicators` is kept by the caller across
    calls on the same bars (a sweep computes each indicator once)."""
    events = strategy.events(bars, params, {} if indicators is None else indicators)
    return backtest_run(
        open=bars.open,
        close=bars.close,
        events=events,
        warmup=strategy.warmup_bars(params),
        config=trading,
    )


def backtest_compute(
    *,
    bars: BarBatch,
    strategy: Strategy,
    params: dict,
    trading: TradingConfig,
    indicators: dict | None = None,
) -> tuple[BacktestResult, dict[str, float]]:
    """backtest_simulate, and the run's statistics under backtesting.py's names."""
    result = backtest_simulate(
        bars=bars, strategy=strategy, params=params, trading=trading, indicators=indicators
    )
    metrics = metrics_compute(
        ts=bars.ts,
        close=bars.close,
        equity=result.equity,
        trades=result.trades,
        warmup=result.warmup,
    )
    return result, metrics
