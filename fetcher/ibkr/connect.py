"""Build the Gateway from settings. IBKR_HOST=sim starts the built-in simulator in-process, and
only then is the simulator imported: a worker talking to a real TWS never loads it."""

from __future__ import annotations

import threading

from django.conf import settings

from .gateway import Gateway

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


def gateway_address() -> tuple[str, int, bool]:
    """(host, port, simulated) of the gateway the settings name."""
    if settings.IBKR_HOST.strip().lower() == SIM_HOST:
        return "127.0.0.1", embedded_simulator().port, True
    return settings.IBKR_HOST, settings.IBKR_PORT, False


def gateway_from_settings(*, client_id: int | None = None) -> Gateway:
    host, port, _ = gateway_address()
    return Gateway(
        host=host,
        port=port,
        client_id=settings.IBKR_CLIENT_ID if client_id is None else client_id,
        connect_timeout=settings.IBKR_CONNECT_TIMEOUT,
        request_timeout=settings.IBKR_REQUEST_TIMEOUT,
        market_data_type=settings.IBKR_MARKET_DATA_TYPE,
        client=settings.IBKR_CLIENT,
    )
