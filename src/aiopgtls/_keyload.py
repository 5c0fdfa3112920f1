"""Client keys in every format, their pass phrases, and loading them without touching the disk.

``ssl.SSLContext.load_cert_chain()`` reads PEM files only.  A key in another format (DER
PKCS#8, encrypted or not, or a PKCS#12 archive), or one held in memory, is decoded with
cryptography and handed to OpenSSL through an anonymous in-memory file (Linux
``memfd_create``), opened by its ``/proc/self/fd`` path and closed right after loading.
Where no such file exists, loading fails instead of writing the decrypted key to disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import ssl
from collections.abc import Awaitable, Callable, Iterator

import anyio.from_thread
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from ._der import children, element_content, read_header
from .errors import ClientCertificateError

__all__ = (
    "ClientIdentity",
    "KeyFormat",
    "PasswordCallback",
    "PasswordSource",
    "decode_key",
    "detect_key_format",
    "is_encrypted_pem",
    "load_identity",
    "memory_file",
    "memory_files_supported",
)

PasswordCallback = Callable[[str], Awaitable[str | bytes | None]]

_ENCRYPTED_PEM_MARKERS = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")
_OPENSSH_MARKER = b"-----BEGIN OPENSSH PRIVATE KEY-----"

_SEQUENCE = 0x30
_INTEGER = 0x02
_OCTET_STRING = 0x04
_OID = 0x06
# PKCS#12's authSafe is a PKCS#7 ContentInfo: its type lies under 1.2.840.113549.1.7.
_PKCS7_OID_PREFIX = bytes.fromhex("2a864886f70d0107")


class KeyFormat(enum.Enum):
    """The encoding of a client key, detected from its content."""

    PEM = "PEM"
    DER = "DER"  # PKCS#8 PrivateKeyInfo, PKCS#1 RSAPrivateKey or SEC1 ECPrivateKey
    ENCRYPTED_DER = "encrypted DER PKCS#8"
    PKCS12 = "PKCS#12"

    def __str__(self) -> str:
        return self.value


def detect_key_format(data: bytes) -> KeyFormat | None:
    """Detect the format of the key in ``data`` from its content; None if no format matches."""
    if b"-----BEGIN" in data:
        return KeyFormat.PEM
    try:
        identifier, _, end = read_header(data, 0)
        if identifier != _SEQUENCE or end != len(data):
            return None
        parts = children(element_content(data, 0, _SEQUENCE))
    except (IndexError, ValueError):
        return None
    if len(parts) < 2:
        return None

    first, second = parts[0], parts[1]
    if first[0] == _SEQUENCE and second[0] == _OCTET_STRING:
        return KeyFormat.ENCRYPTED_DER
    if first[0] != _INTEGER:
        return None
    if first[1] == b"\x03" and second[0] == _SEQUENCE and _is_content_info(second[1]):
        return KeyFormat.PKCS12
    return KeyFormat.DER


def _is_content_info(content: bytes) -> bool:
    try:
        parts = children(content)
    except (IndexError, ValueError):
        return False
    return bool(parts) and parts[0][0] == _OID and parts[0][1].startswith(_PKCS7_OID_PREFIX)


def is_encrypted_pem(data: bytes) -> bool:
    """Tell whether PEM ``data`` contains an encrypted key (PKCS#8 or the DEK-Info form)."""
    return any(marker in data for marker in _ENCRYPTED_PEM_MARKERS)


# --- pass phrases ------------------------------------------------------------------------------


class PasswordSource:
    """The pass phrase of encrypted client keys: a fixed value, else an async callback.

    ``parameter`` names the fixed value in messages (``sslpassword`` or ``password``).  The
    callback receives a description of the key, such as its file name, and is called only
    for a key that is encrypted, at most once per key and build.  It runs on the event loop
    while the context is built in a worker thread.
    """

    def __init__(
        self,
        password: str | bytes | None,
        callback: PasswordCallback | None = None,
        *,
        parameter: str = "sslpassword",
    ) -> None:
        self._password = password.encode("utf-8") if isinstance(password, str) else password
        self._callback = callback
        self._answers: dict[str, bytes | None] = {}
        self.parameter = parameter

    @property
    def origin(self) -> str:
        """Where the pass phrase comes from, for messages."""
        if self._password is None and self._callback is not None:
            return "pass phrase from the password callback"
        return self.parameter

    def get(self, key: str) -> bytes | None:
        """Return the pass phrase for ``key``, or None when none is configured."""
        if self._password is not None:
            return self._password
        if self._callback is None:
            return None
        if key not in self._answers:
            self._answers[key] = self._ask(key)
        return self._answers[key]

    def require(self, label: str, path: str | None) -> bytes:
        """Return the pass phrase of the key at ``path`` (or described by ``label``).

        Raises ClientCertificateError naming the key when no pass phrase is configured.
        """
        password = self.get(path or label)
        if password is None:
            raise ClientCertificateError(self.missing_message(label), path=path)
        return password

    def missing_message(self, label: str) -> str:
        return (
            f"{label} is encrypted; pass its pass phrase with {self.parameter} or the "
            "provider's password_callback"
        )

    def wrong_message(self, label: str) -> str:
        return f"could not decrypt {label}: wrong {self.origin} (bad decrypt)"

    def _ask(self, key: str) -> bytes | None:
        callback = self._callback
        assert callback is not None
        try:
            answer = anyio.from_thread.run(_await_password, callback, key)
        except RuntimeError as exc:
            if "worker thread" not in str(exc):
                raise
            raise ClientCertificateError(
                f"the password callback for {key} is async, so the context must be built "
                "through the provider's async __call__, not get_context()",
                path=None,
            ) from exc
        if answer is None or isinstance(answer, bytes):
            return answer
        if isinstance(answer, str):
            return answer.encode("utf-8")
        raise ClientCertificateError(
            f"the password callback returned {type(answer).__name__} for {key}; return str, "
            "bytes or None",
        )


async def _await_password(callback: PasswordCallback, key: str) -> str | bytes | None:
    return await callback(key)


# --- decoding ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClientIdentity:
    """A decoded private key with the certificate and chain that go with it, if known."""

    key: PrivateKeyTypes
    certificate: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()


def decode_key(
    data: bytes,
    key_format: KeyFormat,
    passwords: PasswordSource,
    *,
    label: str,
    path: str | None = None,
) -> ClientIdentity:
    """Decode the client key in ``data``; ask ``passwords`` only if it is encrypted.

    ``label`` describes the key in messages (``private key file "..."``).  ``path`` is the
    key's file, if any: the password callback receives it (else ``label``), and it becomes
    the ``path`` of a ClientCertificateError.
    PEM data may also contain the certificate, and a PKCS#12 archive contains it with its chain.
    """
    try:
        if key_format is KeyFormat.PKCS12:
            return _decode_pkcs12(data, passwords, label=label, path=path)
        if key_format is KeyFormat.PEM:
            return _decode_pem(data, passwords, label=label, path=path)
        password = None
        if key_format is KeyFormat.ENCRYPTED_DER:
            password = passwords.require(label, path)
        return ClientIdentity(_load_der(data, password, passwords, label=label, path=path))
    except UnsupportedAlgorithm as exc:
        raise ClientCertificateError(
            f"could not load {label}: unsupported key algorithm ({exc}); use an RSA, ECDSA or "
            "Ed25519 key",
            path=path,
        ) from exc


def _load_der(
    data: bytes, password: bytes | None, passwords: PasswordSource, *, label: str, path: str | None
) -> PrivateKeyTypes:
    try:
        return serialization.load_der_private_key(data, password)
    except ValueError as exc:
        if password is not None:
            raise ClientCertificateError(passwords.wrong_message(label), path=path) from exc
        raise ClientCertificateError(
            f"could not load {label}: the DER data is not a valid PKCS#8, PKCS#1 or SEC1 "
            "private key",
            path=path,
        ) from exc


def _decode_pem(
    data: bytes, passwords: PasswordSource, *, label: str, path: str | None
) -> ClientIdentity:
    if _OPENSSH_MARKER in data:
        raise ClientCertificateError(
            f"could not load {label}: it is an OpenSSH private key, which TLS libraries do not "
            "read; convert it to PKCS#8 with: ssh-keygen -p -m PKCS8 -f KEY",
            path=path,
        )
    password = passwords.require(label, path) if is_encrypted_pem(data) else None
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError as exc:
        # cryptography found encryption that the PEM header test missed.
        raise ClientCertificateError(passwords.missing_message(label), path=path) from exc
    except ValueError as exc:
        if password is not None:
            raise ClientCertificateError(passwords.wrong_message(label), path=path) from exc
        raise ClientCertificateError(
            f"could not load {label}: the PEM data contains no valid private key of a "
            "supported type",
            path=path,
        ) from exc

    certificates = _pem_certificates(data)
    return ClientIdentity(
        key,
        certificates[0] if certificates else None,
        tuple(certificates[1:]),
    )


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return []


def _decode_pkcs12(
    data: bytes, passwords: PasswordSource, *, label: str, path: str | None
) -> ClientIdentity:
    """Open a PKCS#12 archive, first without a password as it may need none.

    NOTE: an archive with several keys yields the first one, as cryptography loads it; the
    alias (pgjdbc requires "user") is not checked.
    """
    try:
        loaded = pkcs12.load_key_and_certificates(data, None)
    except ValueError:
        password = passwords.require(label, path)
        try:
            loaded = pkcs12.load_key_and_certificates(data, password)
        except ValueError as exc:
            raise ClientCertificateError(
                f"could not open {label} (PKCS#12): wrong {passwords.origin} (bad decrypt), or "
                "the file is damaged",
                path=path,
            ) from exc

    key, certificate, chain = loaded
    if key is None:
        raise ClientCertificateError(
            f"{label} is a PKCS#12 archive without a private key; export it again with the "
            "key, its certificate and the intermediate certificates",
            path=path,
        )
    return ClientIdentity(key, certificate, tuple(chain))


def matches(certificate: x509.Certificate, key: PrivateKeyTypes) -> bool:
    """Tell whether ``certificate`` was issued for ``key``."""
    encoding = serialization.Encoding.DER
    public_format = serialization.PublicFormat.SubjectPublicKeyInfo
    return certificate.public_key().public_bytes(encoding, public_format) == (
        key.public_key().public_bytes(encoding, public_format)
    )


# --- loading through memory ----------------------------------------------------------------


def memory_files_supported() -> bool:
    """Tell whether keys can be handed to OpenSSL through an in-memory file here."""
    return hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


@contextlib.contextmanager
def memory_file(data: bytes, name: str = "aiopgtls-client-key") -> Iterator[str]:
    """Write ``data`` to an anonymous in-memory file and yield a path that opens it.

    The file lives in RAM (it may be swapped out like any process memory), has no name in
    any directory and disappears when the descriptor is closed on leaving the block.
    """
    if not memory_files_supported():
        raise ClientCertificateError(
            "this system has no in-memory files (os.memfd_create and /proc/self/fd, Linux), "
            "so this key cannot be loaded without writing it to disk; store the key as a PEM "
            "file, encrypted or not, and point sslkey at it"
        )
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def load_identity(
    context: ssl.SSLContext, identity: ClientIdentity, *, label: str, path: str | None = None
) -> None:
    """Load ``identity`` (which must have a certificate) into ``context`` through memory.

    Raises ClientCertificateError when the certificate is not the key's.
    """
    certificate = identity.certificate
    assert certificate is not None
    if not matches(certificate, identity.key):
        raise ClientCertificateError(
            f"certificate does not match {label}; the certificate was issued for another key, "
            "so pass the matching certificate and key",
            path=path,
        )

    pem = serialization.Encoding.PEM
    blocks = [certificate.public_bytes(pem)]
    blocks.extend(extra.public_bytes(pem) for extra in identity.chain)
    blocks.append(
        identity.key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with memory_file(b"".join(blocks)) as memory_path:
        context.load_cert_chain(memory_path)
