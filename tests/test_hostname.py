"""Tests of the verify-full host name check (libpq's rules), including a comparison with libpq 18.

The comparison with libpq runs psycopg's bundled libpq against a fake PostgreSQL TLS endpoint:
it replies 'S' to SSLRequest, presents the certificate under test and replies to the
StartupMessage with an ErrorResponse.  The host name check is done by the client right after
the handshake, so only the certificate matters and no PostgreSQL server is needed.  libpq's
error then tells whether the name check passed (it got to the ErrorResponse) or failed.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import re
import socket
import ssl
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import anyio
import anyio.abc
import anyio.from_thread
import pytest
from anyio.streams.tls import TLSStream
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from aiopgtls._hostname import check_peer_name, inet_aton, is_ip_address
from aiopgtls.errors import CertificateVerifyError, HostnameMismatchError

psycopg = pytest.importorskip("psycopg")

# --- certificates ------------------------------------------------------------------------

_NOW = datetime.datetime.now(datetime.timezone.utc)
_CA_KEY = ec.generate_private_key(ec.SECP256R1())
_LEAF_KEY = ec.generate_private_key(ec.SECP256R1())
_CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aiopgtls test CA")])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    return builder.not_valid_before(_NOW - datetime.timedelta(days=1)).not_valid_after(
        _NOW + datetime.timedelta(days=1)
    )


_CA_CERT = _validity(
    x509.CertificateBuilder()
    .subject_name(_CA_NAME)
    .issuer_name(_CA_NAME)
    .public_key(_CA_KEY.public_key())
    .serial_number(1)
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
).sign(_CA_KEY, hashes.SHA256())


def make_cert(
    common_names: Sequence[str] = (),
    alt_names: Sequence[x509.GeneralName] = (),
    raw_alt_names: bytes | None = None,
) -> x509.Certificate:
    """Issue a server certificate from the test CA.

    ``raw_alt_names`` is the DER of a GeneralNames sequence, for entries cryptography will not
    build (an embedded NUL, an iPAddress of odd length).  Without any common name the subject
    holds only an organization name.
    """
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, name) for name in common_names]
    subject = x509.Name(attributes or [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")])
    builder = _validity(
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(_CA_NAME)
        .public_key(_LEAF_KEY.public_key())
        .serial_number(x509.random_serial_number())
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    if raw_alt_names is not None:
        raw = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, raw_alt_names)
        builder = builder.add_extension(raw, critical=False)
    return builder.sign(_CA_KEY, hashes.SHA256())


def dns(name: str) -> x509.DNSName:
    return x509.DNSName(name)


def ip(address: str) -> x509.IPAddress:
    if "/" in address:
        return x509.IPAddress(ipaddress.ip_network(address))
    return x509.IPAddress(ipaddress.ip_address(address))


def raw_general_names(*entries: tuple[int, bytes]) -> bytes:
    """Encode GeneralNames from (context tag number, content) pairs; short lengths only."""
    body = b"".join(bytes((0x80 | tag, len(content))) + content for tag, content in entries)
    return bytes((0x30, len(body))) + body


def mismatch(cert: x509.Certificate, host: str) -> str | None:
    """Return the mismatch message, or None when the certificate names the host."""
    try:
        check_peer_name(cert, host)
    except HostnameMismatchError as exc:
        return str(exc)
    return None


# --- examples ----------------------------------------------------------------------------


def test_dns_alt_name_matches_case_insensitively() -> None:
    cert = make_cert(alt_names=[dns("DB.Example.COM")])

    check_peer_name(cert, "db.example.com")
    check_peer_name(cert, "db.EXAMPLE.com")


def test_mismatch_names_certificate_and_host() -> None:
    cert = make_cert(alt_names=[dns("db.example.com")])

    message = mismatch(cert, "other.example.com")

    assert message is not None
    assert message.startswith(
        'server certificate for "db.example.com" does not match host name "other.example.com"'
    )
    assert "sslmode=verify-ca" in message


def test_mismatch_is_a_certificate_verify_error() -> None:
    cert = make_cert(alt_names=[dns("db.example.com")])

    with pytest.raises(CertificateVerifyError):
        check_peer_name(cert, "other.example.com")


def test_mismatch_counts_and_lists_other_names() -> None:
    names = [f"db{i}.example.com" for i in range(7)]
    cert = make_cert(alt_names=[*map(dns, names), ip("10.0.0.1")])

    message = mismatch(cert, "other.example.com")

    assert message is not None
    assert message.startswith(
        'server certificate for "db0.example.com" (and 7 other names) does not match host '
        'name "other.example.com"'
    )
    assert '"db4.example.com"' in message
    assert '"db5.example.com"' not in message
    assert "and 3 more" in message


def test_mismatch_singular_other_name() -> None:
    cert = make_cert(alt_names=[dns("a.example.com"), dns("b.example.com")])

    message = mismatch(cert, "c.example.com")

    assert message is not None
    assert '"a.example.com" (and 1 other name) does not match' in message


def test_common_name_only_certificate() -> None:
    cert = make_cert(common_names=["db.example.com"])

    check_peer_name(cert, "DB.example.com")
    assert mismatch(cert, "other.example.com") is not None


def test_common_name_ignored_when_dns_alt_names_exist() -> None:
    cert = make_cert(common_names=["db.example.com"], alt_names=[dns("other.example.com")])

    message = mismatch(cert, "db.example.com")

    assert message is not None
    assert message.startswith('server certificate for "other.example.com" does not match')
    assert 'common name "db.example.com" matches but is ignored' in message


def test_only_first_common_name_counts() -> None:
    cert = make_cert(common_names=["first.example.com", "second.example.com"])

    check_peer_name(cert, "first.example.com")
    message = mismatch(cert, "second.example.com")

    assert message is not None
    assert message.startswith('server certificate for "first.example.com" does not match')


def test_ip_host_uses_cn_beside_dns_names() -> None:
    # RFC 6125 and Python's ssl module forbid this; libpq allows it on purpose.
    cert = make_cert(common_names=["127.0.0.1"], alt_names=[dns("db.example.com")])

    check_peer_name(cert, "127.0.0.1")


def test_ip_host_ignores_cn_with_ip_names() -> None:
    cert = make_cert(common_names=["127.0.0.1"], alt_names=[ip("10.0.0.1")])

    message = mismatch(cert, "127.0.0.1")

    assert message is not None
    assert message.startswith('server certificate for "10.0.0.1" does not match')


def test_dns_host_uses_cn_with_ip_names() -> None:
    cert = make_cert(common_names=["db.example.com"], alt_names=[ip("10.0.0.1")])

    check_peer_name(cert, "db.example.com")


def test_dns_name_matches_ip_host_as_text() -> None:
    cert = make_cert(alt_names=[dns("127.0.0.1")])

    check_peer_name(cert, "127.0.0.1")
    message = mismatch(cert, "127.1")

    assert message is not None
    assert message.startswith('server certificate for "127.0.0.1" does not match host name')


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "0x7f.0.0.1", "0177.0.0.01", "2130706433"])
def test_ipv4_alt_name_matches_inet_aton_spellings(host: str) -> None:
    cert = make_cert(alt_names=[ip("127.0.0.1")])

    check_peer_name(cert, host)


@pytest.mark.parametrize("host", ["::1", "0:0::1", "0:0:0:0:0:0:0:1", "0000::0001"])
def test_ipv6_alt_name_matches_any_spelling(host: str) -> None:
    cert = make_cert(alt_names=[ip("::1")])

    check_peer_name(cert, host)


def test_ipv4_alt_name_never_matches_ipv6_host() -> None:
    cert = make_cert(alt_names=[ip("127.0.0.1")])

    assert mismatch(cert, "::ffff:127.0.0.1") is not None


def test_ip_name_invalid_length_error() -> None:
    cert = make_cert(alt_names=[ip("10.0.0.0/8")])

    message = mismatch(cert, "db.example.com")

    assert message is not None
    assert message.startswith("certificate contains IP address with invalid length 8")


def test_match_before_invalid_entry_wins() -> None:
    cert = make_cert(raw_alt_names=raw_general_names((2, b"db"), (7, b"\x01\x02\x03")))

    check_peer_name(cert, "db")
    message = mismatch(cert, "other")

    assert message is not None
    assert "invalid length 3" in message


def test_embedded_null_in_alt_name_is_an_error() -> None:
    cert = make_cert(raw_alt_names=raw_general_names((2, b"db.example.com\x00.evil.test")))

    message = mismatch(cert, "db.example.com")

    assert message is not None
    assert message.startswith("SSL certificate's name contains embedded null")
    assert "db.example.com\\x00.evil.test" in message


def test_certificate_without_names() -> None:
    cert = make_cert()

    message = mismatch(cert, "db.example.com")

    assert message is not None
    assert message.startswith("could not get server's host name from server certificate")


def test_empty_host_is_rejected() -> None:
    cert = make_cert(alt_names=[dns("db.example.com")])

    with pytest.raises(HostnameMismatchError, match="host name must be specified"):
        check_peer_name(cert, "")


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("*.example.com", "db.example.com", True),
        ("*.example.com", "DB.EXAMPLE.COM", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", ".example.com", False),
        # libpq's dot test stops one character short, so '*' may cover "x.".
        ("*.example.com", "x..example.com", True),
        ("f*.example.com", "foo.example.com", False),
        ("*", "db", False),
        ("*.", "db.", False),
        ("*.b", "a.b", True),
        ("*.*.example.com", "a.b.example.com", False),
    ],
)
def test_wildcard_rules(pattern: str, host: str, expected: bool) -> None:
    cert = make_cert(alt_names=[dns(pattern)])

    assert (mismatch(cert, host) is None) is expected


# --- inet_aton and host type --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017.0.0.1", "15.0.0.1"),
        ("10.1.65535", "10.1.255.255"),
        ("1.16777215", "1.255.255.255"),
        ("4294967295", "255.255.255.255"),
        ("1.2.3.4 trailing text", "1.2.3.4"),
        ("08", None),
        ("0x", None),
        ("256.1.1.1", None),
        ("1.16777216", None),
        ("4294967296", None),
        ("1.2.3.4.5", None),
        ("1.", None),
        (".1", None),
        (" 1", None),
        ("", None),
        ("\u0661.\u0662.\u0663.\u0664", None),  # Arabic-Indic digits
    ],
)
def test_inet_aton_examples(text: str, expected: str | None) -> None:
    parsed = inet_aton(text)

    assert (None if parsed is None else str(ipaddress.IPv4Address(parsed))) == expected


def _platform_inet_aton(text: str) -> bytes | None:
    try:
        return socket.inet_aton(text)
    except (OSError, ValueError):
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="compares with glibc")
@settings(max_examples=2000)
@given(st.text(alphabet="0123456789xXabfAF.\t \n+-Z", max_size=24))
def test_inet_aton_agrees_with_glibc(text: str) -> None:
    assert inet_aton(text) == _platform_inet_aton(text)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.1", True),
        ("::1", True),
        ("0:0::1", True),
        ("db.example.com", False),
        ("1.2.3.", False),
    ],
)
def test_is_ip_address(host: str, expected: bool) -> None:
    assert is_ip_address(host) is expected


# --- properties ----------------------------------------------------------------------------

_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)
_SUFFIX = st.lists(_LABEL, min_size=1, max_size=3).map(".".join)


def _mixed_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips, strict=True))


@st.composite
def _case_variant(draw: st.DrawFn, strategy: st.SearchStrategy[str]) -> tuple[str, str]:
    text = draw(strategy)
    return text, _mixed_case(draw, text)


@given(_case_variant(_SUFFIX))
def test_exact_name_ignores_case(names: tuple[str, str]) -> None:
    name, host = names
    cert = make_cert(alt_names=[dns(name)])

    check_peer_name(cert, host)


@given(_LABEL, _case_variant(_SUFFIX))
def test_wildcard_covers_exactly_one_label(label: str, suffixes: tuple[str, str]) -> None:
    suffix, spelled = suffixes
    cert = make_cert(alt_names=[dns(f"*.{suffix}")])

    check_peer_name(cert, f"{label}.{spelled}")
    assert mismatch(cert, f"{label}.{label}.{spelled}") is not None
    assert mismatch(cert, spelled) is not None


@st.composite
def _ipv4_spelling(draw: st.DrawFn) -> tuple[int, str]:
    """Draw an IPv4 address and one of inet_aton's spellings of it."""
    value = draw(st.integers(0, 2**32 - 1))
    octets = list(value.to_bytes(4, "big"))
    parts_count = draw(st.integers(1, 4))
    parts = octets[: parts_count - 1]
    parts.append(int.from_bytes(bytes(octets[parts_count - 1 :]), "big"))
    formats = st.sampled_from(["{:d}", "0x{:x}", "0X{:X}", "0{:o}"])
    return value, ".".join(draw(formats).format(part) for part in parts)


