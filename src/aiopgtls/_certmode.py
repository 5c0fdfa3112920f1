"""sslcertmode=require: whether the server requested a client certificate and one was sent.

Python's ssl module has no public API for either fact.  CPython's private
``SSLContext._msg_callback`` hook (Python 3.8 and later) sees every handshake message after
decryption, in TLS 1.2 and TLS 1.3 alike.  A server that wants a client certificate sends
CertificateRequest (handshake type 13), and a client that sends a non-empty certificate
also signs the handshake with CertificateVerify (type 15).  The hook is installed only on
contexts built for sslcertmode=require, because CPython then calls it for every TLS record
of the connection, application data included.
"""

from __future__ import annotations

import dataclasses
import ssl
import threading
import weakref
from typing import Any

from .errors import AuthenticationError, ConfigurationError

__all__ = (
    "CertificateExchange",
    "certificate_exchange",
    "check_certificate_mode",
    "client_certificate_requested",
    "record_certificate_exchange",
    "records_certificate_exchange",
)

# TLS content type and handshake message types (RFC 8446, section 4 and appendix B.3).
_HANDSHAKE = 22
_CERTIFICATE_REQUEST = 13
_CERTIFICATE_VERIFY = 15


@dataclasses.dataclass
class CertificateExchange:
    """What one TLS connection's handshake showed about the client certificate."""

    requested: bool = False
    sent: bool = False


_exchanges: weakref.WeakKeyDictionary[Any, CertificateExchange] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _record(
    connection: Any, direction: str, version: Any, content_type: int, message_type: int, data: Any
) -> None:
    # Called by OpenSSL through CPython for every message, so a non-handshake one returns early.
    if content_type != _HANDSHAKE:
        return
    with _lock:
        exchange = _exchanges.get(connection)
        if exchange is None:
            exchange = _exchanges[connection] = CertificateExchange()
    if direction == "read" and message_type == _CERTIFICATE_REQUEST:
        exchange.requested = True
    elif direction == "write" and message_type == _CERTIFICATE_VERIFY:
        exchange.sent = True


def _openssl_context(context: ssl.SSLContext) -> ssl.SSLContext:
    # truststore.SSLContext handshakes with the ssl.SSLContext it keeps in ``_ctx``.
    inner = getattr(context, "_ctx", None)
    return inner if isinstance(inner, ssl.SSLContext) else context


def record_certificate_exchange(context: ssl.SSLContext) -> None:
    """Make ``context`` record the client certificate exchange of each of its handshakes.

    Custom providers call this on their own context to support sslcertmode=require.  Raises
    ConfigurationError where the Python implementation lacks the hook.
    """
    target = _openssl_context(context)
    if not hasattr(target, "_msg_callback"):
        raise ConfigurationError(
            'sslcertmode value "require" is not supported by this Python implementation, '
            "which lacks ssl.SSLContext._msg_callback; use sslcertmode=allow",
            parameter="sslcertmode",
            value="require",
        )
    target._msg_callback = _record


def records_certificate_exchange(context: ssl.SSLContext) -> bool:
    """Tell whether handshakes made with ``context`` are recorded."""
    return getattr(_openssl_context(context), "_msg_callback", None) is _record


def certificate_exchange(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> CertificateExchange | None:
    """Return what the handshake of ``ssl_object`` showed, or None if it was not recorded."""
    with _lock:
        exchange = _exchanges.get(ssl_object)
    return dataclasses.replace(exchange) if exchange is not None else None


def client_certificate_requested(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> bool | None:
    """Tell whether the server sent CertificateRequest; None if the handshake was not recorded."""
    exchange = certificate_exchange(ssl_object)
    return exchange.requested if exchange is not None else None


def check_certificate_mode(
    sslcertmode: str, ssl_object: ssl.SSLObject | ssl.SSLSocket | None
) -> None:
    """Apply libpq's sslcertmode=require check to a connection that authenticated.

    libpq makes it when AuthenticationOk arrives.  ``ssl_object`` is None for an unencrypted
    connection, which cannot have sent a certificate.  Raises AuthenticationError with
    libpq's message and a fix, or ConfigurationError if the handshake was not recorded.
    """
    if str(sslcertmode) != "require":
        return

    exchange = CertificateExchange() if ssl_object is None else certificate_exchange(ssl_object)
    if exchange is None:
        raise ConfigurationError(
            "sslcertmode=require cannot be checked because the context of this connection did "
            "not record its handshake; use a built-in context provider, or call "
            "aiopgtls.record_certificate_exchange(context) in your provider",
            parameter="sslcertmode",
            value="require",
        )
    if not exchange.requested:
        raise AuthenticationError(
            "server did not request an SSL certificate, but sslcertmode=require demands that "
            "the client authenticates with one; configure ssl_ca_file and clientcert or cert "
            "authentication on the server, or use sslcertmode=allow"
        )
    if not exchange.sent:
        raise AuthenticationError(
            "server accepted connection without a valid SSL certificate, but "
            "sslcertmode=require demands one; pass sslcert and sslkey (or a PKCS-12 file as "
            "sslkey), or use sslcertmode=allow"
        )
