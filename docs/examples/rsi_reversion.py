"""A strategy of your own, as `manage.py backtest --strategy docs/examples/rsi_reversion.py` loads
it: RSI mean reversion (buy when the RSI is oversold, get out when it is overbought)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtests.domain.strategies import InvalidRequest, Parameter, Strategy


def rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's relative strength index (0..100) of the closes; NaN for the first `period` bars."""
    change = pd.Series(close).diff()
    smooth = {"alpha": 1 / period, "adjust": False, "min_periods": period}
    gain = change.clip(lower=0).ewm(**smooth).mean()
    loss = (-change.clip(upper=0)).ewm(**smooth).mean()
    return (100 - 100 / (1 + gain / loss)).to_numpy()


class RsiReversion(Strategy):
    name = "rsi-reversion"
    description = "RSI below `lower`: long; above `upper`: flat (short with --long-short)"
    parameters = (
        Parameter("period", 14, "RSI period, in bars", minimum=2),
        Parameter("lower", 30.0, "oversold level: go long below it", minimum=0, maximum=100),
        Parameter("upper", 70.0, "overbought level: get out above it", minimum=0, maximum=100),
    )

    def warmup(self, params):
        return params["period"]  # the RSI's first value

    def signals(self, bars, params, cache):
        key = ("rsi", params["period"])
        if key not in cache:  # a sweep over the levels computes each period's RSI once
            cache[key] = rsi(bars.close, params["period"])
        value = cache[key]
        with np.errstate(invalid="ignore"):
            return np.where(value < params["lower"], 1, np.where(value > params["upper"], -1, 0))

    def check(self, params):
        if params["lower"] >= params["upper"]:  # a sweep skips such points
            raise InvalidRequest.about(
                "lower", f"{{lower}} {params['lower']} must be below {{upper}} {params['upper']}"
            )