@given(_ipv4_spelling())
def test_ipv4_alt_name_matches_every_spelling(address: tuple[int, str]) -> None:
    value, host = address
    cert = make_cert(alt_names=[x509.IPAddress(ipaddress.IPv4Address(value))])
    other = make_cert(alt_names=[x509.IPAddress(ipaddress.IPv4Address(value ^ 1))])

    check_peer_name(cert, host)
    assert mismatch(other, host) is not None


@st.composite
def _ipv6_spelling(draw: st.DrawFn) -> tuple[ipaddress.IPv6Address, str]:
    address = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
    style = draw(st.sampled_from(["compressed", "exploded", "upper", "embedded-ipv4"]))
    if style == "compressed":
        return address, address.compressed
    if style == "exploded":
        return address, address.exploded
    if style == "upper":
        return address, address.compressed.upper()
    head = address.exploded.rsplit(":", 2)[0]
    return address, f"{head}:{ipaddress.IPv4Address(address.packed[12:])}"


@given(_ipv6_spelling())
def test_ipv6_alt_name_matches_every_spelling(
    address: tuple[ipaddress.IPv6Address, str],
) -> None:
    value, host = address
    cert = make_cert(alt_names=[x509.IPAddress(value)])

    check_peer_name(cert, host)


# --- comparison with libpq 18 ------------------------------------------------------------


