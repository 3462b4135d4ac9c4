"""`manage.py fetch` and `connect_ibkr` end to end: the simulator over a socket, PostgreSQL, the catalog."""

from __future__ import annotations

import datetime as dt
import os
import pty
import select
import subprocess
import sys
import time

import numpy as np
import pytest
from django.core.management import call_command

from fetcher.domain.timeframes import timeframe_parse
from fetcher.models import Bar, Coverage, FetchChunk, FetchRun, Instrument, RunStatus
from fetcher.storage.catalog import catalog_read
from tests.support import ROOT, manage

pytestmark = pytest.mark.django_db(transaction=True)


def fetch(*args) -> int:
    try:
        call_command("fetch", *args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def requests_made(sim) -> int:
    return sim.stats.counts["historical_requests"]


def stored(symbol: str, timeframe: str = "DAILY", rth: bool = True):
    return list(
        Bar.objects.filter(
            instrument__symbol=symbol, timeframe=timeframe_parse(timeframe).code, rth=rth
        )
        .order_by("ts")
        .values_list("ts", "open", "high", "low", "close", "volume", "wap", "bar_count")
    )


def ground_truth(sim, symbol: str, bar_size: str, start: dt.datetime, end: dt.datetime, rth=True):
    """The bars the simulator's market holds, straight from it (no socket, no fetcher)."""
    from ibsim.rules import BAR_SIZES

    [spec] = sim.market.find(symbol, "STK", "SMART", "USD")
    return sim.market.bars(
        spec, BAR_SIZES[bar_size], "TRADES", rth, int(start.timestamp()), int(end.timestamp())
    )


def test_the_guide_example_gives_21_aapl_bars(gateway, capsys, tmp_path):
    code = fetch(
        "--instruments",
        "AAPL",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-31",
        "--timeframe",
        "DAILY",
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "✅ AAPL: 21 bars fetched" in out
    assert "Fetch Summary" in out and "Total Bars" in out
    rows = stored("AAPL")
    assert len(rows) == 21
    days = [ts.date() for ts, *_ in rows]
    assert days[0] == dt.date(2024, 1, 2) and days[-1] == dt.date(2024, 1, 31)
    assert dt.date(2024, 1, 15) not in days
    run = FetchRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED and run.bars_stored == 21 and run.requests_made == 1
    assert run.server_version == 176 and run.account == "DU1234567"
    # the catalog holds the same bars
    cat = catalog_read(
        root=tmp_path / "catalog",
        symbol="AAPL",
        exchange="NASDAQ",
        currency="USD",
        timeframe=timeframe_parse("DAILY"),
        what_to_show="TRADES",
    )
    assert len(cat) == 21
    assert [int(ts.timestamp()) for ts, *_ in rows] == cat.ts.tolist()
    assert [r[4] for r in rows] == cat.close.tolist()


def test_one_minute_weeks_minimal_requests_every_bar_once(gateway):
    before = requests_made(gateway)
    code = fetch(
        "--instruments",
        "MSFT",
        "--start",
        "2023-11-20",
        "--end",
        "2023-12-08",
        "--timeframe",
        "1-MINUTE",
    )
    assert code == 0
    sessions = 14  # Nov 20..Dec 8 without Thanksgiving (Nov 23); Nov 24 closes early
    assert requests_made(gateway) - before == sessions
    rows = stored("MSFT", "1-MINUTE")
    assert len(rows) == 13 * 390 + 210
    ts = [int(r[0].timestamp()) for r in rows]
    assert len(set(ts)) == len(ts)
    ny = dt.timezone(dt.timedelta(hours=-5))
    truth = ground_truth(
        gateway,
        "MSFT",
        "1 min",
        dt.datetime(2023, 11, 20, tzinfo=ny),
        dt.datetime(2023, 12, 9, tzinfo=ny),
    )
    assert ts == truth.time.tolist()
    assert np.allclose([r[4] for r in rows], truth.close)
    assert np.allclose([r[5] for r in rows], truth.volume)


def test_repeated_fetch_makes_no_request(gateway, capsys):
    args = ("--instruments", "AAPL,MSFT", "--start", "2024-01-01", "--end", "2024-01-31")
    assert fetch(*args) == 0
    before = requests_made(gateway)
    assert fetch(*args) == 0
    assert requests_made(gateway) == before
    assert "already stored" in capsys.readouterr().out
    assert len(stored("AAPL")) == 21


def test_a_range_before_the_first_data_says_so_not_already_stored(gateway, capsys):
    assert fetch("--instruments", "AAPL", "--start", "1900-01-01", "--end", "1900-01-05") == 0
    out = capsys.readouterr().out
    assert "✅ AAPL: 0 bars fetched (nothing to fetch: 1900-01-01 to 1900-01-05; clamped to " in out
    assert "already stored" not in out
    assert requests_made(gateway) == 0 and stored("AAPL") == []


def test_overlapping_fetch_adds_only_the_missing_windows(gateway):
    tf = ("--timeframe", "1-HOUR")
    assert fetch("--instruments", "AAPL", "--start", "2024-01-02", "--end", "2024-01-12", *tf) == 0
    first = stored("AAPL", "1-HOUR")
    assert len(first) == 9 * 7
    assert fetch("--instruments", "AAPL", "--start", "2024-01-02", "--end", "2024-01-19", *tf) == 0
    second_run = FetchRun.objects.order_by("-pk").first()
    chunks = list(FetchChunk.objects.filter(run=second_run))
    assert chunks and all(
        c.window_start >= dt.datetime(2024, 1, 12, 21, tzinfo=dt.UTC) for c in chunks
    )
    assert len(stored("AAPL", "1-HOUR")) == (9 + 4) * 7
    ny = dt.timezone(dt.timedelta(hours=-5))
    truth = ground_truth(
        gateway,
        "AAPL",
        "1 hour",
        dt.datetime(2024, 1, 2, tzinfo=ny),
        dt.datetime(2024, 1, 20, tzinfo=ny),
    )
    assert [int(r[0].timestamp()) for r in stored("AAPL", "1-HOUR")] == truth.time.tolist()


def test_unknown_symbol_among_good_ones(gateway, capsys):
    code = fetch("--instruments", "AAPL,XYZQ,MSFT", "--start", "2024-01-01", "--end", "2024-01-31")
    out = capsys.readouterr().out
    assert code == 1
    assert "✅ AAPL: 21 bars fetched" in out and "✅ MSFT: 21 bars fetched" in out
    assert (
        "❌ XYZQ: No security definition for XYZQ: the gateway knows no symbol like it; "
        "or give --sec-type/--exchange" in out
    )
    assert FetchRun.objects.get().status == RunStatus.PARTIAL
    assert not Instrument.objects.filter(symbol="XYZQ").exists()


def test_an_unknown_symbol_is_told_the_closest_the_gateway_knows(gateway, capsys):
    """The gateway's symbol search (reqMatchingSymbols, through the real client) names the
    closest instruments beside IBKR's 200; nothing is stored for the symbol."""
    assert fetch("--instruments", "SPXX", "--start", "2024-01-02", "--end", "2024-01-31") == 1
    out = capsys.readouterr().out
    assert (
        "❌ SPXX: No security definition for SPXX: closest matches SPX (IND, CBOE), "
        "SPY (STK, ARCA); or give --sec-type/--exchange" in out
    )
    assert gateway.stats.counts["matching_symbols"] == 1
    assert not Instrument.objects.exists()
    # named as the hint says, it is found
    assert (
        fetch(
            "--instruments",
            "SPX",
            "--sec-type",
            "IND",
            "--exchange",
            "CBOE",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-31",
        )
        == 0
    )


def test_bare_instrument_defaults_to_daily_since_head_then_incremental(gateway, capsys):
    assert fetch("--instruments", "QQQ") == 0
    out = capsys.readouterr().out
    assert "since the gateway's first data (1999-03-10)" in out
    first = len(stored("QQQ"))
    assert first > 6000
    assert Coverage.objects.filter(instrument__symbol="QQQ").exists()
    before = requests_made(gateway)
    assert fetch("--instruments", "QQQ") == 0
    out = capsys.readouterr().out
    assert "update after the last stored bar" in out
    assert requests_made(gateway) - before <= 1  # at most today's bar again
    assert len(stored("QQQ")) == first


def test_extended_hours_are_their_own_series(gateway):
    assert (
        fetch(
            "--instruments",
            "AAPL",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-02",
            "--timeframe",
            "1-MINUTE",
        )
        == 0
    )
    assert (
        fetch(
            "--instruments",
            "AAPL",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-02",
            "--timeframe",
            "1-MINUTE",
            "--no-rth",
        )
        == 0
    )
    assert len(stored("AAPL", "1-MINUTE", rth=True)) == 390
    assert len(stored("AAPL", "1-MINUTE", rth=False)) == 960


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--instruments", "AAPL", "--start", "2024-02-01", "--end", "2024-01-01"),
            "before start date",
        ),
        (("--instruments", "AAPL", "--start", "2024-13-01"), "not a valid date"),
        (("--instruments", "AAPL", "--start", "01/02/2024"), "use YYYY-MM-DD"),
        (("--instruments", "AAPL", "--end", "2999-01-01"), "in the future"),
        (("--instruments", "AAPL", "--timeframe", "2-DAYS"), "unknown timeframe"),
        (("--instruments", ""), "no instruments given"),
        (("--instruments", "AAPL,,MSFT"), "empty item"),
        (("--instruments", "AA$PL"), "malformed instrument"),
        (("--instruments", "AAPL", "--what-to-show", "PRICES"), "unknown what-to-show"),
        (
            ("--instruments", "AAPL", "--timeframe", "5-SECOND", "--start", "2024-01-02"),
            "for six months only: the start must be",
        ),
        ((), "no instruments given"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(gateway, capsys, args, message):
    code = fetch(*args)
    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert FetchRun.objects.count() == 0 and Bar.objects.count() == 0


def test_duplicates_are_fetched_once(gateway, capsys):
    assert (
        fetch("--instruments", "AAPL,aapl,AAPL", "--start", "2024-01-01", "--end", "2024-01-31")
        == 0
    )
    assert FetchRun.objects.get().instruments == ["AAPL"]


def test_unreachable_gateway_writes_nothing(settings, capsys, tmp_path, in_process_tasks):
    settings.IBKR_HOST, settings.IBKR_PORT, settings.DATA_DIR = "127.0.0.1", 1, tmp_path
    code = fetch("--instruments", "AAPL", "--start", "2024-01-01", "--end", "2024-01-31")
    err = capsys.readouterr().err
    assert code == 1 and "Couldn't connect to TWS on 127.0.0.1:1" in err
    assert FetchRun.objects.count() == 0


def test_connect_ibkr_prints_the_connection_details(gateway, capsys):
    call_command("connect_ibkr")
    out = capsys.readouterr().out
    assert "✅ Connected to the ibdata gateway simulator on 127.0.0.1: simulated bars" in out
    for field in (
        "ibdata simulator",
        "Host",
        "Port",
        "Account ID",
        "DU1234567",
        "Server Version",
        "176",
        "Connection Time",
    ):
        assert field in out


def test_connect_ibkr_names_a_real_gateway_as_interactive_brokers(
    gateway, sim_factory, settings, capsys
):
    settings.IBKR_PORT = sim_factory(identify=False).port  # stands in for a real TWS
    call_command("connect_ibkr")
    assert "✅ Successfully connected to Interactive Brokers" in capsys.readouterr().out


def test_connect_ibkr_with_nothing_listening_names_the_simulator(gateway, settings, capsys):
    settings.IBKR_PORT = 1
    with pytest.raises(SystemExit) as exit_:
        call_command("connect_ibkr")
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.count("\n") == 1
    assert "connection refused" in err and "IBKR_HOST=sim for the built-in simulator" in err


def test_connect_ibkr_warns_when_mode_and_port_disagree(gateway, settings, capsys):
    settings.TRADING_MODE = "live"
    call_command("connect_ibkr")
    assert "TRADING_MODE=live but account DU1234567 is a paper account" in capsys.readouterr().out


def test_connect_ibkr_client_id_clash_is_one_line(gateway, ib_factory, settings, capsys):
    ib_factory(gateway, client_id=settings.IBKR_CLIENT_ID)
    with pytest.raises(SystemExit) as info:
        call_command("connect_ibkr")
    assert info.value.code == 1
    assert "change IBKR_CLIENT_ID" in capsys.readouterr().err


def test_unreachable_database_is_one_line(sim):
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/ibdata",
        "IBKR_PORT": str(sim.port),
    }
    proc = subprocess.run(
        [sys.executable, "manage.py", "fetch", "--instruments", "AAPL"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("❌ Cannot reach the database")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_connect_ibkr_unreachable_is_one_line(settings, capsys):
    settings.IBKR_HOST, settings.IBKR_PORT = "127.0.0.1", 1
    with pytest.raises(SystemExit) as info:
        call_command("connect_ibkr")
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert "Couldn't connect to TWS on 127.0.0.1:1" in err and "API is enabled" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_dates_are_reported_before_the_gateway_is_tried(settings, capsys, in_process_tasks):
    settings.IBKR_HOST, settings.IBKR_PORT = "127.0.0.1", 1
    code = fetch("--instruments", "AAPL", "--start", "2024-02-01", "--end", "2024-01-01")
    assert code == 2 and "before start date" in capsys.readouterr().err


def test_cancel_unknown_or_finished_run_is_one_line(gateway, capsys):
    assert fetch("--cancel", "4242") == 2
    assert "there is no fetch run 4242" in capsys.readouterr().err
    assert fetch("--instruments", "AAPL", "--start", "2024-01-02", "--end", "2024-01-05") == 0
    run = FetchRun.objects.get()
    capsys.readouterr()
    assert fetch("--cancel", str(run.pk)) == 2
    assert "already succeeded" in capsys.readouterr().err


def test_fetch_status_lists_runs_and_shows_one(gateway, capsys):
    assert fetch("--instruments", "AAPL,XYZQ", "--start", "2024-01-02", "--end", "2024-01-05") == 1
    run = FetchRun.objects.get()
    capsys.readouterr()
    call_command("fetch_status")
    assert str(run.pk) in capsys.readouterr().out
    call_command("fetch_status", str(run.pk))
    out = capsys.readouterr().out
    assert "partial" in out and "AAPL" in out and "No security" in out


YEAR_OF_MINUTES = ("--timeframe", "1-MINUTE", "--start", "2025-01-01", "--end", "2025-12-31")


def test_a_big_fetch_is_announced_with_what_it_will_bring(gateway, capsys):
    assert fetch("--instruments", "AAPL", *YEAR_OF_MINUTES) == 0
    out = capsys.readouterr().out
    run = FetchRun.objects.get()
    # the estimate is the executor's own plan: 250 sessions, 3 of them closing early
    assert run.chunks_planned == 250 and run.bars_stored == 247 * 390 + 3 * 210
    assert "This fetch plans 250 requests for about 96,960 1-MINUTE bars: at least 6 s" in out
    assert fetch("--instruments", "AAPL", "--start", "2025-01-02", "--end", "2025-01-31") == 0
    assert "This fetch plans" not in capsys.readouterr().out  # a small one is not


def test_a_big_fetch_asks_on_a_terminal_and_a_no_starts_nothing(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ibdata_project.settings_test",
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
        "REDIS_URL": "",
        "IBKR_HOST": "sim",
    }
    assert manage(env, "migrate", "-v0").returncode == 0
    leader, follower = pty.openpty()
    command = [sys.executable, "manage.py", "fetch", "--instruments", "MSFT", *YEAR_OF_MINUTES]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=follower, stdout=follower, stderr=follower
    )
    seen, deadline = b"", time.monotonic() + 60
    while b"Go ahead? [y/N]" not in seen and time.monotonic() < deadline:
        if select.select([leader], [], [], 1)[0]:
            seen += os.read(leader, 4096)
    os.write(leader, b"n\n")
    assert proc.wait(timeout=60) == 1, seen.decode()
    assert select.select([leader], [], [], 5)[0] and b"Not started." in os.read(leader, 4096)
    os.close(follower)
    assert "This fetch plans 250 requests" in seen.decode()
    assert "MSFT" not in manage(env, "fetch_status").stdout  # no run was recorded
