"""`manage.py backtest` on a terminal of 80 columns: the demo's run (three symbols and their
portfolio, each symbol's trades), an intraday run and a sweep; every line fits, nothing is cut
short with '…', dates and P&L appear whole."""

from __future__ import annotations

import pytest

from backtests.models import BacktestRun, RunKind
from fetcher.management.commands.demo import DEMO_BACKTEST
from tests.support import narrow_terminal, screen_lines, too_wide, words_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_demos_backtest_fits_80_columns(gateway, backtest, monkeypatch):
    narrow_terminal(monkeypatch)
    code, out, err = backtest(*DEMO_BACKTEST)
    assert code == 0, err
    assert not too_wide(out), "\n".join(too_wide(out))
    words = words_of(out)
    for run in BacktestRun.objects.filter(kind=RunKind.SINGLE):
        for trade in run.trades[-10:]:  # the trades shown: the last ten
            assert trade["ExitTime"][:10] in words
            assert f"{trade['PnL']:,.2f}" in words
    portfolio = BacktestRun.objects.get(kind=RunKind.PORTFOLIO)
    assert f"{portfolio.metrics['Equity Final [$]']:,.2f}" in words
    assert "Portfolio" in words


def test_intraday_trades_and_a_sweep_fit_80_columns(gateway, backtest, monkeypatch):
    narrow_terminal(monkeypatch)
    week = ("--symbols", "AAPL", "--start", "2024-03-27", "--end", "2024-04-02")
    code, out, err = backtest(*week, "--timeframe", "1-MINUTE", "--long-short")
    assert code == 0, err
    assert not too_wide(out), "\n".join(too_wide(out))
    run = BacktestRun.objects.get()
    last = run.trades[-1]
    date, time = last["ExitTime"][:16].split()
    assert f"{date} {time}" in "\n".join(screen_lines(out))  # on one line, whole
    code, out, err = backtest(
        *week, "--timeframe", "1-MINUTE", "--fast", "5:20:5", "--slow", "30:60:10"
    )
    assert code == 0, err
    assert not too_wide(out), "\n".join(too_wide(out))
    assert {"Sharpe", "Ratio", "Return", "[%]"} <= words_of(out)
