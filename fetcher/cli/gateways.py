"""Gateways on the terminal: each one's health as its ibkr worker last told it (GatewayState,
every heartbeat), so "no worker" is said only when there is none, and "unreachable" when the
worker cannot reach its gateway; the simulator is named as such."""

from __future__ import annotations

import datetime as dt

from fetcher.models import GatewayState
from fetcher.selectors import gateway_health, gateway_states

NO_WORKER = (
    "⚠️  No ibkr worker answers: the run waits in the queue until one starts "
    "(celery -A ibdata_project worker -Q ibkr --pool solo)"
)


def gateway_kind(state: GatewayState) -> str:
    return "the ibdata simulator (synthetic bars)" if state.simulated else "TWS / IB Gateway"


def gateway_state_line(state: GatewayState, now: dt.datetime) -> str:
    """One line: the gateway, and connected (to what, since when), unreachable (why), or no
    worker."""
    health = gateway_health(state, now)
    where = f"gateway {state.name} ({state.host}:{state.port})"
    if health == "connected":
        return (
            f"✅ {where}: connected to {gateway_kind(state)} since {state.since:%Y-%m-%d %H:%M} UTC"
        )
    if health == "no worker":
        seen = f"{state.seen_at:%Y-%m-%d %H:%M} UTC" if state.seen_at else "never"
        return f"⚠️  {where}: no ibkr worker (last heard of {seen})"
    return (
        f"⚠️  {where} unreachable: {state.last_error or 'not connected'} (its ibkr worker keeps "
        "trying; runs wait in the queue meanwhile)"
    )


def runs_waiting_note(now: dt.datetime) -> str | None:
    """What holds a queued run back, if anything: no gateway connected because none is
    reachable (each one said), or no ibkr worker at all; None when a gateway is connected."""
    states = gateway_states()
    health = {state.name: gateway_health(state, now) for state in states}
    if "connected" in health.values():
        return None
    down = [state for state in states if health[state.name].startswith("down")]
    if down:
        return "\n".join(gateway_state_line(state, now) for state in down)
    return NO_WORKER
