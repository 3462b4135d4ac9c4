"""Where bars came from: a store (a database and its catalog) holds bars of one gateway kind only,
so the simulator's synthetic bars never mix with real ones."""

from __future__ import annotations

from pathlib import Path

from fetcher.exceptions import SourceMismatch
from fetcher.ibkr.types import GatewayInfo
from fetcher.models import GatewayKind
from fetcher.selectors import store_source
from fetcher.storage.catalog import catalog_source, catalog_source_record


def gateway_kind(info: GatewayInfo) -> str:
    return GatewayKind.SIMULATOR if info.simulated else GatewayKind.IBKR


def _describe(source: str, account: str) -> str:
    label = GatewayKind(source).label if source in GatewayKind.values else source
    return f"{label} (account {account})" if account else label


def source_mismatch(held: tuple[str, str], incoming: tuple[str, str], where: str) -> SourceMismatch:
    return SourceMismatch(
        f"{where} holds bars from the {_describe(*held)}; this gateway is the "
        f"{_describe(*incoming)}, and the two never mix: use another store "
        "(DATA_DIR and DATABASE_URL; the demo keeps its own under data/demo)"
    )


def store_source_check(*, source: str, account: str, catalog_root: Path) -> None:
    """Refuse (SourceMismatch) a fetch whose bars would mix with the store's; record the
    catalog's source the first time it is written to."""
    held = store_source(exclude=source)
    if held is not None:
        raise source_mismatch(held, (source, account), "This database")
    recorded = catalog_source(catalog_root)
    if recorded is None:
        catalog_source_record(root=catalog_root, source=source, account=account)
    elif recorded.get("source") != source:
        raise source_mismatch(
            (recorded.get("source", "?"), recorded.get("account", "")),
            (source, account),
            f"The catalog {catalog_root}",
        )
