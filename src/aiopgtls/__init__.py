"""Establish PostgreSQL connections with libpq 18's sslmode ladder over anyio.

``await aiopgtls.connect("host=db.example.com sslmode=verify-full")`` walks the ladder,
runs the startup protocol and returns a ``Connection`` whose ``stream`` is ready for any
PostgreSQL protocol implementation.
"""

from ._certmode import CertificateExchange, certificate_exchange, record_certificate_exchange
from ._connect import StartupCallable, connect
from ._context import create_context
from ._factory import load_provider
from ._keyload import PasswordCallback
from ._libpq_files import LibpqFileProvider
from ._params import (
    ChannelBinding,
    ConnectParams,
    HostSpec,
    SSLCertMode,
    SSLMode,
    SSLNegotiation,
    TargetSessionAttrs,
)
from ._provider import AttemptInfo, ContextProvider
from ._providers import (
    InMemoryProvider,
    MaterialCallback,
    NonValidatingProvider,
    PinnedCertificateProvider,
    SystemTrustProvider,
    TLSMaterial,
)
from ._resolve import resolve_params, resolve_params_async
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
    TargetSessionAttrsError,
    TCPConnectError,
    TLSHandshakeError,
)

__all__ = (  # noqa: RUF022 - grouped by purpose, not sorted
    # connecting
    "connect",
    "resolve_params",
    "resolve_params_async",
    "ConnectParams",
    "HostSpec",
    "SSLMode",
    "SSLNegotiation",
    "SSLCertMode",
    "ChannelBinding",
    "TargetSessionAttrs",
    # context providers
    "AttemptInfo",
    "ContextProvider",
    "create_context",
    "load_provider",
    "LibpqFileProvider",
    "SystemTrustProvider",
    "PinnedCertificateProvider",
    "InMemoryProvider",
    "TLSMaterial",
    "MaterialCallback",
    "NonValidatingProvider",
    "PasswordCallback",
    "record_certificate_exchange",
    "certificate_exchange",
    "CertificateExchange",
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