class FakePostgresTLSServer:
    """A loopback endpoint that speaks just enough PostgreSQL for libpq to check a certificate.

    It reads SSLRequest, replies 'S', completes the handshake with the certificate given to
    present() and replies to the StartupMessage with ErrorResponse 28000 "no such user".
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.context: ssl.SSLContext | None = None
        self.port = 0

    def present(self, cert: x509.Certificate) -> None:
        chain = self.directory / "server.pem"
        key = _LEAF_KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain)
        self.context = context

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        self.port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
        async with listener:
            task_status.started()
            await listener.serve(self._handle)

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
                await tls.receive()
                fields = b"SFATAL\0VFATAL\0C28000\0Mno such user\0\0"
                await tls.send(b"E" + (len(fields) + 4).to_bytes(4, "big") + fields)


def libpq_mismatch(server: FakePostgresTLSServer, ca_file: Path, host: str) -> str | None:
    """Return libpq's name check error for ``host``, or None when libpq accepted the name."""
    try:
        psycopg.connect(
            host=host,
            hostaddr="127.0.0.1",
            port=server.port,
            user="test",
            dbname="test",
            sslmode="verify-full",
            sslrootcert=str(ca_file),
            gssencmode="disable",
            connect_timeout=10,
        )
    except psycopg.OperationalError as exc:
        text = str(exc)
    else:
        raise AssertionError("the fake server never accepts a connection")

    if "no such user" in text:
        return None
    found = re.search(r"port \d+ failed: (.*)", text)
    assert found is not None, text
    return found.group(1)


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def libpq_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FakePostgresTLSServer, Path]]:
    """Run the fake server on each anyio backend in a portal thread; psycopg blocks meanwhile."""
    directory = tmp_path_factory.mktemp("libpq")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(_CA_CERT.public_bytes(serialization.Encoding.PEM))
    server = FakePostgresTLSServer(directory)

    with anyio.from_thread.start_blocking_portal(request.param) as portal:
        future, _ = portal.start_task(server.serve)
        yield server, ca_file
        future.cancel()


