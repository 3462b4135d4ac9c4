"""Instruments: stored as the gateway qualifies them, and what it said about their history."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction

from fetcher.domain.instruments import InstrumentSpec, spec_time_zone
from fetcher.exceptions import InvalidInput
from fetcher.ibkr.types import QualifiedInstrument
from fetcher.models import Instrument


def instrument_save(*, qualified: QualifiedInstrument) -> Instrument:
    """Create or update the Instrument of a qualified contract (keyed by conId). Two workers
    qualifying a new contract at once both find none and both insert it: the second insert
    fails on the conId, and then updates the one the first saved."""
    try:
        return _instrument_upsert(qualified)
    except IntegrityError:
        return _instrument_upsert(qualified)


def _instrument_upsert(qualified: QualifiedInstrument) -> Instrument:
    fields = {
        "symbol": qualified.symbol,
        "sec_type": qualified.sec_type,
        "exchange": qualified.exchange,
        "primary_exchange": qualified.primary_exchange,
        "currency": qualified.currency,
        "local_symbol": qualified.local_symbol,
        "long_name": qualified.long_name,
        "time_zone": qualified.time_zone,
        "active": True,
    }
    with transaction.atomic():
        instrument = Instrument.objects.select_for_update().filter(con_id=qualified.con_id).first()
        if instrument is None:
            instrument = Instrument.objects.filter(
                symbol=qualified.symbol,
                sec_type=qualified.sec_type,
                exchange=qualified.exchange,
                currency=qualified.currency,
            ).first() or Instrument(con_id=qualified.con_id)
        for name, value in fields.items():
            setattr(instrument, name, value)
        instrument.con_id = qualified.con_id
        instrument.save()
    return instrument


def instrument_head_set(*, instrument_id: int, what_to_show: str, head: dt.datetime) -> None:
    """Remember the gateway's first data point of one whatToShow."""
    with transaction.atomic():
        instrument = Instrument.objects.select_for_update().get(pk=instrument_id)
        instrument.head_timestamps = {**instrument.head_timestamps, what_to_show: head.isoformat()}
        instrument.save(update_fields=["head_timestamps", "updated_at"])


def instrument_spec(instrument: Instrument) -> InstrumentSpec:
    """A stored instrument as a fetch asks for it: its exact contract (conId included)."""
    us_stock = instrument.sec_type == "STK" and instrument.currency == "USD"
    label = instrument.local_symbol or instrument.symbol
    return InstrumentSpec.from_contract_fields(
        instrument, text=label if us_stock else f"{label}:{instrument.exchange}"
    )


def instrument_declare(*, spec: InstrumentSpec, con_id: int) -> Instrument:
    """The Instrument of a contract the user names without the gateway (an import given
    --con-id): its fields as given, its time zone as the listing's rules tell (New York for US
    listings and forex, Chicago for CME Group's futures; else unknown)."""
    found = Instrument.objects.filter(con_id=con_id).first()
    if found is not None:
        return found
    same = Instrument.objects.filter(
        symbol=spec.symbol, sec_type=spec.sec_type, exchange=spec.exchange, currency=spec.currency
    ).first()
    if same is not None:
        raise InvalidInput(
            f"{spec.label} is stored with conId {same.con_id}, not {con_id}: give its conId, or "
            "none"
        )
    return Instrument.objects.create(
        symbol=spec.symbol,
        sec_type=spec.sec_type,
        exchange=spec.exchange,
        primary_exchange=spec.primary_exchange,
        currency=spec.currency,
        con_id=con_id,
        local_symbol=f"{spec.symbol}.{spec.currency}" if spec.sec_type == "CASH" else "",
        time_zone=spec_time_zone(spec) or "",
    )
