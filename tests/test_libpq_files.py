"""Tests of the default context provider: libpq's file rules, the built context and its cache.

Handshakes run against a fake PostgreSQL TLS endpoint on 127.0.0.1: it replies 'S' to
SSLRequest, completes the handshake and rejects the StartupMessage.  The same endpoint lets
psycopg's libpq 18 connect with the same settings, so that the outcome of our context can be
compared with libpq's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import pwd
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
import trustme
from anyio.streams.tls import TLSAttribute, TLSStream
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from aiopgtls import _client_files, _libpq_files
from aiopgtls._keyload import PasswordSource
from aiopgtls._libpq_files import (
    LibpqFileProvider,
    build_libpq_context,
    default_directory,
    default_provider,
    resolve_files,
)
from aiopgtls._params import ConnectParams, build_params
from aiopgtls._provider import AttemptInfo, ContextProvider
from aiopgtls.errors import ClientCertificateError, ConfigurationError

psycopg = pytest.importorskip("psycopg")

PASSWORD = "correct horse battery staple"
NON_ROOT_UID = 101
TLS_MODES = ["allow", "prefer", "require", "verify-ca", "verify-full"]
SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")


# --- certificates and files ------------------------------------------------------------------


@dataclasses.dataclass
class PKI:
    """Certificates from CA-A (the server's issuer) and the unrelated CA-B, written to files."""

    directory: Path
    ca: trustme.CA
    server: trustme.LeafCert
    client: trustme.LeafCert
    ca_file: Path
    other_ca_file: Path
    client_cert: Path
    client_key: Path

    def write(self, name: str, data: bytes, mode: int = 0o600) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        path.chmod(mode)
        return path

    def encrypted_key(self, name: str, private_format: serialization.PrivateFormat) -> Path:
        key = serialization.load_pem_private_key(self.client.private_key_pem.bytes(), None)
        data = key.private_bytes(
            serialization.Encoding.PEM,
            private_format,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
        return self.write(name, data)

    def crl(self, name: str, *, revoke_server: bool) -> Path:
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        ca_key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - datetime.timedelta(hours=1))
            .next_update(now + datetime.timedelta(days=1))
        )
        if revoke_server:
            server = x509.load_pem_x509_certificate(self.server.cert_chain_pems[0].bytes())
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(server.serial_number)
                .revocation_date(now - datetime.timedelta(hours=1))
                .build()
            )
            builder = builder.add_revoked_certificate(revoked)
        crl = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        return self.write(name, crl.public_bytes(serialization.Encoding.PEM))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    directory = tmp_path_factory.mktemp("pki")
    ca, other_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("db.example.com")
    client = ca.issue_cert("client")
    result = PKI(
        directory=directory,
        ca=ca,
        server=server,
        client=client,
        ca_file=directory / "ca-a.pem",
        other_ca_file=directory / "ca-b.pem",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )
    result.write("ca-a.pem", ca.cert_pem.bytes(), 0o644)
    result.write("ca-b.pem", other_ca.cert_pem.bytes(), 0o644)
    result.write("client.crt", client.cert_chain_pems[0].bytes(), 0o644)
    result.write("client.key", client.private_key_pem.bytes())
    return result


