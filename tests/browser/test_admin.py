"""The admin in a real browser: log in, fetch a stock and a forex pair from the instrument list,
watch each run reach "succeeded", and find the chart drawn with the stored bars.

Headless Debian chromium (Playwright's sync API with `executable_path`, never a downloaded
browser) against pytest-django's live server; the runs go through Redis to a real ibkr worker
process connected to the simulator. Screenshots go to test-artifacts/ at the project root."""

from __future__ import annotations

import shutil

import pytest
from django.contrib.auth.models import User

from backtests.models import BacktestRun, RunKind
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
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()
        # The test's code ran in Playwright's greenlet, whose context has its own database
        # connection: closed here, or it would keep the test database from being dropped.
        connections.close_all()


def chart_drawn(page, chart_id: str, traces: int) -> None:
    """Wait until the plotly chart has its traces and has taken its box's width (plotly
    resizes a chart a moment after the page's load)."""
    page.wait_for_function(
        f"() => {{ const g = document.getElementById('{chart_id}');"
        f" return g && g.calcdata && g.calcdata.length === {traces} && g._fullLayout"
        " && g.querySelector('svg.main-svg').getBoundingClientRect().right"
        " <= g.getBoundingClientRect().right + 1; }"
    )


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


def assert_fits(page, what: str) -> None:
    """Nothing wider than the 1,400 px window: no horizontal scrolling, of the page nor of a
    list's table in its box."""
    results = page.locator("#changelist .results")
    if results.count():
        inner = results.evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert inner[0] <= inner[1], f"{what}: the list is {inner[0]} px wide in {inner[1]} px"
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    if widths[0] > widths[1]:
        # the outermost elements that stick out, to say where
        wide = page.evaluate(
            "[...document.querySelectorAll('body *')].filter(e =>"
            " e.getBoundingClientRect().right > document.documentElement.clientWidth"
            " && e.parentElement.getBoundingClientRect().right"
            " <= document.documentElement.clientWidth)"
            ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className"
            " + ' ' + Math.round(e.getBoundingClientRect().right))"
        )
        raise AssertionError(f"{what}: {widths[0]} px wide in a {widths[1]} px window: {wide}")


@pytest.fixture
def a_week_of_minutes(gateway) -> Instrument:
    """AAPL's 1-minute bars of a week (Good Friday off), fetched by a backtest on them, and a
    sweep on them; before the browser starts (the commands run their own event loop)."""
    from django.core.management import call_command

    week = ("--symbols", "AAPL", "--start", "2024-03-27", "--end", "2024-04-02")
    call_command("backtest", *week, "--timeframe", "1-MINUTE", "--fast", "10", "--slow", "30")
    call_command(
        "backtest", *week, "--timeframe", "1-MINUTE", "--fast", "5:20:5", "--slow", "30:60:10"
    )
    return Instrument.objects.get(symbol="AAPL")


def test_a_week_of_minutes_a_backtest_and_a_sweep_fit_the_page(
    a_week_of_minutes, browser_page, live_server
):
    """Each page at 1,400 x 900 fits the window: the chart leaves out closed hours, the run
    page shows its metrics, trades and equity as tables and a chart, the sweep is one row of
    the list."""
    from playwright.sync_api import expect

    page, base, aapl = browser_page, live_server.url, a_week_of_minutes
    User.objects.create_superuser("admin", password=PASSWORD)
    stored = Bar.objects.filter(instrument=aapl).count()
    assert stored == 4 * 390  # four sessions: Good Friday is a holiday

    page.goto(f"{base}/admin/fetcher/instrument/{aapl.pk}/change/?series=6-1-1")
    log_in(page)
    chart_drawn(page, "bars-chart", 2)
    assert page.evaluate("document.getElementById('bars-chart').calcdata[0].length") == stored
    # the candles fill the width: the axis leaves out nights, Good Friday and the weekend, so
    # a candle every minute spans the whole plot (without the breaks, a fifth of it)
    span, breaks = page.evaluate(
        """(() => { const g = document.getElementById('bars-chart');
        const a = g._fullLayout.xaxis, p = g.data[0].x.map(t => a.d2p(t));
        const steps = p.slice(1).map((v, i) => v - p[i]).sort((u, v) => u - v);
        return [steps[steps.length >> 1] * (p.length - 1) / a._length, a.rangebreaks.length];
        })()"""
    )
    assert span > 0.9 and breaks == 2, (span, breaks)  # two lengths: nights, the long weekend
    plot = page.locator("#bars-chart .nsewdrag").first.bounding_box()
    assert plot["width"] > 0.85 * page.locator("#bars-chart").bounding_box()["width"]
    shot(page, "instrument-chart-1min")
    assert_fits(page, "instrument chart")

    single = BacktestRun.objects.get(kind=RunKind.SINGLE)
    page.goto(f"{base}/admin/backtests/backtestrun/{single.pk}/change/")
    chart_drawn(page, "equity-chart", 2)
    metrics = page.locator("#run-metrics")
    expect(metrics).to_contain_text("Sharpe Ratio")
    expect(metrics).to_contain_text("(times in America/New_York)")
    expect(metrics).to_contain_text("2024-03-27 09:30 EDT")  # Start, in the exchange's time
    assert page.locator("#run-trades tbody tr").count() == len(single.trades) > 0
    assert "e-" not in metrics.inner_text() and "000000" not in metrics.inner_text()
    shot(page, "backtest-run")
    assert_fits(page, "backtest run")

    # the sweep is one row of the list, its points one click away
    points = BacktestRun.objects.filter(kind=RunKind.SWEEP).count()
    page.goto(f"{base}/admin/backtests/backtestrun/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    expect(page.locator("a.sweep-points")).to_have_text(f"{points} points")
    shot(page, "backtest-runs")
    assert_fits(page, "backtest runs")
    page.click("a.sweep-points")
    expect(rows).to_have_count(points)
    # the filters offer what is stored: one timeframe, not 23
    expect(page.locator("#changelist-filter")).to_contain_text("1-MINUTE")
    assert page.locator("#changelist-filter li", has_text="DAILY").count() == 0

    page.goto(f"{base}/admin/fetcher/fetchrun/")
    shot(page, "fetch-runs")
    assert_fits(page, "fetch runs")
    for column in ("bars", "errors", "duration", "source"):
        expect(page.locator("#result_list thead")).to_contain_text(column, ignore_case=True)
    page.goto(f"{base}/admin/fetcher/instrument/")
    shot(page, "instruments-list")
    assert_fits(page, "instruments")
    page.goto(f"{base}/admin/fetcher/bar/")
    options = page.locator("select[name=timeframe] option").all_inner_texts()
    assert options == ["all", "1-MINUTE"]
    assert_fits(page, "bars")
    page.goto(f"{base}/admin/fetcher/fetchchunk/")
    assert_fits(page, "fetch chunks")
    # times say their zone; no "View site" link to a page that does not exist
    expect(page.locator("#result_list")).to_contain_text(" UTC")
    assert page.locator("#user-tools a", has_text="View site").count() == 0
