"""libpq's rules for the client certificate and key files, extended to every key format.

As in libpq, a client certificate is used when its file exists, and then the key file must
exist and pass the permission check.  A PEM key is loaded by OpenSSL from its file, as libpq
does.  A DER key (PKCS#8, PKCS#1 or SEC1, encrypted PKCS#8 too) and a PKCS#12 archive are
decoded with cryptography and loaded through memory.  A PKCS#12 archive carries its own
certificate and chain, so it works as sslkey without any sslcert file.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable, Hashable
from dataclasses import replace

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ._cache import file_state
from ._keyfile import check_key_permissions
from ._keyload import (
    ClientIdentity,
    KeyFormat,
    PasswordSource,
    decode_key,
    detect_key_format,
    is_encrypted_pem,
    load_identity,
)
from ._params import ConnectParams, SSLCertMode
from .errors import ClientCertificateError

__all__ = ("client_files_state", "load_client_files", "reason")

logger = logging.getLogger(__name__)

# OpenSSL hands the pass phrase callback a 1024-byte buffer (PEM_BUFSIZE) and libpq copies at
# most 1023 bytes into it, so a longer sslpassword is cut there.
_MAX_PASSWORD_BYTES = 1023


def client_files_state(params: ConnectParams, cert: str | None, key: str | None) -> Hashable:
    """Return what identifies the client files' current content, for cache keys."""
    if params.sslcertmode is SSLCertMode.DISABLE:
        return None
    return (cert, key, file_state(cert), file_state(key))


def load_client_files(
    context: ssl.SSLContext,
    params: ConnectParams,
    cert: str | None,
    key: str | None,
    passwords: PasswordSource,
) -> None:
    """Load the client certificate and key into ``context`` under libpq's rules.

    ``cert`` and ``key`` are the paths after libpq's defaults; None means no path applies.
    Nothing is loaded under sslcertmode=disable.  Raises ClientCertificateError naming the
    file at fault.
    """
    if params.sslcertmode is SSLCertMode.DISABLE:
        return
    if cert is None or not _client_certificate_exists(cert):
        if params.sslkey is not None:
            _load_archive_alone(context, params.sslkey, passwords)
        return
    if key is None:
        raise ClientCertificateError(
            f'certificate file "{cert}" is present, but no private key file was found because '
            "the home directory is unknown; pass sslkey",
            path=cert,
        )

    key_data = _read_key_file(key)
    key_format = detect_key_format(key_data)
    if key_format is None or key_format is KeyFormat.PEM:
        _load_pem_files(context, cert, key, key_data, passwords)
    else:
        _load_decoded(context, cert, key, key_data, key_format, passwords)


def _load_archive_alone(context: ssl.SSLContext, key: str, passwords: PasswordSource) -> None:
    """Load an explicit sslkey that is a PKCS#12 archive; ignore any other key, as libpq does."""
    try:
        with open(key, "rb") as file:
            peeked = file.read()
    except (OSError, ValueError):
        return
    if detect_key_format(peeked) is KeyFormat.PKCS12:
        key_data = _read_key_file(key)
        _load_decoded(context, None, key, key_data, KeyFormat.PKCS12, passwords)


def _client_certificate_exists(cert: str) -> bool:
    try:
        os.stat(cert)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise ClientCertificateError(
            f'could not open certificate file "{cert}": {reason(exc)}; fix the file or point '
            "sslcert at another one",
            path=cert,
        ) from exc
    return True


