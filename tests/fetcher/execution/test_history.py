"""Fetching from a gateway with a present of its own (the simulator's --now), then moving time:
bars partial up to now fetched again once complete, weeks dated as IBKR dates them, quote bars
without volume, and a split that swaps every stored series of the instrument whole."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from fetcher.domain.requests import FetchRequest
from fetcher.domain.time import date_epoch
from fetcher.domain.timeframes import TIMEFRAMES, WhatToShow
from fetcher.models import Bar, Coverage, FetchRunItem, Instrument, RequestedBy, RunStatus, Series
from fetcher.selectors import bars_read, coverage_windows
from fetcher.services.submit import fetch_submit
from fetcher.storage.catalog import CatalogSeries
from ibsim.rules import BAR_SIZES
from tests.support import epoch_at

pytestmark = pytest.mark.django_db(transaction=True)

FRIDAY_NOON = epoch_at("2024-06-07 12:00")  # NVDA's last session before its 10:1 split
FRIDAY_EVENING = epoch_at("2024-06-07 20:30")


@pytest.fixture
def at(sim_factory, settings, tmp_path, in_process_tasks):
    """A simulator whose present is `now`, the project pointed at it (one store throughout)."""
    settings.DATA_DIR = tmp_path / "data"

    def start(now: float):
        sim = sim_factory(now=now)
        settings.IBKR_HOST, settings.IBKR_PORT = "127.0.0.1", sim.port
        return sim

    return start


def fetch(symbol: str, timeframe: str, start: str | None = None, what: str = "TRADES"):
    request = FetchRequest.parse(
        instruments=symbol, timeframe=timeframe, start=start, what_to_show=what
    )
    summary = fetch_submit(request=request, requested_by=RequestedBy.CLI).wait(timeout_s=120)
    assert summary.run.status == RunStatus.SUCCEEDED, (summary.run.error, summary.items)
    return summary


def stored(symbol: str, timeframe: str, what: str = "TRADES"):
    instrument = Instrument.objects.get(symbol=symbol)
    return bars_read(
        instrument_id=instrument.pk,
        timeframe=TIMEFRAMES[timeframe].code,
        what_to_show=WhatToShow[what],
        rth=True,
        start=0,
        end=4_102_444_800,  # 2100
    )


def in_catalog(symbol: str, timeframe: str, root, what: str = "TRADES"):
    series = CatalogSeries.of_instrument(
        Instrument.objects.get(symbol=symbol),
        timeframe=TIMEFRAMES[timeframe],
        what_to_show=what,
        use_rth=True,
    )
    return series.read(root=root)


def served(sim, symbol: str, bar_size: str, start: int, end: int, what: str = "TRADES"):
    """The bars the simulator serves now, as they travel (prices to the decimals it sends)."""
    [spec] = sim.market.find(symbol, "STK", "SMART", "USD")
    bars = sim.market.bars(spec, BAR_SIZES[bar_size], what, True, start, end, sim.gateway.now())
    decimals = sim.market.price_decimals(spec, what)
    prices = {p: np.round(getattr(bars, p), decimals) for p in ("open", "high", "low", "close")}
    return bars, prices


def assert_equal_to_served(batch, sim, symbol, bar_size, start, end):
    truth, prices = served(sim, symbol, bar_size, start, end)
    if truth.dates is not None:  # daily and longer: stored at 00:00 UTC of their date
        days = [dt.date(d // 10000, d // 100 % 100, d % 100) for d in truth.dates.tolist()]
        times = [date_epoch(day) for day in days]
    else:
        times = truth.time.tolist()
    assert batch.ts.tolist() == times, symbol
    for name, values in prices.items():
        np.testing.assert_array_equal(getattr(batch, name), values, err_msg=name)
    np.testing.assert_array_equal(batch.volume, truth.volume)


def test_planning_follows_the_gateway_present_not_ours(at):
    at(FRIDAY_NOON)
    summary = fetch("AAPL", "DAILY", start="2024-06-03")
    [item] = summary.items
    assert item.end == dt.datetime(2024, 6, 8, tzinfo=dt.UTC)  # through the gateway's today
    assert len(stored("AAPL", "DAILY")) == 5


def test_a_bar_partial_up_to_now_is_fetched_again_once_complete(at):
    """IBKR answers the bar containing now partial (today's, this hour's): the next update asks
    for it again and stores it whole."""
    at(FRIDAY_NOON)
    fetch("AAPL", "DAILY", start="2024-06-03")
    fetch("AAPL", "1-HOUR", start="2024-06-06")
    partial_day, partial_hours = stored("AAPL", "DAILY"), stored("AAPL", "1-HOUR")
    assert partial_hours.ts[-1] == epoch_at("2024-06-07 11:00")  # the 12:00 hour not begun yet
    sim = at(FRIDAY_EVENING)
    fetch("AAPL", "DAILY")  # updates: after the last complete stored bar
    fetch("AAPL", "1-HOUR")
    day, hours = stored("AAPL", "DAILY"), stored("AAPL", "1-HOUR")
    assert day.volume[-1] > partial_day.volume[-1] and len(day) == len(partial_day) == 5
    assert_equal_to_served(day, sim, "AAPL", "1 day", epoch_at("2024-06-03 00:00"), FRIDAY_EVENING)
    assert_equal_to_served(
        hours, sim, "AAPL", "1 hour", epoch_at("2024-06-06 00:00"), FRIDAY_EVENING
    )
    assert len(hours) == 2 * 7
    assert coverage_windows(
        instrument_id=Instrument.objects.get(symbol="AAPL").pk,
        timeframe=TIMEFRAMES["DAILY"].code,
        what_to_show=WhatToShow.TRADES,
        rth=True,
    ) == [(date_epoch(dt.date(2024, 6, 3)), date_epoch(dt.date(2024, 6, 7)))]  # today: open


def test_weekly_bars_are_keyed_by_the_last_trading_day_as_ibkr_dates_them(at, settings):
    at(epoch_at("2024-06-19 12:00"))  # Juneteenth week: its Friday is the 21st
    fetch("AAPL", "WEEKLY", start="2024-05-20")
    keys = [dt.datetime.fromtimestamp(t, dt.UTC).date() for t in stored("AAPL", "WEEKLY").ts]
    assert keys[-2:] == [dt.date(2024, 6, 14), dt.date(2024, 6, 21)]  # the week so far too
    assert {k.weekday() for k in keys} == {4}  # Fridays (May 27 week: Memorial Day, a Monday)
    sim = at(epoch_at("2024-06-24 12:00"))
    fetch("AAPL", "WEEKLY")
    weeks = stored("AAPL", "WEEKLY")
    assert_equal_to_served(
        weeks, sim, "AAPL", "1 week", epoch_at("2024-05-20 00:00"), epoch_at("2024-06-24 12:00")
    )
    assert_equal_to_served(
        in_catalog("AAPL", "WEEKLY", settings.DATA_DIR / "catalog"),
        sim,
        "AAPL",
        "1 week",
        epoch_at("2024-05-20 00:00"),
        epoch_at("2024-06-24 12:00"),
    )


def test_quote_bars_are_stored_without_volume_or_wap(at, settings):
    at(FRIDAY_EVENING)
    fetch("AAPL", "DAILY", start="2024-06-03", what="MIDPOINT")
    for bars in (
        stored("AAPL", "DAILY", "MIDPOINT"),
        in_catalog("AAPL", "DAILY", settings.DATA_DIR / "catalog", "MIDPOINT"),
    ):
        assert len(bars) == 5 and (bars.close > 0).all() and (bars.bar_count == 0).all()
        assert np.isnan(bars.volume).all() and np.isnan(bars.wap).all()


def test_a_continuous_future_is_fetched_without_an_end_date(at):
    at(FRIDAY_EVENING)
    request = FetchRequest.parse(
        instruments="ES", sec_type="CONTFUT", exchange="CME", timeframe="DAILY",
        start="2024-05-01", use_rth=False,
    )  # fmt: skip
    summary = fetch_submit(request=request, requested_by=RequestedBy.CLI).wait(timeout_s=60)
    assert summary.run.status == RunStatus.SUCCEEDED, summary.items[0].error
    es = Instrument.objects.get(symbol="ES")
    assert (es.sec_type, es.local_symbol) == ("CONTFUT", "ESZ4")
    days = Bar.objects.filter(instrument=es).order_by("ts").values_list("ts", flat=True)
    assert [d.date() for d in days[:1]] + [d.date() for d in days][-1:] == [
        dt.date(2024, 5, 1),
        dt.date(2024, 6, 7),
    ]


def test_a_split_swaps_every_stored_series_of_the_instrument(at, settings, capsys, admin_client):
    """NVDA split 10:1 on 2024-06-10: an update of its daily bars notices that the last one
    stored came back ten times lower, fetches its daily and 1-minute series again and swaps
    them whole, in the database and the catalog."""
    at(FRIDAY_EVENING)
    fetch("NVDA", "DAILY", start="2024-05-01")
    fetch("NVDA", "1-MINUTE", start="2024-06-05")
    before = stored("NVDA", "DAILY")
    sim = at(epoch_at("2024-06-12 20:30"))  # two sessions after the split
    capsys.readouterr()
    call_command("fetch", "--instruments", "NVDA", "--timeframe", "DAILY")  # an update
    said = "NVDA: history changed 10:1 after 2024-06-06; 2 series refetched"
    assert said in capsys.readouterr().out
    item = FetchRunItem.objects.order_by("-pk").first()
    assert item.history == said
    root = settings.DATA_DIR / "catalog"
    day_range = (epoch_at("2024-05-01 00:00"), epoch_at("2024-06-12 20:30"))
    minute_range = (epoch_at("2024-06-05 00:00"), epoch_at("2024-06-12 20:30"))
    for bars in (stored("NVDA", "DAILY"), in_catalog("NVDA", "DAILY", root)):
        assert_equal_to_served(bars, sim, "NVDA", "1 day", *day_range)
    for bars in (stored("NVDA", "1-MINUTE"), in_catalog("NVDA", "1-MINUTE", root)):
        assert_equal_to_served(bars, sim, "NVDA", "1 min", *minute_range)
    after = stored("NVDA", "DAILY")
    np.testing.assert_allclose(after.close[: len(before) - 1] * 10, before.close[:-1], rtol=1e-4)
    assert Series.objects.get(timeframe=TIMEFRAMES["1-MINUTE"].code).bar_count == 6 * 390
    assert Coverage.objects.filter(timeframe=TIMEFRAMES["1-MINUTE"].code).exists()

    fetch("NVDA", "1-MINUTE")  # its own update finds nothing changed any more
    assert FetchRunItem.objects.order_by("-pk").first().history == ""
    call_command("fetch_status", str(item.run_id))
    assert said in capsys.readouterr().out
    page = admin_client.get(reverse("admin:fetcher_fetchrun_change", args=[item.run_id]))
    assert said in page.content.decode()
    assert not Bar.objects.filter(volume__isnull=True).exists()
