"""The instruments admin: its list, fetches started from it for the exact contract, the chart."""

from __future__ import annotations

import pytest
from django.urls import reverse

from fetcher.domain.timeframes import TIMEFRAMES, WhatToShow
from fetcher.models import Bar, FetchRun, FetchRunItem, Instrument, RequestedBy, RunStatus, Series
from tests.support import DAILY, settled, store_bars

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "admin:fetcher_instrument_changelist"


def action(client, name: str, instruments, **form):
    data = {"action": name, "_selected_action": [i.pk for i in instruments], **form}
    return client.post(reverse(CHANGELIST), data, follow=True)


def fetch_daily(client, instruments, start="2024-01-02", end="2024-01-31", what="TRADES"):
    """'Fetch history...' of DAILY bars, regular hours, as a user fills the form."""
    return action(
        client,
        "fetch_history",
        instruments,
        apply="1",
        timeframe="DAILY",
        start=start,
        end=end,
        what_to_show=what,
        use_rth="on",
    )


@pytest.fixture
def in_process_sim(sim, settings, tmp_path, in_process_tasks):
    settings.IBKR_HOST, settings.IBKR_PORT, settings.DATA_DIR = "127.0.0.1", sim.port, tmp_path
    return sim


def test_pages_render_and_the_index_lists_bars(admin_client):
    Instrument.objects.create(symbol="AAPL", con_id=265598)
    for name in ("instrument", "fetchrun", "fetchchunk", "bar"):
        response = admin_client.get(reverse(f"admin:fetcher_{name}_changelist"))
        assert response.status_code == 200, name
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:fetcher_bar_changelist") in index
    assert admin_client.get(reverse(CHANGELIST), {"q": "EUR"}).status_code == 200