@pytest.fixture
def dot_postgresql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME at an empty temporary directory and return its ``.postgresql`` directory."""
    home = tmp_path / "home"
    (home / ".postgresql").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    return home / ".postgresql"


def make_params(**settings: Any) -> ConnectParams:
    return build_params({"host": "db.example.com", "user": "test", **settings})


def install(source: Path, target: Path, mode: int = 0o600) -> Path:
    target.write_bytes(source.read_bytes())
    target.chmod(mode)
    return target


# --- root certificate ------------------------------------------------------------------------


@pytest.mark.parametrize("sslmode", ["disable", "allow", "prefer", "require"])
@pytest.mark.usefixtures("dot_postgresql")
def test_no_root_file_means_no_verification(sslmode: str) -> None:
    context = build_libpq_context(make_params(sslmode=sslmode))

    assert context.verify_mode == ssl.CERT_NONE
    assert context.check_hostname is False


@pytest.mark.parametrize("sslmode", ["verify-ca", "verify-full"])
def test_missing_root_file_fails_verify_modes(dot_postgresql: Path, sslmode: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_libpq_context(make_params(sslmode=sslmode))

    message = str(caught.value)
    expected_path = dot_postgresql / "root.crt"
    assert message.startswith(f'root certificate file "{expected_path}" does not exist\n')
    assert "use the system's trusted roots with sslrootcert=system" in message
    assert "change sslmode to disable server certificate verification" in message
    assert caught.value.parameter == "sslrootcert"


@pytest.mark.parametrize("sslmode", TLS_MODES)
@pytest.mark.usefixtures("dot_postgresql")
def test_root_file_verifies_in_every_mode(pki: PKI, sslmode: str) -> None:
    context = build_libpq_context(make_params(sslmode=sslmode, sslrootcert=str(pki.ca_file)))

    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is False


@pytest.mark.parametrize("sslmode", ["prefer", "verify-full"])
def test_default_root_file_picked_up(pki: PKI, dot_postgresql: Path, sslmode: str) -> None:
    install(pki.ca_file, dot_postgresql / "root.crt", 0o644)

    context = build_libpq_context(make_params(sslmode=sslmode))

    assert context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1


def test_sslrootcert_overrides_default_root_file(
    pki: PKI, dot_postgresql: Path, tmp_path: Path
) -> None:
    install(pki.ca_file, dot_postgresql / "root.crt", 0o644)

    context = build_libpq_context(make_params(sslrootcert=str(tmp_path / "missing.crt")))

    assert context.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize("sslmode", TLS_MODES)
@pytest.mark.usefixtures("dot_postgresql")
def test_root_file_without_certificate_fails(pki: PKI, sslmode: str) -> None:
    empty = pki.write("no-certificate.pem", b"just text\n", 0o644)

    with pytest.raises(ConfigurationError) as caught:
        build_libpq_context(make_params(sslmode=sslmode, sslrootcert=str(empty)))

    assert str(caught.value).startswith(f'could not read root certificate file "{empty}": ')
    assert "no certificate or crl found" in str(caught.value)
    assert caught.value.value == str(empty)


def test_root_path_is_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="could not read root certificate file"):
        build_libpq_context(make_params(sslrootcert=str(tmp_path)))


def test_sslrootcert_system_loads_default_paths(
    pki: PKI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    crl = pki.crl("system.crl", revoke_server=False)

    context = build_libpq_context(
        make_params(sslrootcert="system", sslmode="verify-full", sslcrl=str(crl))
    )

    assert context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1
    assert context.verify_flags == ssl.VERIFY_X509_TRUSTED_FIRST  # no CRL with system roots


def test_sslrootcert_system_wins_over_file_named_system(
    pki: PKI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install(pki.other_ca_file, tmp_path / "system", 0o644)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))

    system = build_libpq_context(make_params(sslrootcert="system", sslmode="verify-full"))
    local = build_libpq_context(make_params(sslrootcert="./system", sslmode="verify-full"))

    assert system.get_ca_certs() != local.get_ca_certs()
    assert system.get_ca_certs()[0]["serialNumber"] != local.get_ca_certs()[0]["serialNumber"]


def test_unknown_home_directory_fails_verify_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr(_libpq_files, "_password_database_home", lambda: None)

    with pytest.raises(ConfigurationError) as caught:
        build_libpq_context(make_params(sslmode="verify-full"))

    assert str(caught.value).startswith(
        "could not get home directory to locate root certificate file"
    )
    assert "change sslmode to disable server certificate verification" in str(caught.value)
    assert build_libpq_context(make_params(sslmode="prefer")).verify_mode == ssl.CERT_NONE


def test_home_from_password_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "")

    expected = os.path.join(pwd.getpwuid(os.geteuid()).pw_dir, ".postgresql")
    assert default_directory() == expected


def test_resolve_files_defaults(dot_postgresql: Path) -> None:
    files = resolve_files(make_params())

    assert files.root == str(dot_postgresql / "root.crt")
    assert files.crl == str(dot_postgresql / "root.crl")
    assert files.crldir is None
    assert files.cert == str(dot_postgresql / "postgresql.crt")
    assert files.key == str(dot_postgresql / "postgresql.key")


@pytest.mark.usefixtures("dot_postgresql")
def test_resolve_files_crldir_disables_default_crl() -> None:
    files = resolve_files(make_params(sslcrldir="/crls"))

    assert files.crl is None
    assert files.crldir == "/crls"


# --- context settings ------------------------------------------------------------------------


@pytest.mark.usefixtures("dot_postgresql")
def test_context_secure_defaults() -> None:
    context = build_libpq_context(make_params())

    assert context.verify_flags == ssl.VERIFY_X509_TRUSTED_FIRST
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.protocol == ssl.PROTOCOL_TLS_CLIENT


@pytest.mark.parametrize(
    ("minimum", "maximum", "expected_minimum", "expected_maximum"),
    [
        (None, None, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED),
        ("TLSv1.3", None, ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.MAXIMUM_SUPPORTED),
        ("tlsv1.2", "TLSv1.2", ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
        ("", "TLSv1.3", ssl.TLSVersion.MINIMUM_SUPPORTED, ssl.TLSVersion.TLSv1_3),
    ],
)
@pytest.mark.usefixtures("dot_postgresql")
def test_tls_versions_applied(
    minimum: str | None,
    maximum: str | None,
    expected_minimum: ssl.TLSVersion,
    expected_maximum: ssl.TLSVersion,
) -> None:
    settings = {"ssl_min_protocol_version": minimum, "ssl_max_protocol_version": maximum}

    context = build_libpq_context(make_params(**settings))

    assert context.minimum_version == expected_minimum
    assert context.maximum_version == expected_maximum


@pytest.mark.usefixtures("dot_postgresql")
def test_tls_v1_minimum_applied_with_python_warning() -> None:
    with pytest.deprecated_call():
        context = build_libpq_context(make_params(ssl_min_protocol_version="TLSv1"))

    assert context.minimum_version == ssl.TLSVersion.TLSv1


# --- CRL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("revoke_server", [False, True])
def test_default_crl_loaded_with_root(
    pki: PKI, dot_postgresql: Path, *, revoke_server: bool
) -> None:
    crl = pki.crl("crl.pem", revoke_server=revoke_server)
    install(crl, dot_postgresql / "root.crl", 0o644)

    context = build_libpq_context(make_params(sslrootcert=str(pki.ca_file)))

    assert context.verify_flags & ssl.VERIFY_CRL_CHECK_CHAIN == ssl.VERIFY_CRL_CHECK_CHAIN


def test_crl_ignored_without_root(pki: PKI, dot_postgresql: Path) -> None:
    install(pki.crl("crl.pem", revoke_server=True), dot_postgresql / "root.crl", 0o644)

    context = build_libpq_context(make_params())

    assert context.verify_flags == ssl.VERIFY_X509_TRUSTED_FIRST


@pytest.mark.usefixtures("dot_postgresql")
def test_missing_crl_silently_ignored(pki: PKI, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        context = build_libpq_context(make_params(sslrootcert=str(pki.ca_file)))

    assert context.verify_flags == ssl.VERIFY_X509_TRUSTED_FIRST
    assert caplog.records == []


@pytest.mark.usefixtures("dot_postgresql")
def test_configured_unreadable_crl_ignored_with_debug_record(
    pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = pki.write("garbage.crl", b"garbage\n", 0o644)

    with caplog.at_level(logging.DEBUG, logger="aiopgtls"):
        context = build_libpq_context(
            make_params(sslrootcert=str(pki.ca_file), sslcrl=str(garbage))
        )

    assert context.verify_flags == ssl.VERIFY_X509_TRUSTED_FIRST
    assert any(str(garbage) in record.getMessage() for record in caplog.records)


# --- client certificate and key --------------------------------------------------------------


@pytest.mark.usefixtures("dot_postgresql")
def test_missing_client_certificate_is_fine() -> None:
    context = build_libpq_context(make_params(sslcert="/nonexistent/dir/client.crt"))

    assert context.verify_mode == ssl.CERT_NONE


@pytest.mark.usefixtures("dot_postgresql")
def test_client_certificate_not_a_directory_is_fine(pki: PKI) -> None:
    context = build_libpq_context(make_params(sslcert=str(pki.ca_file / "client.crt")))

    assert context.verify_mode == ssl.CERT_NONE


def test_client_certificate_without_key_fails(pki: PKI, dot_postgresql: Path) -> None:
    with pytest.raises(ClientCertificateError) as caught:
        build_libpq_context(make_params(sslcert=str(pki.client_cert)))

    expected_key = str(dot_postgresql / "postgresql.key")
    assert str(caught.value).startswith(
        f'certificate present, but not private key file "{expected_key}"'
    )
    assert caught.value.path == expected_key


@pytest.mark.usefixtures("dot_postgresql")
def test_client_key_that_is_directory_fails(pki: PKI, tmp_path: Path) -> None:
    settings = {"sslcert": str(pki.client_cert), "sslkey": str(tmp_path)}

    with pytest.raises(ClientCertificateError, match="is not a regular file"):
        build_libpq_context(make_params(**settings))


def test_default_client_files_loaded(pki: PKI, dot_postgresql: Path) -> None:
    install(pki.client_cert, dot_postgresql / "postgresql.crt", 0o644)
    install(pki.client_key, dot_postgresql / "postgresql.key")

    context = build_libpq_context(make_params())

    assert isinstance(context, ssl.SSLContext)


def test_key_ignored_without_certificate(dot_postgresql: Path) -> None:
    (dot_postgresql / "postgresql.key").write_text("garbage")
    (dot_postgresql / "postgresql.key").chmod(0o644)

    context = build_libpq_context(make_params())

    assert context.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(
    "private_format",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
)
@pytest.mark.usefixtures("dot_postgresql")
def test_encrypted_key_with_right_password(
    pki: PKI, private_format: serialization.PrivateFormat
) -> None:
    key = pki.encrypted_key("encrypted.key", private_format)
    settings = {"sslcert": str(pki.client_cert), "sslkey": str(key), "sslpassword": PASSWORD}

    context = build_libpq_context(make_params(**settings))

    assert isinstance(context, ssl.SSLContext)


def assert_no_password(exc: BaseException) -> None:
    assert PASSWORD not in str(exc)
    assert PASSWORD not in repr(exc)
    assert PASSWORD[:8] not in str(exc)


@pytest.mark.parametrize(
    "private_format",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
)
@pytest.mark.usefixtures("dot_postgresql")
def test_encrypted_key_with_wrong_password(
    pki: PKI, private_format: serialization.PrivateFormat
) -> None:
    key = pki.encrypted_key("encrypted.key", private_format)
    settings = {"sslcert": str(pki.client_cert), "sslkey": str(key), "sslpassword": "wrong"}

    with pytest.raises(ClientCertificateError) as caught:
        build_libpq_context(make_params(**settings))

    assert str(caught.value) == (
        f'could not decrypt private key file "{key}": wrong sslpassword (bad decrypt)'
    )
    assert caught.value.path == str(key)
    assert_no_password(caught.value)


@pytest.mark.parametrize(
    "private_format",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
)
@pytest.mark.usefixtures("dot_postgresql")
def test_encrypted_key_without_password(
    pki: PKI, private_format: serialization.PrivateFormat
) -> None:
    key = pki.encrypted_key("encrypted.key", private_format)

    with pytest.raises(ClientCertificateError) as caught:
        build_libpq_context(make_params(sslcert=str(pki.client_cert), sslkey=str(key)))

    assert str(caught.value) == (
        f'private key file "{key}" is encrypted; pass its pass phrase with sslpassword or the '
        "provider's password_callback"
    )
    assert caught.value.path == str(key)


@pytest.mark.usefixtures("dot_postgresql")
def test_password_callback_prevents_prompt(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    key = pki.encrypted_key("encrypted.key", serialization.PrivateFormat.PKCS8)
    monkeypatch.setattr(_client_files, "is_encrypted_pem", lambda data: False)

    with pytest.raises(ClientCertificateError, match="is encrypted; pass its pass phrase"):
        build_libpq_context(make_params(sslcert=str(pki.client_cert), sslkey=str(key)))


@pytest.mark.usefixtures("dot_postgresql")
def test_password_ignored_for_plain_key(pki: PKI) -> None:
    settings = {
        "sslcert": str(pki.client_cert),
        "sslkey": str(pki.client_key),
        "sslpassword": PASSWORD,
    }

    context = build_libpq_context(make_params(**settings))

    assert isinstance(context, ssl.SSLContext)


@pytest.mark.usefixtures("dot_postgresql")
def test_key_not_matching_certificate(pki: PKI) -> None:
    other = pki.write("other.key", pki.server.private_key_pem.bytes())

    with pytest.raises(ClientCertificateError) as caught:
        build_libpq_context(make_params(sslcert=str(pki.client_cert), sslkey=str(other)))

    assert str(caught.value).startswith(f'certificate does not match private key file "{other}"')
    assert caught.value.path == str(other)


@pytest.mark.usefixtures("dot_postgresql")
def test_unloadable_key(pki: PKI) -> None:
    garbage = pki.write(
        "garbage.key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )

    with pytest.raises(ClientCertificateError) as caught:
        build_libpq_context(make_params(sslcert=str(pki.client_cert), sslkey=str(garbage)))

    assert str(caught.value).startswith(f'could not load private key file "{garbage}": ')


@pytest.mark.usefixtures("dot_postgresql")
def test_der_key_loaded_like_libpq(pki: PKI) -> None:
    key = serialization.load_pem_private_key(pki.client.private_key_pem.bytes(), None)
    der = pki.write(
        "client.der",
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )

    context = build_libpq_context(make_params(sslcert=str(pki.client_cert), sslkey=str(der)))

    assert isinstance(context, ssl.SSLContext)


@pytest.mark.usefixtures("dot_postgresql")
def test_key_in_unknown_format(pki: PKI) -> None:
    garbage = pki.write("garbage.bin", b"\x00\x01 not a key at all")

    with pytest.raises(ClientCertificateError) as caught:
        build_libpq_context(make_params(sslcert=str(pki.client_cert), sslkey=str(garbage)))

    assert str(caught.value).startswith(f'could not load private key file "{garbage}": ')
    assert "not a PEM, DER (PKCS#8, PKCS#1, SEC1) or PKCS#12 private key" in str(caught.value)


@pytest.mark.usefixtures("dot_postgresql")
def test_unreadable_certificate_file(pki: PKI) -> None:
    garbage = pki.write("garbage.crt", b"not a certificate\n", 0o644)

    with pytest.raises(ClientCertificateError) as caught:
        build_libpq_context(make_params(sslcert=str(garbage), sslkey=str(pki.client_key)))

    assert str(caught.value).startswith(f'could not read certificate file "{garbage}": ')
    assert caught.value.path == str(garbage)


@pytest.mark.usefixtures("dot_postgresql")
def test_world_readable_key_rejected(pki: PKI) -> None:
    key = pki.write("open.key", pki.client.private_key_pem.bytes(), 0o644)

    with pytest.raises(ClientCertificateError, match="has group or world access") as caught:
        build_libpq_context(make_params(sslcert=str(pki.client_cert), sslkey=str(key)))

    assert "chmod 0600" in str(caught.value)


@needs_root
@pytest.mark.usefixtures("dot_postgresql")
def test_group_readable_root_key_accepted(pki: PKI) -> None:
    key = pki.write("root.key", pki.client.private_key_pem.bytes(), 0o640)
    os.chown(key, 0, -1)

    context = build_libpq_context(make_params(sslcert=str(pki.client_cert), sslkey=str(key)))

    assert isinstance(context, ssl.SSLContext)


@needs_root
@pytest.mark.usefixtures("dot_postgresql")
def test_group_readable_user_key_rejected(pki: PKI) -> None:
    key = pki.write("user.key", pki.client.private_key_pem.bytes(), 0o640)
    os.chown(key, NON_ROOT_UID, -1)

    with pytest.raises(ClientCertificateError, match="has group or world access"):
        build_libpq_context(make_params(sslcert=str(pki.client_cert), sslkey=str(key)))


# --- cache -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("dot_postgresql")
def test_cache_reuses_context(pki: PKI) -> None:
    provider = LibpqFileProvider()
    params = make_params(sslrootcert=str(pki.ca_file))

    first = provider.get_context(params)
    second = provider.get_context(make_params(sslrootcert=str(pki.ca_file)))

    assert first is second


@pytest.mark.usefixtures("dot_postgresql")
def test_cache_rebuilds_after_file_replaced(pki: PKI, tmp_path: Path) -> None:
    provider = LibpqFileProvider()
    root = install(pki.ca_file, tmp_path / "root.crt", 0o644)
    params = make_params(sslrootcert=str(root))
    first = provider.get_context(params)

    install(pki.other_ca_file, root, 0o644)
    stat = root.stat()
    os.utime(root, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = provider.get_context(params)

    assert second is not first
    assert second.get_ca_certs() != first.get_ca_certs()
    assert provider.get_context(params) is second


@pytest.mark.usefixtures("dot_postgresql")
def test_cache_rebuilds_after_file_appears(pki: PKI, tmp_path: Path) -> None:
    provider = LibpqFileProvider()
    params = make_params(sslrootcert=str(tmp_path / "root.crt"))
    first = provider.get_context(params)

    install(pki.ca_file, tmp_path / "root.crt", 0o644)
    second = provider.get_context(params)

    assert first.verify_mode == ssl.CERT_NONE
    assert second.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.usefixtures("dot_postgresql")
def test_cache_separates_passwords(pki: PKI) -> None:
    provider = LibpqFileProvider()
    key = pki.encrypted_key("encrypted.key", serialization.PrivateFormat.PKCS8)
    right = make_params(sslcert=str(pki.client_cert), sslkey=str(key), sslpassword=PASSWORD)
    wrong = dataclasses.replace(right, sslpassword="wrong")

    context = provider.get_context(right)

    with pytest.raises(ClientCertificateError, match="wrong sslpassword"):
        provider.get_context(wrong)
    assert provider.get_context(right) is context
    keys = provider._cache.keys()
    assert PASSWORD not in repr(keys)
    assert PASSWORD.encode() not in repr(keys).encode()


@pytest.mark.usefixtures("dot_postgresql")
def test_cache_separates_tls_versions() -> None:
    provider = LibpqFileProvider()

    default = provider.get_context(make_params())
    tls13 = provider.get_context(make_params(ssl_min_protocol_version="TLSv1.3"))

    assert default is not tls13
    assert tls13.minimum_version == ssl.TLSVersion.TLSv1_3


@pytest.mark.usefixtures("dot_postgresql")
def test_cache_is_bounded(pki: PKI) -> None:
    provider = LibpqFileProvider(max_size=2)
    configurations = [make_params(ssl_max_protocol_version=v) for v in ("TLSv1.2", "TLSv1.3")]
    first = provider.get_context(make_params())
    for params in configurations:
        provider.get_context(params)

    again = provider.get_context(make_params())

    assert again is not first
    assert len(provider._cache.keys()) == 2


@pytest.mark.usefixtures("dot_postgresql")
def test_cache_does_not_keep_errors(pki: PKI, tmp_path: Path) -> None:
    provider = LibpqFileProvider()
    params = make_params(sslmode="verify-full", sslrootcert=str(tmp_path / "root.crt"))

    with pytest.raises(ConfigurationError):
        provider.get_context(params)
    install(pki.ca_file, tmp_path / "root.crt", 0o644)

    assert provider.get_context(params).verify_mode == ssl.CERT_REQUIRED


def attempt_for(params: ConnectParams) -> AttemptInfo:
    return AttemptInfo(
        host=params.host,
        address="127.0.0.1",
        port=params.port,
        sslmode=params.sslmode,
        number=1,
        params=params,
    )


@pytest.mark.anyio
@pytest.mark.usefixtures("dot_postgresql")
async def test_provider_builds_once_for_concurrent_attempts(
    pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = LibpqFileProvider()
    builds: list[ConnectParams] = []
    real_build = _libpq_files._build

    def counting_build(
        params: ConnectParams, files: _libpq_files.LibpqFiles, passwords: PasswordSource
    ) -> ssl.SSLContext:
        builds.append(params)
        return real_build(params, files, passwords)

    monkeypatch.setattr(_libpq_files, "_build", counting_build)
    attempt = attempt_for(make_params(sslrootcert=str(pki.ca_file)))
    contexts: list[ssl.SSLContext] = []

    async def get() -> None:
        contexts.append(await provider(attempt))

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(get)

    assert len(builds) == 1
    assert all(context is contexts[0] for context in contexts)
    assert len(contexts) == 8


# --- handshakes --------------------------------------------------------------------------------


@dataclasses.dataclass
class Handshake:
    """What the fake server saw of one client's TLS handshake."""

    peer_certificate: dict[str, Any] | None
    alpn_protocol: str | None
    tls_version: str | None


