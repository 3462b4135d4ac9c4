"""Performance metrics with backtesting.py 0.6.6's definitions and names (docs/backtests.md).

Times are epoch seconds (UTC); calendar periods (days, weeks, months, years) are UTC ones.
Durations are seconds, rounded up to the data's resolution (whole days for daily bars).
"""

from __future__ import annotations

import math

import numpy as np

from . import compiled
from .engine import Trades

DAY = 86_400
WEEKEND_SHARE = 2 / 7 * 0.6  # more bars than this on Saturdays and Sundays: a 365-day market
# Metrics that are durations (seconds); the rest are numbers.
DURATIONS = (
    "Duration",
    "Max. Drawdown Duration",
    "Avg. Drawdown Duration",
    "Max. Trade Duration",
    "Avg. Trade Duration",
)
TIMES = ("Start", "End")
# Every statistic, in backtesting.py's order ("Commissions [$]" only when some were paid).
METRICS = (
    "Start",
    "End",
    "Duration",
    "Exposure Time [%]",
    "Equity Final [$]",
    "Equity Peak [$]",
    "Commissions [$]",
    "Return [%]",
    "Buy & Hold Return [%]",
    "Return (Ann.) [%]",
    "Volatility (Ann.) [%]",
    "CAGR [%]",
    "Sharpe Ratio",
    "Sortino Ratio",
    "Calmar Ratio",
    "Alpha [%]",
    "Beta",
    "Max. Drawdown [%]",
    "Avg. Drawdown [%]",
    "Max. Drawdown Duration",
    "Avg. Drawdown Duration",
    "# Trades",
    "Win Rate [%]",
    "Best Trade [%]",
    "Worst Trade [%]",
    "Avg. Trade [%]",
    "Max. Trade Duration",
    "Avg. Trade Duration",
    "Profit Factor",
    "Expectancy [%]",
    "SQN",
    "Kelly Criterion",
)


# The metrics a sweep can rank its points by: numbers, not times or durations.
RANKABLE = tuple(k for k in METRICS if k not in TIMES and k not in DURATIONS)


def metric_named(name: str) -> str | None:
    """The rankable metric `name` names, as backtesting.py writes it ('sharpe ratio' ->
    'Sharpe Ratio'); None if none."""
    wanted = str(name).strip().lower()
    return next((key for key in RANKABLE if key.lower() == wanted), None)


def data_period(ts: np.ndarray) -> float:
    """The bars' spacing: the median gap between the last 100 bars, in seconds."""
    tail = ts[-100:]
    if len(tail) < 2:
        return math.nan
    return float(np.median(np.diff(tail)))


# Bar spacings (whole days) with periods of their own: (returns per year, period).
SPACED_PERIODS = {7: (52, "W"), 31: (12, "M"), 365: (1, "Y")}


