"""The research API's fixtures: `manage.py backtest` run as a user would (the backtests' own)."""

from tests.backtests.conftest import backtest  # noqa: F401 (a fixture, found by its name)
