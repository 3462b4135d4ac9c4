"""The backtests app."""
