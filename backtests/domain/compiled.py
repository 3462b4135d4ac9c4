"""The compiled loops (numba): only the rules that are sequential by nature.

`rolling_means` reproduces pandas' rolling mean bit for bit (a Kahan-compensated running sum,
one compensation for values entering the window and one for values leaving it, a run of equal
values giving that value exactly): backtesting.py users compute their SMAs with pandas, and a
crossing on a tie must fall on the same bar in both, so nearly equal is not enough.
`cache=True` keeps the machine code on disk: a process pays the compilation once, ever.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_means(values: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """One row per window: the mean of the last `window` values (NaN until there are that
    many), all windows in one pass over the values (their running sums are independent, so the
    processor overlaps them)."""
    n = len(values)
    m = len(windows)
    out = np.empty((m, n), dtype=np.float64)
    total = np.zeros(m)
    add_comp = np.zeros(m)
    remove_comp = np.zeros(m)
    count = np.zeros(m, np.int64)
    negatives = np.zeros(m, np.int64)
    same_run = np.zeros(m, np.int64)
    previous = np.zeros(m)
    for i in range(n):
        value = values[i]
        for k in range(m):
            window = windows[k]
            if window == 1:
                out[k, i] = value  # pandas' result for a window of one (NaN stays NaN)
                continue
            if i == 0:
                previous[k] = value
            else:
                leaving = i - window
                if leaving >= 0:
                    old = values[leaving]
                    if not np.isnan(old):
                        count[k] -= 1
                        y = -old - remove_comp[k]
                        t = total[k] + y
                        remove_comp[k] = t - total[k] - y
                        total[k] = t
                        if np.signbit(old):
                            negatives[k] -= 1
            if not np.isnan(value):
                count[k] += 1
                y = value - add_comp[k]
                t = total[k] + y
                add_comp[k] = t - total[k] - y
                total[k] = t
                if np.signbit(value):
                    negatives[k] += 1
                if value == previous[k]:
                    same_run[k] += 1
                else:
                    same_run[k] = 1
                previous[k] = value
            c = count[k]
            if c >= window:
                result = total[k] / c
                if same_run[k] >= c:
                    result = previous[k]
                elif (negatives[k] == 0 and result < 0) or (negatives[k] == c and result > 0):
                    result = 0.0  # all values one sign: rounding must not cross zero
                out[k, i] = result
            else:
                out[k, i] = np.nan
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_mean_positive(values: np.ndarray, window: int) -> np.ndarray:
    """rolling_means for one window of values that are all finite and positive (prices): the
    same operations in the same order, without the checks such values never need."""
    n = len(values)
    out = np.empty(n, dtype=np.float64)
    total = 0.0
    add_comp = 0.0
    remove_comp = 0.0
    same_run = 0
    previous = values[0] if n else 0.0
    for i in range(n):
        value = values[i]
        if i >= window:
            y = -values[i - window] - remove_comp
            t = total + y
            remove_comp = t - total - y
            total = t
        y = value - add_comp
        t = total + y
        add_comp = t - total - y
        total = t
        same_run = same_run + 1 if value == previous else 1
        previous = value
        if i + 1 >= window:
            out[i] = previous if same_run >= window else total / window
        else:
            out[i] = np.nan
    return out


# Commission schedules as the compiled loop takes them (backtests.domain.commissions).
FRACTION, IBKR_FIXED = 0, 1


@njit(cache=True, inline="always", error_model="numpy")
def _fee(kind, rate, per_share, minimum, max_fraction, size, price):
    shares = abs(size)
    if kind == FRACTION:
        return shares * price * rate
    return min(max(shares * per_share, minimum), shares * price * max_fraction)


@njit(cache=True, inline="always", error_model="numpy")
def _floor_div(a, b):
    """Python's float `a // b` (CPython's float_floor_div), for a >= 0 and b > 0."""
    mod = np.fmod(a, b)
    div = (a - mod) / b
    if div:
        whole = np.floor(div)
        if div - whole > 0.5:
            whole += 1.0
        return whole
    return 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def fills(
    decisions,
    prices,
    fill_bars,
    processed,
    cash0,
    long_short,
    stop_bar,
    full_equity,
    kind,
    rate,
    per_share,
    minimum,
    max_fraction,
):
    """Walk the strategy's decisions in order: close the held trade, size and open the next one
    from the cash left. Returns the closed trades (size, entry and exit bars and prices, both
    fees), (bar, cash, size, entry price) after each bar that filled something, and the end
    state (side, size, entry price and bar of the open trade, commissions paid)."""
    m = len(decisions)
    t_size = np.empty(m + 1, np.int64)
    t_entry_bar = np.empty(m + 1, np.int64)
    t_exit_bar = np.empty(m + 1, np.int64)
    t_entry_price = np.empty(m + 1, np.float64)
    t_exit_price = np.empty(m + 1, np.float64)
    t_fee = np.empty(m + 1, np.float64)
    c_bar = np.empty(m, np.int64)
    c_cash = np.empty(m, np.float64)
    c_size = np.empty(m, np.int64)
    c_entry = np.empty(m, np.float64)
    cash = cash0
    state = 0
    size = 0
    entry_price = 0.0
    entry_bar = 0
    paid = 0.0
    trades = 0
    changes = 0
    for k in range(m):
        decision = decisions[k]
        target = 1 if decision > 0 else (-1 if long_short else 0)
        if target == state:
            continue
        if stop_bar >= 0 and processed[k] > stop_bar:
            break
        price = prices[k]
        fill_bar = fill_bars[k]
        if state != 0:
            exit_fee = _fee(kind, rate, per_share, minimum, max_fraction, size, price)
            cash += size * (price - entry_price) - exit_fee
            paid += exit_fee
            t_size[trades] = size
            t_entry_bar[trades] = entry_bar
            t_exit_bar[trades] = fill_bar
            t_entry_price[trades] = entry_price
            t_exit_price[trades] = price
            t_fee[trades] = exit_fee + _fee(
                kind, rate, per_share, minimum, max_fraction, size, entry_price
            )
            trades += 1
            state = 0
            size = 0
        if target != 0:
            with_fee = (
                price
                + _fee(kind, rate, per_share, minimum, max_fraction, full_equity, price)
                / full_equity
            )
            available = max(0.0, cash)
            shares = int(_floor_div(available * 1.0 * full_equity, with_fee))
            if shares != 0 and not shares * with_fee > available:
                size = shares * target
                entry_price = price
                entry_bar = fill_bar
                state = target
                entry_fee = _fee(kind, rate, per_share, minimum, max_fraction, size, price)
                cash -= entry_fee
                paid += entry_fee
        c_bar[changes] = processed[k]
        c_cash[changes] = cash
        c_size[changes] = size
        c_entry[changes] = entry_price if size != 0 else 0.0
        changes += 1
    closed = (
        t_size[:trades],
        t_entry_bar[:trades],
        t_exit_bar[:trades],
        t_entry_price[:trades],
        t_exit_price[:trades],
        t_fee[:trades],
    )
    after = (c_bar[:changes], c_cash[:changes], c_size[:changes], c_entry[:changes])
    return closed, after, (state, size, entry_price, entry_bar, paid)


@njit(cache=True, nogil=True, error_model="numpy")
def equity_curve(start, close, cash0, c_bar, c_cash, c_size, c_entry):
    """Cash plus the position at each close, booked as backtesting.py books it
    (close * size - size * entry), so equal equities compare equal in both; and the first bar
    from `start` on where it is zero or less (-1: none)."""
    n = len(close)
    out = np.empty(n, np.float64)
    cash = cash0
    size = 0.0
    entry = 0.0
    k = 0
    changes = len(c_bar)
    ruin = -1
    for i in range(n):
        while k < changes and c_bar[k] == i:
            cash = c_cash[k]
            size = float(c_size[k])
            entry = c_entry[k]
            k += 1
        value = cash + (close[i] * size - size * entry)
        out[i] = value
        if ruin < 0 and i >= start and value <= 0:
            ruin = i
    return out, ruin


@njit(cache=True, nogil=True, error_model="numpy")
def drawdowns(ts, equity):
    """One pass over the equity: the deepest drawdown (1 - equity / running peak), the peak,
    and each drawdown period's duration and depth. A period runs from a bar at a peak to the
    next bar at a peak, or to the last bar; only periods with a bar between count."""
    n = len(equity)
    durations = np.empty(n // 2 + 1, np.float64)
    depths = np.empty(n // 2 + 1, np.float64)
    periods = 0
    peak = -np.inf
    deepest = 0.0  # of the whole curve
    since = 0.0  # of the period under way
    mark = 0
    dd = 0.0
    last = np.nan
    for i in range(n):
        value = equity[i]
        if value > peak:
            peak = value
            dd = 1 - value / peak
        elif value != last:
            dd = 1 - value / peak
        last = value  # a repeated equity under the same peak has the same drawdown
        if dd > deepest:
            deepest = dd
        if dd > since:
            since = dd
        if dd == 0 or i == n - 1:
            if i > mark + 1:
                durations[periods] = ts[i] - ts[mark]
                depths[periods] = since
                periods += 1
            mark = i
            since = 0.0
    return deepest, peak, durations[:periods], depths[:periods]


@njit(cache=True, nogil=True, error_model="numpy")
def day_closes(ts, equity):
    """The last equity of each UTC day that has bars, and how many bars fall on a Saturday or
    a Sunday (ts sorted)."""
    n = len(ts)
    closes = np.empty(n, np.float64)
    days = 0
    weekend = 0
    if n == 0:
        return closes[:0], 0
    day = ts[0] // 86_400
    day_end = (day + 1) * 86_400
    on_weekend = (day + 3) % 7 >= 5
    first = 0
    for i in range(1, n + 1):
        if i == n or ts[i] >= day_end:
            closes[days] = equity[i - 1]
            days += 1
            if on_weekend:
                weekend += i - first
            if i < n:
                day = ts[i] // 86_400
                day_end = (day + 1) * 86_400
                on_weekend = (day + 3) % 7 >= 5
                first = i
    return closes[:days], weekend


@njit(cache=True, nogil=True, error_model="numpy")
def bars_held(entry_bar, exit_bar):
    """How many bars lie in at least one [entry, exit] interval (sorted by entry)."""
    covered = 0
    last = -1
    for k in range(len(entry_bar)):
        lo = max(entry_bar[k], last + 1)
        if exit_bar[k] >= lo:
            covered += exit_bar[k] - lo + 1
        last = max(last, exit_bar[k])
    return covered


@njit(cache=True, nogil=True, error_model="numpy")
def diff_beta(log_x, log_y):
    """Sample covariance of the steps of log_x and log_y over the sample variance of log_y's
    steps (np.cov's figures), in two passes and no temporaries."""
    n = len(log_x) - 1
    if n < 2:
        return np.nan
    sum_x = 0.0
    sum_y = 0.0
    for i in range(n):
        sum_x += log_x[i + 1] - log_x[i]
        sum_y += log_y[i + 1] - log_y[i]
    mean_x = sum_x / n
    mean_y = sum_y / n
    co = 0.0
    var = 0.0
    for i in range(n):
        dy = log_y[i + 1] - log_y[i] - mean_y
        co += (log_x[i + 1] - log_x[i] - mean_x) * dy
        var += dy * dy
    return co / var


@njit(cache=True, nogil=True, error_model="numpy")
def cross_events(fast, slow):
    """+1 where `fast` crosses above `slow` (strictly below on the bar before, strictly above on
    this one), -1 where it crosses below, else 0; NaN never crosses."""
    n = len(fast)
    out = np.zeros(n, np.int8)
    for i in range(1, n):
        if fast[i - 1] < slow[i - 1] and fast[i] > slow[i]:
            out[i] = 1
        elif fast[i - 1] > slow[i - 1] and fast[i] < slow[i]:
            out[i] = -1
    return out
