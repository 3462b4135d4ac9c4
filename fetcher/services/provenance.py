"""Where bars came from: a store (a database and its catalog) holds bars of one gateway kind only,
so the simulator's synthetic bars never mix with real ones; and a catalog belongs to one
database, so two stores never write into one catalog."""

from __future__ import annotations

from pathlib import Path

from django.db import IntegrityError, connections, router, transaction

from fetcher.exceptions import CatalogBound, SourceMismatch
from fetcher.ibkr.types import GatewayInfo
from fetcher.models import GatewayKind, StoreIdentity
from fetcher.selectors import store_source
from fetcher.storage.catalog import catalog_source, catalog_source_record


def gateway_kind(info: GatewayInfo) -> str:
    return GatewayKind.SIMULATOR if info.simulated else GatewayKind.IBKR


# Kinds whose bars may share a store: real bars, from a gateway or from files. The simulator's
# synthetic bars share a store with nothing else.
REAL_KINDS = (GatewayKind.IBKR, GatewayKind.IMPORT)


def sources_mix(held: str, incoming: str) -> bool:
    """Whether bars of kind `incoming` may join a store (or series) holding bars of `held`."""
    return held == incoming or (held in REAL_KINDS and incoming in REAL_KINDS)


def _kinds_apart(source: str) -> list[str]:
    """The kinds a store holding `source` bars must not hold."""
    return [kind for kind in GatewayKind.values if not sources_mix(kind, source)]


def _describe(source: str, account: str) -> str:
    label = GatewayKind(source).label if source in GatewayKind.values else source
    return f"{label} (account {account})" if account else label


def source_mismatch(held: tuple[str, str], incoming: tuple[str, str], where: str) -> SourceMismatch:
    if incoming[0] == GatewayKind.IMPORT:
        return SourceMismatch(
            f"{where} holds bars from the {_describe(*held)}; imported bars never mix with "
            "them: import into another store (DATA_DIR and DATABASE_URL)"
        )
    return SourceMismatch(
        f"{where} holds bars from the {_describe(*held)}; this gateway is the "
        f"{_describe(*incoming)}, and the two never mix: use another store "
        "(DATA_DIR and DATABASE_URL; the demo keeps its own under data/demo)"
    )


def store_identity() -> dict:
    """This database's identity ({"id", "label"}): a uuid made on first use and kept in the
    database, and words naming the database for messages."""
    identity = StoreIdentity.objects.filter(pk=1).first()
    if identity is None:
        try:
            with transaction.atomic():
                identity = StoreIdentity.objects.create(pk=1)
        except IntegrityError:  # another process made it first
            identity = StoreIdentity.objects.get(pk=1)
    return {"id": str(identity.uuid), "label": database_label()}


def database_label() -> str:
    """'PostgreSQL database ibdata on 127.0.0.1:5432', 'SQLite file /srv/data/ibdata.sqlite3'."""
    connection = connections[router.db_for_write(StoreIdentity)]
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"SQLite file {db['NAME']}"
    where = f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}"
    return f"{connection.display_name} database {db['NAME']} on {where}"


def catalog_binding_check(*, catalog_root: Path) -> dict | None:
    """Refuse (CatalogBound) a catalog that belongs to another database; returns what the
    catalog recorded (None: nothing yet)."""
    recorded = catalog_source(catalog_root)
    bound = (recorded or {}).get("database")
    if bound and bound.get("id") != (ours := store_identity())["id"]:
        theirs = f"the {bound.get('label', '?')} (store {bound.get('id', '?')[:8]})"
        this = (
            f"a new database at the same place (store {ours['id'][:8]})"
            if bound.get("label") == ours["label"]
            else f"the {ours['label']} (store {ours['id'][:8]})"
        )
        raise CatalogBound(
            f"The catalog {catalog_root} belongs to {theirs}; this store's database is {this}: "
            "give each database its own catalog (DATA_DIR), or move the catalog aside"
        )
    return recorded


def store_source_check(
    *, source: str, account: str, catalog_root: Path, record: bool = True
) -> None:
    """Refuse a fetch (or import) whose bars would mix with the store's (SourceMismatch), or
    whose catalog belongs to another database (CatalogBound); record the catalog's source and
    database the first time it is written to (a catalog from before databases were recorded is
    bound to the first database that writes to it), unless `record` is False (an import checks
    before it knows it will write anything)."""
    held = store_source(kinds=_kinds_apart(source))
    if held is not None:
        raise source_mismatch(held, (source, account), "This database")
    recorded = catalog_binding_check(catalog_root=catalog_root)
    if recorded is None:
        if not record:
            return
        catalog_source_record(
            root=catalog_root, source=source, account=account, database=store_identity()
        )
        return
    if not sources_mix(recorded.get("source", "?"), source):
        raise source_mismatch(
            (recorded.get("source", "?"), recorded.get("account", "")),
            (source, account),
            f"The catalog {catalog_root}",
        )
    if not recorded.get("database") and record:
        catalog_source_record(
            root=catalog_root,
            source=recorded["source"],
            account=recorded.get("account", ""),
            database=store_identity(),
        )
