"""The records a connection hands back: each attempt, and the finished connection."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import anyio
import anyio.abc

if TYPE_CHECKING:
    from cryptography import x509

    from ._params import ConnectParams
    from .errors import AiopgtlsError


_TERMINATE = b"X\x00\x00\x00\x04"


class Method(str, enum.Enum):
    """The protection method of one attempt."""

    PLAINTEXT = "plaintext"
    SSL = "ssl"  # SSLRequest, then a TLS handshake on the same socket
    DIRECT_SSL = "direct-ssl"  # a TLS handshake right away (sslnegotiation=direct, PG 17+)

    @property
    def uses_tls(self) -> bool:
        return self is not Method.PLAINTEXT

    def __str__(self) -> str:
        return self.value


class Verification(str, enum.Enum):
    """The checks the server certificate passed."""

    NONE = "none"
    CHAIN = "chain"
    CHAIN_AND_NAME = "chain-and-name"

    def __str__(self) -> str:
        return self.value


class Outcome(str, enum.Enum):
    """The end state of one attempt."""

    CONNECTED = "connected"
    FAILED = "failed"
    SERVER_REFUSED_TLS = "server-refused-tls"  # 'N' reply; the socket goes on in plaintext

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass
class Attempt:
    """One try on one address with one method.

    ``number`` counts from 1 across the whole connect() call; ``duration`` is in seconds.
    """

    number: int
    host: str
    address: str
    port: int
    method: Method
    outcome: Outcome | None = None
    error: AiopgtlsError | None = None
    duration: float = 0.0

    @property
    def error_text(self) -> str | None:
        """The error's message without the attempt context, or None."""
        if self.error is None:
            return None
        message = getattr(self.error, "message", None)
        return message if isinstance(message, str) else str(self.error)

    def describe(self) -> str:
        """Return one line: which attempt, how it was made and how it ended."""
        text = f"attempt {self.number} ({self.method}) to {self.address} port {self.port}: "
        if self.error is not None:
            return text + f"{type(self.error).__name__}: {self.error_text}"
        return text + str(self.outcome or "in progress")


@dataclasses.dataclass(frozen=True)
class BackendKeyData:
    """The process id and secret key the server sends for cancel requests."""

    process_id: int
    secret_key: bytes = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class StartupResult:
    """The session state a startup callable received from the server."""

    server_parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)
    backend_key: BackendKeyData | None = None
    notices: Sequence[Mapping[str, str]] = ()
    # How the client authenticated: "trust", "password", "md5", "SCRAM-SHA-256" or
    # "SCRAM-SHA-256-PLUS"; None when a custom startup did not report it.
    authentication: str | None = None
    # Why SCRAM ran without channel binding over TLS, when it did.
    channel_binding_skipped: str | None = None
    # Bytes the startup read past ReadyForQuery; the connection's stream returns them first.
    unread: bytes = dataclasses.field(default=b"", repr=False)


@dataclasses.dataclass
class Connection:
    """An established connection: the byte stream and what is known about it.

    Closing the connection closes the socket.  ``stream`` is ready for the frontend protocol:
    after the built-in startup it sits right after ReadyForQuery.
    """

    stream: anyio.abc.ByteStream
    params: ConnectParams
    encrypted: bool
    verified: Verification
    tls_version: str | None
    cipher: str | None
    alpn_protocol: str | None
    peer_certificate: x509.Certificate | None
    server_parameters: Mapping[str, str]
    backend_key: BackendKeyData | None
    attempts: Sequence[Attempt]
    notices: Sequence[Mapping[str, str]] = ()
    authentication: str | None = None
    channel_binding_skipped: str | None = None

    async def aclose(self) -> None:
        """Send Terminate when the startup ran, then close the socket."""
        with anyio.CancelScope(shield=True):
            if self.server_parameters:
                # If the server is gone already, closing is all that is left to do.
                with contextlib.suppress(
                    anyio.BrokenResourceError, anyio.ClosedResourceError, OSError
                ):
                    await self.stream.send(_TERMINATE)
            await anyio.aclose_forcefully(self.stream)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
