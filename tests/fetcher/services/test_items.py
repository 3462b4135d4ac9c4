"""An item's bars merged into the catalog from the database: one partition (a UTC year) at a
time, a year too large for one read taken in slices, every bar once."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from fetcher.domain.instruments import instrument_specs_parse
from fetcher.domain.requests import FetchRequest
from fetcher.domain.timeframes import TIMEFRAMES
from fetcher.models import FetchRunItem, Instrument
from fetcher.selectors import bars_read
from fetcher.services import items
from fetcher.services.fetch_runs import fetch_run_create
from fetcher.storage.bars import bars_upsert
from fetcher.storage.catalog import catalog_read
from tests.support import make_bars

pytestmark = pytest.mark.django_db
M1 = TIMEFRAMES["1-MINUTE"]
NEW_YEAR = int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp())


@pytest.mark.parametrize("slice_bars", [1_000, 7, 5])
def test_an_item_is_exported_a_year_at_a_time_in_slices_every_bar_once(
    monkeypatch, tmp_path, slice_bars
):
    monkeypatch.setattr(items, "CATALOG_SLICE_BARS", slice_bars)
    run = fetch_run_create(
        request=FetchRequest(
            instruments=instrument_specs_parse("AAPL"),
            timeframe=M1,
            start=dt.date(2024, 12, 31),
            end=dt.date(2025, 1, 1),
            today=dt.date(2025, 6, 1),
        )
    )
    inst = Instrument.objects.create(
        symbol="AAPL", con_id=265598, primary_exchange="NASDAQ", currency="USD"
    )
    item = FetchRunItem.objects.get(run=run)
    item.instrument = inst
    item.start = dt.datetime(2024, 12, 31, tzinfo=dt.UTC)
    item.end = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    item.save()
    # 12 bars before new year, 10 after: slices of 5 end exactly where a year does, of 7 not
    times = np.concatenate([NEW_YEAR - 60 * np.arange(12, 0, -1), NEW_YEAR + 60 * np.arange(10)])
    key = {"instrument_id": inst.pk, "timeframe": M1.code, "what_to_show": run.what_to_show}
    bars_upsert(**key, batch=make_bars(times), fresh=True)

    written = items.item_catalog_export(item=item, catalog_root=tmp_path)

    assert written == len(times)
    stored = bars_read(**key, rth=True, start=NEW_YEAR - 86_400, end=NEW_YEAR + 86_400)
    read = catalog_read(
        root=tmp_path,
        symbol="AAPL",
        exchange="NASDAQ",
        currency="USD",
        timeframe=M1,
        what_to_show="TRADES",
    )
    assert read.ts.tolist() == times.tolist() == stored.ts.tolist()
    assert read.close.tolist() == stored.close.tolist()
    years = sorted(p.parent.name for p in tmp_path.rglob("*.parquet"))
    assert years == ["year=2024", "year=2025"]
