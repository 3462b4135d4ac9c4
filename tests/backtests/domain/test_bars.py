"""Which bars a backtest reads: the data sources, and a BarsRequest through JSON unchanged."""

from __future__ import annotations

import datetime as dt
import json

from backtests.domain.bars import BarsRequest, DataSource
from fetcher.domain.instruments import instrument_spec_parse
from fetcher.domain.timeframes import WhatToShow, timeframe_parse


def test_a_bars_request_goes_through_json_unchanged():
    for text, source, root in (("SPY:ARCA", "db", None), ("EUR.USD", "catalog", "/tmp/cat")):
        request = BarsRequest(
            spec=instrument_spec_parse(text),
            timeframe=timeframe_parse("1-hour"),
            what_to_show=WhatToShow.MIDPOINT,
            rth=False,
            start=dt.date(2024, 1, 2),
            end=dt.date(2024, 3, 4),
            data_source=DataSource(source),
            catalog_root=root,
        )
        data = json.loads(json.dumps(request.to_json()))
        assert BarsRequest.from_json(data) == request
        assert hash(BarsRequest.from_json(data)) == hash(request)  # a cache key
    assert data["spec"]["text"] == "EUR.USD" and data["timeframe"] == "1-HOUR"


def test_data_sources_and_their_labels():
    assert [s.value for s in DataSource] == ["ibkr", "db", "catalog"]
    assert DataSource("db") == "db" and DataSource.CATALOG.label == "Parquet catalog"
