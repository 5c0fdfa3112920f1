"""The built-in providers, sslcertmode, sslkeylogfile and CRLs against real servers.

Most tests use a server of this module that demands client certificates from its own PKI;
``pg_other_ca`` serves as a server that never requests a client certificate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import stat
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import psycopg
import pytest
import trustme
from anyio.streams.tls import TLSAttribute, TLSStream

import aiopgtls
from aiopgtls._certmode import (
    certificate_exchange,
    check_certificate_mode,
    client_certificate_requested,
    record_certificate_exchange,
    records_certificate_exchange,
)
from aiopgtls._cluster import ClusterFactory
from aiopgtls._context import create_context
from aiopgtls._libpq_files import LibpqFileProvider
from aiopgtls._params import ConnectParams
from aiopgtls._provider import AttemptInfo
from aiopgtls._providers import (
    InMemoryProvider,
    NonValidatingProvider,
    PinnedCertificateProvider,
    SystemTrustProvider,
    TLSMaterial,
)

from .clientkeys import PASSWORD, ClientPKI, KeyServer, running_key_server
from .conftest import PgServer
from .pgquery import query_one_row, server_sees_ssl

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("empty_home")]

SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


@pytest.fixture(scope="module")
def key_server(
    pg_cluster_factory: ClusterFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeyServer]:
    with running_key_server(pg_cluster_factory, tmp_path_factory.mktemp("providers")) as server:
        yield server


def attempt_for(params: ConnectParams) -> AttemptInfo:
    return AttemptInfo(
        host=params.host,
        address="127.0.0.1",
        port=params.port,
        sslmode=params.sslmode,
        number=1,
        params=params,
    )


async def context_for(provider: aiopgtls.ContextProvider, settings: Mapping[str, Any]) -> Any:
    params = aiopgtls.resolve_params(None, settings)
    return await provider(attempt_for(params))


async def client_serial(connection: aiopgtls.Connection) -> int | None:
    row = await query_one_row(
        connection.stream, "SELECT client_serial FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    )
    return int(row[0]) if row[0] is not None else None


def libpq_connects(settings: Mapping[str, Any]) -> bool:
    try:
        with psycopg.connect(**settings, gssencmode="disable", connect_timeout=10):
            return True
    except psycopg.OperationalError:
        return False


# --- the shared context settings ---------------------------------------------------------------


def test_create_context_settings(key_server: KeyServer) -> None:
    params = aiopgtls.resolve_params(None, key_server.settings(ssl_max_protocol_version="TLSv1.3"))
    base = create_context(params)

    assert base.minimum_version == ssl.TLSVersion.TLSv1_2
    assert base.maximum_version == ssl.TLSVersion.TLSv1_3
    assert base.options & ssl.OP_NO_COMPRESSION
    assert base.check_hostname is False
    assert base.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(
    "make_provider",
    [
        lambda server: SystemTrustProvider(),
        lambda server: PinnedCertificateProvider(server.pki.root_file),
        lambda server: InMemoryProvider(root=server.pki.root_file.read_bytes()),
        lambda server: NonValidatingProvider(),
        lambda server: LibpqFileProvider(),
    ],
    ids=["system", "pinned", "in-memory", "non-validating", "libpq-files"],
)
async def test_provider_contexts_offer_alpn_postgresql(
    key_server: KeyServer, monkeypatch: pytest.MonkeyPatch, make_provider: Any
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(key_server.pki.root_file))
    provider = make_provider(key_server)
    settings = key_server.settings(user="sslonly", sslmode="require")
    settings["ssl_min_protocol_version"] = "TLSv1.3"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aiopgtls.NonValidatingWarning)
        context = await context_for(provider, settings)

    # PostgreSQL 15 ignores ALPN, so a TLS server of the test reports what the client offered.
    offered = await offered_alpn(key_server.pki, context)
    assert offered == "postgresql"
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3


async def offered_alpn(pki: ClientPKI, context: ssl.SSLContext) -> str | None:
    """Handshake with a loopback TLS server that accepts only ALPN "postgresql"."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki.server_cert_file, pki.server_key_file)
    server_context.set_alpn_protocols(["postgresql"])
    selected: list[str | None] = []

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive(8)
            await stream.send(b"S")
            tls = await TLSStream.wrap(
                stream, server_side=True, ssl_context=server_context, standard_compatible=False
            )
            selected.append(tls.extra(TLSAttribute.alpn_protocol))
            await tls.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, serve)
        async with await raw_tls(port, context) as tls:
            client_side = tls.extra(TLSAttribute.alpn_protocol)
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await tls.receive()
        group.cancel_scope.cancel()
    assert selected == [client_side]
    return client_side