class FakePostgresServer:
    """Replies 'S' to SSLRequest, runs the handshake and rejects the StartupMessage."""

    def __init__(self, pki: PKI, *, require_client_certificate: bool = False) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        pki.server.configure_cert(context)
        context.set_alpn_protocols(["postgresql"])
        if require_client_certificate:
            pki.ca.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        self.context = context
        self.handshakes: list[Handshake] = []
        self.port = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakePostgresServer]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        self.port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, self._handle)
            yield self
            group.cancel_scope.cancel()

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            request = b""
            while len(request) < 8:
                request += await stream.receive(8 - len(request))
            await stream.send(b"S")
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, ssl.SSLError):
                tls = await TLSStream.wrap(
                    stream, server_side=True, ssl_context=self.context, standard_compatible=False
                )
                self.handshakes.append(
                    Handshake(
                        peer_certificate=tls.extra(TLSAttribute.peer_certificate),
                        alpn_protocol=tls.extra(TLSAttribute.alpn_protocol),
                        tls_version=tls.extra(TLSAttribute.tls_version),
                    )
                )
                await tls.receive()
                fields = b"SFATAL\0VFATAL\0C28000\0Mno such user\0\0"
                await tls.send(b"E" + (len(fields) + 4).to_bytes(4, "big") + fields)


