"""The gateways of this deployment, as the settings name them now (no ib_insync here: the web
and admin side list them too)."""

from __future__ import annotations

from django.conf import settings

from fetcher.domain.gateways import DEFAULT_NAME, GatewaySpec


def gateway_specs() -> tuple[GatewaySpec, ...]:
    """IBKR_GATEWAYS, or (unset) the one gateway of IBKR_HOST / IBKR_PORT / IBKR_CLIENT_ID."""
    return settings.IBKR_GATEWAYS or (
        GatewaySpec(DEFAULT_NAME, settings.IBKR_HOST, settings.IBKR_PORT, settings.IBKR_CLIENT_ID),
    )


def gateways_shared() -> bool:
    """Several gateways: every run's chunks are shared among those that are up."""
    return len(gateway_specs()) > 1
