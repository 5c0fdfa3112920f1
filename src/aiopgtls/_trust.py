"""Trust sources other than a root certificate file: the system's roots, one pinned
certificate, and root certificates held in memory.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import sys
from collections.abc import Hashable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ._cache import file_state
from .errors import ConfigurationError

__all__ = (
    "PinnedCertificate",
    "load_pinned_certificate",
    "load_root_data",
    "load_system_roots",
    "pinned_certificate_state",
    "read_pinned_certificate",
    "system_context_class",
    "system_trust_state",
    "uses_truststore",
)

_CERT_ENVIRONMENT = ("SSL_CERT_FILE", "SSL_CERT_DIR")
_PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"


# --- the system's roots ----------------------------------------------------------------------


def uses_truststore(use_truststore: bool | None = None) -> bool:
    """Decide whether system trust goes through the truststore package.

    ``None`` chooses: OpenSSL's default paths when SSL_CERT_FILE or SSL_CERT_DIR is set,
    because libpq's ``sslrootcert=system`` honours them; otherwise truststore on macOS and
    Windows when it is installed, because OpenSSL there often has no usable default roots.
    On Linux and other Unix systems OpenSSL's default paths are the system's roots.
    """
    if use_truststore is not None:
        return use_truststore
    if any(os.environ.get(name) for name in _CERT_ENVIRONMENT):
        return False
    # NOTE: the truststore path is tested on Linux only, where truststore also reads
    # OpenSSL's default paths; its macOS and Windows verifiers have not run in this suite.
    if sys.platform not in ("darwin", "win32"):
        return False
    try:
        import truststore  # noqa: F401
    except ImportError:
        return False
    return True


def system_context_class(use_truststore: bool | None = None) -> type[ssl.SSLContext]:
    """Return the context class for system trust: truststore's or Python's own."""
    if not uses_truststore(use_truststore):
        return ssl.SSLContext
    try:
        import truststore
    except ImportError as exc:
        raise ConfigurationError(
            "system trust through truststore was requested, but the truststore package is not "
            "installed; install it with: pip install truststore"
        ) from exc
    context_class: type[ssl.SSLContext] = truststore.SSLContext
    return context_class


def load_system_roots(context: ssl.SSLContext) -> None:
    """Make ``context`` verify the server against the system's trusted roots.

    A truststore context has the operating system verify the chain after each handshake.
    Any other context loads OpenSSL's default paths, which honour SSL_CERT_FILE and
    SSL_CERT_DIR, like libpq's ``SSL_CTX_set_default_verify_paths()``.  On Windows Python
    adds the system store's roots.
    """
    if not _is_truststore(context):
        try:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"could not load system root certificate paths: {exc}; check SSL_CERT_FILE and "
                "SSL_CERT_DIR, or pass sslrootcert with a root certificate file",
                parameter="sslrootcert",
                value="system",
            ) from exc
    context.verify_mode = ssl.CERT_REQUIRED


def _is_truststore(context: ssl.SSLContext) -> bool:
    return type(context).__module__.split(".")[0] == "truststore"


def system_trust_state() -> Hashable:
    """Return what identifies the current system roots, so a changed bundle is noticed."""
    paths = ssl.get_default_verify_paths()
    return (
        tuple(os.environ.get(name) for name in _CERT_ENVIRONMENT),
        file_state(paths.cafile),
        file_state(paths.capath),
    )


# --- one pinned certificate ------------------------------------------------------------------


class PinnedCertificate:
    """The one certificate a pinned provider trusts, and where it was read from.

    ``path`` is set for a certificate read from a file, so that replacing the file is noticed.
    """

    def __init__(self, certificate: x509.Certificate, source: str, path: str | None) -> None:
        self.certificate = certificate
        self.source = source
        self.path = path


def pinned_certificate_state(spec: str | bytes | os.PathLike[str]) -> Hashable:
    """Return what identifies the current content of ``spec`` without parsing it."""
    if isinstance(spec, os.PathLike):
        return ("file", file_state(os.fspath(spec)))
    if isinstance(spec, bytes):
        return ("data",)
    text = spec.strip()
    if text.startswith("file:"):
        return ("file", file_state(text[len("file:") :]))
    if text.startswith("env:"):
        value = os.environ.get(text[len("env:") :], "")
        return ("env", hashlib.sha256(value.encode("utf-8", "replace")).digest())
    return ("text",)


def read_pinned_certificate(spec: str | bytes | os.PathLike[str]) -> PinnedCertificate:
    """Read the certificate to pin from a file, an environment variable or PEM/DER data.

    A ``str`` takes pgjdbc's ``sslfactoryarg`` forms: ``file:PATH``, ``env:NAME`` (the
    variable contains PEM text) or the PEM text itself.  A path object names a file, and
    ``bytes`` are PEM or DER data.  Raises ConfigurationError unless exactly one
    certificate is found.
    """
    if isinstance(spec, os.PathLike):
        path = os.fspath(spec)
        return _from_data(_read_file(path), f'certificate file "{path}"', path)
    if isinstance(spec, bytes):
        return _from_data(spec, "certificate data", None)

    text = spec.strip()
    if text.startswith("file:"):
        path = text[len("file:") :]
        return _from_data(_read_file(path), f'certificate file "{path}"', path)
    if text.startswith("env:"):
        return _from_data(_read_environment(text[len("env:") :]), f"variable {text[4:]}", None)
    if text.startswith(_PEM_CERTIFICATE):
        return _from_data(text.encode("ascii", "replace"), "PEM text", None)

    if not text:
        problem = "the pinned certificate is empty"
    else:
        problem = f'the pinned certificate "{text[:40]}" has no known form'
    raise ConfigurationError(
        f"{problem}; pass file:PATH, env:VARIABLE or the PEM text starting with {_PEM_CERTIFICATE}",
        parameter="sslfactoryarg",
        value=text[:40],
    )


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ConfigurationError(
            f'could not read pinned certificate file "{path}": {exc.strerror or exc}; check the '
            "path after file:",
            parameter="sslfactoryarg",
            value=path,
        ) from exc


def _read_environment(name: str) -> bytes:
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(
            f"environment variable {name} is not set or empty; set it to the PEM text of the "
            "certificate to pin",
            parameter="sslfactoryarg",
            value=f"env:{name}",
        )
    return value.encode("ascii", "replace")


def _from_data(data: bytes, source: str, path: str | None) -> PinnedCertificate:
    certificates = _parse_certificates(data)
    if len(certificates) != 1:
        found = "no certificate" if not certificates else f"{len(certificates)} certificates"
        raise ConfigurationError(
            f"{source} contains {found}, but a pinned provider trusts exactly one; pass one PEM or "
            "DER certificate (a CA or the server's own), or use sslrootcert for a bundle",
            parameter="sslfactoryarg",
            value=path,
        )
    return PinnedCertificate(certificates[0], source, path)


def _parse_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        if _PEM_CERTIFICATE.encode() in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        return []


def load_pinned_certificate(context: ssl.SSLContext, pinned: PinnedCertificate) -> None:
    """Make ``pinned`` the only trust anchor of ``context``.

    X509_V_FLAG_PARTIAL_CHAIN lets OpenSSL end the chain at the pinned certificate wherever
    it sits: the root, an intermediate, or the server's own certificate (which then has to
    be that exact certificate).  The chain is still checked for validity dates and
    signatures up to that point.
    """
    der = pinned.certificate.public_bytes(serialization.Encoding.DER)
    context.load_verify_locations(cadata=der)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.verify_mode = ssl.CERT_REQUIRED


# --- roots held in memory --------------------------------------------------------------------


def load_root_data(context: ssl.SSLContext, data: str | bytes) -> None:
    """Trust the root certificates in ``data``: PEM text with one or more, or one DER.

    Raises ConfigurationError when ``data`` contains no certificate.
    """
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    certificates = _parse_certificates(raw)
    if not certificates:
        raise ConfigurationError(
            "the in-memory root certificate data contains no certificate; pass PEM text with one "
            "or more certificates, or one DER certificate",
            parameter="root",
        )
    der = b"".join(cert.public_bytes(serialization.Encoding.DER) for cert in certificates)
    context.load_verify_locations(cadata=der)
    context.verify_mode = ssl.CERT_REQUIRED
