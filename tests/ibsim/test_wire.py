"""TWS socket framing (ibsim.wire): length-prefixed NUL-terminated fields, and version ranges."""

from __future__ import annotations

import asyncio
import struct

import pytest

from ibsim.wire import (
    MAX_FRAME,
    ProtocolError,
    encode,
    field,
    frame,
    parse_version_range,
    read_frame,
)


def read_all(data: bytes) -> list[list[str]]:
    """Every frame in `data`, read as the server reads them (then end of file)."""

    async def read() -> list[list[str]]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        frames = []
        while True:
            try:
                frames.append(await read_frame(reader))
            except asyncio.IncompleteReadError:
                return frames

    return asyncio.run(read())


def test_values_are_written_as_the_protocol_writes_them():
    assert [field(v) for v in (None, True, False, 0, 1.5, "AAPL")] == [
        "",
        "1",
        "0",
        "0",
        "1.5",
        "AAPL",
    ]


def test_a_frame_is_its_length_then_nul_terminated_fields():
    assert encode(17, None, True, "x") == struct.pack(">I", 8) + b"17\0\0" + b"1\0x\0"
    assert frame(["9", "1", "1"]) == encode(9, 1, 1)


def test_frames_read_back_as_written():
    data = encode(4, 2, -1, 2104, "farm OK") + frame(["71", "2", "0", ""]) + encode("é")
    assert read_all(data) == [["4", "2", "-1", "2104", "farm OK"], ["71", "2", "0", ""], ["é"]]
    assert read_all(encode(1)[:-1]) == []  # a frame cut short is the end of the stream


def test_bytes_that_are_not_utf8_do_not_break_the_reader():
    body = b"49\0\xff\0"
    assert read_all(struct.pack(">I", len(body)) + body) == [["49", "\\xff"]]


def test_a_frame_larger_than_the_limit_is_refused():
    with pytest.raises(ProtocolError, match="larger than"):
        read_all(struct.pack(">I", MAX_FRAME + 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v157..176", (157, 176)),
        ("v100..200 +PACEAPI", (100, 200)),
        ("v163", (163, 163)),
        ("157..176", None),
        ("v0..5", None),
        ("v176..157", None),
        ("vA..B", None),
        ("", None),
    ],
)
def test_version_ranges(text, expected):
    assert parse_version_range(text) == expected
