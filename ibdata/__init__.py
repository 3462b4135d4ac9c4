"""ibdata for research: stored IBKR bars as pandas or polars DataFrames (docs/research.md)."""

from .bars import BarsError, bars, bars_polars

__all__ = ["BarsError", "bars", "bars_polars"]
