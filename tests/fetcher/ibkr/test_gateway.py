"""The one client connection (fetcher.ibkr.gateway, through IBKR_CLIENT's library) against the simulator: what it makes of a
real gateway's habits."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from django.conf import settings

from fetcher.domain.instruments import instrument_spec_parse
from fetcher.exceptions import GatewayError, PermanentGatewayError
from fetcher.ibkr.gateway import Gateway
from fetcher.ibkr.types import BarRequest
from tests.support import epoch_at

NEXT_CLIENT_ID = iter(range(300, 400))


def on(sim, scenario, **options):
    """Run `scenario(gateway)` on a fresh connection to `sim`, through IBKR_CLIENT's library."""

    async def run():
        gateway = Gateway(
            host="127.0.0.1",
            port=sim.port,
            client_id=next(NEXT_CLIENT_ID),
            client=settings.IBKR_CLIENT,
            **options,
        )
        await gateway.connect()
        try:
            return await scenario(gateway)
        finally:
            gateway.disconnect()

    return asyncio.run(run())


def test_quote_bars_keep_no_minus_one_their_volume_and_wap_are_missing(sim):
    async def scenario(gateway):
        aapl = await gateway.qualify(instrument_spec_parse("AAPL"))
        request = BarRequest("20240105-21:00:00", "1800 S", "1 min", "BID", True)
        return await gateway.bars(aapl, request), await gateway.bars(
            aapl, BarRequest("20240105-21:00:00", "1800 S", "1 min", "TRADES", True)
        )

    quotes, trades = on(sim, scenario)
    assert len(quotes) == 30
    assert np.isnan(quotes.volume).all() and np.isnan(quotes.wap).all()
    assert (quotes.bar_count == 0).all() and (quotes.close > 0).all()
    assert (trades.volume > 0).all() and (trades.wap > 0).all()


def test_a_request_the_gateway_cannot_read_fails_at_once_and_for_good(sim):
    """IBKR's 321 (here: 400 days not written in years) fails the request as the gateway said,
    with either client (ib_async takes 321 for a warning), not as a timeout to be retried."""

    async def scenario(gateway):
        aapl = await gateway.qualify(instrument_spec_parse("AAPL"))
        request = BarRequest("20240105-21:00:00", "400 D", "1 day", "TRADES", True)
        with pytest.raises(GatewayError) as refused:
            await gateway.bars(aapl, request)
        return refused.value

    refused = on(sim, scenario, request_timeout=30)
    assert isinstance(refused, PermanentGatewayError), refused
    assert refused.code == 321
    assert "must be made in years" in refused.message


def test_the_gateway_tells_its_present(sim_factory):
    present = epoch_at("2024-06-07 16:00")
    now = on(sim_factory(now=present), lambda gateway: gateway.current_time())
    assert 0 <= now - present < 60


def test_an_expired_future_is_asked_for_as_expired(sim_factory):
    sim = sim_factory(now=epoch_at("2025-03-03 12:00"))  # ESZ4 expired on 2024-12-20

    async def scenario(gateway):
        es = await gateway.qualify(instrument_spec_parse("ES:CME"))
        request = BarRequest("20241221-00:00:00", "5 D", "1 day", "TRADES", False)
        return es, await gateway.bars(es, request)

    es, bars = on(sim, scenario)
    assert (es.local_symbol, es.last_trade_date) == ("ESZ4", "20241220")
    assert len(bars) == 5
