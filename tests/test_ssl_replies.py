"""How the ladder treats each possible reply to SSLRequest.

These replies come from a scripted server because a real PostgreSQL server never sends
them: an ErrorResponse instead of 'S'/'N' (old or broken servers), bytes after 'S'
(CVE-2021-23222 injection), a bare EOF, or an unknown byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import aiopgtls
from aiopgtls._negotiation import SSL_REQUEST

from .fakeserver import Handler, message, read_startup, ready_session, serve

pytestmark = pytest.mark.anyio


def reply_with(data: bytes) -> Handler:
    async def handler(stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream) -> None:
        assert await reader.receive_exactly(8) == SSL_REQUEST
        if data:
            await stream.send(data)
        await anyio.sleep(0.2)  # give the client time to react before the socket closes

    return handler


ERROR_REPLY = message(b"E", b"SFATAL\x00C08P01\x00Mserver-side secret text\x00\x00")


@pytest.mark.parametrize("sslmode", ["prefer", "require"])
async def test_error_reply_is_fatal_and_hidden(sslmode: str, tmp_path: Any) -> None:
    async with serve(reply_with(ERROR_REPLY)) as server:
        with pytest.raises(aiopgtls.NegotiationError) as caught:
            await aiopgtls.connect(
                host="127.0.0.1",
                port=server.port,
                sslmode=sslmode,
                user="u",
                dbname="d",
                sslrootcert=str(tmp_path / "absent.crt"),
            )
    assert "error response during SSL exchange" in str(caught.value)
    assert "server-side secret text" not in str(caught.value)
    assert server.connections == 1


async def test_allow_never_sends_sslrequest_first() -> None:
    """Under allow the first packet is the StartupMessage, not an SSLRequest."""
    seen: list[bytes] = []

    async def handler(stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream) -> None:
        seen.append(await read_startup(reader))
        await stream.send(ready_session())
        await anyio.sleep(0.2)

    async with serve(handler) as server:
        connection = await aiopgtls.connect(
            host="127.0.0.1", port=server.port, sslmode="allow", user="u", dbname="d"
        )
        await connection.aclose()
    assert seen[0][:4] == b"\x00\x03\x00\x00"  # protocol 3.0 StartupMessage
    assert not connection.encrypted


async def test_bytes_after_s_are_rejected(tmp_path: Any) -> None:
    async with serve(reply_with(b"S" + b"\x16\x03\x01injected")) as server:
        with pytest.raises(aiopgtls.NegotiationError, match="unencrypted data after SSL response"):
            await aiopgtls.connect(
                host="127.0.0.1",
                port=server.port,
                sslmode="prefer",
                user="u",
                dbname="d",
                sslrootcert=str(tmp_path / "absent.crt"),
            )
    assert server.connections == 1


async def test_eof_instead_of_reply_does_not_fall_back(tmp_path: Any) -> None:
    async with serve(reply_with(b"")) as server:
        with pytest.raises(aiopgtls.ConnectionClosedError, match="closed the connection") as caught:
            await aiopgtls.connect(
                host="127.0.0.1",
                port=server.port,
                sslmode="prefer",
                user="u",
                dbname="d",
                sslrootcert=str(tmp_path / "absent.crt"),
            )
    assert server.connections == 1
    assert len(caught.value.attempts) == 1


async def test_unknown_reply_byte_is_named(tmp_path: Any) -> None:
    async with serve(reply_with(b"X")) as server:
        with pytest.raises(
            aiopgtls.NegotiationError, match="invalid response to SSL negotiation: X"
        ):
            await aiopgtls.connect(
                host="127.0.0.1",
                port=server.port,
                sslmode="prefer",
                user="u",
                dbname="d",
                sslrootcert=str(tmp_path / "absent.crt"),
            )
    assert server.connections == 1


def refuse_then_serve_plaintext() -> Handler:
    async def handler(stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream) -> None:
        assert await reader.receive_exactly(8) == SSL_REQUEST
        await stream.send(b"N")
        await read_startup(reader)
        await stream.send(ready_session())
        await anyio.sleep(0.2)

    return handler


async def test_n_reply_under_prefer_continues_on_same_socket(tmp_path: Any) -> None:
    events: list[tuple[str, Mapping[str, Any]]] = []
    async with serve(refuse_then_serve_plaintext()) as server:
        connection = await aiopgtls.connect(
            host="127.0.0.1",
            port=server.port,
            sslmode="prefer",
            user="u",
            dbname="d",
            sslrootcert=str(tmp_path / "absent.crt"),
            trace=lambda name, info: events.append((name, info)),
        )
        await connection.aclose()
    assert server.connections == 1
    assert not connection.encrypted
    assert connection.server_parameters["server_version"] == "99.0 (fake)"
    assert [str(a.outcome) for a in connection.attempts] == ["server-refused-tls", "connected"]
    fallback = [info for name, info in events if name == "fallback"]
    assert fallback == [
        {
            "from_method": "ssl",
            "to_method": "plaintext",
            "reason": "reply-n",
            "new_connection": False,
        }
    ]


async def test_n_reply_under_require_fails(tmp_path: Any) -> None:
    async with serve(refuse_then_serve_plaintext()) as server:
        with pytest.raises(
            aiopgtls.NegotiationError, match="server does not support SSL"
        ) as caught:
            await aiopgtls.connect(
                host="127.0.0.1",
                port=server.port,
                sslmode="require",
                user="u",
                dbname="d",
                sslrootcert=str(tmp_path / "absent.crt"),
            )
    error = caught.value
    assert error.host == "127.0.0.1"
    assert error.port == server.port
    assert error.sslmode == "require"
    assert error.attempt is not None
    assert error.attempt.number == 1
    assert server.connections == 1


async def test_trace_sequence_for_refused_tls(tmp_path: Any) -> None:
    names: list[str] = []
    async with serve(refuse_then_serve_plaintext()) as server:
        connection = await aiopgtls.connect(
            host="127.0.0.1",
            port=server.port,
            sslmode="prefer",
            user="u",
            dbname="d",
            sslrootcert=str(tmp_path / "absent.crt"),
            trace=lambda name, info: names.append(name),
        )
        await connection.aclose()
    assert names == [
        "connect.started",
        "address.resolved",
        "attempt.started",
        "context.ready",
        "tcp.connected",
        "sslrequest.sent",
        "sslrequest.answered",
        "fallback",
        "attempt.started",
        "startup.started",
        "startup.complete",
        "connect.complete",
    ]


async def test_bytes_after_ready_reach_the_stream() -> None:
    """A server that pushes data right after ReadyForQuery is scripted: real ones wait."""

    async def eager(stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream) -> None:
        await read_startup(reader)
        await stream.send(ready_session() + message(b"N", b"SNOTICE\x00Mearly\x00\x00"))
        await anyio.sleep(0.2)

    async with serve(eager) as server:
        connection = await aiopgtls.connect(
            host="127.0.0.1", port=server.port, sslmode="disable", user="u", dbname="d"
        )
        async with connection:
            first = await connection.stream.receive()
    assert first.startswith(b"N")
    assert b"early" in first
