"""connect() against real PostgreSQL servers: the field cases and the result it returns."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import psycopg
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import aiopgtls

from .conftest import PgServer
from .fakeserver import serve
from .pgquery import query_one_row, server_sees_ssl

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("empty_home")]


def base(server: PgServer, user: str = "app", **extra: str) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": str(server.port),
        "user": user,
        "dbname": "postgres",
        **extra,
    }


def libpq_error(settings: Mapping[str, str]) -> str:
    """Return libpq's error message for ``settings``, which must fail."""
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(**settings).close()  # type: ignore[arg-type]
    return str(caught.value)


# --- require verifies the chain when a root file exists ---------------------------------


async def test_require_with_wrong_root_file_fails(pg_main: PgServer) -> None:
    settings = base(pg_main, sslmode="require", sslrootcert=str(pg_main.certs.ca_b))
    with pytest.raises(aiopgtls.CertificateVerifyError) as caught:
        await aiopgtls.connect(**settings)
    assert "certificate verif" in str(caught.value)
    assert caught.value.sslmode == "require"
    assert "certificate verify failed" in libpq_error(settings)


async def test_require_with_wrong_default_root_file_fails(
    pg_main: PgServer, empty_home: Path
) -> None:
    (empty_home / ".postgresql").mkdir()
    (empty_home / ".postgresql" / "root.crt").write_bytes(pg_main.certs.ca_b.read_bytes())
    with pytest.raises(aiopgtls.CertificateVerifyError):
        await aiopgtls.connect(**base(pg_main, sslmode="require"))


