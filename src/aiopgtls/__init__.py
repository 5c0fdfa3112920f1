"""Establish PostgreSQL connections with libpq 18's sslmode ladder over anyio.

``await aiopgtls.connect("host=db.example.com sslmode=verify-full")`` walks the ladder,
runs the startup protocol and returns a ``Connection`` whose ``stream`` is ready for any
PostgreSQL protocol implementation.
"""

from ._connect import StartupCallable, connect, resolve_params
from ._libpq_files import LibpqFileProvider
from ._params import ChannelBinding, ConnectParams, SSLMode
from ._provider import AttemptInfo, ContextProvider
from ._result import (
    Attempt,
    BackendKeyData,
    Connection,
    Method,
    Outcome,
    StartupResult,
    Verification,
)
from ._startup import StartupRequest, run_startup
from .errors import (
    AiopgtlsError,
    AuthenticationError,
    CertificateVerifyError,
    ChannelBindingUnavailable,
    ClientCertificateError,
    ConfigurationError,
    ConnectError,
    ConnectionClosedError,
    ConnectTimeoutError,
    HostnameMismatchError,
    InsecureFallbackWarning,
    NegotiationError,
    NonValidatingWarning,
    ProtocolViolationError,
    SecurityWarning,
    ServerRejectedError,
    TCPConnectError,
    TargetSessionAttrsError,
    TLSHandshakeError,
)

__all__ = (  # noqa: RUF022 - grouped by purpose, not sorted
    # connecting
    "connect",
    "resolve_params",
    "ConnectParams",
    "SSLMode",
    "ChannelBinding",
    # context providers
    "AttemptInfo",
    "ContextProvider",
    "LibpqFileProvider",
    # startup
    "StartupCallable",
    "StartupRequest",
    "StartupResult",
    "run_startup",
    # results
    "Attempt",
    "BackendKeyData",
    "Connection",
    "Method",
    "Outcome",
    "Verification",
    # errors and warnings
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

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("aiopgtls._"):
        # Show the public path in reprs and tracebacks rather than the private module.
        _obj.__module__ = "aiopgtls"
del _name, _obj
