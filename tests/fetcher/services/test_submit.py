"""fetch_submit: every way in starts the same run for the same request; runs made from stored
state: updates from the last stored bar, retries of failed requests."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.urls import reverse

from fetcher.domain.instruments import InstrumentSpec
from fetcher.domain.timeframes import TIMEFRAMES, WhatToShow
from fetcher.exceptions import InvalidInput
from fetcher.models import (
    ChunkStatus,
    FetchChunk,
    FetchRun,
    FetchRunItem,
    Instrument,
    RequestedBy,
    RunStatus,
    Series,
)
from fetcher.selectors import fetch_runs_of
from fetcher.services.schedules import ScheduledFetch, fetch_schedule_add, fetch_schedule_fire
from fetcher.services.submit import fetch_retry_submit, fetch_updates_submit
from tests.support import settled

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_broker")]
UTC = dt.UTC


def instrument(symbol: str, con_id: int, **fields) -> Instrument:
    return Instrument.objects.create(symbol=symbol, con_id=con_id, time_zone="US/Eastern", **fields)


def series(inst: Instrument, timeframe: str, what: WhatToShow = WhatToShow.TRADES) -> None:
    Series.objects.create(
        instrument=inst,
        timeframe=TIMEFRAMES[timeframe].code,
        what_to_show=what,
        rth=True,
        source="simulator",
        bar_count=10,
    )


def test_an_update_is_one_run_per_stored_series_kind_and_names_what_has_none():
    aapl, msft = instrument("AAPL", 265598), instrument("MSFT", 272093)
    eur = instrument("EUR", 12087792, sec_type="CASH", exchange="IDEALPRO")
    empty = instrument("NVDA", 4815747)
    series(aapl, "DAILY")
    series(msft, "DAILY")
    series(aapl, "1-MINUTE")
    series(eur, "DAILY", WhatToShow.MIDPOINT)
    handles, nothing = fetch_updates_submit(instruments=[aapl, msft, eur, empty])
    runs = fetch_runs_of(run_ids=[h.run_id for h in handles])
    assert nothing == [empty]
    kinds = {(r.timeframe, r.what_to_show, tuple(r.instruments)) for r in runs}
    assert kinds == {
        (TIMEFRAMES["1-MINUTE"].code, WhatToShow.TRADES, ("AAPL",)),
        (TIMEFRAMES["DAILY"].code, WhatToShow.TRADES, ("AAPL", "MSFT")),
        (TIMEFRAMES["DAILY"].code, WhatToShow.MIDPOINT, ("EUR:IDEALPRO",)),
    }
    assert all(r.start is None and r.end is None for r in runs)
    [eur_item] = FetchRunItem.objects.filter(symbol="EUR")
    assert (eur_item.sec_type, eur_item.exchange, eur_item.con_id) == ("CASH", "IDEALPRO", 12087792)


def failed_run(timeframe: str, windows: list[tuple[Instrument, dt.datetime, dt.datetime, str]]):
    run = FetchRun.objects.create(
        instruments=sorted({w[0].symbol for w in windows}),
        timeframe=TIMEFRAMES[timeframe].code,
        status=RunStatus.PARTIAL,
    )
    for position, (inst, start, end, status) in enumerate(windows):
        item, _ = FetchRunItem.objects.get_or_create(
            run=run, spec=inst.symbol, defaults={"position": position, "instrument": inst}
        )
        FetchChunk.objects.create(
            run=run,
            item=item,
            instrument=inst,
            window_start=start,
            window_end=end,
            duration="1 D",
            request_end="",
            status=status,
        )
    return run


def test_a_retry_covers_the_exchange_dates_of_each_instruments_failed_requests():
    aapl, msft = instrument("AAPL", 265598), instrument("MSFT", 272093)
    at = dt.datetime
    run = failed_run(
        "1-MINUTE",
        [
            # 09:30-16:00 New York on Jan 3, and an evening window that is Jan 4 in UTC
            (aapl, at(2024, 1, 3, 14, 30, tzinfo=UTC), at(2024, 1, 3, 21, tzinfo=UTC), "failed"),
            (aapl, at(2024, 1, 4, 14, 30, tzinfo=UTC), at(2024, 1, 4, 21, tzinfo=UTC), "done"),
            (aapl, at(2024, 1, 5, 23, tzinfo=UTC), at(2024, 1, 6, 1, tzinfo=UTC), "pending"),
            (msft, at(2024, 1, 8, 14, 30, tzinfo=UTC), at(2024, 1, 8, 21, tzinfo=UTC), "failed"),
        ],
    )
    retries = fetch_runs_of(run_ids=[h.run_id for h in fetch_retry_submit(run_id=run.pk)])
    spans = {(tuple(r.instruments), r.start, r.end) for r in retries}
    assert spans == {
        (("AAPL",), dt.date(2024, 1, 3), dt.date(2024, 1, 5)),
        (("MSFT",), dt.date(2024, 1, 8), dt.date(2024, 1, 8)),
    }
    assert FetchRun.objects.get(pk=run.pk).status == RunStatus.PARTIAL


def test_a_daily_retry_reads_its_windows_as_dates():
    spy = instrument("SPY", 756733)
    day = dt.datetime(2024, 1, 5, tzinfo=UTC)  # daily windows: 00:00 UTC of the date
    run = failed_run("DAILY", [(spy, day, day + dt.timedelta(days=1), ChunkStatus.FAILED)])
    [retry] = fetch_runs_of(run_ids=[h.run_id for h in fetch_retry_submit(run_id=run.pk)])
    assert (retry.start, retry.end) == (dt.date(2024, 1, 5), dt.date(2024, 1, 5))


def test_a_retry_of_a_cancelled_run_fetches_its_cancelled_requests_again():
    googl = instrument("GOOGL", 208813719)
    at = dt.datetime
    run = failed_run(
        "1-MINUTE",
        [
            (googl, at(2024, 3, 4, 14, 30, tzinfo=UTC), at(2024, 3, 4, 21, tzinfo=UTC), "done"),
            (
                googl,
                at(2024, 3, 5, 14, 30, tzinfo=UTC),
                at(2024, 3, 5, 21, tzinfo=UTC),
                "cancelled",
            ),
            (
                googl,
                at(2024, 3, 6, 14, 30, tzinfo=UTC),
                at(2024, 3, 6, 21, tzinfo=UTC),
                "cancelled",
            ),
        ],
    )
    FetchRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED)
    [retry] = fetch_runs_of(run_ids=[h.run_id for h in fetch_retry_submit(run_id=run.pk)])
    assert (retry.instruments, retry.start, retry.end) == (
        ["GOOGL"],
        dt.date(2024, 3, 5),
        dt.date(2024, 3, 6),
    )


def test_a_retry_of_an_unknown_run_says_so():
    with pytest.raises(InvalidInput, match="there is no fetch run 424242"):
        fetch_retry_submit(run_id=424242)


RUN_FIELDS = ("instruments", "start", "end", "timeframe", "what_to_show", "use_rth", "since_head")


def record(run: FetchRun) -> tuple[dict, list[dict]]:
    """What a run asks for: its fields and its items' contracts. A way in that starts from the
    stored instrument names its exact contract (conId, listing exchange): compared apart."""
    items = []
    for item in run.items.order_by("position"):
        fields = InstrumentSpec.from_contract_fields(item).contract_fields()
        assert fields.pop("con_id") in (None, 265598)
        assert fields.pop("primary_exchange") in ("", "NASDAQ")
        items.append({"spec": item.spec, "position": item.position, **fields})
    return {name: getattr(run, name) for name in RUN_FIELDS}, items


def newest_run() -> FetchRun:
    return settled(FetchRun.objects.order_by("-pk").first())


def command(name: str, *args: str) -> None:
    try:
        call_command(name, *args)
    except SystemExit as exc:
        assert not exc.code, f"{name} exited {exc.code}"


def test_every_way_in_starts_the_same_run_for_the_same_request(gateway, admin_client):
    january = ("--start", "2024-01-02", "--end", "2024-01-31")
    command("fetch", "--instruments", "AAPL", *january)
    by_cli = newest_run()
    assert by_cli.status == RunStatus.SUCCEEDED and by_cli.requested_by == RequestedBy.CLI

    aapl = Instrument.objects.get(symbol="AAPL")
    admin_client.post(
        reverse("admin:fetcher_instrument_changelist"),
        {
            "action": "fetch_history",
            "_selected_action": [aapl.pk],
            "apply": "1",
            "timeframe": "DAILY",
            "start": "2024-01-02",
            "end": "2024-01-31",
            "what_to_show": "TRADES",
            "use_rth": "on",
        },
    )
    by_admin = newest_run()
    assert by_admin.requested_by == RequestedBy.ADMIN
    assert record(by_admin) == record(by_cli)

    FetchChunk.objects.filter(run=by_cli).update(status=ChunkStatus.FAILED)
    [retry] = fetch_retry_submit(run_id=by_cli.pk)
    by_retry = newest_run()
    assert by_retry.pk == retry.run_id and record(by_retry) == record(by_cli)

    fetch_schedule_add(name="aapl", fetch=ScheduledFetch(instruments="AAPL"), cron="0 18 * * 1-5")
    fetch_schedule_fire(schedule="aapl", fetch=ScheduledFetch(instruments="AAPL"))
    by_schedule = newest_run()
    assert (by_schedule.requested_by, by_schedule.schedule) == (RequestedBy.SCHEDULE, "aapl")
    command("fetch", "--instruments", "AAPL")
    assert record(by_schedule) == record(newest_run())

    spring = ("--start", "2023-01-03", "--end", "2023-04-28")
    command("backtest", "--symbols", "AAPL", *spring, "--data-source", "ibkr", "--json")
    by_backtest = FetchRun.objects.get(requested_by=RequestedBy.BACKTEST)
    command("fetch", "--instruments", "AAPL", *spring)
    assert record(by_backtest) == record(newest_run())
