"""The gateways a deployment talks to (IBKR_GATEWAYS): their names, addresses, client ids and
the ibkr worker queue of each."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The one gateway of IBKR_HOST / IBKR_PORT / IBKR_CLIENT_ID (IBKR_GATEWAYS unset): its worker
# keeps the queue `ibkr`.
DEFAULT_NAME = "default"
RUNS_QUEUE = "ibkr"  # runs wait here; every connected gateway's worker takes them
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
EXAMPLE = "paper1=127.0.0.1:4002:11,paper2=gw2.example:4002:12"


@dataclass(frozen=True)
class GatewaySpec:
    """One gateway: an IBKR login's TWS or IB Gateway, served by one ibkr worker."""

    name: str
    host: str
    port: int
    client_id: int

    @property
    def queue(self) -> str:
        """The queue of this gateway's worker."""
        return RUNS_QUEUE if self.name == DEFAULT_NAME else f"{RUNS_QUEUE}.{self.name}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def gateways_parse(text: str) -> tuple[GatewaySpec, ...]:
    """IBKR_GATEWAYS ("name=host:port:clientid,..."); empty when it is (the one gateway of
    IBKR_HOST / IBKR_PORT / IBKR_CLIENT_ID then). A bad entry raises ValueError saying which,
    in one line."""
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    gateways: list[GatewaySpec] = []
    for entry in entries:
        name, equals, address = entry.partition("=")
        name = name.strip()
        parts = address.strip().rsplit(":", 2)
        if not equals or len(parts) != 3 or not parts[0]:
            raise ValueError(f"{entry!r} is not name=host:port:clientid (for example {EXAMPLE})")
        if not _NAME.fullmatch(name) or name == DEFAULT_NAME:
            raise ValueError(
                f"{name!r} is not a gateway name: lower-case letters, digits, - and _, "
                f"starting with a letter (and not {DEFAULT_NAME!r})"
            )
        try:
            spec = GatewaySpec(name, parts[0], int(parts[1]), int(parts[2]))
        except ValueError:
            raise ValueError(f"{entry!r}: the port and the client id are numbers") from None
        if not 0 < spec.port < 65536:
            raise ValueError(f"{entry!r}: port {spec.port} is not between 1 and 65535")
        gateways.append(spec)
    for attribute, what in (("name", "name"), ("address", "address")):
        seen = [getattr(g, attribute) for g in gateways]
        twice = sorted({value for value in seen if seen.count(value) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)}: one gateway per {what}")
    return tuple(gateways)


def gateway_for_queues(gateways: tuple[GatewaySpec, ...], queues: set[str]) -> GatewaySpec | None:
    """The gateway a worker consuming `queues` serves (by its queue), or None when it serves
    none (a default or backtests worker)."""
    for gateway in gateways:
        if gateway.queue in queues:
            return gateway
    if RUNS_QUEUE in queues and len(gateways) == 1:
        return gateways[0]
    return None
