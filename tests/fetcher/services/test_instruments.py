"""Instruments saved as the gateway qualifies them: two workers saving a new contract at once
end with one instrument, and neither run fails."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from fetcher.ibkr.types import QualifiedInstrument
from fetcher.models import Instrument
from fetcher.services.instruments import instrument_save

AAPL = QualifiedInstrument(
    con_id=265598,
    symbol="AAPL",
    sec_type="STK",
    exchange="SMART",
    primary_exchange="NASDAQ",
    currency="USD",
    local_symbol="AAPL",
    long_name="APPLE INC",
    time_zone="US/Eastern",
    min_tick=0.01,
    last_trade_date="",
    trading_class="NMS",
    multiplier="",
)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL: SQLite runs one writer at a time"
)
def test_a_contract_saved_by_two_workers_at_once_is_one_instrument():
    """The other worker inserts it and commits while this one is inserting it too: this
    one's insert waits on the conId, fails, and updates the row the other saved. The other
    commits only once this one is seen waiting on its lock, so the race always happens."""
    inserted, waited = threading.Event(), threading.Event()

    def other_worker() -> None:
        try:
            with transaction.atomic():
                Instrument.objects.create(con_id=AAPL.con_id, symbol="AAPL", long_name="")
                inserted.set()
                with connection.cursor() as cursor:
                    for _ in range(200):  # until this test's insert waits on the row's lock
                        cursor.execute("SELECT pg_stat_clear_snapshot()")
                        cursor.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND datname = current_database()"
                        )
                        if cursor.fetchone()[0]:
                            waited.set()
                            break
                        time.sleep(0.05)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert inserted.wait(10)
    saved = instrument_save(qualified=AAPL)
    thread.join()
    assert waited.is_set()  # this one's insert met the other's, uncommitted
    [instrument] = Instrument.objects.all()
    assert (saved.pk, instrument.long_name) == (instrument.pk, "APPLE INC")
