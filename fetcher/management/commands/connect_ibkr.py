"""`manage.py connect_ibkr`: connect to TWS / IB Gateway and show the connection details; with
several gateways (IBKR_GATEWAYS), each of them, one row each."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone
from rich.table import Table

from fetcher.cli import UserError, console, property_table, user_errors
from fetcher.cli.gateways import NO_WORKER, gateway_state_line
from fetcher.domain.gateways import GatewaySpec
from fetcher.exceptions import ClientIdInUse, GatewayError
from fetcher.execution.preflight import tasks_in_process
from fetcher.ibkr.connect import gateway_address, gateway_from_settings
from fetcher.ibkr.specs import gateway_specs
from fetcher.ibkr.types import GatewayInfo
from fetcher.selectors import gateway_health, gateway_states

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


async def probe(spec: GatewaySpec) -> GatewayInfo:
    """Connect to one gateway (readonly), and disconnect: what it said about itself."""
    gateway = gateway_from_settings(spec=spec)
    try:
        return await gateway.connect()
    finally:
        gateway.disconnect()


class Command(BaseCommand):
    help = "Connect to TWS / IB Gateway (readonly) and print the connection details."

    @user_errors
    def handle(self, *args, **options):
        specs = gateway_specs()
        if len(specs) > 1:
            return self.handle_several(specs)
        out = console()
        host, port, embedded = gateway_address()
        states = {state.name: state for state in gateway_states()}
        state = states.get(specs[0].name)
        try:
            info = asyncio.run(probe(specs[0]))
        except ClientIdInUse:  # its own ibkr worker holds the client id, most likely
            if state is None or gateway_health(state, timezone.now()) != "connected":
                raise
            out.print(
                f"✅ Connected through its ibkr worker (it holds client id {state.client_id})"
            )
            out.print(gateway_state_line(state, timezone.now()))
            return
        if embedded:
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
            ("Host", "built-in simulator" if embedded else info.host),
            ("Port", str(info.port)),
            ("Gateway", "ibdata simulator" if embedded or info.simulated else "TWS / IB Gateway"),
            ("Account ID", info.account or "-"),
            ("Server Version", str(info.server_version)),
            ("Connection Time", info.connected_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")),
        ]
        out.print(property_table("Connection Details", rows))
        for warning in mode_warnings(info, settings.TRADING_MODE):
            out.print(f"⚠️  {warning}")
        if settings.TWS_ACCOUNT and info.accounts and settings.TWS_ACCOUNT not in info.accounts:
            out.print(f"⚠️  TWS_ACCOUNT={settings.TWS_ACCOUNT} is not among the gateway's accounts")
        if not tasks_in_process():  # deployed: what its ibkr worker says, too
            out.print(gateway_state_line(state, timezone.now()) if state else NO_WORKER)

    def handle_several(self, specs: tuple[GatewaySpec, ...]) -> None:
        """Each gateway checked, one row each; a non-zero exit when one cannot be reached."""
        out = console()
        table = Table(title="Gateways", title_justify="left", title_style="bold")
        for column in ("Gateway", "Address", "Client ID", "Status", "Account", "Server"):
            table.add_column(column, overflow="fold")
        failed = []
        states = {state.name: state for state in gateway_states()}
        for spec in specs:
            try:
                info = asyncio.run(probe(spec))
            except ClientIdInUse as exc:  # its own ibkr worker holds the client id, most likely
                state = states.get(spec.name)
                if state is None or gateway_health(state, timezone.now()) != "connected":
                    failed.append(spec.name)
                    table.add_row(
                        spec.name, spec.address, str(spec.client_id), f"❌ {exc}", "-", "-"
                    )
                    continue
                kind = "simulator" if state.simulated else "TWS / IB Gateway"
                since = f"{state.since:%Y-%m-%d %H:%M} UTC"
                status = f"✅ connected (its ibkr worker, since {since})"
                server = f"{kind} v{state.server_version}"
                table.add_row(spec.name, spec.address, str(spec.client_id), status, "-", server)
                continue
            except GatewayError as exc:
                failed.append(spec.name)
                table.add_row(spec.name, spec.address, str(spec.client_id), f"❌ {exc}", "-", "-")
                continue
            kind = "simulator" if info.simulated else "TWS / IB Gateway"
            server = f"{kind} v{info.server_version}"
            table.add_row(
                spec.name, spec.address, str(spec.client_id), "✅ connected", info.account, server
            )
            for warning in mode_warnings(info, settings.TRADING_MODE):
                out.print(f"⚠️  {spec.name}: {warning}")
        out.print(table)
        if failed:
            raise UserError(
                f"{len(failed)} of {len(specs)} gateways unreachable: {', '.join(failed)}"
            )
        out.print(f"✅ Successfully connected to all {len(specs)} gateways")