async def raw_tls(port: int, context: ssl.SSLContext, host: str = "127.0.0.1") -> TLSStream:
    """Send SSLRequest and run the handshake with ``context``; return the TLS stream."""
    stream = await anyio.connect_tcp(host, port)
    try:
        await stream.send(SSL_REQUEST)
        assert await stream.receive(1) == b"S"
        return await TLSStream.wrap(
            stream, server_side=False, ssl_context=context, standard_compatible=False
        )
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise


# --- system trust ------------------------------------------------------------------------------


async def test_sslrootcert_system_defaults_to_verify_full(
    key_server: KeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(key_server.pki.root_file))
    settings = key_server.settings(user="sslonly", host="localhost", sslrootcert="system")
    del settings["sslmode"]

    connection = await aiopgtls.connect(**settings)
    async with connection:
        assert connection.verified is aiopgtls.Verification.CHAIN_AND_NAME
        assert connection.params.sslmode is aiopgtls.SSLMode.VERIFY_FULL
    assert await anyio.to_thread.run_sync(libpq_connects, settings)


async def test_sslrootcert_system_checks_host_name(
    key_server: KeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(key_server.pki.root_file))
    settings = key_server.settings(
        user="sslonly", host="bad.example.test", hostaddr="127.0.0.1", sslrootcert="system"
    )
    del settings["sslmode"]

    with pytest.raises(aiopgtls.HostnameMismatchError, match=r"bad\.example\.test"):
        await aiopgtls.connect(**settings)
    assert not await anyio.to_thread.run_sync(libpq_connects, settings)


async def test_sslrootcert_system_rejects_weaker_mode(key_server: KeyServer) -> None:
    settings = key_server.settings(user="sslonly", sslrootcert="system", sslmode="require")

    with pytest.raises(aiopgtls.ConfigurationError, match="verify-full"):
        await aiopgtls.connect(**settings)


async def test_system_roots_without_ca_fail_verification(
    key_server: KeyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other-root.pem"
    other.write_bytes(trustme.CA().cert_pem.bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))

    with pytest.raises(aiopgtls.CertificateVerifyError):
        await aiopgtls.connect(
            **key_server.settings(user="sslonly", sslmode="require"),
            context_provider=SystemTrustProvider(),
        )


@pytest.mark.parametrize("use_truststore", [False, True])
async def test_system_trust_honours_ssl_cert_file(
    key_server: KeyServer, monkeypatch: pytest.MonkeyPatch, *, use_truststore: bool
) -> None:
    if use_truststore:
        pytest.importorskip("truststore")
    monkeypatch.setenv("SSL_CERT_FILE", str(key_server.pki.root_file))
    provider = SystemTrustProvider(use_truststore=use_truststore)
    settings = key_server.settings(user="sslonly", host="localhost", sslmode="verify-full")

    connection = await aiopgtls.connect(**settings, context_provider=provider)
    async with connection:
        assert connection.verified is aiopgtls.Verification.CHAIN_AND_NAME


