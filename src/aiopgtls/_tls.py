"""The TLS handshake over an anyio stream, and the checks libpq makes after it."""

from __future__ import annotations

import dataclasses
import ssl

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute, TLSStream
from cryptography import x509

from ._hostname import check_peer_name
from ._negotiation import ALPN_PROTOCOL
from ._params import ConnectParams, SSLMode
from ._provider import verifies_chain
from ._result import Verification
from .errors import CertificateVerifyError, TLSHandshakeError


@dataclasses.dataclass(frozen=True)
class TLSFacts:
    """Facts established by the finished handshake."""

    verified: Verification
    version: str | None
    cipher: str | None
    alpn_protocol: str | None
    peer_certificate_der: bytes | None
    peer_certificate: x509.Certificate | None


def sni_name(params: ConnectParams) -> str | None:
    """Return the Server Name Indication to send, following libpq's rule.

    libpq sends none when ``sslsni`` is off. It also sends none for a host made only of
    digits and dots or containing ':', because that is an IP literal. ``hostaddr`` never
    becomes the SNI.
    """
    host = params.host
    if not params.sslsni or not host or host.startswith("/"):
        return None
    if all(char in "0123456789." for char in host) or ":" in host:
        return None
    return host


async def start_tls(
    stream: anyio.abc.ByteStream,
    context: ssl.SSLContext,
    params: ConnectParams,
    *,
    direct: bool = False,
) -> tuple[TLSStream, TLSFacts]:
    """Run the client handshake on ``stream`` and apply libpq's post-handshake checks.

    With ``direct`` (no SSLRequest before the handshake) the server must select ALPN
    ``postgresql``, as libpq 17+ requires.

    Raises TLSHandshakeError (or its CertificateVerifyError and HostnameMismatchError
    subclasses).  The caller closes ``stream`` on failure.
    """
    try:
        tls_stream = await TLSStream.wrap(
            stream,
            server_side=False,
            hostname=sni_name(params),
            ssl_context=context,
            # PostgreSQL servers often close without a TLS close_notify alert.
            standard_compatible=False,
        )
    except ssl.SSLCertVerificationError as exc:
        raise _verify_error(exc, params) from exc
    except ssl.SSLError as exc:
        raise TLSHandshakeError(_ssl_error_text(exc, params)) from exc
    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError) as exc:
        hint = "check the server log and its ssl settings"
        if direct:
            hint = (
                "direct TLS needs PostgreSQL 17 or newer with ssl=on; for an older server use "
                "sslnegotiation=postgres"
            )
        raise TLSHandshakeError(
            "server closed the connection during the TLS handshake (SSL SYSCALL error: EOF "
            f"detected); {hint}"
        ) from exc

    try:
        facts = _collect_facts(tls_stream, context, params)
        if direct:
            _check_alpn(facts.alpn_protocol)
    except TLSHandshakeError:
        await anyio.aclose_forcefully(tls_stream)
        raise
    return tls_stream, facts


def _check_alpn(selected: str | None) -> None:
    if selected is None:
        raise TLSHandshakeError(
            "direct SSL connection was established without ALPN protocol negotiation "
            'extension; the server must select ALPN "postgresql" (PostgreSQL 17 or newer), '
            "or use sslnegotiation=postgres"
        )
    if selected != ALPN_PROTOCOL:
        raise TLSHandshakeError(
            f'SSL connection was established with unexpected ALPN protocol "{selected}" '
            f'(expected "{ALPN_PROTOCOL}"); check that the port belongs to a PostgreSQL server '
            "and not to a proxy for another protocol"
        )


def _collect_facts(
    tls_stream: TLSStream, context: ssl.SSLContext, params: ConnectParams
) -> TLSFacts:
    ssl_object = tls_stream.extra(TLSAttribute.ssl_object)
    der = ssl_object.getpeercert(binary_form=True)
    certificate = x509.load_der_x509_certificate(der) if der else None

    verified = Verification.CHAIN if verifies_chain(context) else Verification.NONE
    if params.sslmode is SSLMode.VERIFY_FULL:
        if certificate is None:
            raise CertificateVerifyError("server did not send a certificate")
        check_peer_name(certificate, params.host)
        verified = Verification.CHAIN_AND_NAME

    cipher = ssl_object.cipher()
    return TLSFacts(
        verified=verified,
        version=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        alpn_protocol=ssl_object.selected_alpn_protocol(),
        peer_certificate_der=der,
        peer_certificate=certificate,
    )


# OpenSSL verification codes whose fix is about the CRL rather than the root file.
_CRL_HINTS = {
    3: "no CRL was found for one CA of the chain; with sslcrl or sslcrldir every CA level "
    "needs a CRL, so add the missing one",
    8: "the CRL's signature is invalid; get the CRL from the CA that issued the certificate",
    11: "the CRL is not valid yet; check the clocks, or get a current CRL",
    12: "the CRL has expired; get a current CRL from the CA",
    23: "the server certificate has been revoked; the server needs a new certificate",
}
_DATE_HINTS = {
    9: "the server certificate is not valid yet; check the clocks of both machines",
    10: "the server certificate has expired; the server needs a new certificate",
}


def _verify_error(exc: ssl.SSLCertVerificationError, params: ConnectParams) -> TLSHandshakeError:
    reason = exc.verify_message or exc.reason or "certificate verify failed"
    code = exc.verify_code
    hint = _CRL_HINTS.get(code) or _DATE_HINTS.get(code)
    if hint is None:
        hint = _trust_hint(params)
    return CertificateVerifyError(f"server certificate verification failed: {reason}; {hint}")


def _trust_hint(params: ConnectParams) -> str:
    if params.sslrootcert == "system":
        return (
            "the system's trusted roots (SSL_CERT_FILE, SSL_CERT_DIR or the operating system "
            "store) must contain the CA that issued the server certificate"
        )
    root = params.sslrootcert or "~/.postgresql/root.crt"
    return (
        f'the root certificate file "{root}" must contain the CA that issued the server '
        "certificate (and any intermediate CA the server does not send)"
    )


def _ssl_error_text(exc: ssl.SSLError, params: ConnectParams) -> str:
    reason = exc.reason or str(exc)
    text = f"SSL error: {reason}"
    if "NO_APPLICATION_PROTOCOL" in reason.upper():
        return text + (
            '; the server accepts no ALPN protocol this client offers ("postgresql"); a TLS '
            "proxy in front of PostgreSQL may need ALPN postgresql allowed"
        )
    if "VERSION" in reason.upper():
        low = params.ssl_min_protocol_version or "any"
        high = params.ssl_max_protocol_version or "any"
        text += (
            f"; the server may not support any TLS protocol version between {low} and {high}, "
            "adjust ssl_min_protocol_version or ssl_max_protocol_version"
        )
    return text
