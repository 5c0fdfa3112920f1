"""Direct TLS (``sslnegotiation=direct``): a TLS handshake right away, without SSLRequest.

PostgreSQL 17 added it.  A direct connection must negotiate the ALPN protocol
``postgresql``, and libpq 18 rejects a handshake that selected no ALPN protocol or another
one.  libpq accepts ``direct`` only with sslmode require, verify-ca or verify-full, so that a
pre-17 server can never cause a plaintext fallback.

Real PostgreSQL 17 and 18 servers cover the successful paths, the alert a server sends to a
client that offers ALPN without ``postgresql``, and the comparison with libpq (psycopg's
bundled libpq 18).  A real server always selects ``postgresql`` on a direct connection, so
the servers that select no protocol or another one, or that answer the ClientHello with a
``no_application_protocol`` alert, are scripted on 127.0.0.1.  The scripted TLS server also
records the protocol selected in every handshake, which shows that the client offered
``postgresql`` on both the direct and the SSLRequest path.
"""

from __future__ import annotations

import dataclasses
import ssl
import struct
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import psycopg
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSAttribute, TLSStream

import aiopgtls
from aiopgtls._certs import CertificateSet
from aiopgtls._streams import PrefixedStream

from .conftest import PgServer, ServerFactory
from .fakeserver import Handler, message, read_startup, ready_session, serve
from .libpq_oracle import libpq_outcome
from .pgquery import server_sees_ssl

pytestmark = pytest.mark.anyio

DIRECT_VERSIONS = (17, 18)
PRE_DIRECT_VERSIONS = (15, 16)
ALPN = "postgresql"

SSL_REQUEST = struct.pack("!ii", 8, (1234 << 16) | 5679)
TLS_HANDSHAKE_RECORD = 0x16
# A TLS 1.2-framed fatal alert record: level 2 (fatal), description 120 (no_application_protocol).
NO_APPLICATION_PROTOCOL_ALERT = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 120])

TraceLog = list[tuple[str, dict[str, Any]]]


def settings_for(server: PgServer, **extra: str) -> dict[str, Any]:
    settings = {
        "host": server.host,
        "port": str(server.port),
        "user": "postgres",
        "dbname": "postgres",
        "sslnegotiation": "direct",
        "sslmode": "require",
        "connect_timeout": "10",
    }
    settings.update(extra)
    return settings


def recorder() -> tuple[TraceLog, Callable[[str, Mapping[str, Any]], None]]:
    events: TraceLog = []

    def record(name: str, info: Mapping[str, Any]) -> None:
        events.append((name, dict(info)))

    return events, record


def event_names(events: TraceLog) -> list[str]:
    return [name for name, _ in events]


def alpn_provider(protocols: list[str], ca_file: Path) -> aiopgtls.ContextProvider:
    """Return a context provider that verifies the chain and offers ``protocols``."""

    async def provide(attempt: aiopgtls.AttemptInfo) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(ca_file))
        context.check_hostname = False  # require and verify-ca check no name
        context.set_alpn_protocols(protocols)
        return context

    return provide


# --- real PostgreSQL 17 and 18 ----------------------------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize("version", DIRECT_VERSIONS)
async def test_direct_require_connects(
    pg_server_factory: ServerFactory, version: int, empty_home: Path
) -> None:
    server = pg_server_factory("main", version)
    events, record = recorder()

    connection = await aiopgtls.connect(**settings_for(server), trace=record)
    async with connection:
        seen_by_server = await server_sees_ssl(connection.stream)

    assert connection.alpn_protocol == ALPN
    assert connection.encrypted is True
    assert seen_by_server is True
    assert [(str(a.method), str(a.outcome)) for a in connection.attempts] == [
        ("direct-ssl", "connected")
    ]
    assert "sslrequest.sent" not in event_names(events)
    started = [info for name, info in events if name == "tls.handshake.started"]
    assert [info.get("negotiation") for info in started] == ["direct"]