async def our_handshake(server: FakePostgresServer, context: ssl.SSLContext) -> bool:
    """Connect with ``context`` as the ladder would; return whether the server's reply arrived."""
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        await stream.send(SSL_REQUEST)
        assert await stream.receive(1) == b"S"
        try:
            # Without a host name anyio would assume the server side, so pass server_side=False.
            tls = await TLSStream.wrap(
                stream, server_side=False, ssl_context=context, standard_compatible=False
            )
            await tls.send((8).to_bytes(4, "big") + (196608).to_bytes(4, "big"))
            reply = await tls.receive()
        except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream):
            return False
    return reply.startswith(b"E")


async def libpq_outcome(server: FakePostgresServer, **settings: str) -> str:
    """Connect with libpq under sslmode=require; return its error text after the address."""

    def connect() -> str:
        try:
            psycopg.connect(
                host="db.example.com",
                hostaddr="127.0.0.1",
                port=server.port,
                user="test",
                dbname="test",
                sslmode="require",
                gssencmode="disable",
                connect_timeout=10,
                **settings,
            )
        except psycopg.OperationalError as exc:
            return str(exc)
        raise AssertionError("the fake server never accepts a connection")

    text = await anyio.to_thread.run_sync(connect)
    found = re.search(r"port \d+ failed: (.*)", text, re.DOTALL)
    assert found is not None, text
    return found.group(1)


