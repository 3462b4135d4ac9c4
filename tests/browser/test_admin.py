"""The admin in a real browser: log in, fetch a stock and a forex pair from the instrument list,
watch each run reach "succeeded", and find the chart drawn with the stored bars.

Headless Debian chromium (Playwright's sync API with `executable_path`, never a downloaded
browser) against pytest-django's live server; the runs go through Redis to a real ibkr worker
process connected to the simulator. Screenshots go to test-artifacts/ at the project root."""

from __future__ import annotations

import shutil

import pytest
from django.contrib.auth.models import User

from fetcher.models import Bar, FetchRun, Instrument, RunStatus
from tests.support import DEPLOYED_SHAPE, ROOT, recent_sessions

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
RUN_TIMEOUT_MS = 120_000
PASSWORD = "a-long-test-password"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    *DEPLOYED_SHAPE,
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="needs Debian's chromium (apt-get install chromium; `make test` installs it)",
    ),
]


@pytest.fixture
def browser_page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM reads are
    # plain synchronous calls between its steps.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from django.db import connections

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        context.close()
        browser.close()
        # The test's code ran in Playwright's greenlet, whose context has its own database
        # connection: closed here, or it would keep the test database from being dropped.
        connections.close_all()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"), full_page=True)


def add_instrument(page, base: str, symbol: str, sec_type: str, exchange: str) -> None:
    page.goto(f"{base}/admin/fetcher/instrument/add/")
    page.fill("#id_symbol", symbol)
    page.select_option("#id_sec_type", sec_type)
    page.fill("#id_exchange", exchange)
    page.fill("#id_currency", "USD")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/fetcher/instrument/")


def log_in(page) -> None:
    """On the login page: log in as the test's superuser."""
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def fetch_history(
    page,
    base: str,
    symbol: str,
    *,
    shot_name: str,
    timeframe: str = "DAILY",
    until: str = "succeeded",
    start: str = "2024-01-02",
    end: str = "2024-03-28",
) -> int:
    """Select one instrument, 'Fetch history...' (Q1 2024 by default), and wait on the run's
    page until the run reads `until`; the run's id."""
    from playwright.sync_api import expect

    page.goto(f"{base}/admin/fetcher/instrument/")
    page.locator("#result_list tr", has_text=symbol).locator("input.action-select").check()
    page.select_option("select[name=action]", "fetch_history")
    page.click("button[name=index]")
    expect(page.locator("#fetch-history-form")).to_be_visible()
    page.select_option("#id_timeframe", timeframe)
    page.fill("#id_start", start)
    page.fill("#id_end", end)
    shot(page, f"{shot_name}-form")
    page.click("input[name=apply]")
    message = page.locator(".messagelist li.success")
    expect(message).to_contain_text("queued")
    message.locator("a").click()
    # the run page reloads itself while the run goes on
    expect(page.locator("#run-status .run-status")).to_have_text(until, timeout=RUN_TIMEOUT_MS)
    shot(page, f"{shot_name}-run")
    return int(page.url.rstrip("/").split("/")[-2])


def test_fetch_a_stock_and_a_forex_pair_and_see_their_charts(
    browser_page, live_server, sim, workers
):
    from playwright.sync_api import expect

    page, base = browser_page, live_server.url
    workers(sim)
    User.objects.create_superuser("admin", password=PASSWORD)

    # anonymous: every admin page sends to the login page
    for path in ("/admin/", "/admin/fetcher/instrument/", "/admin/fetcher/bar/"):
        page.goto(base + path)
        assert "/admin/login/?next=" in page.url, path
    shot(page, "login")
    log_in(page)
    page.wait_for_url("**/admin/fetcher/bar/")

    add_instrument(page, base, "AAPL", "STK", "SMART")
    add_instrument(page, base, "EUR", "CASH", "IDEALPRO")
    aapl_run = fetch_history(page, base, "AAPL", shot_name="aapl")
    eur_run = fetch_history(page, base, "EUR", shot_name="eurusd")

    for run_id, sec_type, what in ((aapl_run, "STK", 1), (eur_run, "CASH", 2)):
        run = FetchRun.objects.get(pk=run_id)
        assert run.status == RunStatus.SUCCEEDED and run.what_to_show == what
        [item] = run.items.all()
        assert item.sec_type == sec_type and item.instrument.sec_type == sec_type
    assert Instrument.objects.count() == 2
    eur = Instrument.objects.get(symbol="EUR")
    assert (eur.exchange, eur.con_id, eur.local_symbol) == ("IDEALPRO", 12087792, "EUR.USD")

    for symbol, name in (("AAPL", "aapl"), ("EUR", "eurusd")):
        instrument = Instrument.objects.get(symbol=symbol)
        stored = Bar.objects.filter(instrument=instrument).count()
        assert stored > 50
        page.goto(f"{base}/admin/fetcher/instrument/{instrument.pk}/change/")
        page.wait_for_function(
            "() => { const g = document.getElementById('bars-chart');"
            " return g && g.calcdata && g.calcdata.length === 2; }"
        )
        candles = page.evaluate("document.getElementById('bars-chart').calcdata[0].length")
        assert candles == stored, symbol
        expect(page.locator("#chart-stored")).to_have_text(str(stored))
        # one drawn candle (an SVG path in the box layer) per stored bar
        assert page.locator("#bars-chart .boxlayer path").count() == stored
        shot(page, f"{name}-chart")

    page.goto(f"{base}/admin/fetcher/fetchrun/")
    shot(page, "runs")
    page.goto(f"{base}/admin/fetcher/instrument/")
    expect(page.locator("#result_list")).to_contain_text("DAILY MIDPOINT RTH")
    shot(page, "instruments")


def test_cancel_a_running_fetch_from_its_page(browser_page, live_server, sim, workers):
    from playwright.sync_api import expect

    page, base = browser_page, live_server.url
    workers(sim)
    User.objects.create_superuser("admin", password=PASSWORD)
    page.goto(f"{base}/admin/fetcher/instrument/add/")
    log_in(page)
    add_instrument(page, base, "AAPL", "STK", "SMART")
    # 1-second bars for weeks (kept six months: recent sessions): thousands of requests
    # under IBKR's pacing, hours of work
    sessions = recent_sessions(20)
    run_id = fetch_history(
        page,
        base,
        "AAPL",
        shot_name="cancel",
        timeframe="1-SECOND",
        until="running",
        start=sessions[0].isoformat(),
        end=sessions[-1].isoformat(),
    )
    page.click("#cancel-run")
    expect(page.locator(".messagelist li.success")).to_contain_text(f"Run {run_id} cancelled.")
    page.goto(f"{base}/admin/fetcher/fetchrun/{run_id}/change/")
    expect(page.locator("#run-status .run-status")).to_have_text("cancelled")
    shot(page, "cancelled-run")
    # the worker let it go: the next fetch runs to its end
    fetch_history(page, base, "AAPL", shot_name="after-cancel")
    assert FetchRun.objects.get(pk=run_id).status == RunStatus.CANCELLED
