"""`manage.py connect_ibkr`: connect to TWS / IB Gateway and show the connection details."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand

from fetcher.cli import console, property_table, user_errors
from fetcher.ibkr.connect import gateway_address, gateway_from_settings
from fetcher.ibkr.types import GatewayInfo

PAPER_PORTS = {7497, 4002}
LIVE_PORTS = {7496, 4001}


def mode_warnings(info: GatewayInfo, trading_mode: str) -> list[str]:
    """Where TRADING_MODE disagrees with the port or the account (paper: 7497 and DU...)."""
    mode = trading_mode.strip().lower()
    warnings = []
    if mode not in ("paper", "live"):
        return [f"TRADING_MODE={trading_mode!r} is neither 'paper' nor 'live'"]
    paper_account = info.account.upper().startswith(("DU", "DF"))
    if mode == "paper" and info.port in LIVE_PORTS:
        warnings.append(
            f"TRADING_MODE=paper but port {info.port} is a live-trading port (paper: 7497)"
        )
    if mode == "live" and info.port in PAPER_PORTS:
        warnings.append(
            f"TRADING_MODE=live but port {info.port} is a paper-trading port (live: 7496)"
        )
    if info.account and mode == "paper" and not paper_account:
        warnings.append(
            f"TRADING_MODE=paper but account {info.account} is not a paper account (DU...)"
        )
    if info.account and mode == "live" and paper_account:
        warnings.append(f"TRADING_MODE=live but account {info.account} is a paper account")
    return warnings


class Command(BaseCommand):
    help = "Connect to TWS / IB Gateway (readonly) and print the connection details."

    @user_errors
    def handle(self, *args, **options):
        out = console()
        host, port, simulated = gateway_address()
        gateway = gateway_from_settings()

        async def probe() -> GatewayInfo:
            try:
                return await gateway.connect()
            finally:
                gateway.disconnect()

        info = asyncio.run(probe())
        if simulated:
            out.print(
                "✅ Connected to the built-in gateway simulator (IBKR_HOST=sim): simulated bars"
            )
        elif info.simulated:
            out.print(
                f"✅ Connected to the ibdata gateway simulator on {info.host}: simulated bars"
            )
        else:
            out.print("✅ Successfully connected to Interactive Brokers")
        out.print()
        rows = [
            ("Host", "built-in simulator" if simulated else info.host),
            ("Port", str(info.port)),
            ("Account ID", info.account or "-"),
            ("Server Version", str(info.server_version)),
            ("Connection Time", info.connected_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")),
        ]
        out.print(property_table("Connection Details", rows))
        for warning in mode_warnings(info, settings.TRADING_MODE):
            out.print(f"⚠️  {warning}")
        if settings.TWS_ACCOUNT and info.accounts and settings.TWS_ACCOUNT not in info.accounts:
            out.print(f"⚠️  TWS_ACCOUNT={settings.TWS_ACCOUNT} is not among the gateway's accounts")