def _read_key_file(key: str) -> bytes:
    """Check the key file as libpq does, then return its contents."""
    try:
        st = os.stat(key)
    except FileNotFoundError as exc:
        raise ClientCertificateError(
            f'certificate present, but not private key file "{key}"; put the key there or '
            "point sslkey at it",
            path=key,
        ) from exc
    except OSError as exc:
        raise ClientCertificateError(
            f'could not stat private key file "{key}": {reason(exc)}', path=key
        ) from exc

    check_key_permissions(key, st)
    try:
        with open(key, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ClientCertificateError(
            f'could not read private key file "{key}": {reason(exc)}', path=key
        ) from exc


# --- keys in other formats -----------------------------------------------------------------


def _load_decoded(
    context: ssl.SSLContext,
    cert: str | None,
    key: str,
    key_data: bytes,
    key_format: KeyFormat,
    passwords: PasswordSource,
) -> None:
    label = _key_label(key)
    identity = decode_key(key_data, key_format, passwords, label=label, path=key)
    if identity.certificate is None:
        if cert is None:
            raise ClientCertificateError(
                f'PKCS#12 file "{key}" contains no certificate; export it again with the '
                "certificate, or pass the certificate file as sslcert",
                path=key,
            )
        identity = _with_certificate_file(identity, cert)
    elif cert is not None:
        logger.debug('using the certificate in PKCS#12 file "%s" instead of "%s"', key, cert)
    load_identity(context, identity, label=label, path=key)


def _with_certificate_file(identity: ClientIdentity, cert: str) -> ClientIdentity:
    problem = _certificate_problem(cert)
    if problem is not None:
        raise ClientCertificateError(
            f'could not read certificate file "{cert}": {problem}', path=cert
        )
    with open(cert, "rb") as file:
        certificates = x509.load_pem_x509_certificates(file.read())
    return replace(identity, certificate=certificates[0], chain=tuple(certificates[1:]))


def _key_label(key: str) -> str:
    return f'private key file "{key}"'


# --- PEM keys, loaded by OpenSSL -------------------------------------------------------------


def _load_pem_files(
    context: ssl.SSLContext, cert: str, key: str, key_data: bytes, passwords: PasswordSource
) -> None:
    if is_encrypted_pem(key_data):
        passwords.require(_key_label(key), key)
    try:
        context.load_cert_chain(cert, key, password=_password_callback(key, passwords))
    except (OSError, ssl.SSLError) as exc:
        raise _load_failure(exc, cert, key, key_data, passwords) from exc


def _password_callback(key: str, passwords: PasswordSource) -> Callable[[], bytes]:
    """Return the pass phrase callback, which keeps OpenSSL from prompting on a terminal."""

    def supply_password() -> bytes:
        return passwords.require(_key_label(key), key)[:_MAX_PASSWORD_BYTES]

    return supply_password


def _load_failure(
    exc: OSError, cert: str, key: str, key_data: bytes, passwords: PasswordSource
) -> ClientCertificateError:
    """Explain why OpenSSL could not load the certificate and key.

    Python reports most failures as "PEM lib", so the files are examined again with
    cryptography to find the cause.
    """
    if isinstance(exc, ssl.SSLError) and exc.reason == "KEY_VALUES_MISMATCH":
        return ClientCertificateError(
            f'certificate does not match private key file "{key}"; the certificate in '
            f'"{cert}" was issued for another key, so pass the matching sslcert and sslkey',
            path=key,
        )

    certificate_problem = _certificate_problem(cert)
    if certificate_problem is not None:
        return ClientCertificateError(
            f'could not read certificate file "{cert}": {certificate_problem}', path=cert
        )

    key_problem = _key_problem(key, key_data, passwords)
    if key_problem is not None:
        return key_problem
    return ClientCertificateError(
        f'could not load certificate file "{cert}" with private key file "{key}": {reason(exc)}',
        path=key,
    )


def _certificate_problem(cert: str) -> str | None:
    try:
        with open(cert, "rb") as file:
            data = file.read()
    except OSError as exc:
        return reason(exc)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        if detect_key_format(data) is KeyFormat.PKCS12:
            return "the file is a PKCS#12 archive; pass it as sslkey, which needs no sslcert"
        return "the file contains no valid PEM certificate"
    return None


def _key_problem(
    key: str, key_data: bytes, passwords: PasswordSource
) -> ClientCertificateError | None:
    encrypted = is_encrypted_pem(key_data)
    password = passwords.get(key) if encrypted else None
    secret = password[:_MAX_PASSWORD_BYTES] if password else None
    try:
        serialization.load_pem_private_key(key_data, secret)
    except TypeError:
        # cryptography found encryption that the PEM header test missed.
        return ClientCertificateError(passwords.missing_message(_key_label(key)), path=key)
    except ValueError:
        # A wrong pass phrase occasionally yields valid padding and then garbled DER, which
        # cryptography reports as a format error, so any failure here means a wrong one.
        if secret is not None:
            return ClientCertificateError(passwords.wrong_message(_key_label(key)), path=key)
        return ClientCertificateError(
            f'could not load private key file "{key}": {_key_format_problem(key_data)}',
            path=key,
        )
    except UnsupportedAlgorithm:
        return ClientCertificateError(
            f'could not load private key file "{key}": unsupported key algorithm; use an RSA, '
            "ECDSA or Ed25519 key",
            path=key,
        )
    return None


def _key_format_problem(key_data: bytes) -> str:
    if b"-----BEGIN OPENSSH PRIVATE KEY-----" in key_data:
        return (
            "it is an OpenSSH private key, which TLS libraries do not read; convert it to "
            "PKCS#8 with: ssh-keygen -p -m PKCS8 -f KEY"
        )
    if b"-----BEGIN" not in key_data:
        return (
            "the file is not a PEM, DER (PKCS#8, PKCS#1, SEC1) or PKCS#12 private key; check "
            "that sslkey names the key file"
        )
    return "the PEM data is not a valid private key of a supported type"


def reason(exc: BaseException) -> str:
    """Return a short description of an OpenSSL or operating system error."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
