"""Backtest fixtures: `manage.py backtest` run as a user would."""

from __future__ import annotations

import pytest
from django.core.management import call_command


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
