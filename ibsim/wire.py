"""TWS socket framing: 4-byte big-endian length, then NUL-terminated text fields."""

from __future__ import annotations

import asyncio
import struct

_LEN = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024  # a larger length prefix means a broken or hostile peer
API_PREFIX = b"API\0"


class ProtocolError(Exception):
    """The peer sent bytes that are not the TWS protocol."""


def field(value: object) -> str:
    """One value as the TWS protocol writes it: bools as 0/1, None as empty."""
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    return str(value)


def frame(fields: list[str] | tuple[str, ...]) -> bytes:
    """Frame already-stringified fields (the fast path for large messages)."""
    body = ("\0".join(fields) + "\0").encode()
    return _LEN.pack(len(body)) + body


def encode(*values: object) -> bytes:
    """Frame one message made of the given values."""
    return frame([field(v) for v in values])


async def read_frame(reader: asyncio.StreamReader) -> list[str]:
    """Read one framed message and split it into fields (raises IncompleteReadError at EOF)."""
    header = await reader.readexactly(4)
    (size,) = _LEN.unpack(header)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes is larger than {MAX_FRAME}")
    body = await reader.readexactly(size)
    fields = body.decode(errors="backslashreplace").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


def parse_version_range(text: str) -> tuple[int, int] | None:
    """'v157..176 +PACEAPI' -> (157, 176); None when it is not a version range."""
    spec = text.split(" ", 1)[0]
    if not spec.startswith("v"):
        return None
    lo, sep, hi = spec[1:].partition("..")
    try:
        low = int(lo)
        high = int(hi) if sep else low
    except ValueError:
        return None
    if low <= 0 or high < low:
        return None
    return low, high
