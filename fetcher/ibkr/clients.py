"""The IB client library a Gateway speaks through (IBKR_CLIENT): ib_insync, or ib_async, its
maintained fork with the same API. The one module that imports either."""

from __future__ import annotations

from dataclasses import dataclass

from fetcher.exceptions import InvalidInput

from .types import CLIENT_LIBRARIES


@dataclass(frozen=True)
class ClientLibrary:
    """What the Gateway uses of a client library, by the names both give it."""

    name: str
    IB: type
    Contract: type
    BarDataList: type
    RequestError: type[Exception]


def client_library(name: str) -> ClientLibrary:
    """The library named, imported on first use: a process loads only the one it speaks."""
    if name == "ib_insync":
        import ib_insync as library
    elif name == "ib_async":
        import ib_async as library
    else:
        raise InvalidInput(f"IBKR_CLIENT={name!r} is not one of {', '.join(CLIENT_LIBRARIES)}")
    return ClientLibrary(
        name=name,
        IB=library.IB,
        Contract=library.Contract,
        BarDataList=library.BarDataList,
        RequestError=library.RequestError,
    )
