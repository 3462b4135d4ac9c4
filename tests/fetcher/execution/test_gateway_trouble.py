"""The fetcher through the gateway's life and passing troubles (docs/ibkr.md, "Gateway life and
transient trouble"), against the simulator's faults over a real socket: a competing session, the
nightly reset's false 200, a farm outage, a daily restart, and instruments without market data
permission (a log-off and a reset seen by the ibkr worker's persistent connection: test_worker).
Each run ends with every bar once, or fails its instrument at once."""

from __future__ import annotations

import datetime as dt
import logging
import threading

import pytest

from fetcher.domain.requests import FetchRequest
from fetcher.domain.timeframes import WhatToShow, timeframe_parse
from fetcher.execution.executor import fetch_run_execute
from fetcher.models import (
    Coverage,
    FetchChunk,
    FetchRun,
    FetchRunItem,
    Instrument,
    ItemStatus,
    RunStatus,
)
from fetcher.services.fetch_runs import fetch_run_create
from fetcher.services.submit import fetch_submit
from fetcher.timings import EMPTY_RETRY_S, EMPTY_RETRY_TRIES
from ibsim.server import Faults
from tests.support import bars_of, recent_sessions, truth_times, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SYMBOLS = ("AAPL", "MSFT")
MINUTE = timeframe_parse("1-MINUTE")
JANUARY = ("2024-01-02", "2024-01-31")  # of 1-minute bars: 21 requests an instrument


def january(symbols=SYMBOLS) -> FetchRun:
    request = FetchRequest.parse(
        instruments=",".join(symbols), timeframe="1-MINUTE", start=JANUARY[0], end=JANUARY[1]
    )
    return fetch_run_create(request=request)


def assert_every_bar_once(sim, symbols=SYMBOLS) -> None:
    for symbol in symbols:
        times = [int(r[0].timestamp()) for r in bars_of(symbol, "1-MINUTE")]
        assert times == truth_times(sim, symbol, "1 min", *JANUARY), symbol


