"""Built-in context providers besides libpq's files: system trust, a pinned certificate,
material held in memory, and the explicit opt-out of verification.

Each one builds on create_context(), so its contexts offer ALPN "postgresql" and honour the
TLS version limits, sslcertmode and sslkeylogfile.  Unless a provider is given its own
client key, it loads the client certificate under libpq's rules (sslcert, sslkey and
sslpassword, or the files under ~/.postgresql).
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import warnings
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from cryptography import x509

from ._cache import DEFAULT_MAX_SIZE, CachingProvider
from ._client_files import client_files_state, load_client_files
from ._context import create_context, finish_context
from ._keyload import (
    PasswordCallback,
    PasswordSource,
    decode_key,
    detect_key_format,
    load_identity,
)
from ._libpq_files import (
    load_root_rules,
    resolve_files,
    root_context_class,
    root_rules_state,
)
from ._params import ConnectParams, SSLCertMode
from ._provider import AttemptInfo
from ._trust import (
    load_pinned_certificate,
    load_root_data,
    load_system_roots,
    pinned_certificate_state,
    read_pinned_certificate,
    system_context_class,
    system_trust_state,
    uses_truststore,
)
from .errors import ClientCertificateError, ConfigurationError, NonValidatingWarning

__all__ = (
    "InMemoryProvider",
    "MaterialCallback",
    "NonValidatingProvider",
    "PinnedCertificateProvider",
    "SystemTrustProvider",
    "TLSMaterial",
)

_IN_MEMORY_KEY = "in-memory private key"


def _load_libpq_client(
    context: ssl.SSLContext, params: ConnectParams, passwords: PasswordSource
) -> None:
    files = resolve_files(params)
    load_client_files(context, params, files.cert, files.key, passwords)


def _libpq_client_state(params: ConnectParams) -> Hashable:
    files = resolve_files(params)
    return client_files_state(params, files.cert, files.key)


# --- system trust --------------------------------------------------------------------------


class SystemTrustProvider(CachingProvider):
    """Verifies the server against the operating system's trusted roots.

    This is what ``sslrootcert=system`` does with the default provider, but independent of
    sslrootcert, so the chain is verified in every sslmode.  ``use_truststore`` forces the
    truststore package on (True) or off (False); by default it is used on macOS and Windows
    when installed and SSL_CERT_FILE and SSL_CERT_DIR are unset.
    """

    def __init__(
        self,
        *,
        use_truststore: bool | None = None,
        password_callback: PasswordCallback | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        super().__init__(password_callback=password_callback, max_size=max_size)
        self.use_truststore = use_truststore

    def _cache_key(self, params: ConnectParams, material: Any) -> Hashable:
        return (
            uses_truststore(self.use_truststore),
            system_trust_state(),
            _libpq_client_state(params),
        )

    def _build(
        self, params: ConnectParams, material: Any, passwords: PasswordSource
    ) -> ssl.SSLContext:
        context = create_context(params, system_context_class(self.use_truststore))
        load_system_roots(context)
        _load_libpq_client(context, params, passwords)
        return finish_context(context, params)


# --- one pinned certificate ------------------------------------------------------------------


class PinnedCertificateProvider(CachingProvider):
    """Trusts exactly one certificate: a CA (root or intermediate) or the server's own.

    ``certificate`` is a path object, PEM or DER ``bytes``, or a string in the forms of
    pgjdbc's SingleCertValidatingFactory argument: ``file:PATH``, ``env:VARIABLE`` or the
    PEM text.  The chain is verified in every sslmode and must lead to that certificate;
    verify-full still checks the host name.  A pinned file that is replaced is read again.
    Raises ConfigurationError at once when the certificate cannot be read.
    """

    def __init__(
        self,
        certificate: str | bytes | os.PathLike[str],
        *,
        password_callback: PasswordCallback | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        super().__init__(password_callback=password_callback, max_size=max_size)
        read_pinned_certificate(certificate)
        self.certificate = certificate

    def _cache_key(self, params: ConnectParams, material: Any) -> Hashable:
        return (pinned_certificate_state(self.certificate), _libpq_client_state(params))

    def _build(
        self, params: ConnectParams, material: Any, passwords: PasswordSource
    ) -> ssl.SSLContext:
        context = create_context(params)
        load_pinned_certificate(context, read_pinned_certificate(self.certificate))
        _load_libpq_client(context, params, passwords)
        return finish_context(context, params)


# --- no verification -------------------------------------------------------------------------


class NonValidatingProvider(CachingProvider):
    """Encrypts without verifying the server certificate: an explicit, warned opt-out.

    Every attempt emits NonValidatingWarning.  The connection layer still rejects this
    provider under verify-ca and verify-full, which demand verification.
    """

    async def __call__(self, attempt: AttemptInfo) -> ssl.SSLContext:
        warnings.warn(
            NonValidatingWarning(
                f"NonValidatingProvider: the certificate of {attempt.host} port {attempt.port} "
                "is not verified, so anyone on the network path can impersonate the server; "
                "trust a root certificate (sslrootcert) or use PinnedCertificateProvider"
            ),
            stacklevel=2,
        )
        return await super().__call__(attempt)

    def _cache_key(self, params: ConnectParams, material: Any) -> Hashable:
        return _libpq_client_state(params)

    def _build(
        self, params: ConnectParams, material: Any, passwords: PasswordSource
    ) -> ssl.SSLContext:
        context = create_context(params)
        _load_libpq_client(context, params, passwords)
        return finish_context(context, params)


# --- material held in memory -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TLSMaterial:
    """Root certificates, client certificate and client key held in memory.

    ``root`` is PEM text with one or more certificates, or one DER certificate.
    ``certificate`` is the client certificate, PEM (leaf first, then intermediates) or DER.
    ``key`` is the client key in any format that sslkey accepts: PEM, DER PKCS#8 (encrypted
    or not) or a PKCS#12 archive, which also carries the certificate and chain.
    ``password`` decrypts an encrypted key.  A field left None falls back to libpq's rules
    for that part (sslrootcert, or sslcert and sslkey).
    """

    root: str | bytes | None = None
    certificate: str | bytes | None = None
    key: str | bytes | None = dataclasses.field(default=None, repr=False)
    password: str | bytes | None = dataclasses.field(default=None, repr=False)


MaterialCallback = Callable[[AttemptInfo], Awaitable[TLSMaterial]]


class InMemoryProvider(CachingProvider):
    """Builds contexts from certificates and keys in memory, never from files on disk.

    Pass the material directly (``root``, ``certificate``, ``key``, ``password``), or pass
    ``fetch``, an async callback that returns a TLSMaterial for each TLS attempt (a secret
    manager, rotating credentials).  The fetched material is compared by keyed digest, so
    unchanged material reuses the cached context.  ``password_callback`` is awaited when the
    key is encrypted and no password was given; it receives "in-memory private key".

    NOTE: loading a client key from memory needs Linux's memfd_create; elsewhere the build
    raises ClientCertificateError rather than write the decrypted key to disk.
    """

    def __init__(
        self,
        *,
        root: str | bytes | None = None,
        certificate: str | bytes | None = None,
        key: str | bytes | None = None,
        password: str | bytes | None = None,
        fetch: MaterialCallback | None = None,
        password_callback: PasswordCallback | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        super().__init__(password_callback=password_callback, max_size=max_size)
        material = TLSMaterial(root, certificate, key, password)
        if fetch is not None and material != TLSMaterial():
            raise ConfigurationError(
                "InMemoryProvider takes either fetch or the material (root, certificate, key, "
                "password), not both; return all of it from fetch"
            )
        _check_material(material)
        self._material = material
        self._fetch_material = fetch

    async def _fetch(self, attempt: AttemptInfo) -> TLSMaterial:
        if self._fetch_material is None:
            return self._material
        material = await self._fetch_material(attempt)
        if not isinstance(material, TLSMaterial):
            raise ConfigurationError(
                f"the fetch callback of InMemoryProvider returned {type(material).__name__}; "
                "return an aiopgtls.TLSMaterial"
            )
        _check_material(material)
        return material

    def _cache_key(self, params: ConnectParams, material: TLSMaterial) -> Hashable:
        digests = tuple(
            self.secret_digest(value)
            for value in (material.root, material.certificate, material.key, material.password)
        )
        files = resolve_files(params)
        root_state = root_rules_state(files) if material.root is None else None
        client_state = _libpq_client_state(params) if material.key is None else None
        return (digests, root_state, client_state)

    def _passwords(self, params: ConnectParams, material: TLSMaterial) -> PasswordSource:
        if material.key is None:
            return super()._passwords(params, material)
        return PasswordSource(material.password, self.password_callback, parameter="password")

    def _build(
        self, params: ConnectParams, material: TLSMaterial, passwords: PasswordSource
    ) -> ssl.SSLContext:
        files = resolve_files(params)
        if material.root is None:
            context = create_context(params, root_context_class(files))
            load_root_rules(context, params, files)
        else:
            context = create_context(params)
            load_root_data(context, material.root)

        if material.key is None:
            _load_libpq_client(context, params, passwords)
        elif params.sslcertmode is not SSLCertMode.DISABLE:
            _load_material_identity(context, material, passwords)
        return finish_context(context, params)


def _check_material(material: TLSMaterial) -> None:
    if material.certificate is not None and material.key is None:
        raise ConfigurationError(
            "InMemoryProvider got a client certificate without its key; pass key as well",
            parameter="key",
        )


def _load_material_identity(
    context: ssl.SSLContext, material: TLSMaterial, passwords: PasswordSource
) -> None:
    assert material.key is not None
    data = material.key.encode("utf-8") if isinstance(material.key, str) else material.key
    key_format = detect_key_format(data)
    if key_format is None:
        raise ClientCertificateError(
            f"could not load {_IN_MEMORY_KEY}: the data is not a PEM, DER (PKCS#8, PKCS#1, "
            "SEC1) or PKCS#12 private key"
        )
    identity = decode_key(data, key_format, passwords, label=_IN_MEMORY_KEY)

    if material.certificate is not None:
        certificates = _parse_client_certificates(material.certificate)
        identity = dataclasses.replace(
            identity, certificate=certificates[0], chain=tuple(certificates[1:])
        )
    elif identity.certificate is None:
        raise ClientCertificateError(
            f"the {_IN_MEMORY_KEY} comes without a certificate; pass certificate as well, or "
            "a PKCS#12 archive or PEM data that contains both"
        )
    load_identity(context, identity, label=_IN_MEMORY_KEY)


def _parse_client_certificates(data: str | bytes) -> list[x509.Certificate]:
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    try:
        if b"-----BEGIN CERTIFICATE-----" in raw:
            return x509.load_pem_x509_certificates(raw)
        return [x509.load_der_x509_certificate(raw)]
    except ValueError as exc:
        raise ClientCertificateError(
            "the in-memory client certificate is neither PEM nor DER; pass the PEM text (leaf "
            "first, then intermediates) or one DER certificate"
        ) from exc