@pytest.mark.anyio
@pytest.mark.usefixtures("dot_postgresql")
async def test_handshake_with_right_root(pki: PKI) -> None:
    context = build_libpq_context(make_params(sslrootcert=str(pki.ca_file)))

    async with FakePostgresServer(pki).running() as server:
        assert await our_handshake(server, context)

    assert server.handshakes[0].alpn_protocol == "postgresql"


@pytest.mark.anyio
@pytest.mark.usefixtures("dot_postgresql")
async def test_handshake_fails_with_other_ca(pki: PKI) -> None:
    context = build_libpq_context(make_params(sslrootcert=str(pki.other_ca_file)))

    async with FakePostgresServer(pki).running() as server:
        assert not await our_handshake(server, context)

    assert server.handshakes == []


@pytest.mark.anyio
@pytest.mark.usefixtures("dot_postgresql")
async def test_handshake_unverified_without_root(pki: PKI) -> None:
    context = build_libpq_context(make_params(sslmode="require"))

    async with FakePostgresServer(pki).running() as server:
        assert await our_handshake(server, context)


@pytest.mark.anyio
@pytest.mark.usefixtures("dot_postgresql")
async def test_handshake_uses_max_version(pki: PKI) -> None:
    context = build_libpq_context(make_params(ssl_max_protocol_version="TLSv1.2"))

    async with FakePostgresServer(pki).running() as server:
        assert await our_handshake(server, context)

    assert server.handshakes[0].tls_version == "TLSv1.2"


