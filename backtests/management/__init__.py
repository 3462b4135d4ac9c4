"""Management commands of the backtests app."""
