"""The Bars list: filters, keyset pages through every series, totals from the series' counts."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from fetcher.models import Bar, Instrument, Series
from tests.support import link, rows

pytestmark = pytest.mark.django_db(transaction=True)
BARS = "admin:fetcher_bar_changelist"
DAILY, HOURLY = 19, 14
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def store(instrument: Instrument, timeframe: int, n: int) -> None:
    step = dt.timedelta(days=1) if timeframe == DAILY else dt.timedelta(hours=1)
    Bar.objects.bulk_create(
        Bar(
            instrument=instrument,
            timeframe=timeframe,
            what_to_show=1,
            ts=T0 + i * step,
            open=i,
            high=i + 1,
            low=i - 1,
            close=i + 0.5,
        )
        for i in range(n)
    )
    Series.objects.create(
        instrument=instrument,
        timeframe=timeframe,
        what_to_show=1,
        rth=True,
        source="simulator",
        bar_count=n,
        first_ts=T0,
        last_ts=T0 + (n - 1) * step,
    )


@pytest.fixture
def stored():
    aapl = Instrument.objects.create(symbol="AAPL", con_id=265598)
    msft = Instrument.objects.create(symbol="MSFT", con_id=272093)
    store(aapl, DAILY, 150)
    store(aapl, HOURLY, 30)
    store(msft, DAILY, 120)
    return aapl, msft


def test_pages_walk_every_bar_once_newest_first_and_back(admin_client, stored):
    url = reverse(BARS)
    html = admin_client.get(url).content.decode()
    assert "300 bars in the matching series" in html
    seen, pages = [], []
    while True:
        page = rows(html)
        pages.append(page)
        seen += page
        older = link(html, "older")
        if not older:
            break
        html = admin_client.get(url + older).content.decode()
    assert [len(p) for p in pages] == [100, 100, 100]
    assert len(set(seen)) == 300
    assert seen[0] == ("MSFT", "DAILY", "2024-04-29 00:00:00")  # the primary key, descending
    # back to newer pages: the same rows as on the way down
    html = admin_client.get(url + link(html, "newer")).content.decode()
    assert rows(html) == pages[1]


def test_a_timeframe_filter_reads_only_that_timeframe(admin_client, stored):
    html = admin_client.get(reverse(BARS), {"timeframe": DAILY}).content.decode()
    assert "270 bars in the matching series" in html
    page = rows(html)
    assert {t for _, t, _ in page} == {"DAILY"} and len(page) == 100
    html = admin_client.get(
        reverse(BARS), {"timeframe": HOURLY, "instrument": stored[0].pk}
    ).content.decode()
    assert len(rows(html)) == 30 and link(html, "older") is None


def test_bad_input_is_said_and_the_first_page_shown(admin_client, stored):
    html = admin_client.get(reverse(BARS), {"older": "1.2.x"}).content.decode()
    assert "malformed page cursor" in html and len(rows(html)) == 100
    html = admin_client.get(reverse(BARS), {"timeframe": "DAILY"}).content.decode()
    assert "timeframe must be a number" in html


def test_staff_without_the_view_permission_cannot_read_bars(client):
    user = User.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse(BARS)).status_code == 403