@pytest.mark.anyio
@pytest.mark.usefixtures("dot_postgresql")
async def test_handshake_sends_encrypted_client_key(pki: PKI) -> None:
    key = pki.encrypted_key("encrypted.key", serialization.PrivateFormat.PKCS8)
    settings = {"sslcert": str(pki.client_cert), "sslkey": str(key), "sslpassword": PASSWORD}
    context = build_libpq_context(make_params(sslrootcert=str(pki.ca_file), **settings))

    async with FakePostgresServer(pki, require_client_certificate=True).running() as server:
        assert await our_handshake(server, context)

    peer = server.handshakes[0].peer_certificate
    assert peer is not None
    assert ("DNS", "client") in peer["subjectAltName"]


@pytest.mark.anyio
@pytest.mark.usefixtures("dot_postgresql")
async def test_handshake_without_client_certificate_rejected(pki: PKI) -> None:
    context = build_libpq_context(make_params(sslrootcert=str(pki.ca_file)))

    async with FakePostgresServer(pki, require_client_certificate=True).running() as server:
        assert not await our_handshake(server, context)


def _libpq_cases(pki: PKI) -> dict[str, dict[str, str]]:
    missing = str(pki.directory / "missing")
    garbage = str(pki.write("garbage.pem", b"garbage\n", 0o644))
    revoked = str(pki.crl("revoked.crl", revoke_server=True))
    current = str(pki.crl("current.crl", revoke_server=False))
    crl_dir = pki.directory / "empty-crl-dir"
    crl_dir.mkdir(exist_ok=True)
    root = str(pki.ca_file)
    return {
        "other-ca": {"sslrootcert": str(pki.other_ca_file)},
        "right-ca": {"sslrootcert": root},
        "missing-root": {"sslrootcert": missing},
        "garbage-root": {"sslrootcert": garbage},
        "crl-as-root": {"sslrootcert": current},
        "revoked": {"sslrootcert": root, "sslcrl": revoked},
        "current-crl": {"sslrootcert": root, "sslcrl": current},
        "missing-crl": {"sslrootcert": root, "sslcrl": missing},
        "garbage-crl": {"sslrootcert": root, "sslcrl": garbage},
        "missing-crl-dir": {"sslrootcert": root, "sslcrldir": missing},
        "empty-crl-dir": {"sslrootcert": root, "sslcrldir": str(crl_dir)},
        "crl-and-missing-dir": {"sslrootcert": root, "sslcrl": current, "sslcrldir": missing},
        "other-ca-as-crl": {"sslrootcert": root, "sslcrl": str(pki.other_ca_file)},
    }


