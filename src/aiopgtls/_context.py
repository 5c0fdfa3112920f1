"""The settings that every context built by this package shares, and the TLS key log.

create_context() is the starting point of each built-in provider and of custom providers
that want libpq's protocol settings without its file rules.
"""

from __future__ import annotations

import logging
import os
import ssl
import warnings

from ._certmode import record_certificate_exchange
from ._params import ConnectParams, SSLCertMode
from .errors import SecurityWarning

__all__ = (
    "create_context",
    "finish_context",
    "key_log_warning",
    "set_key_log",
)

logger = logging.getLogger(__name__)

_TLS_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}

# libpq creates the key log file with O_WRONLY | O_APPEND | O_CREAT and mode 0600.
_KEY_LOG_MODE = 0o600


def create_context(
    params: ConnectParams, context_class: type[ssl.SSLContext] = ssl.SSLContext
) -> ssl.SSLContext:
    """Return a new client context with libpq's protocol settings for ``params``.

    The context trusts no root and has no client certificate, so ``verify_mode`` is
    ``CERT_NONE`` until the caller loads roots and sets ``CERT_REQUIRED``.  Host name checks
    stay off: the connection layer applies libpq's verify-full rules after the handshake.
    """
    context = context_class(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # OpenSSL's default chain building as in libpq: no partial chains and no X509_STRICT
    # checks, which Python 3.13's create_default_context() would add.
    context.verify_flags = ssl.VERIFY_X509_TRUSTED_FIRST
    # libpq 17+ offers ALPN "postgresql" on every handshake; direct-TLS servers require it.
    context.set_alpn_protocols(["postgresql"])
    # Compression exposes secrets through ciphertext lengths (CRIME); libpq turns it off.
    context.options |= ssl.OP_NO_COMPRESSION
    # PostgreSQL servers disable renegotiation, and renegotiation has a history of attacks.
    context.options |= ssl.OP_NO_RENEGOTIATION
    # An unset minimum leaves OpenSSL's own floor, as libpq does, instead of Python's TLS 1.2.
    context.minimum_version = _tls_version(
        params.ssl_min_protocol_version, ssl.TLSVersion.MINIMUM_SUPPORTED
    )
    context.maximum_version = _tls_version(
        params.ssl_max_protocol_version, ssl.TLSVersion.MAXIMUM_SUPPORTED
    )
    return context


def _tls_version(name: str | None, unset: ssl.TLSVersion) -> ssl.TLSVersion:
    # Python emits a DeprecationWarning for TLSv1 and TLSv1.1; it reaches the caller unchanged.
    return unset if name is None else _TLS_VERSIONS[name]


def set_key_log(context: ssl.SSLContext, path: str) -> None:
    """Append the secrets of every handshake made with ``context`` to ``path``.

    The lines are in the NSS key log format that Wireshark reads.  The file is created with
    mode 0600 before OpenSSL opens it, because Python would create it with mode 0666 minus
    the umask.  As in libpq, a file that cannot be opened is logged as a warning and the
    connection goes on without a key log.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _KEY_LOG_MODE)
        os.close(fd)
        context.keylog_filename = path
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        logger.warning(
            'could not open SSL key logging file "%s": %s; the connection continues without '
            "a key log",
            path,
            reason,
        )


def key_log_warning(path: str) -> None:
    """Warn that the TLS secrets of the connection are written to ``path``."""
    warnings.warn(
        SecurityWarning(
            f'sslkeylogfile="{path}": the TLS session keys are written to this file, so anyone '
            "who can read it can decrypt the captured traffic; unset sslkeylogfile outside of "
            "debugging"
        ),
        stacklevel=3,
    )


def finish_context(context: ssl.SSLContext, params: ConnectParams) -> ssl.SSLContext:
    """Apply sslkeylogfile and sslcertmode=require to a context built for ``params``."""
    if params.sslkeylogfile:
        set_key_log(context, params.sslkeylogfile)
    if params.sslcertmode is SSLCertMode.REQUIRE:
        record_certificate_exchange(context)
    return context
