"""The SSLRequest exchange, without I/O: the request bytes and what a reply means."""

from __future__ import annotations

import struct

from ._ladder import Event
from .errors import ConnectError, ConnectionClosedError, NegotiationError

# Length 8, then the request code 1234.5679 (NEGOTIATE_SSL_CODE in pqcomm.h).
SSL_REQUEST_CODE = (1234 << 16) | 5679
SSL_REQUEST = struct.pack("!ii", 8, SSL_REQUEST_CODE)

ALPN_PROTOCOL = "postgresql"


def classify_ssl_reply(data: bytes) -> tuple[Event, bytes, ConnectError | None]:
    """Interpret the first bytes the server sent after an SSLRequest.

    Returns the ladder event, the bytes that followed the reply byte (kept for the plaintext
    protocol after 'N') and the error to report, if the reply ends the attempt.  An empty
    ``data`` means the server closed the connection.
    """
    if not data:
        return (
            Event.CONNECTION_LOST,
            b"",
            ConnectionClosedError(
                "server closed the connection while answering the SSLRequest; check the server log"
            ),
        )

    reply, rest = data[:1], data[1:]
    if reply == b"S":
        if rest:
            # Bytes that arrive with the 'S' were sent before the handshake, so they are not
            # protected by TLS.  libpq fails here too (CVE-2021-23222).
            return (
                Event.REPLY_INVALID,
                b"",
                NegotiationError(
                    f"received unencrypted data after SSL response ({len(rest)} bytes before the "
                    "TLS handshake); the server or something between it and the client injected "
                    "data, so the connection was closed"
                ),
            )
        return Event.REPLY_S, b"", None

    if reply == b"N":
        return (
            Event.REPLY_N,
            rest,
            NegotiationError(
                "server does not support SSL, but SSL was required; enable ssl on the server or "
                "use an sslmode that allows plaintext (prefer or allow)"
            ),
        )

    if reply == b"E":
        # The text of an ErrorResponse sent before TLS is not trustworthy and is not shown
        # (CVE-2024-10977); libpq 18 reports it the same way.
        return (
            Event.REPLY_E,
            b"",
            NegotiationError(
                "server sent an error response during SSL exchange; its text is not shown because "
                "it arrived unauthenticated; check the server log"
            ),
        )

    shown = reply.decode("ascii") if 0x21 <= reply[0] <= 0x7E else f"byte 0x{reply[0]:02x}"
    return (
        Event.REPLY_INVALID,
        b"",
        NegotiationError(
            f"received invalid response to SSL negotiation: {shown} (expected S or N); "
            "the port may not belong to a PostgreSQL server"
        ),
    )