_CERTIFICATES: dict[str, Callable[[], x509.Certificate]] = {
    "dns": lambda: make_cert(alt_names=[dns("db.example.com")]),
    "dns-upper": lambda: make_cert(alt_names=[dns("DB.Example.COM")]),
    "wildcard": lambda: make_cert(alt_names=[dns("*.example.com")]),
    "wildcard-and-apex": lambda: make_cert(alt_names=[dns("*.example.com"), dns("example.com")]),
    "partial-wildcard": lambda: make_cert(alt_names=[dns("d*.example.com")]),
    "cn-only": lambda: make_cert(common_names=["db.example.com"]),
    "cn-wildcard": lambda: make_cert(common_names=["*.example.com"]),
    "cn-ip": lambda: make_cert(common_names=["127.0.0.1"]),
    "two-cns": lambda: make_cert(common_names=["other.example.com", "db.example.com"]),
    "ip4": lambda: make_cert(alt_names=[ip("127.0.0.1")]),
    "ip6": lambda: make_cert(alt_names=[ip("::1")]),
    "ip4-and-ip6": lambda: make_cert(alt_names=[ip("10.0.0.1"), ip("::1"), ip("127.0.0.1")]),
    "dns-with-cn-ip": lambda: make_cert(
        common_names=["127.0.0.1"], alt_names=[dns("db.example.com")]
    ),
    "dns-holding-ip": lambda: make_cert(alt_names=[dns("127.0.0.1")]),
    "ip-with-cn-dns": lambda: make_cert(
        common_names=["db.example.com"], alt_names=[ip("10.0.0.1")]
    ),
    "ip-with-cn-ip": lambda: make_cert(common_names=["127.0.0.1"], alt_names=[ip("10.0.0.1")]),
    "dns-with-cn-dns": lambda: make_cert(
        common_names=["db.example.com"], alt_names=[dns("other.example.com")]
    ),
    "no-names": lambda: make_cert(),
    "ip-network": lambda: make_cert(alt_names=[dns("db.example.com"), ip("10.0.0.0/8")]),
    "embedded-null": lambda: make_cert(
        raw_alt_names=raw_general_names((2, b"db.example.com\x00.evil"))
    ),
    "odd-ip-length": lambda: make_cert(raw_alt_names=raw_general_names((7, b"\x7f\x00\x00"))),
    "mapped-ipv6": lambda: make_cert(alt_names=[ip("::ffff:127.0.0.1"), ip("2001:db8::1:0:0:1")]),
    "compatible-ipv6": lambda: make_cert(alt_names=[ip("::2"), ip("::1.2.3.4"), ip("1::")]),
}

