"""run_startup against real PostgreSQL servers, and against scripted servers for misbehaviour.

The real-server tests use the shared ``main`` server (see conftest.py): users ``postgres``
(trust), ``pwuser`` (password), ``md5user`` (md5) and ``scram`` (scram-sha-256), with TLS on
the CA-A certificate.  One module-scoped server of its own has an Ed25519 certificate, for
the channel binding fallback that libpq lacks.  Scripted streams play what a real server
never does: skipping the SCRAM proof, offering PLUS over plaintext, GSSAPI, early EOF.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import hmac
import ipaddress
import ssl
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from anyio.streams.tls import TLSAttribute, TLSStream
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from aiopgtls._cluster import ClusterFactory, Role, ServerTLS
from aiopgtls._params import ChannelBinding, build_params
from aiopgtls._result import BackendKeyData, StartupResult
from aiopgtls._startup import StartupRequest, format_server_message, run_startup
from aiopgtls.errors import (
    AuthenticationError,
    ChannelBindingUnavailable,
    ConfigurationError,
    ConnectionClosedError,
    ProtocolViolationError,
    ServerRejectedError,
)

if TYPE_CHECKING:
    from tests.conftest import PgServer

ErrorT = TypeVar("ErrorT", bound=Exception)

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
WRONG_PASSWORD = "definitely-wrong-password"


# -- helpers: streams, messages ------------------------------------------------------------


class RecordingStream(anyio.abc.ByteStream):
    """Passes everything through to ``inner`` and keeps a copy of what the client sent."""

    def __init__(self, inner: anyio.abc.ByteStream) -> None:
        self.inner = inner
        self.sent: list[bytes] = []

    async def send(self, item: bytes) -> None:
        self.sent.append(bytes(item))
        await self.inner.send(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


def frontend_messages(sent: list[bytes]) -> list[tuple[bytes, bytes]]:
    """Split what the client sent after the StartupMessage into (type, payload) pairs."""
    data = b"".join(sent[1:])
    messages = []
    while data:
        (length,) = struct.unpack("!I", data[1:5])
        messages.append((data[:1], data[5 : 1 + length]))
        data = data[1 + length :]
    return messages


def sasl_initial_response(sent: list[bytes]) -> tuple[str, bytes]:
    """Return the mechanism and client-first-message of the SASLInitialResponse sent."""
    type_byte, payload = frontend_messages(sent)[0]
    assert type_byte == b"p"
    mechanism, rest = payload.split(b"\x00", 1)
    (length,) = struct.unpack("!i", rest[:4])
    return mechanism.decode(), rest[4 : 4 + length]


def request_for(user: str, password: str | None = None, **options: Any) -> StartupRequest:
    return StartupRequest(user=user, dbname="postgres", password=password, **options)


def client_context(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


@dataclass
class Session:
    stream: RecordingStream
    peer_certificate: bytes | None


async def open_session(
    host: str, port: int, *, tls: ssl.SSLContext | None, hostname: str = "localhost"
) -> Session:
    """Connect, and for TLS send SSLRequest, read the 'S' and run the handshake."""
    stream: anyio.abc.ByteStream = await anyio.connect_tcp(host, port)
    if tls is None:
        return Session(RecordingStream(stream), None)

    try:
        await stream.send(SSL_REQUEST)
        assert await stream.receive(1) == b"S"
        stream = await TLSStream.wrap(
            stream, hostname=hostname, ssl_context=tls, standard_compatible=False
        )
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
    der = stream.extra(TLSAttribute.peer_certificate_binary)
    assert der is not None
    return Session(RecordingStream(stream), der)


async def startup(
    server: PgServer,
    request: StartupRequest,
    *,
    tls: bool,
) -> tuple[StartupResult, Session]:
    """Run the startup over plaintext or TLS and close the stream afterwards."""
    context = client_context(server.certs.ca_a) if tls else None
    session = await open_session(server.host, server.port, tls=context)
    async with session.stream:
        if session.peer_certificate is not None:
            request = dataclasses.replace(request, tls_peer_certificate=session.peer_certificate)
        result = await run_startup(session.stream, request)
    return result, session


async def startup_error(
    server: PgServer, request: StartupRequest, expected: type[ErrorT], *, tls: bool
) -> tuple[ErrorT, Session]:
    """Run a startup that must fail with ``expected``; return the error and the session."""
    context = client_context(server.certs.ca_a) if tls else None
    session = await open_session(server.host, server.port, tls=context)
    async with session.stream:
        if session.peer_certificate is not None:
            request = dataclasses.replace(request, tls_peer_certificate=session.peer_certificate)
        with pytest.raises(expected) as info:
            await run_startup(session.stream, request)
    return info.value, session


# -- real server: authentication methods ---------------------------------------------------


@pytest.mark.server
@pytest.mark.anyio
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_trust_session_state(pg_main: PgServer, tls: bool) -> None:
    request = request_for("postgres", application_name="startup-test")

    result, _ = await startup(pg_main, request, tls=tls)

    parameters = result.server_parameters
    assert parameters["server_version"].split(".")[0] == str(pg_main.version)
    assert parameters["application_name"] == "startup-test"
    assert parameters["session_authorization"] == "postgres"
    # PostgreSQL 14 and later report in_hot_standby; this server is a primary.
    assert parameters["in_hot_standby"] == "off"
    assert isinstance(result.backend_key, BackendKeyData)
    assert result.backend_key.process_id > 0
    assert len(result.backend_key.secret_key) == 4


@pytest.mark.server
@pytest.mark.anyio
async def test_stream_ready_after_startup(pg_main: PgServer) -> None:
    session = await open_session(pg_main.host, pg_main.port, tls=None)
    async with session.stream:
        await run_startup(session.stream, request_for("postgres"))

        # A simple Query must get its RowDescription ('T') as the very next message.
        query = b"SELECT 1\x00"
        await session.stream.send(b"Q" + struct.pack("!I", len(query) + 4) + query)
        reply = await session.stream.receive(1)

    assert reply == b"T"


@pytest.mark.server
@pytest.mark.anyio
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("user", ["pwuser", "md5user", "scram"])
async def test_password_methods_succeed(pg_main: PgServer, user: str, tls: bool) -> None:
    request = request_for(user, pg_main.password(user))

    result, session = await startup(pg_main, request, tls=tls)

    assert result.server_parameters["session_authorization"] == user
    assert result.backend_key is not None
    assert len(frontend_messages(session.stream.sent)) == (2 if user == "scram" else 1)


@pytest.mark.server
@pytest.mark.anyio
async def test_md5_sends_digest(pg_main: PgServer) -> None:
    password = pg_main.password("md5user")

    _, session = await startup(pg_main, request_for("md5user", password), tls=False)

    ((type_byte, payload),) = frontend_messages(session.stream.sent)
    assert type_byte == b"p"
    assert payload.startswith(b"md5")
    assert len(payload) == len(b"md5") + 32 + 1
    assert password.encode() not in payload


@pytest.mark.server
@pytest.mark.anyio
@pytest.mark.parametrize("user", ["pwuser", "md5user", "scram"])
async def test_wrong_password_rejected(pg_main: PgServer, user: str) -> None:
    error, _ = await startup_error(
        pg_main, request_for(user, WRONG_PASSWORD), ServerRejectedError, tls=False
    )

    assert error.sqlstate == "28P01"
    assert error.after_auth is False
    assert error.message == f'FATAL:  password authentication failed for user "{user}"'
    assert error.fields["S"] == "FATAL"
    assert WRONG_PASSWORD not in str(error)


@pytest.mark.server
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("user", "method"), [("pwuser", "password"), ("md5user", "md5"), ("scram", "SCRAM-SHA-256")]
)
async def test_missing_password(pg_main: PgServer, user: str, method: str) -> None:
    error, session = await startup_error(pg_main, request_for(user), AuthenticationError, tls=False)

    assert f'{method} authentication for user "{user}"' in error.message
    assert "password=" in error.message
    assert frontend_messages(session.stream.sent) == []


@pytest.mark.server
@pytest.mark.anyio
async def test_missing_database_after_auth(pg_main: PgServer) -> None:
    request = StartupRequest(user="postgres", dbname="no_such_database")

    error, _ = await startup_error(pg_main, request, ServerRejectedError, tls=False)

    assert error.sqlstate == "3D000"
    assert error.after_auth is True
    assert error.message == 'FATAL:  database "no_such_database" does not exist'


@pytest.mark.server
@pytest.mark.anyio
async def test_options_parameter_applied(pg_main: PgServer) -> None:
    request = request_for("postgres", startup_parameters={"DateStyle": "German, DMY"})

    result, _ = await startup(pg_main, request, tls=False)

    assert result.server_parameters["DateStyle"] == "German, DMY"


# -- real server: SCRAM and channel binding ------------------------------------------------


@pytest.mark.server
@pytest.mark.anyio
@pytest.mark.parametrize("channel_binding", [ChannelBinding.PREFER, ChannelBinding.REQUIRE])
async def test_scram_plus_over_tls(pg_main: PgServer, channel_binding: ChannelBinding) -> None:
    request = request_for("scram", pg_main.password("scram"), channel_binding=channel_binding)

    result, session = await startup(pg_main, request, tls=True)

    mechanism, client_first = sasl_initial_response(session.stream.sent)
    assert mechanism == "SCRAM-SHA-256-PLUS"
    assert client_first.startswith(b"p=tls-server-end-point,,n=,r=")
    assert result.server_parameters["session_authorization"] == "scram"


@pytest.mark.server
@pytest.mark.anyio
async def test_scram_binding_disabled_over_tls(pg_main: PgServer) -> None:
    request = request_for(
        "scram", pg_main.password("scram"), channel_binding=ChannelBinding.DISABLE
    )

    _, session = await startup(pg_main, request, tls=True)

    mechanism, client_first = sasl_initial_response(session.stream.sent)
    assert mechanism == "SCRAM-SHA-256"
    assert client_first.startswith(b"n,,n=,r=")


@pytest.mark.server
@pytest.mark.anyio
async def test_scram_plain_over_plaintext(pg_main: PgServer) -> None:
    _, session = await startup(pg_main, request_for("scram", pg_main.password("scram")), tls=False)

    mechanism, client_first = sasl_initial_response(session.stream.sent)
    assert mechanism == "SCRAM-SHA-256"
    assert client_first.startswith(b"n,,n=,r=")


@pytest.mark.server
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("scram", "channel binding required, but SSL not in use"),
        ("postgres", "channel binding required, but server authenticated client without"),
        ("pwuser", "channel binding required but not supported by server's authentication"),
    ],
)
async def test_require_fails_over_plaintext(pg_main: PgServer, user: str, message: str) -> None:
    password = pg_main.password(user) if user != "postgres" else None
    request = request_for(user, password, channel_binding=ChannelBinding.REQUIRE)

    error, session = await startup_error(pg_main, request, AuthenticationError, tls=False)

    assert message in error.message
    # No password, digest or SCRAM message left the client.
    assert frontend_messages(session.stream.sent) == []


@pytest.mark.server
@pytest.mark.anyio
@pytest.mark.parametrize("user", ["pwuser", "md5user"])
async def test_require_refuses_password_over_tls(pg_main: PgServer, user: str) -> None:
    request = request_for(user, pg_main.password(user), channel_binding=ChannelBinding.REQUIRE)

    error, session = await startup_error(pg_main, request, AuthenticationError, tls=True)

    assert "channel binding required but not supported" in error.message
    assert frontend_messages(session.stream.sent) == []


@pytest.mark.server
@pytest.mark.anyio
async def test_require_trust_over_tls(pg_main: PgServer) -> None:
    request = request_for("postgres", channel_binding=ChannelBinding.REQUIRE)

    error, _ = await startup_error(pg_main, request, AuthenticationError, tls=True)

    assert "server authenticated client without channel binding" in error.message


@pytest.mark.server
@pytest.mark.anyio
async def test_wrong_password_over_tls_plus(pg_main: PgServer) -> None:
    error, session = await startup_error(
        pg_main, request_for("scram", WRONG_PASSWORD), ServerRejectedError, tls=True
    )

    assert error.sqlstate == "28P01"
    assert error.after_auth is False
    assert sasl_initial_response(session.stream.sent)[0] == "SCRAM-SHA-256-PLUS"


@pytest.mark.server
@pytest.mark.anyio
async def test_request_from_params(pg_main: PgServer) -> None:
    params = build_params(
        {
            "host": pg_main.host,
            "port": pg_main.port,
            "user": "scram",
            "dbname": "postgres",
            "password": pg_main.password("scram"),
            "channel_binding": "require",
            "application_name": "from-params",
        }
    )
    session = await open_session(pg_main.host, pg_main.port, tls=client_context(pg_main.certs.ca_a))
    async with session.stream:
        request = StartupRequest.from_params(params, tls_peer_certificate=session.peer_certificate)
        result = await run_startup(session.stream, request)

    assert result.server_parameters["application_name"] == "from-params"
    assert pg_main.password("scram") not in repr(request)


# -- real server with an Ed25519 certificate -----------------------------------------------


@dataclass(frozen=True)
class Ed25519Server:
    host: str
    port: int
    ca_file: Path
    password: str


def write_ed25519_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed Ed25519 certificate for localhost and 127.0.0.1, and its key."""
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, None)
    )
    cert_file = directory / "ed25519.crt"
    key_file = directory / "ed25519.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def ed25519_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ed25519Server]:
    cert_file, key_file = write_ed25519_certificate(tmp_path_factory.mktemp("ed25519"))
    role = Role("scram", "ed25519-scram-secret")
    hba = ("host all scram 127.0.0.1/32 scram-sha-256",)
    with ClusterFactory(version=15) as factory:
        cluster = factory.create("ed25519", hba, tls=ServerTLS(cert_file, key_file))
        cluster.start()
        cluster.create_role(role)
        assert role.password is not None
        yield Ed25519Server("127.0.0.1", cluster.port, cert_file, role.password)


