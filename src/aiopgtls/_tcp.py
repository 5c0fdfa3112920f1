"""Opening the TCP socket to one numeric address."""

from __future__ import annotations

import errno
import os
import socket

import anyio
import anyio.abc


async def open_tcp(address: str, port: int) -> anyio.abc.SocketStream:
    """Connect to the numeric ``address`` and wrap the socket as an anyio stream.

    The ladder resolves names itself and tries one address at a time, so anyio's
    connect_tcp() with its happy-eyeballs task group is not needed. Skipping it halved the
    client's share of the connect time on loopback (0.5 ms to 0.25 ms in one measurement).
    Raises OSError when the connection fails.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        # The startup packets are small; Nagle's algorithm would hold them back.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await _connect(sock, address, port)
        return await anyio.abc.SocketStream.from_socket(sock)
    except BaseException:
        sock.close()
        raise


async def _connect(sock: socket.socket, address: str, port: int) -> None:
    try:
        sock.connect((address, port))
        return
    except BlockingIOError:
        pass

    await anyio.wait_writable(sock)
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code != 0:
        raise OSError(code, os.strerror(code) or errno.errorcode.get(code, str(code)))
