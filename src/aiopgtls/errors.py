"""Exceptions and warnings raised by aiopgtls.

Errors are grouped by the phase that failed (configuration, TCP, negotiation, TLS handshake,
certificate verification, server rejection, authentication) so that callers can catch the
phase they care about.  Every connection error carries the host, port and sslmode of the
attempt that failed, and the record of every attempt made before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._result import Attempt

__all__ = (
    "AiopgtlsError",
    "AuthenticationError",
    "CertificateVerifyError",
    "ChannelBindingUnavailable",
    "ClientCertificateError",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "HostnameMismatchError",
    "InsecureFallbackWarning",
    "NegotiationError",
    "NonValidatingWarning",
    "ProtocolViolationError",
    "SecurityWarning",
    "ServerRejectedError",
    "TCPConnectError",
    "TLSHandshakeError",
    "TargetSessionAttrsError",
)


class AiopgtlsError(Exception):
    """Base class of every exception this package raises."""


class ConfigurationError(AiopgtlsError, ValueError):
    """Raised when a connection parameter is invalid, before any socket is opened.

    ``parameter`` and ``value`` name the offending setting; ``value`` is ``None`` for secrets.
    """

    def __init__(self, message: str, *, parameter: str | None = None, value: str | None = None):
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.value = value
        # Filled in when the mistake surfaced while preparing a TLS attempt, after earlier
        # attempts (allow's plaintext try, another host) had already run.
        self.attempts: Sequence[Attempt] = ()


class ConnectError(AiopgtlsError):
    """Base class of errors raised while establishing a connection.

    The attempt context (``host``, ``port``, ``sslmode``, ``attempt``) is filled in by the
    connection layer once the error crosses it; ``attempts`` then lists every attempt made,
    in order, including the one that raised this error.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.host: str | None = None
        self.port: int | None = None
        self.sslmode: str | None = None
        self.attempt: Attempt | None = None
        self.attempts: Sequence[Attempt] = ()

    def _set_context(self, *, host: str, port: int, sslmode: str, attempt: Attempt) -> None:
        self.host = host
        self.port = port
        self.sslmode = sslmode
        self.attempt = attempt

    def __str__(self) -> str:
        if self.host is None:
            return self.message
        where = f'connection to server at "{self.host}", port {self.port} failed'
        failed = [a for a in self.attempts if a.error is not None]
        if len(failed) <= 1:
            return f"{where} (sslmode={self.sslmode}): {self.message}"
        # Every failed attempt, in the order they ran, as libpq lists them.
        lines = [f"{where} (sslmode={self.sslmode}) after {len(failed)} failed attempts:"]
        lines.extend(f"  {a.describe()}" for a in failed)
        return "\n".join(lines)


class TCPConnectError(ConnectError):
    """Raised when the TCP (or Unix-domain socket) connection could not be opened."""


class ConnectTimeoutError(ConnectError, TimeoutError):
    """Raised when ``connect_timeout`` expired before the connection was ready."""


class ConnectionClosedError(ConnectError):
    """Raised when the server closed the connection without sending an error."""


class NegotiationError(ConnectError):
    """Raised when the server's reply to SSLRequest cannot be used.

    Covers an ErrorResponse reply, an unknown reply byte, plaintext bytes after the 'S' reply
    (CVE-2021-23222) and a refusal ('N') when TLS is required.
    """


class ProtocolViolationError(ConnectError):
    """Raised when the server sent a message that breaks the PostgreSQL protocol."""


class TLSHandshakeError(ConnectError):
    """Raised when the TLS handshake failed or could not be started."""


class CertificateVerifyError(TLSHandshakeError):
    """Raised when the server certificate chain failed verification."""


class HostnameMismatchError(CertificateVerifyError):
    """Raised under verify-full when the server certificate does not name the host."""


class ClientCertificateError(TLSHandshakeError):
    """Raised when the client certificate or its key cannot be used.

    ``path`` names the file at fault.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ServerRejectedError(ConnectError):
    """Raised when the server replied to the startup with an ErrorResponse.

    ``fields`` holds every field of the ErrorResponse keyed by its one-letter code;
    ``sqlstate`` is field ``C``; ``after_auth`` tells whether AuthenticationOk had been received,
    which makes the rejection final (no encryption retry).
    """

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        fields: Mapping[str, str] | None = None,
        after_auth: bool = False,
    ) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.fields: Mapping[str, str] = dict(fields or {})
        self.after_auth = after_auth


class TargetSessionAttrsError(ConnectError):
    """Raised when a server does not fit ``target_session_attrs`` (read-only, standby...)."""


class AuthenticationError(ConnectError):
    """Raised when the client itself gave up authenticating.

    Examples are a missing password, a channel binding requirement the server cannot meet or
    a SCRAM server signature that does not verify.  Such failures are never retried.
    """


class ChannelBindingUnavailable(AuthenticationError):
    """Raised when no tls-server-end-point data can be computed for the server certificate.

    ``algorithm`` names the certificate's signature algorithm (for example ``Ed25519``), or
    is None when the certificate could not be parsed.
    """

    def __init__(self, message: str, *, algorithm: str | None = None) -> None:
        super().__init__(message)
        self.algorithm = algorithm


class SecurityWarning(UserWarning):
    """Base class of warnings about a connection that is less protected than it could be."""


class InsecureFallbackWarning(SecurityWarning):
    """Emitted when the ladder settled on plaintext after a TLS attempt failed."""


class NonValidatingWarning(SecurityWarning):
    """Emitted when a context provider that skips certificate verification is used."""