@pytest.mark.server
@pytest.mark.anyio
async def test_ed25519_prefer_falls_back(ed25519_server: Ed25519Server) -> None:
    server = ed25519_server
    session = await open_session(server.host, server.port, tls=client_context(server.ca_file))
    async with session.stream:
        request = request_for(
            "scram", server.password, tls_peer_certificate=session.peer_certificate
        )
        result = await run_startup(session.stream, request)

    # libpq fails here; this client skips channel binding, which the server accepts.
    mechanism, client_first = sasl_initial_response(session.stream.sent)
    assert mechanism == "SCRAM-SHA-256"
    assert client_first.startswith(b"n,,n=,r=")
    assert result.server_parameters["session_authorization"] == "scram"


@pytest.mark.server
@pytest.mark.anyio
async def test_ed25519_require_names_algorithm(ed25519_server: Ed25519Server) -> None:
    server = ed25519_server
    session = await open_session(server.host, server.port, tls=client_context(server.ca_file))
    async with session.stream:
        request = request_for(
            "scram",
            server.password,
            channel_binding=ChannelBinding.REQUIRE,
            tls_peer_certificate=session.peer_certificate,
        )
        with pytest.raises(ChannelBindingUnavailable, match="Ed25519") as info:
            await run_startup(session.stream, request)

    assert info.value.algorithm == "Ed25519"
    assert frontend_messages(session.stream.sent) == []


