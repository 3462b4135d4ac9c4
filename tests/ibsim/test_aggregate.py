"""Bar arrays and the running sums that make aggregation associative (ibsim.aggregate)."""

from __future__ import annotations

import numpy as np
import pytest

from ibsim.aggregate import SUM_FIELDS, BarArrays, Sums, day_sums_empty, unit_sums


def minutes(n: int = 30, seed: int = 3) -> Sums:
    """n one-minute bars of one session with awkward numbers."""
    rng = np.random.default_rng(seed)
    o = 100 + rng.normal(size=n).cumsum()
    c = o + rng.normal(size=n)
    h = np.maximum(o, c) + rng.random(n)
    lo = np.minimum(o, c) - rng.random(n)
    volume = rng.integers(0, 500, n)
    volume[::7] = 0
    return unit_sums(
        np.arange(n) * 60,
        np.zeros(n, np.int64),
        o,
        h,
        lo,
        c,
        volume,
        rng.integers(0, 9, n),
        (o + c) / 2,
    )


def assert_same(a: BarArrays, b: BarArrays, averaged: tuple[str, ...] = ("wap",)) -> None:
    """Equal bars: exactly, but for the fields that are means (equal up to summation order)."""
    for f in ("time", "open", "high", "low", "close", "volume", "count", "wap"):
        if f in averaged:
            np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-12, err_msg=f)
        else:
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


def test_a_group_is_first_open_last_close_extremes_and_sums():
    m = minutes()
    five = m.reduce(np.arange(0, 30, 5))
    assert five.label.tolist() == [0, 300, 600, 900, 1200, 1500]
    assert five.open[1] == m.open[5] and five.close[1] == m.close[9]
    assert five.high[1] == m.high[5:10].max() and five.low[1] == m.low[5:10].min()
    assert five.volume[1] == m.volume[5:10].sum() and five.n.tolist() == [5] * 6


def test_aggregation_is_associative():
    m = minutes()
    for time_averaged, averaged in ((False, ("wap",)), (True, ("open", "close", "wap"))):
        direct = m.reduce(np.arange(0, 30, 15)).bars(time_averaged, None)
        staged = m.reduce(np.arange(0, 30, 5)).reduce(np.array([0, 3]))
        assert_same(direct, staged.bars(time_averaged, None), averaged)


def test_wap_is_volume_weighted_or_plain_without_volume():
    m = minutes()
    (bar,) = m.reduce(np.array([0])).bars(False, None).wap
    assert bar == pytest.approx((m.volume * m.w).sum() / m.volume.sum(), rel=1e-12)
    quiet = m.take(m.volume == 0)
    (bar,) = quiet.reduce(np.array([0])).bars(False, None).wap
    assert bar == pytest.approx(quiet.w.mean(), rel=1e-12)


def test_time_averaged_open_and_close_stay_inside_the_bar():
    m = minutes()
    bars = m.reduce(np.arange(0, 30, 10)).bars(True, None)
    assert np.allclose(bars.open, [m.open[i : i + 10].mean() for i in (0, 10, 20)])
    assert np.all((bars.low <= bars.open) & (bars.open <= bars.high))
    assert np.all((bars.low <= bars.close) & (bars.close <= bars.high))


def test_take_concat_and_the_empty_ones():
    m = minutes()
    parts = [m.take(m.label < 600), m.take(m.label >= 600)]
    joined = Sums.concat(parts)
    assert all(np.array_equal(getattr(joined, f), getattr(m, f)) for f in SUM_FIELDS)
    assert len(m.reduce(np.array([], np.int64)).label) == 0
    assert all(len(getattr(day_sums_empty(), f)) == 0 for f in SUM_FIELDS)
    assert len(BarArrays.empty(daily=False)) == 0 and BarArrays.empty(daily=False).dates is None
    assert BarArrays.empty(daily=True).dates.dtype == np.int64


def test_unit_sums_flatten_any_shape():
    grid = np.ones((2, 3))
    sums = unit_sums(np.arange(6).reshape(2, 3), np.zeros((2, 3), np.int64), *[grid] * 4,
                     np.full((2, 3), 2), np.ones((2, 3), np.int64), grid * 1.5)  # fmt: skip
    assert sums.label.tolist() == list(range(6))
    assert sums.vw.tolist() == [3.0] * 6 and sums.n.tolist() == [1] * 6