@pytest.mark.server
@pytest.mark.parametrize("version", DIRECT_VERSIONS)
async def test_direct_verify_full_connects(
    pg_server_factory: ServerFactory, version: int, empty_home: Path
) -> None:
    server = pg_server_factory("main", version)
    settings = settings_for(
        server, host="localhost", sslmode="verify-full", sslrootcert=str(server.certs.ca_a)
    )

    connection = await aiopgtls.connect(**settings)
    async with connection:
        seen_by_server = await server_sees_ssl(connection.stream)

    assert connection.verified is aiopgtls.Verification.CHAIN_AND_NAME
    assert connection.alpn_protocol == ALPN
    assert seen_by_server is True


@pytest.mark.server
@pytest.mark.parametrize("version", DIRECT_VERSIONS)
async def test_direct_hostssl_only_user(
    pg_server_factory: ServerFactory, version: int, empty_home: Path
) -> None:
    server = pg_server_factory("hostssl_only", version)
    settings = settings_for(server, user="scram", password=server.password("scram"))

    connection = await aiopgtls.connect(**settings)
    async with connection:
        seen_by_server = await server_sees_ssl(connection.stream)

    assert connection.server_parameters["session_authorization"] == "scram"
    assert seen_by_server is True


@pytest.mark.server
@pytest.mark.parametrize("version", PRE_DIRECT_VERSIONS)
async def test_direct_pre17_server_fails(
    pg_server_factory: ServerFactory, version: int, empty_home: Path
) -> None:
    # A server before 17 reads the ClientHello as a startup packet and drops the connection.
    server = pg_server_factory("main", version)

    with pytest.raises(aiopgtls.ConnectError) as caught:
        await aiopgtls.connect(**settings_for(server))

    assert [str(a.method) for a in caught.value.attempts] == ["direct-ssl"]


@pytest.mark.server
@pytest.mark.parametrize("negotiation", ["postgres", "direct"])
@pytest.mark.parametrize("version", DIRECT_VERSIONS)
async def test_server_alerts_without_postgresql_alpn(
    pg_server_factory: ServerFactory, version: int, negotiation: str, empty_home: Path
) -> None:
    # PostgreSQL 17+ sends a fatal alert to a client that offers ALPN without "postgresql".
    server = pg_server_factory("main", version)
    provider = alpn_provider(["h2"], server.certs.ca_a)

    with pytest.raises(aiopgtls.TLSHandshakeError) as caught:
        await aiopgtls.connect(
            **settings_for(server, sslnegotiation=negotiation), context_provider=provider
        )

    assert "no application protocol" in str(caught.value).lower().replace("_", " ")


# --- configuration errors before any socket -----------------------------------------------------


async def silent(stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream) -> None:
    await reader.receive()


@pytest.mark.parametrize("sslmode", ["disable", "allow", "prefer"])
async def test_direct_weak_sslmode_rejected(sslmode: str, empty_home: Path) -> None:
    async with serve(silent) as fake:
        with pytest.raises(aiopgtls.ConfigurationError) as caught:
            await aiopgtls.connect(
                host="127.0.0.1",
                port=fake.port,
                user="app",
                sslmode=sslmode,
                sslnegotiation="direct",
            )

    assert fake.connections == 0
    assert f'"{sslmode}"' in str(caught.value)
    assert "sslnegotiation=direct" in str(caught.value)


def test_direct_weak_sslmode_rejected_by_libpq(empty_home: Path) -> None:
    # The same rule in libpq 18, for the comparison above; no server is needed.
    with pytest.raises(psycopg.OperationalError, match='weak sslmode "prefer"'):
        psycopg.connect(host="127.0.0.1", port=1, sslmode="prefer", sslnegotiation="direct")


# --- the same outcomes as libpq ---------------------------------------------------------------

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
ROOTS = ("absent", "right", "wrong")
HOSTS = ("localhost", "127.0.0.1")


async def our_outcome(settings: dict[str, Any]) -> tuple[bool, bool]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", aiopgtls.SecurityWarning)
            connection = await aiopgtls.connect(**settings)
    except (aiopgtls.ConnectError, aiopgtls.ConfigurationError):
        return False, False
    async with connection:
        assert connection.alpn_protocol == ALPN, settings
        assert await server_sees_ssl(connection.stream) is True, settings
        return True, connection.encrypted