@pytest.mark.parametrize(
    ("faults", "code", "logged"),
    [
        (
            Faults(competing_after_requests=5, competing_s=1.5),
            10197,
            "competing live session (No market data during competing live session, IBKR error "
            "10197): another login of this IBKR user (TWS, the mobile app, the web portal) takes "
            "the market data; every request held and asked again after a back-off; log the "
            "other session out, or give the API a user of its own",
        ),
        (
            Faults(spurious_200_after_requests=5, spurious_200_s=1.5),
            200,
            "gateway in its nightly reset (No security definition has been found for the "
            "request, for AAPL which it defined before (a false 200), IBKR error 200): every "
            "request held and asked again after a back-off",
        ),
    ],
    ids=["competing-session", "false-200"],
)
def test_a_trouble_of_the_session_holds_every_request_and_fails_no_instrument(
    sim_factory, point_at, caplog, faults, code, logged
):
    """Requests met 10197 (or a false 200) for 1.5 s: held, the trouble said once at WARNING,
    one request probing after a back-off, none failed for good; every bar once."""
    sim = point_at(sim_factory(faults=faults))
    caplog.set_level(logging.WARNING, logger="ibdata.ibkr")
    done = fetch_run_execute(run_id=january().pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert_every_bar_once(sim)
    said = [r.getMessage() for r in caplog.records if r.name == "ibdata.ibkr"]
    assert [line.replace("MSFT", "AAPL") for line in said if "held" in line] == [logged]
    # held, not hammered: those in flight and a probe a back-off, not every request again
    assert 1 <= sim.stats.errors[code] < 2 * len(SYMBOLS) * 21
    assert FetchChunk.objects.filter(last_error_code=code).exists()
    assert not FetchChunk.objects.exclude(status="done").exists()


def test_requests_wait_for_a_broken_farm(sim_factory, point_at):
    """The historical farm is broken when the run connects (2105 at connect) and back 1.5 s
    later (2106): no request is sent to it meanwhile."""
    sim = point_at(sim_factory())
    sim.call(sim.farm_broken)
    threading.Timer(1.5, lambda: sim.call(sim.farm_restored)).start()
    done = fetch_run_execute(run_id=january().pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert sim.stats.errors[2105] == 1 and sim.stats.errors[2106] == 1
    assert sim.stats.counts["arrived_in_farm_outage"] == 0
    assert_every_bar_once(sim)


def test_requests_a_broken_farm_never_answers_are_sent_again_when_it_is_back(
    sim_factory, point_at, settings
):
    """The farm breaks in the middle of the run: what was on its way to it is never answered.
    At 2106 those requests are cancelled and sent again, not left to their timeout (long here:
    a run waiting for it would take minutes)."""
    settings.IBKR_REQUEST_TIMEOUT = 120
    faults = Faults(farm_outage_after_requests=6, farm_outage_s=1.5)
    sim = point_at(sim_factory(latency_s=0.3, faults=faults))
    done = fetch_run_execute(run_id=january().pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    lost = sim.stats.counts["lost_in_farm_outage"] + sim.stats.counts["arrived_in_farm_outage"]
    assert sim.stats.counts["farm_outages"] == 1 and lost > 0
    resent = FetchChunk.objects.filter(last_error__contains="HMDS data farm was broken")
    assert resent.count() == lost and all(c.attempts == 2 for c in resent)
    assert_every_bar_once(sim)


def test_a_daily_restart_is_reconnected_and_every_bar_stored_once(sim_factory, point_at):
    sim = point_at(sim_factory(faults=Faults(restart_after_requests=10, restart_down_s=1.5)))
    done = fetch_run_execute(run_id=january().pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert sim.stats.counts["restarts"] == 1 and sim.stats.counts["connections"] == 2
    assert_every_bar_once(sim)


def test_no_market_data_permission_fails_the_instrument_at_once_with_how_to_fix_it(
    sim_factory, point_at
):
    sim = point_at(sim_factory(no_permission=frozenset({"MSFT"})))
    done = fetch_run_execute(run_id=january().pk)
    assert done.status == RunStatus.PARTIAL
    msft = FetchRunItem.objects.get(spec="MSFT")
    assert msft.status == ItemStatus.FAILED and msft.error_code == 354
    assert msft.error == (
        "Requested market data is not subscribed: subscribe to this market data in IBKR Account "
        "Management (Settings > Market Data Subscriptions); delayed data "
        "(IBKR_MARKET_DATA_TYPE) does not serve historical bars"
    )
    assert sim.stats.errors[354] == 1  # never asked again
    assert_every_bar_once(sim, ("AAPL",))


def test_a_permission_lost_mid_run_fails_the_instrument_and_stops_its_requests(
    sim_factory, point_at
):
    """Bars of 5 seconds go out at most 5 every 2 seconds: the subscription lapses after the
    first answer; the next requests meet 162 "No market data permissions", and the instrument
    fails with them, its other requests never sent."""
    sim = point_at(sim_factory())
    days = recent_sessions(2)
    request = FetchRequest.parse(
        instruments="AAPL",
        timeframe="5-SECOND",
        start=days[0].isoformat(),
        end=days[-1].isoformat(),
    )
    handle = fetch_submit(request=request, requested_by="cli")
    lapse = threading.Thread(
        target=lambda: (
            wait_until(lambda: sim.stats.counts["bars_served"] > 0, 30, "a first answer"),
            setattr(sim.config, "no_permission", frozenset({"AAPL"})),
        )
    )
    lapse.start()
    done = handle.wait(timeout_s=120).run
    lapse.join()
    assert done.status == RunStatus.FAILED
    item = FetchRunItem.objects.get()
    assert item.error.startswith("No market data permissions for ISLAND STK: subscribe to ")
    assert item.error_code == 162 and "\n" not in item.error
    refused = FetchChunk.objects.filter(last_error_code=162)
    assert refused.exists() and all(c.attempts == 1 for c in refused)  # never retried
    assert sim.stats.counts["historical_requests"] < 14  # the rest never sent


# --- "no data" for a session that traded: a suspect window, healed by a later update -----------


def fetch_minutes(start: str | None = None, end: str | None = None) -> FetchRun:
    """A 1-minute fetch of AAPL in this process: of the dates given, else an update."""
    request = FetchRequest.parse(instruments="AAPL", timeframe="1-MINUTE", start=start, end=end)
    return fetch_run_execute(run_id=fetch_run_create(request=request).pk)


def suspect_windows() -> list:
    from fetcher.selectors import coverage_suspect

    instrument = Instrument.objects.get(symbol="AAPL")
    return coverage_suspect(
        instrument_id=instrument.pk, timeframe=MINUTE.code, what_to_show=WhatToShow.TRADES, rth=True
    )


def test_a_no_data_glitch_on_a_session_that_traded_is_healed_by_the_next_update(
    sim_factory, point_at
):
    """The gateway answers "no data" for a session the calendar says traded (a glitch): the
    window is suspect, not covered. The next update (no start date) asks for it again, though
    it lies before the last stored bar, and stores its bars."""
    sim = point_at(sim_factory())
    days = [d.isoformat() for d in recent_sessions(3, days_ago=3)]
    assert fetch_minutes(days[0], days[0]).status == RunStatus.SUCCEEDED
    sim.config.faults.no_data_rate = 1.0  # every answer with bars says "no data" instead
    assert fetch_minutes(days[1], days[1]).status == RunStatus.SUCCEEDED
    sim.config.faults.no_data_rate = 0.0
    assert fetch_minutes(days[2], days[2]).status == RunStatus.SUCCEEDED
    [glitch] = suspect_windows()
    assert (glitch.tries, glitch.settled) == (1, False)
    assert glitch.start.date().isoformat() == days[1]
    update = fetch_minutes()
    assert update.status == RunStatus.SUCCEEDED
    assert (
        "1 window(s) once answered empty asked again" in FetchRunItem.objects.get(run=update).note
    )
    assert suspect_windows() == []
    times = [int(r[0].timestamp()) for r in bars_of("AAPL", "1-MINUTE")]
    truth = truth_times(sim, "AAPL", "1 min", days[0], days[-1])
    assert times[: len(truth)] == truth


def test_a_window_answered_empty_often_and_long_enough_counts_as_covered(sim_factory, point_at):
    """A session the calendar says traded, answered "no data" every time (a halt the calendar
    does not know): asked again by later fetches, then, answered empty EMPTY_RETRY_TRIES times
    over EMPTY_RETRY_S, covered: no request for it any more."""
    sim = point_at(sim_factory(faults=Faults(no_data_rate=1.0)))
    day = recent_sessions(1, days_ago=3)[0].isoformat()
    for _ in range(EMPTY_RETRY_TRIES):
        assert fetch_minutes(day, day).status == RunStatus.SUCCEEDED
    assert sim.stats.counts["historical_requests"] == EMPTY_RETRY_TRIES
    [window] = suspect_windows()
    assert (window.tries, window.settled) == (EMPTY_RETRY_TRIES, False)  # not long enough yet
    long_ago = window.first_empty - dt.timedelta(seconds=EMPTY_RETRY_S)
    Coverage.objects.filter(empty_since__isnull=False).update(empty_since=long_ago)
    [window] = suspect_windows()
    assert window.settled  # still listed (bars check shows it), counted as covered
    assert fetch_minutes(day, day).status == RunStatus.SUCCEEDED
    assert sim.stats.counts["historical_requests"] == EMPTY_RETRY_TRIES  # not asked again
