"""Backtests without Django or I/O: strategies, the engine, commissions, metrics, sweep grids."""