@pytest.mark.server
@pytest.mark.parametrize("version", PRE_DIRECT_VERSIONS + DIRECT_VERSIONS)
async def test_direct_outcomes_equal_libpq(
    pg_server_factory: ServerFactory, version: int, empty_home: Path
) -> None:
    server = pg_server_factory("main", version)
    roots = {"right": server.certs.ca_a, "wrong": server.certs.ca_b}
    disagreements = []
    outcomes = set()
    for sslmode in SSLMODES:
        for root in ROOTS:
            for host in HOSTS:
                settings = settings_for(server, sslmode=sslmode, host=host)
                if root != "absent":
                    settings["sslrootcert"] = str(roots[root])
                theirs = await anyio.to_thread.run_sync(libpq_outcome, settings)
                ours = await our_outcome(settings)
                outcomes.add(theirs)
                if ours != theirs:
                    disagreements.append(
                        f"{sslmode:<11} root={root:<6} host={host:<9} libpq={theirs} ours={ours}"
                    )

    assert disagreements == [], "\n".join(disagreements)
    if version in DIRECT_VERSIONS:
        assert outcomes == {(True, True), (False, False)}
    else:
        assert outcomes == {(False, False)}


# --- scripted TLS servers -----------------------------------------------------------------------


@dataclasses.dataclass
class HandshakeLog:
    """What a scripted TLS server saw: one entry per connection, in order."""

    opening: list[str] = dataclasses.field(default_factory=list)  # "tls", "sslrequest", "startup"
    alpn: list[str | None] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)


def server_context(certs: CertificateSet, alpn: list[str] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.server_a.cert, certs.server_a.key)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context


async def read_opening(stream: anyio.abc.SocketStream) -> tuple[str, bytes]:
    """Read what the client sends first and name it: a TLS record, SSLRequest or startup."""
    data = await stream.receive()
    if data[0] == TLS_HANDSHAKE_RECORD:
        return "tls", data
    while len(data) < 8:
        data += await stream.receive()
    return ("sslrequest" if data[:8] == SSL_REQUEST else "startup"), data[8:]


REJECT_PLAINTEXT = message(
    b"E", b"SFATAL\x00VFATAL\x00C28000\x00Mno pg_hba.conf entry (scripted)\x00\x00"
)


def tls_server(context: ssl.SSLContext, log: HandshakeLog) -> Handler:
    """Return a handler that completes TLS by either path and then a trust startup.

    A plaintext startup gets a pg_hba-style rejection, so sslmode=allow moves on to TLS.
    """

    async def handle(stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream) -> None:
        opening, rest = await read_opening(stream)
        log.opening.append(opening)
        if opening == "startup":
            await stream.send(REJECT_PLAINTEXT)
            return
        if opening == "sslrequest":
            await stream.send(b"S")
        transport = PrefixedStream(stream, rest) if rest else stream
        try:
            tls = await TLSStream.wrap(
                transport, server_side=True, ssl_context=context, standard_compatible=False
            )
        except ssl.SSLError as exc:
            log.errors.append(exc.reason or str(exc))
            return
        async with tls:
            log.alpn.append(tls.extra(TLSAttribute.alpn_protocol))
            await read_startup(BufferedByteReceiveStream(tls))
            await tls.send(ready_session())
            await tls.receive()  # Terminate, or the end of the stream

    return handle


def alert_server(log: HandshakeLog) -> Handler:
    """Return a handler that replies to the ClientHello with a no_application_protocol alert."""

    async def handle(stream: anyio.abc.SocketStream, reader: BufferedByteReceiveStream) -> None:
        opening, rest = await read_opening(stream)
        log.opening.append(opening)
        if opening == "sslrequest":
            await stream.send(b"S")
            rest = await stream.receive()
        assert rest[0] == TLS_HANDSHAKE_RECORD
        await stream.send(NO_APPLICATION_PROTOCOL_ALERT)

    return handle


