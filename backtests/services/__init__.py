"""Writes: backtest runs (single, portfolio, sweep points) and what they need first (bars)."""
