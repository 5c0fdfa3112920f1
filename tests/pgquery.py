"""A minimal simple-query client for tests, to read the server's view of a connection."""

from __future__ import annotations

import struct

import anyio.abc


async def query_one_row(stream: anyio.abc.ByteStream, sql: str) -> list[str | None]:
    """Run ``sql`` with the simple query protocol and return the first row as text."""
    payload = sql.encode() + b"\x00"
    await stream.send(b"Q" + struct.pack("!i", len(payload) + 4) + payload)
    buffer = b""
    rows: list[list[str | None]] = []
    while True:
        while len(buffer) < 5 or len(buffer) < 1 + struct.unpack("!i", buffer[1:5])[0]:
            buffer += await stream.receive()
        kind = buffer[:1]
        length = struct.unpack("!i", buffer[1:5])[0]
        body, buffer = buffer[5 : 1 + length], buffer[1 + length :]
        if kind == b"D":
            rows.append(_data_row(body))
        elif kind == b"E":
            raise AssertionError(f"query {sql!r} failed: {body!r}")
        elif kind == b"Z":
            return rows[0]


def _data_row(body: bytes) -> list[str | None]:
    (count,) = struct.unpack("!h", body[:2])
    offset = 2
    values: list[str | None] = []
    for _ in range(count):
        (size,) = struct.unpack("!i", body[offset : offset + 4])
        offset += 4
        if size < 0:
            values.append(None)
            continue
        values.append(body[offset : offset + size].decode())
        offset += size
    return values


async def server_sees_ssl(stream: anyio.abc.ByteStream) -> bool:
    """Return pg_stat_ssl.ssl for the backend serving ``stream``."""
    row = await query_one_row(stream, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    return row[0] == "t"