def fake_settings(port: int, certs: CertificateSet, **extra: str) -> dict[str, Any]:
    settings = {
        "host": "localhost",
        "hostaddr": "127.0.0.1",
        "port": str(port),
        "user": "app",
        "dbname": "app",
        "sslmode": "require",
        "sslnegotiation": "direct",
        "sslrootcert": str(certs.ca_a),
        "connect_timeout": "10",
    }
    settings.update(extra)
    return settings


async def test_fake_direct_without_alpn_fails(cert_set: CertificateSet, empty_home: Path) -> None:
    log = HandshakeLog()
    async with serve(tls_server(server_context(cert_set, alpn=None), log)) as fake:
        with pytest.raises(aiopgtls.TLSHandshakeError, match="without ALPN") as caught:
            await aiopgtls.connect(**fake_settings(fake.port, cert_set))

    assert log.opening == ["tls"]
    assert fake.connections == 1
    assert len(caught.value.attempts) == 1


async def test_fake_direct_no_common_alpn_fails(cert_set: CertificateSet, empty_home: Path) -> None:
    # A server that supports only "h2" selects nothing from the client's "postgresql" offer.
    log = HandshakeLog()
    async with serve(tls_server(server_context(cert_set, alpn=["h2"]), log)) as fake:
        with pytest.raises(aiopgtls.TLSHandshakeError, match="without ALPN"):
            await aiopgtls.connect(**fake_settings(fake.port, cert_set))

    assert log.alpn in ([], [None])
    assert fake.connections == 1


async def test_fake_direct_other_alpn_fails(cert_set: CertificateSet, empty_home: Path) -> None:
    # The client offers two protocols and the server prefers the other one.
    log = HandshakeLog()
    provider = alpn_provider([ALPN, "h2"], cert_set.ca_a)
    async with serve(tls_server(server_context(cert_set, alpn=["h2", ALPN]), log)) as fake:
        with pytest.raises(aiopgtls.TLSHandshakeError, match="unexpected ALPN protocol") as caught:
            await aiopgtls.connect(**fake_settings(fake.port, cert_set), context_provider=provider)

    assert '"h2"' in str(caught.value)
    assert log.alpn in ([], ["h2"])
    assert fake.connections == 1


@pytest.mark.parametrize("negotiation", ["postgres", "direct"])
async def test_fake_alpn_alert_fails(
    cert_set: CertificateSet, negotiation: str, empty_home: Path
) -> None:
    log = HandshakeLog()
    settings = fake_settings(0, cert_set, sslnegotiation=negotiation)
    async with serve(alert_server(log)) as fake:
        settings["port"] = str(fake.port)
        with pytest.raises(aiopgtls.TLSHandshakeError) as caught:
            await aiopgtls.connect(**settings)

    assert "no application protocol" in str(caught.value).lower().replace("_", " ")
    assert log.opening == ["tls" if negotiation == "direct" else "sslrequest"]
    assert fake.connections == 1


@pytest.mark.parametrize(
    ("negotiation", "sslmode", "openings"),
    [
        ("postgres", "allow", ["startup", "sslrequest"]),
        ("postgres", "prefer", ["sslrequest"]),
        ("postgres", "require", ["sslrequest"]),
        ("postgres", "verify-ca", ["sslrequest"]),
        ("postgres", "verify-full", ["sslrequest"]),
        ("direct", "require", ["tls"]),
        ("direct", "verify-ca", ["tls"]),
        ("direct", "verify-full", ["tls"]),
    ],
)
async def test_alpn_offered_on_every_handshake(
    cert_set: CertificateSet,
    negotiation: str,
    sslmode: str,
    openings: list[str],
    empty_home: Path,
) -> None:
    log = HandshakeLog()
    settings = fake_settings(0, cert_set, sslnegotiation=negotiation, sslmode=sslmode)
    async with serve(tls_server(server_context(cert_set, alpn=[ALPN]), log)) as fake:
        settings["port"] = str(fake.port)
        connection = await aiopgtls.connect(**settings)
        await connection.aclose()

    # The server selects "postgresql" only if the client offered it.
    assert log.alpn == [ALPN]
    assert log.opening == openings
    assert connection.alpn_protocol == ALPN
    assert connection.encrypted is True
