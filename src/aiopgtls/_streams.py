"""Stream helpers for the anyio layer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import anyio.abc


class PrefixedStream(anyio.abc.ByteStream):
    """A byte stream that first returns bytes already read from the wrapped stream.

    Used after an 'N' reply to SSLRequest: bytes that arrived with the reply belong to the
    plaintext protocol that follows on the same socket.
    """

    def __init__(self, stream: anyio.abc.ByteStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            return data
        return await self._stream.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self._stream.send(item)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._stream.extra_attributes
