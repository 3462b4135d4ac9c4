"""docs/research.md runs as written, on simulator bars: every Python block in order; its
backtesting.py and vectorbt runs on the API's frames give backtest --json's trades."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest
from django.core.management import call_command

from tests.support import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def python_blocks(path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


def test_the_research_guide_runs_and_matches_the_backtest(gateway, backtest, monkeypatch):
    monkeypatch.delenv("IBDATA_CATALOG", raising=False)  # the project's catalog: the test's
    code, out, err = backtest(
        "--symbols", "AAPL", "--start", "2023-01-01", "--end", "2024-12-31", "--json"
    )
    assert code == 0, err
    ours = json.loads(out)
    for instrument, timeframe, start, end, what in (
        ("AAPL", "1-HOUR", "2024-03-01", "2024-03-31", "TRADES"),
        ("EUR.USD", "1-HOUR", "2024-06-03", "2024-06-07", "MIDPOINT"),
    ):
        call_command(
            "fetch",
            *("--instruments", instrument, "--timeframe", timeframe, "--start", start),
            *("--end", end, "--what-to-show", what, "--yes"),
        )
    blocks = python_blocks(ROOT / "docs/research.md")
    assert len(blocks) == 5
    namespace: dict = {}
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        for block in blocks:
            exec(compile(block, "docs/research.md", "exec"), namespace)
    assert "NASDAQ America/New_York" in shown.getvalue()

    trades = namespace["trades"]  # backtesting.py's
    assert len(trades) == len(ours["trades"]) == ours["# Trades"] > 0
    for theirs, mine in zip(trades.itertuples(), ours["trades"], strict=True):
        assert theirs.EntryTime.date().isoformat() == mine["EntryTime"][:10]
        assert theirs.ExitTime.date().isoformat() == mine["ExitTime"][:10]
        assert (theirs.Size, theirs.EntryPrice, theirs.ExitPrice) == (
            mine["Size"],
            mine["EntryPrice"],
            mine["ExitPrice"],
        )
        assert theirs.PnL == pytest.approx(mine["PnL"], rel=1e-9)
    assert namespace["stats"]["Return [%]"] == pytest.approx(ours["Return [%]"], rel=1e-9)

    closed = namespace["closed"]  # vectorbt's: dated at the signal's bar
    assert closed["PnL"].tolist() == pytest.approx([t["PnL"] for t in ours["trades"]], rel=1e-9)
    assert closed["Size"].tolist() == [t["Size"] for t in ours["trades"]]
    stats = namespace["portfolio"].stats()
    assert stats["Total Return [%]"] == pytest.approx(ours["Return [%]"], rel=1e-9)

    eurusd = namespace["eurusd"]
    assert eurusd.Volume.isna().all() and str(eurusd.index.tz) == "America/New_York"
    assert len(namespace["daily_range"]) == 20  # the sessions of March 2024
    assert len(namespace["aapl_2024"]) == 252 and namespace["aapl_2024"].attrs["source"] == "db"