def libpq_verdict(text: str) -> str:
    """Reduce libpq's error text to "connected", "failed" (handshake) or the quoted file."""
    if "no such user" in text:
        return "connected"
    # A rejected client certificate reaches libpq as an alert or as a closed connection,
    # depending on timing under TLS 1.3.
    handshake_failures = ("SSL error", "SSL SYSCALL error", "server closed the connection")
    if text.startswith(handshake_failures):
        return "failed"
    found = re.search(r'"([^"]+)"', text)
    assert found is not None, text
    return found.group(1)


async def our_verdict(server: FakePostgresServer, params: ConnectParams) -> str:
    """Build our context and connect; return a verdict in the form of libpq_verdict()."""
    try:
        context = build_libpq_context(params)
    except ConfigurationError as exc:
        return str(exc.value)
    except ClientCertificateError as exc:
        assert_no_password(exc)
        return str(exc.path)
    return "connected" if await our_handshake(server, context) else "failed"


@pytest.mark.anyio
@pytest.mark.usefixtures("dot_postgresql")
async def test_root_and_crl_outcomes_match_libpq(pki: PKI) -> None:
    async with FakePostgresServer(pki).running() as server:
        for name, settings in _libpq_cases(pki).items():
            theirs = libpq_verdict(await libpq_outcome(server, **settings))
            ours = await our_verdict(server, make_params(sslmode="require", **settings))

            assert ours == theirs, name


