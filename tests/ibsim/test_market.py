"""The simulated market: real sessions, deterministic bars, exact aggregation, IBKR's errors."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from ibsim.market import BarArrays, Market, MarketError
from ibsim.rules import BAR_SIZES, WHAT_TO_SHOW
from tests.support import epoch_at, listing

ET = ZoneInfo("America/New_York")
CT = ZoneInfo("America/Chicago")
FIELDS = ("time", "open", "high", "low", "close", "volume", "wap", "count")


def clock(epochs: np.ndarray, zone: ZoneInfo = ET) -> list[str]:
    return [datetime.fromtimestamp(int(t), zone).strftime("%H:%M") for t in epochs]


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(seed=0)


AAPL = listing("AAPL")
NVDA = listing("NVDA")
META = listing("META")
ES = listing("ES", "FUT")
SPX = listing("SPX", "IND")
EURUSD = listing("EUR", "CASH")


def bars(
    market: Market, instrument, size: str, start: int, end: int, what="TRADES", rth=True, now=None
):
    return market.bars(instrument, BAR_SIZES[size], what, rth, start, end, now)


def concat(parts: list[BarArrays]) -> dict[str, np.ndarray]:
    return {f: np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS}


def assert_same(a: BarArrays, b: dict[str, np.ndarray] | BarArrays) -> None:
    for f in FIELDS:
        other = b[f] if isinstance(b, dict) else getattr(b, f)
        np.testing.assert_array_equal(getattr(a, f), other, err_msg=f)


def aggregate(b: BarArrays, lo: int, hi: int, wap: bool = True) -> dict[str, float]:
    """The bar that rows [lo, hi) of `b` aggregate to (quote bars: -1, no trades to count)."""
    volume = b.volume[lo:hi]
    out = {
        "open": b.open[lo],
        "high": b.high[lo:hi].max(),
        "low": b.low[lo:hi].min(),
        "close": b.close[hi - 1],
        "volume": volume.sum(),
        "count": b.count[lo:hi].sum(),
    }
    if (volume == -1).all():
        return out | {"volume": -1, "count": -1} | ({"wap": -1.0} if wap else {})
    if wap:
        w = b.wap[lo:hi]
        out["wap"] = (volume * w).sum() / volume.sum() if volume.sum() else w.mean()
    return out


def assert_bar(b: BarArrays, i: int, expected: dict[str, float]) -> None:
    for f, value in expected.items():
        if f == "wap":
            assert getattr(b, f)[i] == pytest.approx(value, rel=1e-9), f
        else:
            assert getattr(b, f)[i] == value, f


# --- sessions -----------------------------------------------------------------------------------


def test_daily_bars_follow_the_nyse_calendar(market):
    b = bars(market, AAPL, "1 day", epoch_at("2024-01-01 00:00"), epoch_at("2024-02-01 00:00"))
    expected = [d for d in range(20240102, 20240132) if d not in (20240106, 20240107, 20240113,
                20240114, 20240115, 20240120, 20240121, 20240127, 20240128)]  # fmt: skip
    assert len(b) == 21
    assert b.dates.tolist() == expected
    assert b.time[0] == epoch_at("2024-01-02 09:30")


def test_minute_bars_cover_rth_early_closes_and_extended_hours(market):
    day = bars(market, AAPL, "1 min", epoch_at("2024-01-02 00:00"), epoch_at("2024-01-03 00:00"))
    assert len(day) == 390
    assert clock(day.time[[0, -1]]) == ["09:30", "15:59"]
    assert np.all(np.diff(day.time) == 60)
    assert day.dates is None

    early = bars(market, AAPL, "1 min", epoch_at("2023-11-24 00:00"), epoch_at("2023-11-25 00:00"))
    assert len(early) == 210
    assert clock(early.time[[0, -1]]) == ["09:30", "12:59"]

    extended = bars(
        market, AAPL, "1 min", epoch_at("2024-01-02 00:00"), epoch_at("2024-01-03 00:00"), rth=False
    )
    assert len(extended) == 960
    assert clock(extended.time[[0, -1]]) == ["04:00", "19:59"]

    holiday = bars(
        market, AAPL, "1 min", epoch_at("2024-01-15 00:00"), epoch_at("2024-01-16 00:00"), rth=False
    )
    assert len(holiday) == 0


def test_hourly_rth_bars_are_on_the_clock_grid_from_the_open(market):
    b = bars(market, AAPL, "1 hour", epoch_at("2024-01-02 00:00"), epoch_at("2024-01-03 00:00"))
    assert clock(b.time) == ["09:30", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00"]
    half = bars(market, AAPL, "30 mins", epoch_at("2024-01-02 00:00"), epoch_at("2024-01-03 00:00"))
    assert clock(half.time[:3]) == ["09:30", "10:00", "10:30"] and len(half) == 13
    ext = bars(
        market,
        AAPL,
        "4 hours",
        epoch_at("2024-01-02 00:00"),
        epoch_at("2024-01-03 00:00"),
        rth=False,
    )
    assert clock(ext.time) == ["04:00", "08:00", "12:00", "16:00"]


def test_future_and_forex_have_sessions_on_a_weekday(market):
    window = (
        epoch_at("2024-01-01 00:00"),
        epoch_at("2024-01-07 12:00"),
    )  # ES opens Monday's on Sunday
    es_days = bars(market, ES, "1 day", *window, rth=False)
    fx_days = bars(market, EURUSD, "1 day", *window, what="MIDPOINT", rth=False)
    assert es_days.dates.tolist() == [20240102, 20240103, 20240104, 20240105]
    assert fx_days.dates.tolist() == [20240102, 20240103, 20240104, 20240105]
    assert np.all(es_days.volume > 0) and np.all(fx_days.volume == -1)  # quotes: no volume
    es_minutes = bars(
        market,
        ES,
        "1 min",
        epoch_at("2024-01-02 17:00", CT),
        epoch_at("2024-01-03 17:00", CT),
        rth=False,
    )
    assert len(es_minutes) == 23 * 60


def test_index_has_rth_only_and_no_volume(market):
    window = (epoch_at("2024-01-02 00:00"), epoch_at("2024-01-03 00:00"))
    rth = bars(market, SPX, "1 min", *window)
    ext = bars(market, SPX, "1 min", *window, rth=False)
    assert len(rth) == len(ext) == 390
    assert not rth.volume.any() and not rth.count.any()


def test_sessions_back_counts_sessions(market):
    end = epoch_at("2024-01-17 12:00")  # Wednesday after MLK day
    assert market.sessions_back(AAPL, end, 1, True) == epoch_at("2024-01-17 09:30")
    assert market.sessions_back(AAPL, end, 3, True) == epoch_at("2024-01-12 09:30")
    assert market.sessions_back(AAPL, end, 3, False) == epoch_at("2024-01-12 04:00")
    assert market.sessions_back(AAPL, epoch_at("1970-01-01 00:00"), 3, True) == epoch_at(
        "1970-01-01 00:00"
    )


def test_trading_hours_strings(market):
    trading, liquid = market.trading_hours(AAPL, epoch_at("2024-01-01 12:00"), days=3)
    assert trading == "20240101:CLOSED;20240102:0400-20240102:2000;20240103:0400-20240103:2000"
    assert liquid == "20240101:CLOSED;20240102:0930-20240102:1600;20240103:0930-20240103:1600"
    trading, liquid = market.trading_hours(ES, epoch_at("2024-01-03 12:00"), days=1)
    assert (trading, liquid) == ("20240102:1700-20240103:1600", "20240103:0830-20240103:1500")


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "start", "end", "cuts", "rth"),
    [
        (
            "1 min",
            "2024-01-02 00:00",
            "2024-01-04 00:00",
            ["2024-01-02 11:17", "2024-01-03 09:00"],
            False,
        ),
        (
            "5 mins",
            "2024-01-08 00:00",
            "2024-01-13 00:00",
            ["2024-01-09 10:02", "2024-01-11 00:00"],
            True,
        ),
        (
            "1 hour",
            "2024-01-01 00:00",
            "2024-02-01 00:00",
            ["2024-01-09 10:30", "2024-01-20 00:00"],
            False,
        ),
        (
            "1 day",
            "2022-01-01 00:00",
            "2024-01-01 00:00",
            ["2022-07-04 09:31", "2023-03-01 00:00"],
            True,
        ),
        (
            "1 week",
            "2022-01-01 00:00",
            "2024-01-01 00:00",
            ["2022-07-04 09:31", "2023-03-01 00:00"],
            False,
        ),
        (
            "5 secs",
            "2024-01-02 10:00",
            "2024-01-02 11:00",
            ["2024-01-02 10:07", "2024-01-02 10:31"],
            True,
        ),
    ],
)
def test_a_range_equals_its_chunks(market, size, start, end, cuts, rth):
    edges = [epoch_at(start), *(epoch_at(c) for c in cuts), epoch_at(end)]
    whole = bars(market, AAPL, size, edges[0], edges[-1], rth=rth)
    parts = [
        bars(market, AAPL, size, a, b, rth=rth) for a, b in zip(edges, edges[1:], strict=False)
    ]
    assert len(whole) > 10 and all(len(p) for p in parts)
    assert_same(whole, concat(parts))


def test_bars_do_not_depend_on_the_market_instance_but_on_the_seed():
    window = (epoch_at("2024-01-02 00:00"), epoch_at("2024-01-03 00:00"))
    first = bars(Market(seed=0), AAPL, "1 min", *window)
    assert_same(first, bars(Market(seed=0), AAPL, "1 min", *window))
    assert not np.array_equal(first.close, bars(Market(seed=1), AAPL, "1 min", *window).close)


# --- aggregation ------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["TRADES", "BID", "ADJUSTED_LAST", "BID_ASK"])
def test_daily_bars_aggregate_the_days_minutes(market, what):
    window = (epoch_at("2023-11-20 00:00"), epoch_at("2023-11-28 00:00"))  # with an early close
    for rth in (True, False):
        days = bars(market, AAPL, "1 day", *window, what=what, rth=rth)
        minutes = bars(market, AAPL, "1 min", *window, what=what, rth=rth)
        day_of_minute = np.array(
            [int(datetime.fromtimestamp(int(t), ET).strftime("%Y%m%d")) for t in minutes.time]
        )
        assert len(days) == 5
        for i, date in enumerate(days.dates):
            rows = np.flatnonzero(day_of_minute == date)
            expected = aggregate(minutes, rows[0], rows[-1] + 1)
            if what == "BID_ASK":  # time averages of bid and ask
                expected["open"] = pytest.approx(minutes.open[rows].mean(), rel=1e-12)
                expected["close"] = pytest.approx(minutes.close[rows].mean(), rel=1e-12)
            assert_bar(days, i, expected)


def test_weekly_and_monthly_bars_aggregate_daily_bars(market):
    window = (epoch_at("2023-12-01 00:00"), epoch_at("2024-02-01 00:00"))
    days = bars(market, AAPL, "1 day", *window)
    weeks = bars(market, AAPL, "1 week", epoch_at("2024-01-08 00:00"), epoch_at("2024-01-22 00:00"))
    assert weeks.dates.tolist() == [20240112, 20240119]  # dated by their last trading day
    for i, (lo, hi) in enumerate([(20240108, 20240113), (20240116, 20240120)]):
        rows = np.flatnonzero((days.dates >= lo) & (days.dates <= hi))
        assert_bar(weeks, i, aggregate(days, rows[0], rows[-1] + 1))
    months = bars(market, AAPL, "1 month", *window)
    assert months.dates.tolist() == [20231201, 20240102]
    assert months.time[1] == epoch_at("2024-01-02 09:30")
    rows = np.flatnonzero(days.dates >= 20240101)
    assert_bar(months, 1, aggregate(days, rows[0], rows[-1] + 1))


def test_hourly_bars_aggregate_minutes(market):
    window = (epoch_at("2024-01-02 00:00"), epoch_at("2024-01-03 00:00"))
    hours = bars(market, AAPL, "1 hour", *window, rth=False)
    minutes = bars(market, AAPL, "1 min", *window, rth=False)
    assert len(hours) == 16
    for i, start in enumerate(hours.time):
        rows = np.flatnonzero((minutes.time >= start) & (minutes.time < start + 3600))
        assert len(rows) == 60
        assert_bar(hours, i, aggregate(minutes, rows[0], rows[-1] + 1))


@pytest.mark.parametrize(("instrument", "what"), [(AAPL, "TRADES"), (AAPL, "ASK"), (EURUSD, "MIDPOINT"),
                                                  (ES, "TRADES"), (AAPL, "HISTORICAL_VOLATILITY")])  # fmt: skip
def test_minute_bars_aggregate_their_seconds(market, instrument, what):
    start = epoch_at("2024-01-03 10:00")
    minutes = bars(market, instrument, "1 min", start, start + 1800, what=what)
    seconds = bars(market, instrument, "1 secs", start, start + 1800, what=what)
    fives = bars(market, instrument, "5 secs", start, start + 1800, what=what)
    assert len(seconds) == 60 * len(minutes) == 1800 and len(fives) == 360
    assert np.array_equal(seconds.time[::60], minutes.time)
    for i in range(len(minutes)):
        assert_bar(minutes, i, aggregate(seconds, 60 * i, 60 * i + 60, wap=False))
    for i in range(0, len(fives), 7):
        assert_bar(fives, i, aggregate(seconds, 5 * i, 5 * i + 5))
    if what == "TRADES" and instrument is AAPL:
        assert seconds.volume.sum() > 0
        assert np.all(seconds.count[seconds.volume > 0] >= 1)


# --- every whatToShow ---------------------------------------------------------------------------


def _allowed(market, instrument):
    allowed = []
    for what in WHAT_TO_SHOW:
        try:
            market.head_timestamp(instrument, what, True)
        except MarketError:
            continue
        allowed.append(what)
    return allowed


@pytest.mark.parametrize(
    "instrument", [AAPL, ES, SPX, EURUSD, listing("BRK B")], ids=lambda s: s.symbol
)
def test_ohlc_invariants_hold_for_every_what_to_show(market, instrument):
    rng = np.random.default_rng(7)
    sizes = [
        "1 secs",
        "15 secs",
        "1 min",
        "3 mins",
        "20 mins",
        "2 hours",
        "8 hours",
        "1 day",
        "1 week",
    ]
    checked = 0
    for what in _allowed(market, instrument):
        for size in sizes:
            bar_size = BAR_SIZES[size]
            for _ in range(2):
                start = epoch_at("2008-01-01 00:00") + int(rng.integers(0, 16 * 365)) * 86400
                length = (
                    3600 if bar_size.small else (86400 * 3 if bar_size.intraday else 86400 * 90)
                )
                for rth in (True, False):
                    b = market.bars(instrument, bar_size, what, rth, start, start + length)
                    checked += len(b)
                    assert np.all(np.diff(b.time) > 0)
                    assert np.all(b.low <= np.minimum(b.open, b.close)), (what, size)
                    assert np.all(b.high >= np.maximum(b.open, b.close)), (what, size)
                    assert np.all(b.low > 0) and np.all(np.isfinite(b.wap))
                    if what in ("MIDPOINT", "BID", "ASK", "BID_ASK"):  # no trades to count
                        assert np.all(b.volume == -1) and np.all(b.count == -1)
                        assert np.all(b.wap == -1)
                        continue
                    assert np.all(b.volume >= 0) and np.all(b.count >= 0)
                    assert np.all(b.count[b.volume > 0] >= 1)
                    if instrument.daily_volume == 0:
                        assert not b.volume.any()
                    if what in ("HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY") and len(b):
                        assert b.low.min() > 0.05 and b.high.max() < 1.0
    assert checked > 1000


def test_bid_ask_midpoint_and_adjusted_relations(market):
    window = (epoch_at("2023-06-01 00:00"), epoch_at("2023-06-02 00:00"))
    trades, mid, bid, ask, both, adjusted = (
        bars(market, AAPL, "1 min", *window, what=w)
        for w in ("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK", "ADJUSTED_LAST")
    )
    assert np.array_equal(mid.close, trades.close) and np.all(mid.volume == -1)
    assert np.all(bid.close < mid.close) and np.all(ask.close > mid.close)
    assert np.allclose(mid.close - bid.close, ask.close - mid.close)
    assert np.all(both.low == bid.low) and np.all(both.high == ask.high)
    assert np.all(adjusted.close <= trades.close) and np.array_equal(adjusted.volume, trades.volume)
    years = bars(
        market,
        AAPL,
        "1 month",
        epoch_at("2000-01-01 00:00"),
        epoch_at("2024-01-01 00:00"),
        what="ADJUSTED_LAST",
    )
    plain = bars(
        market, AAPL, "1 month", epoch_at("2000-01-01 00:00"), epoch_at("2024-01-01 00:00")
    )
    ratio = years.close / plain.close
    assert ratio[0] < ratio[-1] <= 1.0


def test_prices_are_near_the_anchor_in_january_2024(market):
    for instrument in (AAPL, listing("MSFT"), listing("SPY"), ES, SPX, EURUSD):
        what = "MIDPOINT" if instrument is EURUSD else "TRADES"
        b = bars(
            market,
            instrument,
            "1 day",
            epoch_at("2024-01-02 00:00"),
            epoch_at("2024-01-03 00:00"),
            what=what,
        )
        assert b.close[0] == pytest.approx(instrument.anchor_price, rel=0.1)
        ticks = b.close / instrument.min_tick
        assert np.allclose(ticks, np.round(ticks))


# --- head timestamp and errors -------------------------------------------------------------------


def test_no_bar_before_the_head_timestamp(market):
    head = market.head_timestamp(AAPL, "TRADES", False)
    assert head == int(datetime(1980, 12, 12, 14, 30, tzinfo=ZoneInfo("UTC")).timestamp())
    assert market.head_timestamp(AAPL, "TRADES", True) == head
    early = epoch_at("1980-11-01 00:00")
    for size in ("1 min", "1 hour", "1 day", "1 week", "1 month"):
        for rth in (True, False):
            b = bars(market, AAPL, size, early, epoch_at("1981-01-15 00:00"), rth=rth)
            assert len(b) and b.time[0] == head and np.all(b.time >= head), (size, rth)
    assert len(bars(market, AAPL, "1 day", early, head)) == 0
    meta = listing("META")
    assert (
        len(bars(market, meta, "1 day", epoch_at("2012-01-01 00:00"), epoch_at("2012-05-18 00:00")))
        == 0
    )
    assert (
        bars(
            market, meta, "1 day", epoch_at("2012-01-01 00:00"), epoch_at("2012-06-01 00:00")
        ).dates[0]
        == 20120518
    )


def test_unsupported_requests_raise_ibkr_errors(market):
    window = (epoch_at("2024-01-02 00:00"), epoch_at("2024-01-03 00:00"))
    with pytest.raises(MarketError) as info:
        bars(market, EURUSD, "1 day", *window, what="TRADES")
    assert info.value.code == 162
    assert "No historical market data for EUR/CASH@FXSUBPIP Last" in info.value.message
    with pytest.raises(MarketError) as info:
        bars(market, AAPL, "1 day", *window, what="bX")
    assert info.value.code == 321 and "Invalid whatToShow" in info.value.message
    with pytest.raises(MarketError) as info:
        market.head_timestamp(EURUSD, "TRADES", True)
    assert info.value.code == 162
    with pytest.raises(MarketError):
        bars(market, SPX, "1 day", *window, what="BID")


def test_empty_and_out_of_calendar_requests_return_no_bars(market):
    assert (
        len(bars(market, AAPL, "1 min", epoch_at("2024-01-06 00:00"), epoch_at("2024-01-07 00:00")))
        == 0
    )
    assert (
        len(bars(market, AAPL, "1 day", epoch_at("2035-01-01 00:00"), epoch_at("2036-01-01 00:00")))
        == 0
    )
    empty = bars(market, AAPL, "1 day", epoch_at("2024-01-03 00:00"), epoch_at("2024-01-02 00:00"))
    assert len(empty) == 0 and empty.dates is not None


@pytest.mark.parametrize(
    ("size", "word"), [("5 secs", "5 secs"), ("1 hour", "60 mins"), ("1 week", "1w"), (None, "1d")]
)
def test_no_data_for_a_tick_type_names_the_bar_size_as_ibkr_does(market, size, word):
    with pytest.raises(MarketError) as info:
        market.check(EURUSD, "TRADES", BAR_SIZES[size] if size else None)
    assert info.value.message.endswith(f"EUR/CASH@FXSUBPIP Last {word}")
    assert str(info.value) == f"162: {info.value.message}"
    market.check(EURUSD, "MIDPOINT", BAR_SIZES[size] if size else None)  # served


# --- the present ---------------------------------------------------------------------------------

NOW = epoch_at("2024-06-07 12:00") + 30  # a Friday, in a session, in a minute
FRIDAY = (epoch_at("2024-06-07 00:00"), epoch_at("2024-06-08 00:00"))


def test_nothing_after_the_present_exists(market):
    assert clock(bars(market, AAPL, "1 min", *FRIDAY, now=NOW).time[[0, -1]]) == ["09:30", "12:00"]
    later = (epoch_at("2024-06-10 00:00"), epoch_at("2024-06-12 00:00"))
    for size in ("1 secs", "1 min", "1 hour", "1 day", "1 month"):
        assert len(bars(market, AAPL, size, *later, now=NOW)) == 0, size
    with pytest.raises(MarketError) as info:
        market.head_timestamp(AAPL, "BID", True, now=epoch_at("2003-06-02 12:00"))
    assert info.value.code == 162 and "returned no data: AAPL@SMART Bid" in info.value.message


def test_the_bar_in_progress_is_partial_up_to_now(market):
    seconds = bars(market, AAPL, "1 secs", epoch_at("2024-06-07 12:00"), NOW + 60, now=NOW)
    assert len(seconds) == 30  # 12:00:00 to 12:00:29
    minutes = bars(market, AAPL, "1 min", *FRIDAY, now=NOW)
    assert_bar(minutes, len(minutes) - 1, aggregate(seconds, 0, 30, wap=False))
    day = bars(market, AAPL, "1 day", *FRIDAY, now=NOW)
    assert len(day) == 1
    assert_bar(day, 0, aggregate(minutes, 0, len(minutes)))
    hours = bars(market, AAPL, "1 hour", *FRIDAY, now=NOW)
    assert clock(hours.time) == ["09:30", "10:00", "11:00", "12:00"]
    assert_bar(hours, 3, aggregate(minutes, len(minutes) - 1, len(minutes)))
    complete = bars(market, AAPL, "1 day", *FRIDAY, now=NOW + 6 * 3600)  # after the close
    assert complete.volume[0] > day.volume[0] and complete.time[0] == day.time[0]
    assert_same(complete, bars(market, AAPL, "1 day", *FRIDAY))


def test_the_week_in_progress_is_dated_by_its_last_trading_day(market):
    window = (epoch_at("2024-05-27 00:00"), epoch_at("2024-06-08 00:00"))
    weeks = bars(market, AAPL, "1 week", *window, now=NOW)
    assert weeks.dates.tolist() == [20240531, 20240607]  # Memorial Day week, this one
    days = bars(market, AAPL, "1 day", epoch_at("2024-06-03 00:00"), FRIDAY[1], now=NOW)
    assert_bar(weeks, 1, aggregate(days, 0, len(days)))
    on_tuesday = bars(market, AAPL, "1 week", *window, now=NOW - 3 * 86400)
    assert on_tuesday.dates.tolist() == [20240531, 20240607]  # Friday still to come
    assert on_tuesday.volume[1] < weeks.volume[1]


def test_quote_history_begins_years_after_the_trades(market):
    trades = market.head_timestamp(AAPL, "TRADES", True)
    for what in ("BID", "ASK", "BID_ASK", "MIDPOINT"):
        head = market.head_timestamp(AAPL, what, True)
        assert head == epoch_at("2004-01-02 09:30") and head - trades > 20 * 365 * 86400
        first = bars(market, AAPL, "1 day", epoch_at("2003-12-01 00:00"), head + 86400, what=what)
        assert first.dates.tolist() == [20040102], what
        early = bars(market, AAPL, "1 hour", head - 86400, head + 1800, what=what, rth=False)
        assert early.time.tolist() == [head], what
    assert market.head_timestamp(META, "BID", True) == market.head_timestamp(META, "TRADES", True)


def test_contracts_exist_from_their_listing_and_futures_until_two_years_after_expiry(market):
    def found(symbol, sec_type, when, expired=False):
        return market.find(symbol, sec_type, "", "USD", include_expired=expired, now=when)

    assert found("META", "STK", epoch_at("2012-05-17 12:00")) == []
    assert found("META", "STK", epoch_at("2012-05-18 12:00")) == [META]
    expired, gone = epoch_at("2025-01-06 12:00"), epoch_at("2026-12-21 12:00")
    assert found("ES", "FUT", epoch_at("2024-12-20 12:00")) == [ES]
    assert found("ES", "FUT", expired) == []
    assert found("ES", "FUT", expired, expired=True) == [ES]
    assert found("ES", "FUT", gone, expired=True) == []
    assert found("ES", "CONTFUT", gone) == [ES]  # a continuous future does not expire
    window = (epoch_at("2024-12-16 00:00", CT), epoch_at("2025-01-10 00:00", CT))
    assert bars(market, ES, "1 day", *window, rth=False).dates[-1] == 20241220  # its last day
    december = bars(market, ES, "1 month", epoch_at("2024-11-20 00:00"), window[1], rth=False)
    days = bars(market, ES, "1 day", epoch_at("2024-11-25 00:00"), window[1], rth=False)
    assert december.dates.tolist() == [20241202]
    assert december.volume[0] == days.volume[days.dates >= 20241202].sum()


# --- splits -------------------------------------------------------------------------------------

EVE = epoch_at("2024-06-08 12:00")  # the Saturday before NVDA's 10:1 split of 2024-06-10
AFTER = epoch_at("2024-06-11 12:00")
FIRST_WEEK = (epoch_at("2024-06-03 00:00"), epoch_at("2024-06-08 00:00"))


def test_history_served_after_a_split_is_adjusted_for_it(market):
    for size in ("1 min", "1 hour", "1 day", "1 week"):
        before = bars(market, NVDA, size, *FIRST_WEEK, now=EVE)
        after = bars(market, NVDA, size, *FIRST_WEEK, now=AFTER)
        assert len(before) == len(after) > 0 and np.array_equal(before.time, after.time)
        for field in ("open", "high", "low", "close", "wap"):
            np.testing.assert_allclose(
                getattr(after, field) * 10, getattr(before, field), rtol=1e-12
            )
        assert np.array_equal(after.volume, before.volume * 10)
        assert np.array_equal(after.count, before.count)  # as many trades as before


def test_what_traded_drops_by_the_ratio_on_the_day_and_adjusted_history_is_continuous(market):
    eve = bars(market, NVDA, "1 day", *FIRST_WEEK, now=EVE).close[-1]
    monday = (epoch_at("2024-06-10 00:00"), epoch_at("2024-06-11 00:00"))
    [opened] = bars(market, NVDA, "1 day", *monday, now=AFTER).open
    assert opened == pytest.approx(eve / 10, rel=0.05)
    adjusted = bars(market, NVDA, "1 day", *FIRST_WEEK, now=AFTER).close[-1]
    assert opened == pytest.approx(adjusted, rel=0.05)
    # both splits since 2021 (4:1 on 2021-07-20): that history is now 40 times lower
    old = (epoch_at("2021-07-12 00:00"), epoch_at("2021-07-17 00:00"))
    then = bars(market, NVDA, "1 day", *old, now=epoch_at("2021-07-17 12:00"))
    np.testing.assert_allclose(bars(market, NVDA, "1 day", *old, now=AFTER).close * 40, then.close)


def test_adjusted_last_is_adjusted_for_splits_and_the_dividends_since(market):
    q = AAPL.dividend_yield / 4  # four ex-dates between June 2023 and June 2024
    window = (epoch_at("2023-06-05 00:00"), epoch_at("2023-06-10 00:00"))
    then, later = epoch_at("2023-06-12 12:00"), epoch_at("2024-06-12 12:00")
    for now, dividends in ((then, 0), (later, 4)):
        trades = bars(market, AAPL, "1 day", *window, now=now)
        adjusted = bars(market, AAPL, "1 day", *window, what="ADJUSTED_LAST", now=now)
        np.testing.assert_allclose(adjusted.close / trades.close, (1 - q) ** dividends)
        assert np.array_equal(adjusted.volume, trades.volume)
    old = (epoch_at("2020-08-24 00:00"), epoch_at("2020-08-29 00:00"))  # before 4:1 in 2020
    trades = bars(market, AAPL, "1 day", *old, now=epoch_at("2020-08-29 12:00"))
    adjusted = bars(market, AAPL, "1 day", *old, what="ADJUSTED_LAST", now=later)
    assert np.all(
        (adjusted.close * 4 / trades.close < 1) & (adjusted.close * 4 / trades.close > 0.9)
    )


def test_adjusted_prices_carry_more_decimals(market):
    assert market.price_decimals(AAPL, "TRADES") == 4  # split since: a quarter of 296.23
    assert market.price_decimals(listing("MSFT"), "TRADES") == 2
    assert market.price_decimals(listing("MSFT"), "ADJUSTED_LAST") == 4
    assert market.price_decimals(EURUSD, "MIDPOINT") == 5
