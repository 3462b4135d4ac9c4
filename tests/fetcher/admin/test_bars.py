"""The Bars list: filters, keyset pages through every series, totals from the series' counts."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from fetcher.models import Instrument
from tests.support import DAILY, HOURLY, link, rows, store_bars

pytestmark = pytest.mark.django_db(transaction=True)
BARS = "admin:fetcher_bar_changelist"


@pytest.fixture
def stored():
    aapl = Instrument.objects.create(symbol="AAPL", con_id=265598)
    msft = Instrument.objects.create(symbol="MSFT", con_id=272093)
    store_bars(aapl, DAILY, 150)
    store_bars(aapl, HOURLY, 30)
    store_bars(msft, DAILY, 120)
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
    # numbers no column holds: said on the page, never sent to the database
    response = admin_client.get(reverse(BARS), {"instrument": "9" * 20})
    assert response.status_code == 200 and len(rows(response.content.decode())) == 100
    assert "instrument must be a number from 0 to 2,147,483,647" in response.content.decode()
    for cursor in ("1.19.1.1." + "9" * 20, "9" * 20 + ".19.1.1.0", "1.19.1.1.-" + "9" * 15):
        html = admin_client.get(reverse(BARS), {"older": cursor}).content.decode()
        assert f"malformed page cursor &#x27;{cursor}&#x27;" in html and len(rows(html)) == 100


def test_staff_without_the_view_permission_cannot_read_bars(client):
    user = User.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse(BARS)).status_code == 403
