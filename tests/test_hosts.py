"""Host lists, failover and target_session_attrs against real servers, beside libpq."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from psycopg import pq

import aiopgtls
from aiopgtls._cluster import ClusterError, ClusterFactory, PostgresCluster
from aiopgtls._conninfo import make_conninfo

from .conftest import PgServer
from .fakeserver import message, read_startup, serve

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("empty_home")]


def libpq_connect(settings: dict[str, Any]) -> tuple[bool, int | None, str]:
    """Connect with libpq itself (PQconnectdb), not psycopg, which tries each host on its own.

    Returns whether it connected, the port it ended on and its error message.
    """
    conninfo = make_conninfo({key: str(value) for key, value in settings.items()})
    pgconn = pq.PGconn.connect(conninfo.encode())
    try:
        ok = pgconn.status == pq.ConnStatus.OK
        port = int(pgconn.port) if ok else None
        return ok, port, pgconn.error_message.decode("utf-8", "replace")
    finally:
        pgconn.finish()


async def closed_port() -> int:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port: int = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    return port


async def test_closed_first_port_moves_to_second_host(pg_main: PgServer) -> None:
    port = await closed_port()
    connection = await aiopgtls.connect(
        host="127.0.0.1,127.0.0.1", port=f"{port},{pg_main.port}", user="app", dbname="postgres"
    )
    async with connection:
        assert connection.params.port == pg_main.port
        first = connection.attempts[0]
        assert first.port == port
        assert isinstance(first.error, aiopgtls.TCPConnectError)


async def silent(stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream) -> None:
    await anyio.sleep(30)


@pytest.mark.parametrize("sslmode", ["prefer", "require", "allow"])
async def test_silent_server_times_out_once(sslmode: str) -> None:
    """A server that accepts TCP and never replies is scripted, because real servers reply."""
    async with serve(silent) as server:
        started = time.monotonic()
        with pytest.raises(aiopgtls.ConnectTimeoutError):
            await aiopgtls.connect(
                host="127.0.0.1",
                port=server.port,
                user="u",
                dbname="d",
                sslmode=sslmode,
                connect_timeout="2",
            )
        elapsed = time.monotonic() - started
    assert 1.9 < elapsed < 4
    assert server.connections == 1


async def test_silent_first_host_times_out_then_second(pg_main: PgServer) -> None:
    async with serve(silent) as server:
        connection = await aiopgtls.connect(
            host="127.0.0.1,127.0.0.1",
            port=f"{server.port},{pg_main.port}",
            user="app",
            dbname="postgres",
            connect_timeout="2",
        )
        async with connection:
            assert connection.params.port == pg_main.port
            assert isinstance(connection.attempts[0].error, aiopgtls.ConnectTimeoutError)
    assert server.connections == 1


async def test_tls_failure_does_not_fail_over(pg_main: PgServer, pg_other_ca: PgServer) -> None:
    settings: dict[str, Any] = {
        "host": "localhost,localhost",
        "port": f"{pg_other_ca.port},{pg_main.port}",
        "user": "postgres",
        "dbname": "postgres",
        "sslmode": "verify-full",
        "sslrootcert": str(pg_main.certs.ca_a),
    }
    with pytest.raises(aiopgtls.CertificateVerifyError) as caught:
        await aiopgtls.connect(**settings)
    assert {attempt.port for attempt in caught.value.attempts} == {pg_other_ca.port}
    ok, _port, error = await anyio.to_thread.run_sync(libpq_connect, settings)
    assert not ok
    assert f"port {pg_main.port}" not in error


async def test_each_host_is_its_own_name(pg_main: PgServer) -> None:
    port = await closed_port()
    settings: dict[str, Any] = {
        "host": "localhost,wrong.example.test",
        "hostaddr": "127.0.0.1,127.0.0.1",
        "port": f"{port},{pg_main.port}",
        "user": "app",
        "dbname": "postgres",
        "sslmode": "verify-full",
        "sslrootcert": str(pg_main.certs.ca_a),
    }
    with pytest.raises(aiopgtls.HostnameMismatchError) as caught:
        await aiopgtls.connect(**settings)
    assert 'host name "wrong.example.test"' in str(caught.value)
    assert "localhost,wrong" not in str(caught.value)


async def test_cannot_connect_now_moves_to_next_host(pg_main: PgServer) -> None:
    """57P03 comes from a script: a real server sends it only while starting or stopping."""

    async def starting_up(
        stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream
    ) -> None:
        await read_startup(reader)
        fields = b"SFATAL\x00C57P03\x00Mthe database system is starting up\x00\x00"
        await stream.send(message(b"E", fields))
        await anyio.sleep(0.2)

    async with serve(starting_up) as server:
        connection = await aiopgtls.connect(
            host="127.0.0.1,127.0.0.1",
            port=f"{server.port},{pg_main.port}",
            user="app",
            dbname="postgres",
            sslmode="allow",
        )
        async with connection:
            assert connection.params.port == pg_main.port
    assert server.connections == 1  # no encryption retry on 57P03


async def test_load_balance_uses_every_host(pg_main: PgServer, pg_ssl_off: PgServer) -> None:
    ports = set()
    for _ in range(30):
        connection = await aiopgtls.connect(
            host="127.0.0.1,127.0.0.1",
            port=f"{pg_main.port},{pg_ssl_off.port}",
            user="app",
            dbname="postgres",
            load_balance_hosts="random",
        )
        ports.add(connection.params.port)
        await connection.aclose()
    assert ports == {pg_main.port, pg_ssl_off.port}


# --- target_session_attrs on a primary and its hot standby -----------------------------------


@dataclass(frozen=True)
class Replicated:
    primary: PostgresCluster
    standby: PostgresCluster


REPLICATION_HBA = (
    "host replication postgres 127.0.0.1/32 trust",
    "host all all 127.0.0.1/32 trust",
    "host all all ::1/128 trust",
)


@pytest.fixture(scope="module")
def replicated(pg_cluster_factory: ClusterFactory) -> Iterator[Replicated]:
    """A primary and a hot standby made from it with ``pg_basebackup -R``."""
    factory = pg_cluster_factory
    try:
        basebackup_tool = factory.tool_path("pg_basebackup")
    except ClusterError as exc:
        pytest.skip(f"no hot standby for PostgreSQL {factory.version}: {exc}")
    suffix = str(time.monotonic_ns())
    primary = factory.create(f"primary-{suffix}", REPLICATION_HBA)
    primary.start()
    standby = factory.create(f"standby-{suffix}", REPLICATION_HBA)
    shutil.rmtree(standby.data_dir)
    basebackup = [
        str(basebackup_tool),
        "-h",
        "127.0.0.1",
        "-p",
        str(primary.port),
        "-U",
        "postgres",
        "-D",
        str(standby.data_dir),
        "-R",
        "-X",
        "stream",
    ]
    subprocess.run(
        standby._account.command(basebackup), check=True, capture_output=True, timeout=120
    )
    standby.start()
    try:
        yield Replicated(primary, standby)
    finally:
        standby.close()
        primary.close()


def hosts(first: PostgresCluster, second: PostgresCluster, attrs: str) -> dict[str, Any]:
    return {
        "host": "127.0.0.1,127.0.0.1",
        "port": f"{first.port},{second.port}",
        "user": "postgres",
        "dbname": "postgres",
        "target_session_attrs": attrs,
    }


def libpq_port(settings: dict[str, Any]) -> int | None:
    return libpq_connect(settings)[1]


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ("any", "standby"),
        ("read-write", "primary"),
        ("primary", "primary"),
        ("read-only", "standby"),
        ("standby", "standby"),
        ("prefer-standby", "standby"),
    ],
)
async def test_target_session_attrs(replicated: Replicated, attrs: str, expected: str) -> None:
    # The standby comes first in the list, so "any" lands there.
    settings = hosts(replicated.standby, replicated.primary, attrs)
    connection = await aiopgtls.connect(**settings)
    async with connection:
        wanted = getattr(replicated, expected)
        assert connection.params.port == wanted.port
    assert libpq_port(settings) == wanted.port


async def test_mismatch_is_recorded(replicated: Replicated) -> None:
    connection = await aiopgtls.connect(
        **hosts(replicated.standby, replicated.primary, "read-write")
    )
    async with connection:
        errors = [attempt.error for attempt in connection.attempts if attempt.error]
        assert len(errors) == 1
        assert isinstance(errors[0], aiopgtls.TargetSessionAttrsError)
        assert "session is read-only" in errors[0].message
        assert connection.attempts[-1].outcome is aiopgtls.Outcome.CONNECTED


async def test_no_fitting_host_fails(replicated: Replicated) -> None:
    settings = hosts(replicated.primary, replicated.primary, "standby")
    with pytest.raises(aiopgtls.TargetSessionAttrsError, match="not in hot standby"):
        await aiopgtls.connect(**settings)


async def test_prefer_standby_falls_back_to_primary(
    replicated: Replicated, pg_cluster_factory: ClusterFactory
) -> None:
    port = await closed_port()
    settings = hosts(replicated.primary, replicated.primary, "prefer-standby")
    settings["port"] = f"{port},{replicated.primary.port}"
    connection = await aiopgtls.connect(**settings)
    async with connection:
        assert connection.params.port == replicated.primary.port
    assert libpq_port(settings) == replicated.primary.port
