"""Commission models: a fraction of each fill's value, or IBKR's fixed per-share schedule."""

from __future__ import annotations

from dataclasses import dataclass

from .compiled import FRACTION, IBKR_FIXED
from .problems import InvalidRequest

# Commission fractions backtesting.py accepts (it refuses 10% and more).
MAX_FRACTION = 0.1


@dataclass(frozen=True)
class FractionCommission:
    """`rate` of the traded value, on every fill."""

    rate: float

    def __call__(self, size: float, price: float) -> float:
        return abs(size) * price * self.rate

    @property
    def label(self) -> str:
        return f"{self.rate:g} of each fill" if self.rate else "none"

    @property
    def text(self) -> str:
        """As commission_parse reads it back: '0.002', '0'."""
        return repr(self.rate).removesuffix(".0")

    def schedule(self) -> tuple[int, float, float, float, float]:
        """(kind, rate, per share, minimum, max fraction) for the compiled loop."""
        return FRACTION, self.rate, 0.0, 0.0, 0.0


@dataclass(frozen=True)
class IbkrFixedCommission:
    """IBKR's fixed pricing for US stocks: USD 0.005 a share, at least USD 1, at most 1% of the
    trade's value."""

    per_share: float = 0.005
    minimum: float = 1.0
    max_fraction: float = 0.01

    def __call__(self, size: float, price: float) -> float:
        shares = abs(size)
        return min(max(shares * self.per_share, self.minimum), shares * price * self.max_fraction)

    @property
    def label(self) -> str:
        return "IBKR fixed (USD 0.005/share, min USD 1, max 1% of value)"

    @property
    def text(self) -> str:
        return "ibkr"

    def schedule(self) -> tuple[int, float, float, float, float]:
        return IBKR_FIXED, 0.0, self.per_share, self.minimum, self.max_fraction


Commission = FractionCommission | IbkrFixedCommission


def commission_parse(text: str, field: str = "commission") -> Commission:
    """'0.002' -> 0.2% of each fill; 'ibkr' -> IBKR's fixed schedule. InvalidRequest about
    `field` otherwise."""
    raw = str(text).strip().lower()
    if raw == "ibkr":
        return IbkrFixedCommission()
    try:
        rate = float(raw)
    except ValueError:
        raise InvalidRequest.about(
            field,
            f"{{{field}}} {text!r} is neither a fraction (0.002 = 0.2% of each fill) nor 'ibkr'",
        ) from None
    if not 0 <= rate < MAX_FRACTION:
        raise InvalidRequest.about(
            field,
            f"{{{field}}} {text!r} must be a fraction from 0 to below {MAX_FRACTION} "
            "(0.002 = 0.2% of each fill)",
        )
    return FractionCommission(rate)
