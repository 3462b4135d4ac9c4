"""Backtest fixtures: the project pointed at a fresh simulator and catalog, and a helper to run
`manage.py backtest` as a user would."""

from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.fixture
def gateway(sim, settings, tmp_path, in_process_tasks):
    """Fetches (and sweeps) run in this process against a fresh simulator and catalog."""
    settings.IBKR_HOST = "127.0.0.1"
    settings.IBKR_PORT = sim.port
    settings.DATA_DIR = tmp_path
    return sim


@pytest.fixture
def backtest(capsys):
    """Run `manage.py backtest ARGS`: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        try:
            call_command("backtest", *args)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
