"""A scripted stand-in for a PostgreSQL server, for misbehaviour a real server never shows.

Real servers never answer an SSLRequest with garbage, push bytes after 'S' or stall forever,
so those cases are played by this script on 127.0.0.1.  Everything a real server can do is
tested against real servers instead.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

Handler = Callable[[anyio.abc.SocketStream, BufferedByteReceiveStream], Awaitable[None]]


def message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


def ready_session() -> bytes:
    """Return AuthenticationOk, one ParameterStatus, BackendKeyData and ReadyForQuery."""
    return (
        message(b"R", struct.pack("!i", 0))
        + message(b"S", b"server_version\x0099.0 (fake)\x00")
        + message(b"K", struct.pack("!i", 4242) + b"\x01\x02\x03\x04")
        + message(b"Z", b"I")
    )


async def read_startup(reader: BufferedByteReceiveStream) -> bytes:
    (length,) = struct.unpack("!i", await reader.receive_exactly(4))
    return await reader.receive_exactly(length - 4)


class FakeServer:
    """Accepts connections on 127.0.0.1 and runs ``handler`` for each one."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.port = 0

    async def _serve(self, stream: anyio.abc.SocketStream) -> None:
        self.connections += 1
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            # The client may give up early, which is what several tests expect.
            with contextlib.suppress(
                anyio.EndOfStream, anyio.BrokenResourceError, anyio.IncompleteRead
            ):
                await self.handler(stream, reader)


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[FakeServer]:
    server = FakeServer(handler)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, server._serve)
        try:
            yield server
        finally:
            group.cancel_scope.cancel()
    await listener.aclose()