def test_system_trust_notices_changed_bundle(
    key_server: KeyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(key_server.pki.root_file.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    provider = SystemTrustProvider()
    params = aiopgtls.resolve_params(None, key_server.settings(sslmode="verify-full"))

    first = provider.get_context(params)
    bundle.write_bytes(bundle.read_bytes() + trustme.CA().cert_pem.bytes())
    second = provider.get_context(params)

    assert first is not second
    assert len(second.get_ca_certs()) == 2


# --- pinned certificate ------------------------------------------------------------------------


def pin_forms(server: KeyServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    root_pem = server.pki.root_file.read_text()
    monkeypatch.setenv("PINNED_ROOT", root_pem)
    return {
        "path": server.pki.root_file,
        "file-prefix": f"file:{server.pki.root_file}",
        "env": "env:PINNED_ROOT",
        "pem-text": root_pem,
        "bytes": root_pem.encode(),
        "intermediate": server.pki.intermediate.cert_pem.bytes(),
        "server-leaf": server.pki.server.cert_chain_pems[0].bytes(),
    }


@pytest.mark.parametrize(
    "form", ["path", "file-prefix", "env", "pem-text", "bytes", "intermediate", "server-leaf"]
)
async def test_pinned_certificate_forms_connect(
    key_server: KeyServer, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    provider = PinnedCertificateProvider(pin_forms(key_server, monkeypatch)[form])
    settings = key_server.settings(user="sslonly", host="localhost", sslmode="verify-full")
    del settings["sslrootcert"]

    connection = await aiopgtls.connect(**settings, context_provider=provider)
    async with connection:
        assert connection.verified is aiopgtls.Verification.CHAIN_AND_NAME


@pytest.mark.parametrize("sslmode", ["require", "verify-ca"])
async def test_pinned_other_certificate_fails(key_server: KeyServer, sslmode: str) -> None:
    stranger = key_server.pki.intermediate.issue_cert("localhost")
    provider = PinnedCertificateProvider(stranger.cert_chain_pems[0].bytes())

    with pytest.raises(aiopgtls.CertificateVerifyError):
        await aiopgtls.connect(
            **key_server.settings(user="sslonly", sslmode=sslmode), context_provider=provider
        )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "the pinned certificate is empty"),
        ("sys:javax.net.ssl", "has no known form"),
        ("file:/nonexistent/ca.pem", 'could not read pinned certificate file "/nonexistent'),
        ("env:AIOPGTLS_NO_SUCH_VARIABLE", "AIOPGTLS_NO_SUCH_VARIABLE is not set"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "contains no cert"),
    ],
)
def test_pinned_certificate_errors(spec: str, message: str) -> None:
    with pytest.raises(aiopgtls.ConfigurationError, match=message) as caught:
        PinnedCertificateProvider(spec)

    assert caught.value.parameter == "sslfactoryarg"
    assert "file:PATH" in str(caught.value) or "certificate" in str(caught.value)


def test_pinned_bundle_rejected(key_server: KeyServer) -> None:
    bundle = key_server.pki.root_file.read_bytes() + key_server.pki.intermediate.cert_pem.bytes()

    with pytest.raises(aiopgtls.ConfigurationError, match="contains 2 certificates"):
        PinnedCertificateProvider(bundle)


def test_pinned_file_reread_after_rotation(key_server: KeyServer, tmp_path: Path) -> None:
    pinned = tmp_path / "pinned.pem"
    pinned.write_bytes(key_server.pki.root_file.read_bytes())
    provider = PinnedCertificateProvider(f"file:{pinned}")
    params = aiopgtls.resolve_params(None, key_server.settings())

    first = provider.get_context(params)
    replacement = tmp_path / "new.pem"
    replacement.write_bytes(key_server.pki.intermediate.cert_pem.bytes())
    os.replace(replacement, pinned)
    second = provider.get_context(params)

    assert first.get_ca_certs() != second.get_ca_certs()
    assert provider.get_context(params) is second


# --- in-memory material ------------------------------------------------------------------------


async def test_in_memory_material_connects(key_server: KeyServer) -> None:
    credential = key_server.credentials["rsa"]
    provider = InMemoryProvider(
        root=key_server.pki.root_file.read_text(),
        certificate=credential.cert_pem(),
        key=credential.encode("der-pkcs8-encrypted"),
        password=PASSWORD,
    )
    settings = key_server.settings()
    del settings["sslrootcert"]

    connection = await aiopgtls.connect(**settings, context_provider=provider)
    async with connection:
        assert await client_serial(connection) == credential.serial


async def test_in_memory_fetch_follows_rotation(key_server: KeyServer) -> None:
    credentials = [
        key_server.credentials["ecdsa"],
        key_server.pki.issue_client("ecdsa", "certuser"),
    ]
    archives = [credential.encode("pkcs12") for credential in credentials]
    root = key_server.pki.root_file.read_bytes()
    fetched: list[int] = []

    async def fetch(attempt: AttemptInfo) -> TLSMaterial:
        archive = archives[min(len(fetched), 1)]
        fetched.append(attempt.number)
        return TLSMaterial(root=root, key=archive, password=PASSWORD)

    provider = InMemoryProvider(fetch=fetch)
    serials = []
    for _ in range(3):
        connection = await aiopgtls.connect(**key_server.settings(), context_provider=provider)
        async with connection:
            serials.append(await client_serial(connection))

    assert serials == [credentials[0].serial, credentials[1].serial, credentials[1].serial]
    assert fetched == [1, 1, 1]
    assert len(provider._cache.keys()) == 2


async def test_in_memory_wrong_password(key_server: KeyServer) -> None:
    provider = InMemoryProvider(
        key=key_server.credentials["ed25519"].encode("pkcs12"), password="x"
    )

    with pytest.raises(aiopgtls.ClientCertificateError) as caught:
        await aiopgtls.connect(**key_server.settings(), context_provider=provider)

    assert "in-memory private key" in caught.value.message
    assert "wrong password" in caught.value.message


async def test_in_memory_password_callback(key_server: KeyServer) -> None:
    asked: list[str] = []

    async def password(key: str) -> str:
        asked.append(key)
        return PASSWORD

    credential = key_server.credentials["ecdsa"]
    provider = InMemoryProvider(
        certificate=credential.cert_pem(),
        key=credential.encode("pem-traditional-encrypted"),
        password_callback=password,
    )

    connection = await aiopgtls.connect(**key_server.settings(), context_provider=provider)
    async with connection:
        assert await client_serial(connection) == credential.serial
    assert asked == ["in-memory private key"]


def test_in_memory_configuration_errors(key_server: KeyServer) -> None:
    async def fetch(attempt: AttemptInfo) -> TLSMaterial:
        return TLSMaterial()

    with pytest.raises(aiopgtls.ConfigurationError, match="either fetch or the material"):
        InMemoryProvider(root=b"x", fetch=fetch)
    with pytest.raises(aiopgtls.ConfigurationError, match="certificate without its key"):
        InMemoryProvider(certificate=key_server.credentials["rsa"].cert_pem())


async def test_in_memory_key_without_certificate(key_server: KeyServer) -> None:
    provider = InMemoryProvider(key=key_server.credentials["rsa"].encode("pem-pkcs8"))

    with pytest.raises(aiopgtls.ClientCertificateError, match="comes without a certificate"):
        await context_for(provider, key_server.settings())


def test_material_repr_hides_secrets() -> None:
    material = TLSMaterial(root=b"r", key=b"KEY-BYTES", password="hunter2")

    assert "KEY-BYTES" not in repr(material)
    assert "hunter2" not in repr(material)


# --- no verification ---------------------------------------------------------------------------


async def test_non_validating_warns_and_connects(key_server: KeyServer) -> None:
    settings = key_server.settings(user="sslonly", sslmode="require")
    del settings["sslrootcert"]

    with pytest.warns(aiopgtls.NonValidatingWarning, match="is not verified"):
        connection = await aiopgtls.connect(**settings, context_provider=NonValidatingProvider())
    async with connection:
        assert connection.verified is aiopgtls.Verification.NONE
        assert await server_sees_ssl(connection.stream)


async def test_non_validating_rejected_under_verify_full(key_server: KeyServer) -> None:
    settings = key_server.settings(user="sslonly", sslmode="verify-full")

    with (
        pytest.warns(aiopgtls.NonValidatingWarning),
        pytest.raises(aiopgtls.ConfigurationError, match="does not verify"),
    ):
        await aiopgtls.connect(**settings, context_provider=NonValidatingProvider())


# --- sslkeylogfile -----------------------------------------------------------------------------


async def test_key_log_written_with_private_mode(key_server: KeyServer, tmp_path: Path) -> None:
    log = tmp_path / "keys.log"
    settings = key_server.settings(user="sslonly", sslkeylogfile=str(log))

    with pytest.warns(aiopgtls.SecurityWarning, match="session keys are written"):
        connection = await aiopgtls.connect(**settings, context_provider=LibpqFileProvider())
    await connection.aclose()

    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    labels = {line.split()[0] for line in log.read_text().splitlines() if line.strip()}
    assert labels & {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_RANDOM"}


async def test_key_log_unwritable_is_only_logged(
    key_server: KeyServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "missing-dir" / "keys.log"
    settings = key_server.settings(user="sslonly", sslkeylogfile=str(log))

    with caplog.at_level(logging.WARNING), pytest.warns(aiopgtls.SecurityWarning):
        connection = await aiopgtls.connect(**settings, context_provider=LibpqFileProvider())
    await connection.aclose()

    assert f'could not open SSL key logging file "{log}"' in caplog.text
    assert not log.exists()


# --- sslcertmode -------------------------------------------------------------------------------


async def test_certmode_disable_sends_no_certificate(key_server: KeyServer, tmp_path: Path) -> None:
    credential = key_server.credentials["ecdsa"]
    key = key_server.pki.write("disable.key", credential.encode("pem-pkcs8"))
    cert = key_server.pki.write("disable.crt", credential.cert_pem(), 0o644)
    settings = key_server.settings(sslcert=str(cert), sslkey=str(key))

    with pytest.raises(aiopgtls.ServerRejectedError, match="certificate"):
        await aiopgtls.connect(**settings, sslcertmode="disable")
    connection = await aiopgtls.connect(**settings, sslcertmode="allow")
    async with connection:
        assert await client_serial(connection) == credential.serial


async def handshake_exchange(
    port: int, provider: aiopgtls.ContextProvider, settings: Mapping[str, Any]
) -> Any:
    """Handshake with the provider's context and return the recorded certificate exchange."""
    context = await context_for(provider, settings)
    async with await raw_tls(port, context) as tls:
        ssl_object = tls.extra(TLSAttribute.ssl_object)
        exchange = certificate_exchange(ssl_object)
        assert client_certificate_requested(ssl_object) == (
            exchange.requested if exchange else None
        )
        return exchange


@pytest.mark.parametrize("tls_version", ["TLSv1.2", "TLSv1.3"])
async def test_certmode_require_records_certificate(
    key_server: KeyServer, tls_version: str
) -> None:
    credential = key_server.credentials["rsa"]
    key = key_server.pki.write("require.key", credential.encode("pem-pkcs8"))
    cert = key_server.pki.write("require.crt", credential.cert_pem(), 0o644)
    settings = key_server.settings(
        sslcert=str(cert),
        sslkey=str(key),
        sslcertmode="require",
        ssl_max_protocol_version=tls_version,
    )

    exchange = await handshake_exchange(key_server.port, LibpqFileProvider(), settings)

    assert exchange.requested
    assert exchange.sent


async def test_certmode_require_without_certificate(key_server: KeyServer) -> None:
    settings = key_server.settings(user="sslonly", sslcertmode="require")

    exchange = await handshake_exchange(key_server.port, LibpqFileProvider(), settings)

    assert exchange.requested
    assert not exchange.sent


async def test_certmode_require_server_never_asks(pg_other_ca: PgServer) -> None:
    settings = {
        "host": "127.0.0.1",
        "port": str(pg_other_ca.port),
        "user": "postgres",
        "sslmode": "require",
        "sslrootcert": str(pg_other_ca.certs.ca_b),
        "sslcertmode": "require",
    }

    exchange = await handshake_exchange(pg_other_ca.port, LibpqFileProvider(), settings)

    assert not exchange.requested
    assert not exchange.sent


async def test_certmode_allow_records_nothing(key_server: KeyServer) -> None:
    settings = key_server.settings(user="sslonly")
    provider = LibpqFileProvider()

    context = await context_for(provider, settings)
    exchange = await handshake_exchange(key_server.port, provider, settings)

    assert not records_certificate_exchange(context)
    assert exchange is None


def test_check_certificate_mode_messages() -> None:
    class Recorded:
        pass

    check_certificate_mode("allow", None)
    with pytest.raises(aiopgtls.AuthenticationError, match="did not request an SSL certificate"):
        check_certificate_mode("require", None)
    with pytest.raises(aiopgtls.ConfigurationError, match="did not record its handshake"):
        check_certificate_mode("require", Recorded())  # type: ignore[arg-type]


async def test_check_certificate_mode_after_handshake(key_server: KeyServer) -> None:
    provider = LibpqFileProvider()
    settings = key_server.settings(user="sslonly", sslcertmode="require")
    context = await context_for(provider, settings)

    async with await raw_tls(key_server.port, context) as tls:
        ssl_object = tls.extra(TLSAttribute.ssl_object)
        with pytest.raises(aiopgtls.AuthenticationError, match="without a valid SSL certificate"):
            check_certificate_mode("require", ssl_object)


def test_record_on_truststore_context() -> None:
    truststore = pytest.importorskip("truststore")
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    record_certificate_exchange(context)

    assert records_certificate_exchange(context)
    assert context._ctx._msg_callback is not None


# --- CRLs along a two-level chain ----------------------------------------------------------------


def crl_cases(server: KeyServer) -> dict[str, str]:
    pki = server.pki
    root_crl = pki.crl("root.crl", pki.root).read_bytes()
    intermediate_crl = pki.crl("intermediate.crl", pki.intermediate).read_bytes()
    revoking = pki.crl("revoking.crl", pki.intermediate, (pki.server_serial,)).read_bytes()
    stranger = trustme.CA()
    foreign = pki.crl("foreign.crl", stranger).read_bytes()
    return {
        "both-levels": str(pki.write("both.crl", root_crl + intermediate_crl, 0o644)),
        "root-level-only": str(pki.write("root-only.crl", root_crl, 0o644)),
        "revoked": str(pki.write("revoked.crl", root_crl + revoking, 0o644)),
        "foreign-ca": str(pki.write("foreign-only.crl", foreign, 0o644)),
        "missing-file": str(pki.directory / "no-such.crl"),
    }


CRL_EXPECTED = {
    "both-levels": True,
    "root-level-only": False,  # the intermediate's level has no CRL
    "revoked": False,
    "foreign-ca": False,
    "missing-file": True,  # a CRL that cannot be loaded is ignored
}


@pytest.mark.parametrize("case", list(CRL_EXPECTED))
async def test_crl_rules_match_libpq(key_server: KeyServer, case: str) -> None:
    settings = key_server.settings(
        user="sslonly", sslmode="require", sslcrl=crl_cases(key_server)[case]
    )

    try:
        connection = await aiopgtls.connect(**settings)
    except aiopgtls.CertificateVerifyError:
        ours = False
    else:
        await connection.aclose()
        ours = True

    assert ours is CRL_EXPECTED[case]
    assert await anyio.to_thread.run_sync(libpq_connects, settings) is ours


async def test_revoked_under_prefer_falls_back_to_plain(key_server: KeyServer) -> None:
    settings = key_server.settings(
        user="plainok", sslmode="prefer", sslcrl=crl_cases(key_server)["revoked"]
    )

    with pytest.warns(aiopgtls.InsecureFallbackWarning, match="continues unencrypted"):
        connection = await aiopgtls.connect(**settings)
    async with connection:
        assert not connection.encrypted
        assert not await server_sees_ssl(connection.stream)


# --- a failed verification under prefer --------------------------------------------------------


async def test_prefer_with_wrong_pin_keeps_both_attempts(key_server: KeyServer) -> None:
    provider = PinnedCertificateProvider(trustme.CA().cert_pem.bytes())
    settings = key_server.settings(user="sslonly", sslmode="prefer")

    with (
        pytest.warns(aiopgtls.InsecureFallbackWarning),
        pytest.raises(aiopgtls.ConnectError) as caught,
    ):
        await aiopgtls.connect(**settings, context_provider=provider)

    attempts = caught.value.attempts
    methods = [attempt.method for attempt in attempts]
    assert methods == [aiopgtls.Method.SSL, aiopgtls.Method.PLAINTEXT]
    assert isinstance(attempts[0].error, aiopgtls.CertificateVerifyError)
    assert isinstance(attempts[1].error, aiopgtls.ServerRejectedError)


async def test_prefer_with_wrong_pin_connects_plain(key_server: KeyServer) -> None:
    provider = PinnedCertificateProvider(trustme.CA().cert_pem.bytes())
    settings = key_server.settings(user="plainok", sslmode="prefer")

    with pytest.warns(aiopgtls.InsecureFallbackWarning):
        connection = await aiopgtls.connect(**settings, context_provider=provider)
    async with connection:
        assert not connection.encrypted


# --- a provider named in the connection string -------------------------------------------------


async def test_sslfactory_in_conninfo_connects(key_server: KeyServer) -> None:
    root = key_server.pki.root_file
    conninfo = (
        f"host=localhost port={key_server.port} user=sslonly dbname=postgres "
        f"sslmode=verify-full sslfactory=aiopgtls._providers:PinnedCertificateProvider "
        f"sslfactoryarg=file:{root}"
    )

    connection = await aiopgtls.connect(conninfo)
    async with connection:
        assert connection.verified is aiopgtls.Verification.CHAIN_AND_NAME


async def test_sslfactory_load_error_names_path(key_server: KeyServer) -> None:
    conninfo = f"host=localhost port={key_server.port} user=sslonly sslfactory=no_such_pkg:Thing"

    with pytest.raises(aiopgtls.ConfigurationError) as caught:
        await aiopgtls.connect(conninfo)

    assert "could not load sslfactory=no_such_pkg:Thing" in str(caught.value)
    assert caught.value.parameter == "sslfactory"