# -- scripted servers ----------------------------------------------------------------------


def backend(type_byte: bytes, payload: bytes) -> bytes:
    return type_byte + struct.pack("!I", len(payload) + 4) + payload


def auth(code: int, extra: bytes = b"") -> bytes:
    return backend(b"R", struct.pack("!i", code) + extra)


def fields(**values: str) -> bytes:
    return b"".join(code.encode() + value.encode() + b"\x00" for code, value in values.items())


SESSION = (
    backend(b"S", b"server_version\x0099.0\x00")
    + backend(b"K", struct.pack("!i", 77) + b"wxyz")
    + backend(b"Z", b"I")
)

Reply = bytes | Callable[[bytes], bytes]


class ScriptedStream(anyio.abc.ByteStream):
    """A server stand-in: each client message gets the next scripted reply appended."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.sent: list[bytes] = []
        self.unread = bytearray()

    async def send(self, item: bytes) -> None:
        await anyio.lowlevel.checkpoint()
        self.sent.append(bytes(item))
        if self.replies:
            reply = self.replies.pop(0)
            self.unread += reply(bytes(item)) if callable(reply) else reply

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.lowlevel.checkpoint()
        if not self.unread:
            raise anyio.EndOfStream
        chunk = bytes(self.unread[:max_bytes])
        del self.unread[:max_bytes]
        return chunk

    async def send_eof(self) -> None:
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()


class FakeScramServer:
    """The server side of SCRAM-SHA-256 for ``password``, with optional misbehaviour."""

    salt = b"0123456789abcdef"
    iterations = 4096

    def __init__(self, password: str) -> None:
        self.salted = hashlib.pbkdf2_hmac("sha256", password.encode(), self.salt, self.iterations)
        self.client_first_bare = ""
        self.server_first = ""

    def first(self, message: bytes) -> bytes:
        payload = message[5:]
        _, rest = payload.split(b"\x00", 1)
        client_first = rest[4:].decode()
        self.client_first_bare = client_first.split(",", 2)[2]
        nonce = self.client_first_bare.split("r=", 1)[1]
        salt = base64.b64encode(self.salt).decode()
        self.server_first = f"r={nonce}server,s={salt},i={self.iterations}"
        return auth(11, self.server_first.encode())

    def signature(self, message: bytes) -> bytes:
        client_final = message[5:].decode()
        without_proof = client_final.rsplit(",p=", 1)[0]
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}"
        server_key = hmac.new(self.salted, b"Server Key", "sha256").digest()
        return hmac.new(server_key, auth_message.encode(), "sha256").digest()

    def final(self, message: bytes) -> bytes:
        verifier = base64.b64encode(self.signature(message))
        return auth(12, b"v=" + verifier) + auth(0) + SESSION

    def final_with_wrong_signature(self, message: bytes) -> bytes:
        verifier = base64.b64encode(bytes(32))
        return auth(12, b"v=" + verifier) + auth(0) + SESSION


PLAIN_REQUEST = StartupRequest(user="alice", dbname="app", password="pw")


@pytest.mark.anyio
async def test_scripted_scram_success() -> None:
    server = FakeScramServer("pw")
    stream = ScriptedStream(auth(10, b"SCRAM-SHA-256\x00\x00"), server.first, server.final)

    result = await run_startup(stream, PLAIN_REQUEST)

    assert result.server_parameters == {"server_version": "99.0"}
    assert result.backend_key == BackendKeyData(77, b"wxyz")
    assert len(stream.sent) == 3


@pytest.mark.anyio
async def test_scripted_ok_before_scram_final() -> None:
    server = FakeScramServer("pw")
    stream = ScriptedStream(auth(10, b"SCRAM-SHA-256\x00\x00"), server.first, auth(0) + SESSION)

    with pytest.raises(AuthenticationError, match="before finishing the SCRAM exchange"):
        await run_startup(stream, PLAIN_REQUEST)


@pytest.mark.anyio
async def test_scripted_wrong_server_signature() -> None:
    server = FakeScramServer("pw")
    stream = ScriptedStream(
        auth(10, b"SCRAM-SHA-256\x00\x00"), server.first, server.final_with_wrong_signature
    )

    with pytest.raises(AuthenticationError, match="server signature does not match"):
        await run_startup(stream, PLAIN_REQUEST)


@pytest.mark.anyio
async def test_scripted_plus_over_plaintext() -> None:
    stream = ScriptedStream(auth(10, b"SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00"))

    with pytest.raises(AuthenticationError, match="PLUS authentication over a non-SSL"):
        await run_startup(stream, PLAIN_REQUEST)

    assert len(stream.sent) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(("code", "method"), [(7, "GSSAPI"), (9, "SSPI"), (2, "Kerberos V5")])
async def test_scripted_unsupported_method(code: int, method: str) -> None:
    stream = ScriptedStream(auth(code))

    with pytest.raises(AuthenticationError, match=f"method {method} .request code {code}"):
        await run_startup(stream, PLAIN_REQUEST)


@pytest.mark.anyio
async def test_scripted_require_with_gssapi() -> None:
    stream = ScriptedStream(auth(7))
    request = StartupRequest(user="alice", dbname="app", channel_binding=ChannelBinding.REQUIRE)

    with pytest.raises(AuthenticationError, match="not supported by server's authentication"):
        await run_startup(stream, request)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("script", "waiting_for"),
    [
        ((b"",), "an authentication request"),
        ((auth(0),), "ReadyForQuery"),
        ((auth(0) + backend(b"S", b"a\x00b\x00")[:6],), "ReadyForQuery"),
        ((auth(3), b""), "an authentication request"),
    ],
)
async def test_scripted_eof(script: tuple[bytes, ...], waiting_for: str) -> None:
    stream = ScriptedStream(*script)

    with pytest.raises(ConnectionClosedError) as info:
        await run_startup(stream, PLAIN_REQUEST)

    assert "server closed the connection unexpectedly" in info.value.message
    assert waiting_for in info.value.message
    assert isinstance(info.value.__cause__, anyio.EndOfStream)


@pytest.mark.anyio
async def test_scripted_broken_stream() -> None:
    class Broken(ScriptedStream):
        async def send(self, item: bytes) -> None:
            raise anyio.BrokenResourceError

    with pytest.raises(ConnectionClosedError, match="while sending"):
        await run_startup(Broken(), PLAIN_REQUEST)


@pytest.mark.anyio
async def test_scripted_bytes_past_ready_kept() -> None:
    stream = ScriptedStream(auth(0) + SESSION + b"after-ready")

    result = await run_startup(stream, PLAIN_REQUEST)

    assert result.unread + bytes(stream.unread) == b"after-ready"


@pytest.mark.anyio
async def test_scripted_notices_collected() -> None:
    notice_before = backend(b"N", fields(S="NOTICE", M="before") + b"\x00")
    notice_after = backend(b"N", fields(S="WARNING", M="after") + b"\x00")
    stream = ScriptedStream(notice_before + auth(0) + notice_after + SESSION)

    result = await run_startup(stream, PLAIN_REQUEST)

    assert [notice["M"] for notice in result.notices] == ["before", "after"]


@pytest.mark.anyio
async def test_scripted_error_after_auth() -> None:
    error = fields(S="FATAL", V="FATAL", C="53300", M="too many", D="detail text", H="hint text")
    stream = ScriptedStream(auth(0) + backend(b"E", error + b"\x00"))

    with pytest.raises(ServerRejectedError) as info:
        await run_startup(stream, PLAIN_REQUEST)

    assert info.value.after_auth is True
    assert info.value.sqlstate == "53300"
    assert info.value.message == "FATAL:  too many\nDETAIL:  detail text\nHINT:  hint text"


@pytest.mark.anyio
async def test_scripted_negotiate_protocol_tolerated() -> None:
    negotiate = backend(b"v", struct.pack("!ii", 0, 1) + b"_pq_.test\x00")
    stream = ScriptedStream(negotiate + auth(0) + SESSION)
    request = StartupRequest(user="alice", dbname="app", startup_parameters={"_pq_.test": "1"})

    result = await run_startup(stream, request)

    assert result.backend_key is not None


@pytest.mark.anyio
async def test_scripted_negotiate_newer_minor() -> None:
    stream = ScriptedStream(backend(b"v", struct.pack("!ii", 2, 0)))

    with pytest.raises(ProtocolViolationError, match=r"protocol 3\.2"):
        await run_startup(stream, PLAIN_REQUEST)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ((backend(b"S", b"a\x00b\x00"),), "ParameterStatus message from the server during auth"),
        ((auth(0) + auth(0),), "AuthenticationOk message from the server after"),
        ((auth(11, b"r=x"),), "AuthenticationSASLContinue without AuthenticationSASL"),
        ((auth(12, b"v=x"),), "AuthenticationSASLFinal without AuthenticationSASL"),
        ((backend(b"D", b""),), "message type b'D'"),
        ((b"E" + struct.pack("!I", 10_000_000),), "invalid length 10000000"),
    ],
)
async def test_scripted_protocol_violations(script: tuple[bytes, ...], problem: str) -> None:
    stream = ScriptedStream(*script)

    with pytest.raises(ProtocolViolationError, match=problem):
        await run_startup(stream, PLAIN_REQUEST)


@pytest.mark.anyio
async def test_scripted_second_sasl_request() -> None:
    server = FakeScramServer("pw")
    mechanisms = auth(10, b"SCRAM-SHA-256\x00\x00")
    stream = ScriptedStream(mechanisms, lambda message: server.first(message) + mechanisms)

    with pytest.raises(ProtocolViolationError, match="second AuthenticationSASL"):
        await run_startup(stream, PLAIN_REQUEST)


@pytest.mark.anyio
async def test_scripted_md5_digest() -> None:
    salt = b"\x01\x02\x03\x04"
    stream = ScriptedStream(auth(5, salt), auth(0) + SESSION)

    await run_startup(stream, PLAIN_REQUEST)

    inner = hashlib.md5(b"pw" + b"alice").hexdigest()
    expected = "md5" + hashlib.md5(inner.encode() + salt).hexdigest()
    assert stream.sent[1] == b"p" + struct.pack("!I", 4 + 36) + expected.encode() + b"\x00"


# -- request and message helpers -----------------------------------------------------------


def test_request_repr_hides_secrets() -> None:
    request = StartupRequest(user="alice", dbname="app", password="s3cret-value")

    assert "s3cret" not in repr(request)
    assert "alice" in repr(request)


def test_request_nul_rejected_before_io() -> None:
    stream = ScriptedStream()
    request = StartupRequest(user="alice", dbname="app\x00x")

    with pytest.raises(ConfigurationError, match="NUL"):
        anyio.run(run_startup, stream, request)

    assert stream.sent == []


def test_request_password_nul_rejected() -> None:
    with pytest.raises(ConfigurationError, match="invalid password") as info:
        StartupRequest(user="alice", dbname="app", password="sec\x00ret")

    assert info.value.parameter == "password"
    assert info.value.value is None
    assert "ret" not in str(info.value)


def test_request_password_surrogate_rejected() -> None:
    with pytest.raises(ConfigurationError, match="lone surrogate") as info:
        StartupRequest(user="alice", dbname="app", password="pass\udcffword")

    assert info.value.parameter == "password"
    assert info.value.value is None


def test_format_server_message_fallbacks() -> None:
    assert format_server_message({"V": "FATAL", "M": "gone"}) == "FATAL:  gone"
    assert format_server_message({}) == "ERROR:  (no message from the server)"
