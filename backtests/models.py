"""Backtest models (the backtest issue adds BacktestRun)."""