@pytest.mark.anyio
@pytest.mark.usefixtures("dot_postgresql")
async def test_client_key_outcomes_match_libpq(pki: PKI) -> None:
    encrypted = str(pki.encrypted_key("libpq-encrypted.key", serialization.PrivateFormat.PKCS8))
    open_key = str(pki.write("libpq-open.key", pki.client.private_key_pem.bytes(), 0o644))
    other_key = str(pki.write("libpq-other.key", pki.server.private_key_pem.bytes()))
    cert = str(pki.client_cert)
    # An encrypted key without sslpassword is left out: libpq would prompt on the terminal.
    cases = {
        "right-password": {"sslkey": encrypted, "sslpassword": PASSWORD},
        "wrong-password": {"sslkey": encrypted, "sslpassword": "wrong"},
        "plain-key": {"sslkey": str(pki.client_key)},
        "plain-key-with-password": {"sslkey": str(pki.client_key), "sslpassword": PASSWORD},
        "open-key": {"sslkey": open_key},
        "other-key": {"sslkey": other_key},
        "missing-key": {"sslkey": str(pki.directory / "missing.key")},
        "missing-cert": {"sslkey": open_key, "sslcert": str(pki.directory / "missing.crt")},
    }

    async with FakePostgresServer(pki, require_client_certificate=True).running() as server:
        for name, settings in cases.items():
            settings = {"sslcert": cert, **settings}
            theirs = libpq_verdict(await libpq_outcome(server, **settings))
            ours = await our_verdict(server, make_params(**settings))

            assert ours == theirs, name


def test_default_provider_is_libpq_file_provider() -> None:
    assert isinstance(default_provider, LibpqFileProvider)
    assert isinstance(default_provider, ContextProvider)
