"""The context provider protocol: where each TLS attempt gets its ``ssl.SSLContext``."""

from __future__ import annotations

import dataclasses
import ssl
from typing import Protocol, runtime_checkable

from ._params import ConnectParams, SSLMode


@dataclasses.dataclass(frozen=True)
class AttemptInfo:
    """The description of one TLS attempt, passed to the context provider.

    ``host`` is the name used for SNI and the verify-full check; ``address`` is where the
    socket connects (``hostaddr`` when given).  ``number`` counts attempts from 1.
    """

    host: str
    address: str
    port: int
    sslmode: SSLMode
    number: int
    params: ConnectParams


@runtime_checkable
class ContextProvider(Protocol):
    """An awaitable that returns the ``ssl.SSLContext`` for one TLS attempt.

    The ladder calls it once per TLS attempt and never modifies the returned context.  The
    context decides whether the chain is verified (``verify_mode``); the ladder itself checks
    the host name under verify-full and rejects a context that skips verification when the
    sslmode demands it.  Raise ``ConfigurationError`` or ``ClientCertificateError`` for a
    problem with the configuration; any other exception is reported with the provider's name.
    Custom providers start from ``create_context(attempt.params)``, which applies libpq's
    protocol settings, and do blocking work in a worker thread.
    """

    async def __call__(self, attempt: AttemptInfo) -> ssl.SSLContext: ...


def verifies_chain(context: ssl.SSLContext) -> bool:
    """Tell whether a handshake with ``context`` verifies the server's certificate chain."""
    return context.verify_mode == ssl.CERT_REQUIRED