def annual_periods(ts: np.ndarray, equity: np.ndarray) -> tuple[int, np.ndarray]:
    """(periods a year, the equity's return over each period). Weekly (bars 7 days apart by the
    median), monthly (31) and yearly (365) bars: their calendar periods, 52, 12 and 1 a year.
    Anything else: UTC days with bars, 365 a year when more than 2/7 x 0.6 of the bars fall on
    a Saturday or a Sunday (crypto, forex), 252 if not."""
    spacing = int(data_period(ts) // DAY) if len(ts) > 1 else 0
    if spacing in SPACED_PERIODS:
        per_year, period = SPACED_PERIODS[spacing]
        return per_year, period_returns(ts, equity, period)
    closes, weekend = compiled.day_closes(ts, np.ascontiguousarray(equity, dtype=np.float64))
    per_year = 365 if len(ts) and weekend / len(ts) > WEEKEND_SHARE else 252
    return per_year, closes[1:] / closes[:-1] - 1


def period_keys(ts: np.ndarray, period: str) -> np.ndarray:
    """The calendar period each bar falls in: week (Monday to Sunday), month or year."""
    days = ts // DAY
    if period == "W":
        return (days + 3) // 7
    months = ts.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    return months if period == "M" else months // 12


def period_returns(ts: np.ndarray, equity: np.ndarray, period: str) -> np.ndarray:
    """Simple returns between the last equities of consecutive calendar periods that have bars."""
    keys = period_keys(ts, period)
    last = np.ones(len(keys), dtype=bool)
    last[:-1] = keys[1:] != keys[:-1]
    closes = equity[last]
    return closes[1:] / closes[:-1] - 1


def geometric_mean(returns: np.ndarray) -> float:
    """exp(mean(log(1 + r))) - 1; 0 when any return loses everything; NaN without returns."""
    growth = np.nan_to_num(returns, nan=0.0) + 1
    if np.any(growth <= 0):
        return 0.0
    if not len(growth):
        return math.nan
    return float(np.exp(np.log(growth).sum() / len(growth)) - 1)


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Fraction below the running peak, at each bar (for pictures)."""
    return 1 - equity / np.maximum.accumulate(equity)


def drawdown_stats(
    ts: np.ndarray, equity: np.ndarray
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(deepest drawdown, equity peak, each drawdown's duration in seconds, each one's depth).
    A drawdown runs from the last bar at a peak to the next bar at a peak, or to the last bar
    when the equity has not recovered; only those with a bar between count."""
    deepest, peak, durations, depths = compiled.drawdowns(
        np.ascontiguousarray(ts, dtype=np.int64), np.ascontiguousarray(equity, dtype=np.float64)
    )
    return float(deepest), float(peak), durations, depths


def log_return_beta(equity: np.ndarray, close: np.ndarray) -> float:
    """Sample covariance of the equity's and the closes' bar-to-bar log returns over the
    closes' sample variance (np.cov's figures; log(b) - log(a) for log(b / a))."""
    return float(compiled.diff_beta(np.log(equity), np.log(close)))


def duration_ceil(seconds: float, resolution: int) -> float:
    """Round a duration up to whole units of the data's resolution (days, hours, minutes...)."""
    if not math.isfinite(seconds):
        return math.nan
    return (
        math.ceil(seconds / resolution - 1e-12) * resolution
        if resolution > 1
        else float(math.ceil(seconds))
    )


def resolution_of(period: float) -> int:
    """The coarsest unit (day, hour, minute, second) the bar spacing is a whole number of."""
    if not math.isfinite(period):
        return 1
    for unit in (DAY, 3600, 60):
        if period % unit == 0:
            return unit
    return 1


def _nan_if_zero(value: float) -> float:
    return value if value else math.nan


def metrics_compute(
    *,
    ts: np.ndarray,
    close: np.ndarray,
    equity: np.ndarray,
    trades: Trades,
    warmup: int,
    risk_free_rate: float = 0.0,
) -> dict[str, float]:
    """backtesting.py's statistics of one run, under its names, in its order."""
    n = len(ts)
    resolution = resolution_of(data_period(ts))
    deepest, peak, dd_durations, dd_peaks = drawdown_stats(ts, equity)
    s: dict[str, float] = {}
    s["Start"] = int(ts[0])
    s["End"] = int(ts[-1])
    s["Duration"] = float(ts[-1] - ts[0])
    order = np.argsort(trades.entry_bar, kind="stable")
    held = compiled.bars_held(trades.entry_bar[order], trades.exit_bar[order])
    s["Exposure Time [%]"] = held / n * 100
    s["Equity Final [$]"] = float(equity[-1])
    s["Equity Peak [$]"] = peak
    commissions = float(trades.commission.sum())
    if commissions:
        s["Commissions [$]"] = commissions
    s["Return [%]"] = float((equity[-1] - equity[0]) / equity[0] * 100)
    s["Buy & Hold Return [%]"] = float((close[-1] - close[warmup]) / close[warmup] * 100)

    per_year, returns = annual_periods(ts, equity)
    g = geometric_mean(returns)
    annual_return = (1 + g) ** per_year - 1
    s["Return (Ann.) [%]"] = annual_return * 100
    variance = float(np.var(returns, ddof=1)) if len(returns) > 1 else math.nan
    with np.errstate(invalid="ignore"):  # rounding can leave a tiny negative: NaN, as theirs
        spread = (variance + (1 + g) ** 2) ** per_year - (1 + g) ** (2 * per_year)
        s["Volatility (Ann.) [%]"] = float(np.sqrt(np.float64(spread)) * 100)
    years = s["Duration"] / DAY / 365.25
    s["CAGR [%]"] = ((equity[-1] / equity[0]) ** (1 / years) - 1) * 100 if years else math.nan
    s["Sharpe Ratio"] = (s["Return (Ann.) [%]"] - risk_free_rate * 100) / _nan_if_zero(
        s["Volatility (Ann.) [%]"]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        downside = math.sqrt(np.mean(np.minimum(returns, 0) ** 2)) if len(returns) else math.nan
        denominator = downside * math.sqrt(per_year)
        s["Sortino Ratio"] = float(np.float64(annual_return - risk_free_rate) / denominator)
    max_dd = -deepest
    s["Calmar Ratio"] = annual_return / _nan_if_zero(-max_dd)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = log_return_beta(equity, close)
    s["Alpha [%]"] = (
        s["Return [%]"]
        - risk_free_rate * 100
        - beta * (s["Buy & Hold Return [%]"] - risk_free_rate * 100)
    )
    s["Beta"] = beta
    s["Max. Drawdown [%]"] = max_dd * 100
    s["Avg. Drawdown [%]"] = -float(dd_peaks.mean()) * 100 if len(dd_peaks) else math.nan
    s["Max. Drawdown Duration"] = (
        duration_ceil(float(dd_durations.max()), resolution) if len(dd_durations) else math.nan
    )
    s["Avg. Drawdown Duration"] = (
        duration_ceil(float(dd_durations.mean()), resolution) if len(dd_durations) else math.nan
    )
    count = len(trades)
    s["# Trades"] = count
    pnl, returns_t = trades.pnl, trades.return_pct
    win_rate = float(np.mean(pnl > 0)) if count else math.nan
    s["Win Rate [%]"] = win_rate * 100
    s["Best Trade [%]"] = float(returns_t.max()) * 100 if count else math.nan
    s["Worst Trade [%]"] = float(returns_t.min()) * 100 if count else math.nan
    s["Avg. Trade [%]"] = geometric_mean(returns_t) * 100
    trade_durations = (ts[trades.exit_bar] - ts[trades.entry_bar]).astype(np.float64)
    s["Max. Trade Duration"] = (
        duration_ceil(float(trade_durations.max()), resolution) if count else math.nan
    )
    s["Avg. Trade Duration"] = (
        duration_ceil(float(trade_durations.mean()), resolution) if count else math.nan
    )
    losses = abs(float(returns_t[returns_t < 0].sum()))
    s["Profit Factor"] = float(returns_t[returns_t > 0].sum()) / _nan_if_zero(losses)
    s["Expectancy [%]"] = float(returns_t.mean()) * 100 if count else math.nan
    pnl_std = float(np.std(pnl, ddof=1)) if count > 1 else math.nan
    s["SQN"] = math.sqrt(count) * float(pnl.mean()) / _nan_if_zero(pnl_std) if count else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        average_win = float(pnl[pnl > 0].mean()) if np.any(pnl > 0) else math.nan
        average_loss = -float(pnl[pnl < 0].mean()) if np.any(pnl < 0) else math.nan
        s["Kelly Criterion"] = float(
            np.float64(win_rate)
            - (1 - np.float64(win_rate)) / (np.float64(average_win) / average_loss)
        )
    return s


def duration_text(seconds: float) -> str:
    """'584 days 00:00:00', as pandas prints a Timedelta; '-' when undefined."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    whole = int(round(seconds))
    days, rest = divmod(whole, DAY)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days} days {hours:02d}:{minutes:02d}:{secs:02d}"


ANNUALISED = (
    "Return (Ann.) [%]",
    "Volatility (Ann.) [%]",
    "CAGR [%]",
    "Sharpe Ratio",
    "Sortino Ratio",
    "Calmar Ratio",
)
ANNUALISED_MIN_DAYS = 90  # shorter ranges get a word of warning beside their annualised figures


def annualised_note(first_s: float, last_s: float) -> str | None:
    """A warning for annualised figures drawn from a short range of bars (two weeks of minutes
    give a CAGR in the thousands of percent), or None when the range is long enough."""
    days = (last_s - first_s) / 86400
    if days >= ANNUALISED_MIN_DAYS:
        return None
    return (
        f"Annualised figures ({', '.join(k.split(' [')[0] for k in ANNUALISED)}) extrapolate "
        f"{days:.0f} days of bars to a year: on so short a range they say little"
    )


def time_text(seconds: float) -> str:
    """'2024-01-02 14:30:00' (UTC), as pandas prints a Timestamp."""
    import datetime as dt

    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def metrics_json(metrics: dict[str, float]) -> dict[str, object]:
    """Metrics as JSON can hold them: times and durations as text, undefined values as null."""
    out: dict[str, object] = {}
    for key, value in metrics.items():
        if key in TIMES:
            out[key] = time_text(value)
        elif key in DURATIONS:
            out[key] = duration_text(value) if math.isfinite(value) else None
        elif isinstance(value, int | np.integer):
            out[key] = int(value)
        else:
            value = float(value)
            out[key] = value if math.isfinite(value) else None
    return out