_HOSTS = [
    "db.example.com",
    "DB.EXAMPLE.com",
    "x.example.com",
    "a.b.example.com",
    "x..example.com",
    "example.com",
    "127.0.0.1",
    "127.1",
    "0x7f.1",
    "017.0.0.1",
    "::1",
    "0:0::1",
    "::ffff:127.0.0.1",
]


@pytest.mark.parametrize("certificate", sorted(_CERTIFICATES))
def test_matches_libpq_on_table(
    libpq_server: tuple[FakePostgresTLSServer, Path], certificate: str
) -> None:
    server, ca_file = libpq_server
    cert = _CERTIFICATES[certificate]()
    server.present(cert)

    for host in _HOSTS:
        expected = libpq_mismatch(server, ca_file, host)
        ours = mismatch(cert, host)

        assert (ours is None) == (expected is None), (host, ours, expected)
        if expected is not None and ours is not None:
            assert ours.startswith(expected), (host, ours, expected)


_NAME = st.text(alphabet="ab.*", min_size=1, max_size=6)
_HOST = st.one_of(
    st.text(alphabet="ab.*A", min_size=1, max_size=6),
    st.sampled_from(["127.0.0.1", "127.1", "0x7f.0.0.1", "::1", "0::1", "::2", "a.127.0.0.1"]),
)
_ALT_NAME = st.one_of(_NAME.map(dns), st.sampled_from(["127.0.0.1", "::1", "127.0.0.2"]).map(ip))


@settings(max_examples=100, deadline=None)
@given(
    common_names=st.lists(st.one_of(_NAME, st.just("127.0.0.1")), max_size=2),
    alt_names=st.lists(_ALT_NAME, max_size=3),
    host=_HOST,
)
def test_matches_libpq_on_random_names(
    libpq_server: tuple[FakePostgresTLSServer, Path],
    common_names: list[str],
    alt_names: list[x509.GeneralName],
    host: str,
) -> None:
    server, ca_file = libpq_server
    cert = make_cert(common_names=common_names, alt_names=alt_names)
    server.present(cert)

    expected = libpq_mismatch(server, ca_file, host)
    ours = mismatch(cert, host)

    assert (ours is None) == (expected is None), (ours, expected)
    if expected is not None and ours is not None:
        assert ours.startswith(expected), (ours, expected)
