"""Unit tests of client key decoding: format detection, pass phrases and in-memory loading."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import anyio.lowlevel
import anyio.to_thread
import pytest
from cryptography.hazmat.primitives import serialization

from aiopgtls._keyload import (
    KeyFormat,
    PasswordSource,
    decode_key,
    detect_key_format,
    is_encrypted_pem,
    load_identity,
    memory_file,
)
from aiopgtls.errors import ClientCertificateError

from .clientkeys import (
    ALGORITHMS,
    FORMATS,
    PASSWORD,
    ClientCredential,
    ClientPKI,
    applies,
    encrypted,
    make_pki,
)

EXPECTED_FORMAT = {
    "pem-pkcs8": KeyFormat.PEM,
    "pem-traditional": KeyFormat.PEM,
    "pem-pkcs8-encrypted": KeyFormat.PEM,
    "pem-traditional-encrypted": KeyFormat.PEM,
    "der-pkcs8": KeyFormat.DER,
    "der-traditional": KeyFormat.DER,
    "der-pkcs8-encrypted": KeyFormat.ENCRYPTED_DER,
    "pkcs12": KeyFormat.PKCS12,
    "pkcs12-legacy": KeyFormat.PKCS12,
    "pkcs12-plain": KeyFormat.PKCS12,
}

CASES = [
    (algorithm, key_format)
    for algorithm in ALGORITHMS
    for key_format in FORMATS
    if applies(algorithm, key_format)
]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClientPKI:
    return make_pki(tmp_path_factory.mktemp("keyload"))


@pytest.fixture(scope="module")
def credentials(pki: ClientPKI) -> dict[str, ClientCredential]:
    """One credential per algorithm, because generating RSA keys is slow."""
    return {algorithm: pki.issue_client(algorithm, "u") for algorithm in ALGORITHMS}


def public_der(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(("algorithm", "key_format"), CASES)
def test_format_detected_from_content(
    credentials: dict[str, ClientCredential], algorithm: str, key_format: str
) -> None:
    data = credentials[algorithm].encode(key_format)

    assert detect_key_format(data) is EXPECTED_FORMAT[key_format]


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x30\x03\x02\x01", b"\x30\x00", b"\x04\x02ab", b"\x30\x03\x04\x01a"],
)
def test_unknown_content_has_no_format(data: bytes) -> None:
    assert detect_key_format(data) is None


@pytest.mark.parametrize(("algorithm", "key_format"), CASES)
def test_decode_with_right_password(
    credentials: dict[str, ClientCredential], algorithm: str, key_format: str
) -> None:
    credential = credentials[algorithm]
    data = credential.encode(key_format)
    detected = detect_key_format(data)
    assert detected is not None

    identity = decode_key(data, detected, PasswordSource(PASSWORD), label="test key")

    assert public_der(identity.key) == public_der(credential.key)
    if key_format.startswith("pkcs12"):
        assert identity.certificate == credential.certificate
    else:
        assert identity.certificate is None


@pytest.mark.parametrize(
    ("algorithm", "key_format"), [case for case in CASES if encrypted(case[1])]
)
def test_decode_with_wrong_password(
    credentials: dict[str, ClientCredential], algorithm: str, key_format: str
) -> None:
    data = credentials[algorithm].encode(key_format)
    detected = detect_key_format(data)
    assert detected is not None

    with pytest.raises(ClientCertificateError) as caught:
        decode_key(data, detected, PasswordSource("wrong"), label='key "k.pem"', path="k.pem")

    assert 'key "k.pem"' in str(caught.value)
    assert "wrong sslpassword (bad decrypt)" in str(caught.value)
    assert caught.value.path == "k.pem"
    assert "wrong" not in str(caught.value).replace("wrong sslpassword", "")


@pytest.mark.parametrize(
    ("algorithm", "key_format"), [case for case in CASES if encrypted(case[1])]
)
def test_decode_without_password(
    credentials: dict[str, ClientCredential], algorithm: str, key_format: str
) -> None:
    data = credentials[algorithm].encode(key_format)
    detected = detect_key_format(data)
    assert detected is not None

    with pytest.raises(ClientCertificateError) as caught:
        decode_key(data, detected, PasswordSource(None), label='key "k.pem"', path="k.pem")

    assert str(caught.value).startswith('key "k.pem" is encrypted; pass its pass phrase with')
    assert caught.value.path == "k.pem"


def test_encrypted_pem_markers(credentials: dict[str, ClientCredential]) -> None:
    credential = credentials["rsa"]

    assert is_encrypted_pem(credential.encode("pem-pkcs8-encrypted"))
    assert is_encrypted_pem(credential.encode("pem-traditional-encrypted"))
    assert not is_encrypted_pem(credential.encode("pem-pkcs8"))
    assert b"DEK-Info" in credential.encode("pem-traditional-encrypted")


def test_openssh_key_names_conversion() -> None:
    data = b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"

    with pytest.raises(ClientCertificateError, match="ssh-keygen -p -m PKCS8"):
        decode_key(data, KeyFormat.PEM, PasswordSource(None), label="key")


def test_pem_with_certificate_yields_both(credentials: dict[str, ClientCredential]) -> None:
    credential = credentials["ecdsa"]
    data = credential.cert_pem() + credential.encode("pem-pkcs8")

    identity = decode_key(data, KeyFormat.PEM, PasswordSource(None), label="key")

    assert identity.certificate == credential.certificate


# --- pass phrase sources ---------------------------------------------------------------------


def test_fixed_password_wins_over_callback() -> None:
    async def never(key: str) -> str:
        raise AssertionError("the callback must not run when a password is set")

    source = PasswordSource("fixed", never)

    assert source.get("k") == b"fixed"
    assert source.origin == "sslpassword"


@pytest.mark.anyio
async def test_callback_runs_on_event_loop_once() -> None:
    calls: list[str] = []

    async def ask(key: str) -> str:
        calls.append(key)
        await anyio.lowlevel.checkpoint()
        return PASSWORD

    source = PasswordSource(None, ask)

    def twice() -> tuple[bytes | None, bytes | None]:
        return source.get("/keys/a.p12"), source.get("/keys/a.p12")

    first, second = await anyio.to_thread.run_sync(twice)

    assert first == second == PASSWORD.encode()
    assert calls == ["/keys/a.p12"]
    assert source.origin == "pass phrase from the password callback"


@pytest.mark.anyio
async def test_callback_not_called_for_plain_key(credentials: dict[str, ClientCredential]) -> None:
    calls: list[str] = []

    async def ask(key: str) -> str:
        calls.append(key)
        return PASSWORD

    data = credentials["rsa"].encode("der-pkcs8")
    source = PasswordSource(None, ask)

    identity = await anyio.to_thread.run_sync(
        lambda: decode_key(data, KeyFormat.DER, source, label="key", path="k.pk8")
    )

    assert identity.key is not None
    assert calls == []


@pytest.mark.anyio
async def test_callback_answer_decrypts_archive(credentials: dict[str, ClientCredential]) -> None:
    async def ask(key: str) -> bytes:
        return PASSWORD.encode()

    credential = credentials["ed25519"]
    data = credential.encode("pkcs12")
    source = PasswordSource(None, ask)

    identity = await anyio.to_thread.run_sync(
        lambda: decode_key(data, KeyFormat.PKCS12, source, label="key", path="k.p12")
    )

    assert identity.certificate == credential.certificate


@pytest.mark.anyio
async def test_callback_wrong_answer_named(credentials: dict[str, ClientCredential]) -> None:
    async def ask(key: str) -> str:
        return "not it"

    data = credentials["ecdsa"].encode("der-pkcs8-encrypted")
    source = PasswordSource(None, ask)

    with pytest.raises(ClientCertificateError) as caught:
        await anyio.to_thread.run_sync(
            lambda: decode_key(data, KeyFormat.ENCRYPTED_DER, source, label="key", path="k.pk8")
        )

    assert "wrong pass phrase from the password callback" in str(caught.value)


@pytest.mark.anyio
async def test_callback_bad_answer_type_rejected() -> None:
    async def ask(key: str) -> int:
        return 42

    source = PasswordSource(None, ask)  # type: ignore[arg-type]

    with pytest.raises(ClientCertificateError, match="returned int"):
        await anyio.to_thread.run_sync(source.get, "k")


def test_async_callback_outside_worker_thread() -> None:
    async def ask(key: str) -> str:
        return PASSWORD

    with pytest.raises(ClientCertificateError, match="through the provider's async __call__"):
        PasswordSource(None, ask).get("k")


# --- loading through memory ------------------------------------------------------------------


def open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="needs memfd_create")
def test_memory_file_is_anonymous_and_closed() -> None:
    before = open_descriptors()

    with memory_file(b"secret bytes") as path:
        target = os.readlink(path)
        with open(path, "rb") as file:
            content = file.read()

    assert target.startswith("/memfd:")
    assert content == b"secret bytes"
    assert open_descriptors() == before


def test_memory_file_missing_fails_without_writing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delattr(os, "memfd_create", raising=False)
    monkeypatch.chdir(tmp_path)

    with (
        pytest.raises(ClientCertificateError, match="cannot be loaded without writing it"),
        memory_file(b"secret"),
    ):
        pass

    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="needs memfd_create")
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_identity_loads_into_context(
    credentials: dict[str, ClientCredential], algorithm: str
) -> None:
    credential = credentials[algorithm]
    data = credential.encode("pkcs12")
    identity = decode_key(data, KeyFormat.PKCS12, PasswordSource(PASSWORD), label="key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    load_identity(context, identity, label="key")

    assert context.cert_store_stats()["x509"] == 0  # the chain is not a trust anchor


def test_identity_with_other_certificate_rejected(
    pki: ClientPKI, credentials: dict[str, ClientCredential]
) -> None:
    credential = credentials["ecdsa"]
    other = pki.issue_client("ecdsa", "v")
    identity = decode_key(
        credential.encode("der-pkcs8"), KeyFormat.DER, PasswordSource(None), label="key"
    )
    mismatched = type(identity)(identity.key, other.certificate)

    with pytest.raises(ClientCertificateError, match="certificate does not match key"):
        load_identity(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), mismatched, label="key")