def test_anonymous_requests_go_to_the_login_page(client):
    aapl = Instrument.objects.create(symbol="AAPL", con_id=265598)
    for url in (
        reverse("admin:index"),
        reverse(CHANGELIST),
        reverse("admin:fetcher_instrument_change", args=[aapl.pk]),
        reverse("admin:fetcher_plotly_js"),
        reverse("admin:fetcher_bar_changelist"),
        reverse("admin:fetcher_fetchrun_changelist"),
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login")), url


def test_the_list_shows_series_counts_and_the_last_fetch(admin_client):
    aapl = Instrument.objects.create(symbol="AAPL", con_id=265598)
    Series.objects.create(
        instrument=aapl,
        timeframe=TIMEFRAMES["DAILY"].code,
        what_to_show=WhatToShow.TRADES,
        rth=True,
        source="simulator",
        bar_count=2515,
    )
    run = FetchRun.objects.create(instruments=["AAPL"], timeframe=19, status=RunStatus.PARTIAL)
    FetchRunItem.objects.create(run=run, spec="AAPL", instrument=aapl, status="failed")
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert f'failed (<a href="{reverse("admin:fetcher_fetchrun_change", args=[run.pk])}">' in page
    # a queued run knows the instrument by its conId until the worker plans it
    queued = FetchRun.objects.create(instruments=["AAPL"], timeframe=19)
    FetchRunItem.objects.create(run=queued, spec="AAPL", con_id=265598)
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert (
        f'pending (<a href="{reverse("admin:fetcher_fetchrun_change", args=[queued.pk])}">' in page
    )
    assert "DAILY TRADES RTH: 2,515" in page
    assert "ibdata simulator" in page
    for lookup, value in (("series__timeframe__exact", 19), ("series__source__exact", "simulator")):
        page = admin_client.get(reverse(CHANGELIST), {lookup: value}).content.decode()
        assert "DAILY TRADES RTH: 2,515" in page and "1 instrument" in page, lookup


def test_fetch_history_asks_then_refuses_bad_dates_writing_nothing(admin_client):
    aapl = Instrument.objects.create(symbol="AAPL", con_id=265598)
    form = action(admin_client, "fetch_history", [aapl])
    assert b'id="fetch-history-form"' in form.content and b"AAPL" in form.content
    response = action(
        admin_client,
        "fetch_history",
        [aapl],
        apply="1",
        timeframe="DAILY",
        start="2024-03-01",
        end="2024-02-01",
        what_to_show="TRADES",
    )
    assert b"end date 2024-02-01 is before start date 2024-03-01" in response.content
    response = action(admin_client, "fetch_history", [aapl], apply="1", timeframe="HOURLY")
    assert b"Select a valid choice" in response.content
    assert not FetchRun.objects.exists() and not FetchRunItem.objects.exists()


def test_fetch_history_fetches_each_exact_contract(admin_client, in_process_sim):
    eur = Instrument.objects.create(
        symbol="EUR", sec_type="CASH", exchange="IDEALPRO", currency="USD", con_id=12087792
    )
    # an index added by hand, not qualified yet: the fetch qualifies the same row
    spx = Instrument.objects.create(symbol="SPX", sec_type="IND", exchange="CBOE")
    assert b'value="MIDPOINT" selected' in action(admin_client, "fetch_history", [eur]).content
    for instrument, what in ((eur, "MIDPOINT"), (spx, "TRADES")):
        assert b"queued" in fetch_daily(admin_client, [instrument], what=what).content
    eur_run, spx_run = map(settled, FetchRun.objects.order_by("pk"))
    for run in (eur_run, spx_run):
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.requested_by == RequestedBy.ADMIN
    [item] = eur_run.items.all()
    assert (item.sec_type, item.exchange, item.currency, item.con_id) == (
        "CASH",
        "IDEALPRO",
        "USD",
        12087792,
    )
    assert item.instrument_id == eur.pk and eur_run.what_to_show == WhatToShow.MIDPOINT
    [item] = spx_run.items.all()
    assert (item.sec_type, item.exchange, item.instrument_id) == ("IND", "CBOE", spx.pk)
    assert Instrument.objects.count() == 2  # no stock came back in their place
    spx.refresh_from_db()
    assert spx.con_id == 416904
    for instrument, run in ((eur, eur_run), (spx, spx_run)):
        assert 20 <= Bar.objects.filter(instrument=instrument).count() == run.bars_stored


def test_update_to_latest_fetches_from_the_last_stored_bar(admin_client, in_process_sim):
    aapl = Instrument.objects.create(symbol="AAPL", con_id=265598)
    msft = Instrument.objects.create(symbol="MSFT", con_id=272093)
    fetch_daily(admin_client, [aapl])
    first = settled(FetchRun.objects.get())
    assert first.status == RunStatus.SUCCEEDED, first.error
    response = action(admin_client, "update_to_latest", [aapl, msft]).content.decode()
    assert "Nothing stored yet for MSFT" in response
    update = settled(FetchRun.objects.exclude(pk=first.pk).get())
    assert update.status == RunStatus.SUCCEEDED, update.error
    assert update.start is None and update.instruments == ["AAPL"]
    [item] = update.items.all()
    assert item.note.startswith("update after the last stored bar (2024-02-01")
    assert item.con_id == 265598


def test_the_instrument_page_charts_its_stored_bars(admin_client, in_process_sim):
    aapl = Instrument.objects.create(symbol="AAPL", con_id=265598)
    page = reverse("admin:fetcher_instrument_change", args=[aapl.pk])
    assert b"No bars stored yet" in admin_client.get(page).content
    fetch_daily(admin_client, [aapl], end="2024-03-28")
    settled(FetchRun.objects.get())
    stored = Bar.objects.filter(instrument=aapl).count()
    html = admin_client.get(page).content.decode()
    assert 'id="bars-chart"' in html and reverse("admin:fetcher_plotly_js") in html
    assert f'<span id="chart-stored">{stored}</span>' in html
    assert f'<span id="chart-shown">{stored}</span>' in html
    html = admin_client.get(page, {"start": "2024-02-01", "end": "2024-02-29"}).content.decode()
    assert '<span id="chart-shown">20</span>' in html
    html = admin_client.get(page, {"bars": "5"}).content.decode()
    assert '<span id="chart-shown">5</span>' in html and "the last 5 of the range" in html
    html = admin_client.get(page, {"start": "2024-02-30", "bars": "x"}).content.decode()
    assert "start must be a date YYYY-MM-DD" in html
    js = admin_client.get(reverse("admin:fetcher_plotly_js"))
    assert js.status_code == 200 and js["Content-Type"] == "text/javascript"
    assert b"plotly" in b"".join(js.streaming_content)[:2000].lower()


def test_the_chart_takes_any_date_a_date_field_can_hold(admin_client):
    aapl = Instrument.objects.create(symbol="AAPL", con_id=265598, time_zone="US/Eastern")
    store_bars(aapl, DAILY, 30)
    page = reverse("admin:fetcher_instrument_change", args=[aapl.pk])
    for query, shown in (
        ({"end": "9999-12-31"}, 30),
        ({"start": "0001-01-01", "end": "9999-12-31"}, 30),
        ({"start": "9999-12-31"}, 0),
        ({"end": "0001-01-01"}, 0),
    ):
        response = admin_client.get(page, query)
        assert response.status_code == 200, query
        assert f'<span id="chart-shown">{shown}</span>' in response.content.decode(), query


def test_a_qualified_instrument_is_read_only_but_its_active_flag(admin_client):
    aapl = Instrument.objects.create(symbol="AAPL", con_id=265598)
    html = admin_client.get(reverse("admin:fetcher_instrument_change", args=[aapl.pk])).content
    assert b'name="active"' in html and b'name="symbol"' not in html
    response = admin_client.post(
        reverse("admin:fetcher_instrument_add"),
        {"symbol": "eur", "sec_type": "CASH", "exchange": "idealpro", "currency": "usd"},
    )
    assert response.status_code == 302
    assert Instrument.objects.filter(symbol="EUR", exchange="IDEALPRO", con_id=None).exists()