async def test_require_with_missing_root_file_is_unverified(
    pg_main: PgServer, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-root.crt"
    connection = await aiopgtls.connect(
        **base(pg_main, sslmode="require", sslrootcert=str(missing))
    )
    async with connection:
        assert connection.encrypted
        assert connection.verified is aiopgtls.Verification.NONE
        assert await server_sees_ssl(connection.stream)


@pytest.mark.parametrize("sslmode", ["allow", "prefer", "require", "verify-ca", "verify-full"])
async def test_root_file_without_certificate_is_an_error(
    pg_main: PgServer, tmp_path: Path, sslmode: str
) -> None:
    empty = tmp_path / "empty.crt"
    empty.write_text("this file holds no certificate\n")
    settings = base(pg_main, user="sslonly", sslmode=sslmode, sslrootcert=str(empty))
    with pytest.raises((aiopgtls.ConfigurationError, aiopgtls.ConnectError)) as caught:
        await aiopgtls.connect(**settings)
    assert str(empty) in str(caught.value)


async def test_verify_ca_without_root_file_fails_before_connecting(pg_main: PgServer) -> None:
    with pytest.raises(aiopgtls.ConfigurationError) as caught:
        await aiopgtls.connect(**base(pg_main, sslmode="verify-ca"))
    message = str(caught.value)
    assert "root.crt" in message
    assert "does not exist" in message
    assert "sslmode" in message  # the hint names the fix


# --- verify-ca never checks the name; verify-full does, with or without SNI -------------


def other_name(server: PgServer, sslmode: str, **extra: str) -> dict[str, Any]:
    return base(
        server,
        host="wrong.example.test",
        hostaddr="127.0.0.1",
        sslmode=sslmode,
        sslrootcert=str(server.certs.ca_a),
        **extra,
    )


async def test_verify_ca_ignores_host_name(pg_main: PgServer) -> None:
    connection = await aiopgtls.connect(**other_name(pg_main, "verify-ca"))
    async with connection:
        assert connection.verified is aiopgtls.Verification.CHAIN


@pytest.mark.parametrize("sslsni", ["1", "0"])
async def test_verify_full_names_both_names(pg_main: PgServer, sslsni: str) -> None:
    settings = other_name(pg_main, "verify-full", sslsni=sslsni)
    with pytest.raises(aiopgtls.HostnameMismatchError) as caught:
        await aiopgtls.connect(**settings)
    message = str(caught.value)
    assert '"wrong.example.test"' in message
    assert "localhost" in message  # the certificate's first name
    assert "does not match host name" in libpq_error(settings)


async def test_verify_full_with_matching_name(pg_main: PgServer) -> None:
    settings = base(
        pg_main,
        host="db.example.test",
        hostaddr="127.0.0.1",
        sslmode="verify-full",
        sslrootcert=str(pg_main.certs.ca_a),
    )
    connection = await aiopgtls.connect(**settings)
    async with connection:
        assert connection.verified is aiopgtls.Verification.CHAIN_AND_NAME
        assert connection.peer_certificate is not None


async def test_verify_full_through_intermediate(pg_chain: PgServer) -> None:
    settings = base(
        pg_chain,
        user="postgres",
        host="localhost",
        sslmode="verify-full",
        sslrootcert=str(pg_chain.certs.ca_c),
    )
    connection = await aiopgtls.connect(**settings)
    async with connection:
        assert connection.verified is aiopgtls.Verification.CHAIN_AND_NAME


# --- prefer falls back when the TLS session is rejected ----------------------------------


async def test_prefer_falls_back_for_hostnossl_user(pg_main: PgServer) -> None:
    connection = await aiopgtls.connect(**base(pg_main, user="nosslonly", sslmode="prefer"))
    async with connection:
        assert not connection.encrypted
        assert not await server_sees_ssl(connection.stream)
        methods = [(str(a.method), str(a.outcome)) for a in connection.attempts]
        assert methods == [("ssl", "failed"), ("plaintext", "connected")]
        first_error = connection.attempts[0].error
        assert isinstance(first_error, aiopgtls.ServerRejectedError)
        assert first_error.sqlstate == "28000"


async def test_error_after_authentication_is_final(pg_main: PgServer) -> None:
    settings = base(pg_main, sslmode="prefer")
    settings["dbname"] = "no_such_database"
    with pytest.raises(aiopgtls.ServerRejectedError) as caught:
        await aiopgtls.connect(**settings)
    error = caught.value
    assert error.sqlstate == "3D000"
    assert error.after_auth
    assert len(error.attempts) == 1


# --- allow retries with TLS; every failure is kept ------------------------------------


async def test_allow_retries_with_tls_for_hostssl_user(pg_main: PgServer) -> None:
    connection = await aiopgtls.connect(**base(pg_main, user="sslonly", sslmode="allow"))
    async with connection:
        assert connection.encrypted
        assert await server_sees_ssl(connection.stream)
        assert [str(a.method) for a in connection.attempts] == ["plaintext", "ssl"]


async def test_allow_wrong_password_keeps_both_errors(pg_main: PgServer) -> None:
    settings = base(pg_main, user="scram", sslmode="allow", password="not-the-password")
    with pytest.raises(aiopgtls.ServerRejectedError) as caught:
        await aiopgtls.connect(**settings)
    error = caught.value
    assert [str(a.method) for a in error.attempts] == ["plaintext", "ssl"]
    assert all(isinstance(a.error, aiopgtls.ServerRejectedError) for a in error.attempts)
    assert [getattr(a.error, "sqlstate", None) for a in error.attempts] == ["28P01", "28P01"]
    text = str(error)
    assert text.count("password authentication failed") == 2
    assert "not-the-password" not in text
    assert "not-the-password" not in repr(error)
    assert libpq_error(settings).count("password authentication failed") == 2


# --- authentication methods and the result object --------------------------------------------


@pytest.mark.parametrize("user", ["scram", "md5user", "pwuser"])
@pytest.mark.parametrize("sslmode", ["disable", "require"])
async def test_password_methods(pg_main: PgServer, user: str, sslmode: str) -> None:
    settings = base(pg_main, user=user, sslmode=sslmode, password=pg_main.password(user))
    connection = await aiopgtls.connect(**settings)
    async with connection:
        row = await query_one_row(connection.stream, "SELECT current_user")
        assert row == [user]


async def test_channel_binding_required_over_tls(pg_main: PgServer) -> None:
    settings = base(
        pg_main,
        user="scram",
        sslmode="require",
        channel_binding="require",
        password=pg_main.password("scram"),
    )
    connection = await aiopgtls.connect(**settings)
    async with connection:
        assert connection.encrypted


async def test_channel_binding_required_without_tls_fails(pg_main: PgServer) -> None:
    settings = base(
        pg_main,
        user="scram",
        sslmode="disable",
        channel_binding="require",
        password=pg_main.password("scram"),
    )
    with pytest.raises(aiopgtls.AuthenticationError, match="channel binding"):
        await aiopgtls.connect(**settings)


async def test_client_certificate_authentication(pg_main: PgServer) -> None:
    certs = pg_main.certs
    settings = base(
        pg_main,
        user=certs.client_user,
        sslmode="require",
        sslcert=str(certs.client.cert),
        sslkey=str(certs.client.key),
    )
    connection = await aiopgtls.connect(**settings)
    async with connection:
        assert connection.encrypted


async def test_result_describes_the_session(pg_main: PgServer) -> None:
    settings = base(
        pg_main,
        sslmode="verify-full",
        host="localhost",
        sslrootcert=str(pg_main.certs.ca_a),
        application_name="aiopgtls-test",
    )
    connection = await aiopgtls.connect(**settings)
    async with connection:
        assert connection.tls_version in ("TLSv1.2", "TLSv1.3")
        assert connection.cipher
        assert connection.server_parameters["application_name"] == "aiopgtls-test"
        version = connection.server_parameters["server_version"]
        assert version.split(".")[0] == str(pg_main.version)
        assert connection.backend_key is not None
        row = await query_one_row(connection.stream, "SELECT pg_backend_pid()")
        assert row == [str(connection.backend_key.process_id)]
        assert connection.attempts[0].duration > 0


async def test_unix_socket_never_uses_tls(pg_main: PgServer) -> None:
    settings: dict[str, Any] = {
        "host": str(pg_main.socket_dir),
        "port": str(pg_main.port),
        "user": "postgres",
        "dbname": "postgres",
        "sslmode": "require",
    }
    connection = await aiopgtls.connect(**settings)
    async with connection:
        assert not connection.encrypted
    with psycopg.connect(**settings) as theirs:
        assert not theirs.pgconn.ssl_in_use


# --- fallback warning and tracing ------------------------------------------------------------


async def test_prefer_wrong_ca_falls_back_with_warning(pg_main: PgServer) -> None:
    events: list[tuple[str, Mapping[str, Any]]] = []
    settings = base(pg_main, sslmode="prefer", sslrootcert=str(pg_main.certs.ca_b))
    with pytest.warns(aiopgtls.InsecureFallbackWarning, match="continues unencrypted"):
        connection = await aiopgtls.connect(
            **settings, trace=lambda name, info: events.append((name, info))
        )
    async with connection:
        assert not connection.encrypted
    names = [name for name, _ in events]
    assert names.index("tls.handshake.failed") < names.index("fallback")
    fallback = dict(events[names.index("fallback")][1])
    assert fallback["reason"] == "handshake-failed"
    assert fallback["new_connection"] is True


async def test_secrets_stay_out_of_logs(
    pg_main: PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiopgtls")
    password = pg_main.password("scram")
    connection = await aiopgtls.connect(
        **base(pg_main, user="scram", sslmode="prefer", password=password)
    )
    await connection.aclose()
    assert caplog.records, "DEBUG logging produced no records"
    assert password not in caplog.text
    assert password not in repr(connection)


async def test_connect_timeout_on_silent_server() -> None:
    """A server that accepts TCP and never replies is scripted, because real servers reply."""

    async def silent(stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream) -> None:
        await anyio.sleep(10)

    async with serve(silent) as server:
        started = time.monotonic()
        with pytest.raises(aiopgtls.ConnectTimeoutError) as caught:
            await aiopgtls.connect(
                host="127.0.0.1",
                port=server.port,
                user="u",
                dbname="d",
                sslmode="require",
                connect_timeout="1",
            )
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 3
    assert server.connections == 1
    assert caught.value.attempts[0].error is caught.value


async def test_closed_port_is_a_tcp_error(pg_main: PgServer) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    with pytest.raises(aiopgtls.TCPConnectError) as caught:
        await aiopgtls.connect(host="127.0.0.1", port=port, user="u", sslmode="prefer")
    assert caught.value.port == port
    assert f"port {port}" in str(caught.value)


# --- sslcertmode through connect() -----------------------------------------------------------


async def test_certmode_require_with_client_certificate(pg_main: PgServer) -> None:
    certs = pg_main.certs
    settings = base(
        pg_main,
        user=certs.client_user,
        sslmode="require",
        sslcertmode="require",
        sslcert=str(certs.client.cert),
        sslkey=str(certs.client.key),
    )
    connection = await aiopgtls.connect(**settings)
    async with connection:
        assert connection.encrypted


async def test_certmode_require_server_never_asks(pg_other_ca: PgServer) -> None:
    settings = base(pg_other_ca, user="postgres", sslmode="require", sslcertmode="require")
    with pytest.raises(aiopgtls.AuthenticationError, match="did not request an SSL certificate"):
        await aiopgtls.connect(**settings)
    assert "server did not request an SSL certificate" in libpq_error(settings)


async def test_certmode_require_without_certificate(pg_main: PgServer) -> None:
    settings = base(pg_main, user="sslonly", sslmode="require", sslcertmode="require")
    with pytest.raises(aiopgtls.AuthenticationError) as caught:
        await aiopgtls.connect(**settings)
    assert len(caught.value.attempts) == 1
    assert "SSL certificate" in libpq_error(settings)
