"""The bars a backtest reads: where from (DataSource), and which (BarsRequest, a task argument)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from fetcher.domain.instruments import InstrumentSpec
from fetcher.domain.timeframes import TimeframeSpec, WhatToShow, timeframe_parse


class DataSource(StrEnum):
    IBKR = "ibkr"
    DB = "db"
    CATALOG = "catalog"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    DataSource.IBKR: "IBKR (fetch what is missing, then the database)",
    DataSource.DB: "database",
    DataSource.CATALOG: "Parquet catalog",
}


@dataclass(frozen=True)
class BarsRequest:
    """One series' bars over the dates start..end (inclusive), and where to read them."""

    spec: InstrumentSpec
    timeframe: TimeframeSpec
    what_to_show: WhatToShow
    rth: bool
    start: dt.date
    end: dt.date
    data_source: DataSource
    catalog_root: str | None = None  # the default catalog when None

    def to_json(self) -> dict:
        return {
            "spec": self.spec.to_json(),
            "timeframe": self.timeframe.name,
            "what_to_show": self.what_to_show.name,
            "rth": self.rth,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "data_source": self.data_source.value,
            "catalog_root": self.catalog_root,
        }

    @classmethod
    def from_json(cls, data: dict) -> BarsRequest:
        return cls(
            spec=InstrumentSpec.from_json(data["spec"]),
            timeframe=timeframe_parse(data["timeframe"]),
            what_to_show=WhatToShow[data["what_to_show"]],
            rth=bool(data["rth"]),
            start=dt.date.fromisoformat(data["start"]),
            end=dt.date.fromisoformat(data["end"]),
            data_source=DataSource(data["data_source"]),
            catalog_root=data.get("catalog_root"),
        )
