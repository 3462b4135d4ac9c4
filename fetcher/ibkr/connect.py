"""Build the Gateway from settings. IBKR_HOST=sim starts the built-in simulator in-process, and
only then is the simulator imported: a worker talking to a real TWS never loads it."""

from __future__ import annotations

import threading

from django.conf import settings

from fetcher.domain.gateways import GatewaySpec

from .gateway import Gateway
from .specs import gateway_specs

SIM_HOST = "sim"
DEFAULT_SIM_ACCOUNT = "DU1234567"
_embedded = None
_lock = threading.Lock()


def embedded_simulator():
    """The process's own simulator (started on first use, on a free loopback port)."""
    global _embedded
    with _lock:
        if _embedded is None:
            from ibsim.server import GatewaySimulator, SimConfig

            account = settings.TWS_ACCOUNT or DEFAULT_SIM_ACCOUNT
            _embedded = GatewaySimulator(SimConfig(port=0, accounts=(account,))).start_in_thread()
        return _embedded


def gateway_address(spec: GatewaySpec | None = None) -> tuple[str, int, bool]:
    """(host, port, simulated) of a gateway (by default the first the settings name)."""
    spec = spec or gateway_specs()[0]
    if spec.host.strip().lower() == SIM_HOST:
        return "127.0.0.1", embedded_simulator().port, True
    return spec.host, spec.port, False


def gateway_from_settings(
    *, spec: GatewaySpec | None = None, client_id: int | None = None
) -> Gateway:
    """A Gateway (not connected) for `spec`, by default the first gateway the settings name."""
    spec = spec or gateway_specs()[0]
    host, port, _ = gateway_address(spec)
    return Gateway(
        host=host,
        port=port,
        client_id=spec.client_id if client_id is None else client_id,
        connect_timeout=settings.IBKR_CONNECT_TIMEOUT,
        request_timeout=settings.IBKR_REQUEST_TIMEOUT,
        market_data_type=settings.IBKR_MARKET_DATA_TYPE,
        client=settings.IBKR_CLIENT,
    )
