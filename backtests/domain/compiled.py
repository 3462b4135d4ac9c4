"""The compiled loops (numba): only the rules that are sequential by nature.

`rolling_mean` reproduces pandas' rolling mean bit for bit (a Kahan-compensated running sum,
one compensation for values entering the window and one for values leaving it, a run of equal
values giving that value exactly): backtesting.py users compute their SMAs with pandas, and a
crossing on a tie must fall on the same bar in both, so nearly equal is not enough.
`cache=True` keeps the machine code on disk: a process pays the compilation once, ever.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    n = len(values)
    out = np.empty(n, dtype=np.float64)
    total = 0.0
    add_comp = 0.0
    remove_comp = 0.0
    count = 0
    negatives = 0
    same_run = 0
    previous = values[0] if n else 0.0
    for i in range(n):
        first = i - window + 1
        if window == 1 or i == 0:
            # A new window shares nothing with the last one: start over (pandas does).
            total = add_comp = remove_comp = 0.0
            count = negatives = same_run = 0
            previous = values[max(first, 0)]
            for j in range(max(first, 0), i + 1):
                total, add_comp, count, negatives, same_run, previous = _add(
                    values[j], total, add_comp, count, negatives, same_run, previous
                )
        else:
            if first - 1 >= 0:
                value = values[first - 1]
                if not np.isnan(value):
                    count -= 1
                    y = -value - remove_comp
                    t = total + y
                    remove_comp = t - total - y
                    total = t
                    if np.signbit(value):
                        negatives -= 1
            total, add_comp, count, negatives, same_run, previous = _add(
                values[i], total, add_comp, count, negatives, same_run, previous
            )
        if count >= window and count > 0:
            result = total / count
            if same_run >= count:
                result = previous
            elif (negatives == 0 and result < 0) or (negatives == count and result > 0):
                result = 0.0  # all values one sign: rounding must not cross zero
            out[i] = result
        else:
            out[i] = np.nan
    return out


@njit(cache=True, inline="always", error_model="numpy")
def _add(value, total, comp, count, negatives, same_run, previous):
    if not np.isnan(value):
        count += 1
        y = value - comp
        t = total + y
        comp = t - total - y
        total = t
        if np.signbit(value):
            negatives += 1
        if value == previous:
            same_run += 1
        else:
            same_run = 1
        previous = value
    return total, comp, count, negatives, same_run, previous


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
def equity_curve(close, cash0, c_bar, c_cash, c_size, c_entry):
    """Cash plus the position at each close, booked as backtesting.py books it
    (close * size - size * entry), so equal equities compare equal in both."""
    n = len(close)
    out = np.empty(n, np.float64)
    cash = cash0
    size = 0.0
    entry = 0.0
    k = 0
    changes = len(c_bar)
    for i in range(n):
        while k < changes and c_bar[k] == i:
            cash = c_cash[k]
            size = float(c_size[k])
            entry = c_entry[k]
            k += 1
        out[i] = cash + (close[i] * size - size * entry)
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def drawdown(equity):
    """1 - equity / running peak, in one pass (no temporaries over the bars)."""
    n = len(equity)
    out = np.empty(n, np.float64)
    peak = -np.inf
    for i in range(n):
        value = equity[i]
        if value > peak or np.isnan(peak):
            peak = value
        out[i] = 1 - value / peak
    return out


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
def log_return_beta(equity, close):
    """Sample covariance of the equity's and the close's log returns over the close's sample
    variance, in one pass (Welford's co-moments)."""
    mean_x = 0.0
    mean_y = 0.0
    co = 0.0
    var = 0.0
    k = 0
    for i in range(1, len(equity)):
        x = np.log(equity[i] / equity[i - 1])
        y = np.log(close[i] / close[i - 1])
        k += 1
        dx = x - mean_x
        mean_x += dx / k
        dy = y - mean_y
        mean_y += dy / k
        co += dx * (y - mean_y)
        var += dy * (y - mean_y)
    return co / var if k > 1 else np.nan
