"""The price model of one simulated instrument (ibsim.model): sessions from the head timestamp,
minute and second paths that aggregate exactly, and what each whatToShow makes of them."""

from __future__ import annotations

import numpy as np
import pytest

from ibsim.cache import DAILY_CACHE
from ibsim.model import DAY_BLOCK, FAMILY, PRICE_FAMILY, InstrumentModel, model
from tests.support import epoch_at, listing

AAPL = listing("AAPL")
SPX = listing("SPX", "IND")


@pytest.fixture(scope="module")
def aapl() -> InstrumentModel:
    return model(AAPL, 0)


def session_index(m: InstrumentModel, date: int) -> int:
    (i,) = np.flatnonzero(m.sessions.date == date)
    return int(i)


def test_one_model_per_instrument_and_seed(aapl):
    assert model(AAPL, 0) is aapl
    assert model(AAPL, 1) is not aapl and model(AAPL, 1).seed == 1


def test_the_first_session_is_the_one_of_the_head_timestamp(aapl):
    assert aapl.head == AAPL.head_timestamp
    assert aapl.sessions.date[aapl.first] == 19801212
    grid = aapl.minutes(PRICE_FAMILY, aapl.first, aapl.first + 1)
    assert grid.time[grid.valid].min() == AAPL.head_timestamp  # nothing before the head


def test_a_sessions_minutes_fill_its_hours(aapl):
    i = session_index(aapl, 20240102)
    grid = aapl.minutes(PRICE_FAMILY, i, i + 1)
    assert grid.valid.sum() == 16 * 60 and grid.rth.sum() == 390
    assert grid.time[0, 0] == epoch_at("2024-01-02 04:00")
    assert np.all(grid.low <= np.minimum(grid.open, grid.close))
    assert np.all(grid.high >= np.maximum(grid.open, grid.close))
    assert np.all(grid.volume[grid.rth] > 0) and np.all(
        grid.count[grid.valid] <= grid.volume[grid.valid]
    )
    ticks = grid.close[grid.valid] / AAPL.min_tick
    assert np.allclose(ticks, np.round(ticks))


def test_seconds_aggregate_exactly_to_their_minute(aapl):
    i = session_index(aapl, 20240103)
    grid = aapl.minutes(PRICE_FAMILY, i, i + 1)
    rows = np.flatnonzero(grid.rth[0])[:30]
    o, h, lo, c, v, n = (x[0, rows] for x in (grid.open, grid.high, grid.low, grid.close,
                                               grid.volume, grid.count))  # fmt: skip
    so, sh, sl, sc, sv, sn, _ = aapl.seconds(PRICE_FAMILY, grid.minute[0, rows], o, h, lo, c, v, n)
    assert so.shape == (30, 60)
    np.testing.assert_array_equal(so[:, 0], o)
    np.testing.assert_array_equal(sc[:, -1], c)
    np.testing.assert_array_equal(sh.max(axis=1), h)
    np.testing.assert_array_equal(sl.min(axis=1), lo)
    np.testing.assert_array_equal(sv.sum(axis=1), v)
    np.testing.assert_array_equal(sn.sum(axis=1), n)
    assert np.all(sv >= 0) and np.all((sv > 0) <= (sn > 0))  # a second with volume has trades


def test_what_to_show_turns_trades_into_quotes_and_adjusted_prices(aapl):
    i = session_index(aapl, 20240103)
    grid, trades = aapl.shown_minutes("TRADES", i, i + 1)
    _, mid = aapl.shown_minutes("MIDPOINT", i, i + 1)
    _, bid = aapl.shown_minutes("BID", i, i + 1)
    _, ask = aapl.shown_minutes("ASK", i, i + 1)
    _, adjusted = aapl.shown_minutes("ADJUSTED_LAST", i, i + 1)
    valid = grid.valid
    assert np.array_equal(mid[3][valid], trades[3][valid]) and not mid[4].any()
    assert np.all(bid[3][valid] < mid[3][valid]) and np.all(ask[3][valid] > mid[3][valid])
    factor = adjusted[3][valid] / trades[3][valid]
    assert np.all(factor <= 1) and np.ptp(factor) < 1e-4  # one dividend factor a session
    with pytest.raises(ValueError, match="unknown whatToShow"):
        aapl.show("LAST", *trades, grid.minute, np.full(grid.minute.shape, i))


def test_volatility_is_a_smooth_positive_series(aapl):
    assert FAMILY["OPTION_IMPLIED_VOLATILITY"] != FAMILY["HISTORICAL_VOLATILITY"]
    t = np.arange(epoch_at("2024-01-01 00:00"), epoch_at("2025-01-01 00:00"), 3600)
    for family in ("hv", "iv"):
        v = aapl.volatility(family, t)
        assert v.min() > 0.05 and v.max() < 1.0
        assert np.abs(np.diff(v)).max() < 0.01  # hour to hour


def test_daily_aggregates_are_cached_per_block(aapl):
    i = session_index(aapl, 20240103)
    block = i // DAY_BLOCK
    day = aapl.daily("TRADES", True, i, i + 1)
    assert DAILY_CACHE.get((aapl, "TRADES", block)) is not None
    assert day.session.tolist() == [i] and day.n.tolist() == [390]
    assert aapl.daily("TRADES", False, i, i + 1).n.tolist() == [960]
    assert len(aapl.daily("TRADES", True, 0, aapl.first).label) == 0  # before the head


def test_an_instrument_without_volume_has_none(aapl):
    spx = model(SPX, 0)
    i = session_index(spx, 20240103)
    grid = spx.minutes(PRICE_FAMILY, i, i + 1)
    assert grid.valid.sum() == 390 and not grid.volume.any() and not grid.count.any()


def test_what_traded_is_unadjusted_and_drops_by_the_ratio_on_a_split_day():
    nvda = model(listing("NVDA"), 0)
    assert [nvda.sessions.date[i] for i in nvda.split_sessions] == [20210720, 20240610]
    for first, ratio in zip(nvda.split_sessions, (4, 10), strict=True):
        assert nvda.shares[first] == ratio * nvda.shares[first - 1]
        drop = np.exp(nvda.log_open[first] - nvda.log_close[first - 1])
        assert drop == pytest.approx(1 / ratio, rel=0.05)  # an overnight gap of a few percent
    anchor = session_index(nvda, 20240102)  # the anchor price is January 2024's, as it traded
    assert np.exp(nvda.log_close[anchor]) == pytest.approx(listing("NVDA").anchor_price)


def test_the_adjustment_counts_what_happened_between_a_session_and_the_present():
    nvda = model(listing("NVDA"), 0)
    first_2021, first_2024 = nvda.split_sessions
    sessions = np.array([first_2021 - 1, first_2021, first_2024 - 1, first_2024])
    prices, volumes = nvda.adjustment("TRADES", sessions, epoch_at("2024-06-10 04:00"))
    assert prices.tolist() == volumes.tolist() == [40.0, 10.0, 10.0, 1.0]
    prices, _ = nvda.adjustment("TRADES", sessions[:3], epoch_at("2024-06-10 03:59"))
    assert prices.tolist() == [4.0, 1.0, 1.0]  # the split takes effect as its session opens
    assert model(listing("MSFT"), 0).adjustment("TRADES", sessions, None) is None  # no split
    prices, volumes = nvda.adjustment("HISTORICAL_VOLATILITY", sessions, None) or (None, None)
    assert prices is None  # a volatility is no price
