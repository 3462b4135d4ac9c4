"""`fetch`'s report and `fetch_status` on a terminal of 80 columns: every line fits, long texts
wrap between words (nothing cut short with '…'), errors appear in full, numbers have thousands
separators and plurals are right."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from fetcher.models import FetchRun, FetchRunItem
from tests.support import narrow_terminal, screen_lines, too_wide, words_of

pytestmark = pytest.mark.django_db(transaction=True)


def command(name: str, *args: str) -> int:
    try:
        call_command(name, *args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_fetch_and_fetch_status_fit_80_columns(gateway, capsys, monkeypatch):
    narrow_terminal(monkeypatch)
    code = command(
        "fetch",
        "--instruments",
        "AAPL,XYZQ",
        "--timeframe",
        "1-HOUR",
        "--start",
        "2023-01-03",
        "--end",
        "2024-03-28",
    )
    assert code == 1
    report = capsys.readouterr().out
    run = FetchRun.objects.get()
    [failed] = FetchRunItem.objects.filter(run=run, status="failed")
    assert run.bars_stored > 1000
    shown = " ".join(screen_lines(report))
    assert f"Fetched {run.bars_stored:,} bars; 1 of 2 instruments failed" in " ".join(shown.split())

    command("fetch_status")
    listing = capsys.readouterr().out
    command("fetch_status", str(run.pk))
    detail = capsys.readouterr().out
    for name, text in (("report", report), ("list", listing), ("detail", detail)):
        assert not too_wide(text), (name, too_wide(text), text)
    # the error in full, every word of it whole
    assert set(failed.error.split()) <= words_of(report)
    assert set(failed.error.split()) <= words_of(detail)
    # the list's columns, each word whole
    assert {"partial", "cli", "1-HOUR", f"{run.bars_stored:,}", "AAPL,", "XYZQ"} <= words_of(
        listing
    )
    assert "(from ibdata simulator)" in listing
