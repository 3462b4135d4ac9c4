"""An instrument qualified through the gateway the settings name, outside a fetch (an import
names its instrument this way when the gateway is up)."""

from __future__ import annotations

import asyncio

from fetcher.domain.instruments import InstrumentSpec
from fetcher.models import Instrument
from fetcher.services.instruments import instrument_save


def instrument_qualify(*, spec: InstrumentSpec) -> Instrument:
    """Ask the gateway for the contract `spec` names (one short connection) and store it as a
    fetch would; the gateway's errors as the project's (GatewayUnavailable when it is down)."""
    from fetcher.ibkr.connect import gateway_from_settings  # commands that never connect skip it

    gateway = gateway_from_settings()

    async def ask():
        try:
            await gateway.connect()
            return await gateway.qualify(spec)
        finally:
            gateway.disconnect()

    return instrument_save(qualified=asyncio.run(ask()))
