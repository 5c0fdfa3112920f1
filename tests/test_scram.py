"""SCRAM-SHA-256 math, the client state machine, SASLprep, mechanism choice and the
tls-server-end-point hash."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from aiopgtls._channel_binding import tls_server_end_point
from aiopgtls._params import ChannelBinding
from aiopgtls._scram import (
    SCRAM_SHA_256,
    SCRAM_SHA_256_PLUS,
    Gs2Flag,
    MechanismChoice,
    ScramClient,
    client_proof,
    password_bytes,
    salted_password,
    saslprep,
    select_mechanism,
    server_signature,
)
from aiopgtls.errors import AuthenticationError, ChannelBindingUnavailable, ProtocolViolationError

# RFC 7677 section 3: the SCRAM-SHA-256 exchange for user "user", password "pencil".
RFC_CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_SERVER_NONCE = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SALT = "W22ZaJ0SNY7soEsUEjb6gQ=="
RFC_PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
RFC_SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

PLAIN_CHOICE = MechanismChoice(SCRAM_SHA_256, Gs2Flag.NO_BINDING)


# -- an independent implementation of the RFC 5802 formulas, for expected values -----------


def expected_exchange(
    password: bytes, gs2_and_binding: bytes, client_nonce: str, server_first: str
) -> tuple[str, str]:
    """Return (client-final-message, server-final-message) for an empty user name."""
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password, base64.b64decode(fields["s"]), int(fields["i"])
    )
    without_proof = f"c={base64.b64encode(gs2_and_binding).decode()},r={fields['r']}"
    auth_message = f"n=,r={client_nonce},{server_first},{without_proof}".encode()

    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    signature = hmac.new(stored_key, auth_message, "sha256").digest()
    proof = bytes(k ^ s for k, s in zip(client_key, signature, strict=True))
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    verifier = hmac.new(server_key, auth_message, "sha256").digest()

    client_final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    return client_final, f"v={base64.b64encode(verifier).decode()}"


def server_first_for(client_first: bytes, *, salt: str = RFC_SALT, iterations: int = 4096) -> str:
    nonce = client_first.decode().split("r=", 1)[1]
    return f"r={nonce}srvpart,s={salt},i={iterations}"


# -- RFC 7677 vector -----------------------------------------------------------------------


def test_rfc7677_client_proof() -> None:
    salted = salted_password(b"pencil", base64.b64decode(RFC_SALT), 4096)
    client_final_without_proof = f"c=biws,r={RFC_SERVER_NONCE}"
    auth_message = (
        f"n=user,r={RFC_CLIENT_NONCE},{RFC_SERVER_FIRST},{client_final_without_proof}"
    ).encode()

    proof = client_proof(salted, auth_message)

    assert base64.b64encode(proof).decode() == RFC_PROOF


def test_rfc7677_server_signature() -> None:
    salted = salted_password(b"pencil", base64.b64decode(RFC_SALT), 4096)
    auth_message = (
        f"n=user,r={RFC_CLIENT_NONCE},{RFC_SERVER_FIRST},c=biws,r={RFC_SERVER_NONCE}"
    ).encode()

    signature = server_signature(salted, auth_message)

    assert base64.b64encode(signature).decode() == RFC_SERVER_SIGNATURE


def test_rfc7677_exchange_with_empty_user() -> None:
    client = ScramClient("pencil", PLAIN_CHOICE, nonce=RFC_CLIENT_NONCE)
    expected_final, server_final = expected_exchange(
        b"pencil", b"n,,", RFC_CLIENT_NONCE, RFC_SERVER_FIRST
    )

    first = client.client_first_message()
    final = client.process_server_first(RFC_SERVER_FIRST.encode())
    client.process_server_final(server_final.encode())

    assert first == f"n,,n=,r={RFC_CLIENT_NONCE}".encode()
    assert final.decode() == expected_final
    assert final.startswith(f"c=biws,r={RFC_SERVER_NONCE},p=".encode())
    # The user name is part of AuthMessage, so an empty one changes the proof.
    assert not final.endswith(RFC_PROOF.encode())
    assert client.finished
    assert not client.channel_bound


# -- GS2 header and channel binding in the exchange ----------------------------------------


def test_plus_exchange_binds_channel() -> None:
    binding = hashlib.sha256(b"certificate").digest()
    choice = MechanismChoice(SCRAM_SHA_256_PLUS, Gs2Flag.BINDING, binding)
    client = ScramClient("pencil", choice, nonce="fixednonce")

    first = client.client_first_message()
    server_first = server_first_for(first)
    expected_final, server_final = expected_exchange(
        b"pencil", b"p=tls-server-end-point,," + binding, "fixednonce", server_first
    )
    final = client.process_server_first(server_first.encode())
    client.process_server_final(server_final.encode())

    assert first == b"p=tls-server-end-point,,n=,r=fixednonce"
    assert final.decode() == expected_final
    c_value = final.decode().split(",")[0].removeprefix("c=")
    assert base64.b64decode(c_value) == b"p=tls-server-end-point,," + binding
    assert client.channel_bound


def test_y_flag_exchange() -> None:
    client = ScramClient(
        "pencil", MechanismChoice(SCRAM_SHA_256, Gs2Flag.SERVER_LACKS_BINDING), nonce="n1"
    )

    first = client.client_first_message()
    final = client.process_server_first(server_first_for(first).encode())

    assert first == b"y,,n=,r=n1"
    assert final.startswith(b"c=eSws,")  # base64 of "y,,"


def test_generated_nonce_is_random_base64() -> None:
    first_a = ScramClient("pw", PLAIN_CHOICE).client_first_message()
    first_b = ScramClient("pw", PLAIN_CHOICE).client_first_message()
    nonce_a = first_a.removeprefix(b"n,,n=,r=")

    assert first_a != first_b
    assert len(nonce_a) == 24
    assert len(base64.b64decode(nonce_a, validate=True)) == 18


def test_repr_hides_password() -> None:
    client = ScramClient("hunter2-secret", PLAIN_CHOICE)

    assert "hunter2" not in repr(client)
    assert SCRAM_SHA_256 in repr(client)


# -- server messages the client rejects ----------------------------------------------------


def started_client(password: str = "pencil") -> tuple[ScramClient, bytes]:
    client = ScramClient(password, PLAIN_CHOICE, nonce="clientnonce")
    return client, client.client_first_message()


def test_server_signature_mismatch() -> None:
    client, first = started_client()
    server_first = server_first_for(first)
    _, server_final = expected_exchange(b"other password", b"n,,", "clientnonce", server_first)
    client.process_server_first(server_first.encode())

    with pytest.raises(AuthenticationError, match="server signature does not match"):
        client.process_server_final(server_final.encode())

    assert not client.finished


def test_server_signature_wrong_length() -> None:
    client, first = started_client()
    client.process_server_first(server_first_for(first).encode())

    with pytest.raises(ProtocolViolationError, match="16 bytes long, expected 32"):
        client.process_server_final(b"v=" + base64.b64encode(b"x" * 16))


def test_server_error_attribute() -> None:
    client, first = started_client()
    client.process_server_first(server_first_for(first).encode())

    with pytest.raises(AuthenticationError, match="SCRAM exchange: invalid-proof"):
        client.process_server_final(b"e=invalid-proof")


@pytest.mark.parametrize(
    "nonce",
    ["othernonce-srv", "clientnonce", "clientnonc", "xclientnonce-srv"],
)
def test_nonce_mismatch(nonce: str) -> None:
    client, _ = started_client()

    with pytest.raises(AuthenticationError, match="nonce mismatch"):
        client.process_server_first(f"r={nonce},s={RFC_SALT},i=4096".encode())


@pytest.mark.parametrize("iterations", ["0", "-1", "+5", "abc", "", "٣", str(2**31)])
def test_invalid_iteration_count(iterations: str) -> None:
    client, _ = started_client()
    message = f"r=clientnonce-srv,s={RFC_SALT},i={iterations}"

    with pytest.raises(ProtocolViolationError, match="iteration count"):
        client.process_server_first(message.encode())


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (b"", "empty"),
        (b"\xff\xfe", "UTF-8"),
        (b"m=ext,r=clientnonce-srv,s=W22Z,i=1", 'attribute "r" expected'),
        (b"r=clientnonce-srv,i=4096,s=W22Z", 'attribute "s" expected'),
        (b"r=clientnonce-srv,s=W22Z", 'attribute "i" expected'),
        (b"r=clientnonce-srv,s=***,i=4096", "not valid base64"),
        (b"r=clientnonce-srv,s=,i=4096", "salt is empty"),
        (b"r=clientnonce-srv,,s=W22Z,i=1", "x=value"),
    ],
)
def test_malformed_server_first(message: bytes, problem: str) -> None:
    client, _ = started_client()

    with pytest.raises(ProtocolViolationError, match=problem):
        client.process_server_first(message)


def test_server_first_extensions_ignored() -> None:
    client, first = started_client()
    server_first = server_first_for(first) + ",x=future"
    expected_final, _ = expected_exchange(b"pencil", b"n,,", "clientnonce", server_first)

    assert client.process_server_first(server_first.encode()).decode() == expected_final


def test_out_of_order_messages() -> None:
    client = ScramClient("pencil", PLAIN_CHOICE)

    with pytest.raises(ProtocolViolationError, match="out of order"):
        client.process_server_first(b"r=x,s=eA==,i=1")
    client.client_first_message()
    with pytest.raises(ProtocolViolationError, match="out of order"):
        client.process_server_final(b"v=eA==")
    with pytest.raises(ProtocolViolationError, match="out of order"):
        client.client_first_message()


# -- SASLprep ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "prepared"),
    [
        ("pencil", "pencil"),
        ("I\u00adX", "IX"),  # RFC 4013 example: soft hyphen mapped to nothing
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),  # RFC 4013 example: NFKC
        ("\u2168", "IX"),  # RFC 4013 example: NFKC
        ("a\u00a0b\u2003c", "a b c"),  # non-ASCII spaces become SPACE
        ("caf\u0065\u0301", "caf\u00e9"),  # composed by NFKC
        ("\u0627\u0644\u0639", "\u0627\u0644\u0639"),  # right-to-left only is allowed
        # Pure ASCII is used as is, control characters included, as PostgreSQL does.
        ("\u0007", "\u0007"),
    ],
)
def test_saslprep_output(text: str, prepared: str) -> None:
    assert saslprep(text) == prepared


@pytest.mark.parametrize(
    "text",
    [
        "\u00ad",  # maps to the empty string
        "caf\u00e9\u0007",  # RFC 4013 example: prohibited control character
        "\u00e9\u0000",  # NUL
        "\u00e9\ue000",  # private use
        "\u00e9\U000e0001",  # tagging character
        "\u0627\u0031",  # RFC 4013 example: RandALCat must end the string
        "\u0627a\u0627",  # RandALCat mixed with LCat
        "\u00e9\u0221",  # unassigned in Unicode 3.2
    ],
)
def test_saslprep_prohibited(text: str) -> None:
    assert saslprep(text) is None


def test_password_bytes_raw_fallback() -> None:
    assert password_bytes("\u00e9\u0000x") == "\u00e9\u0000x".encode()
    assert password_bytes("I\u00adX") == b"IX"


# -- test certificates ---------------------------------------------------------------------

_DER = Encoding.DER
SigningHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512
_SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")
_LEGACY_RSA_OIDS = {
    "sha1": bytes.fromhex("06092a864886f70d010105"),
    "md5": bytes.fromhex("06092a864886f70d010104"),
}
_LEGACY_HASHES: dict[str, hashes.HashAlgorithm] = {"sha1": hashes.SHA1(), "md5": hashes.MD5()}


def _builder(public_key: CertificatePublicKeyTypes) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "db.example.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rsa_cert(key: rsa.RSAPrivateKey, algorithm: SigningHash) -> bytes:
    return _builder(key.public_key()).sign(key, algorithm).public_bytes(_DER)


def rsa_pss_cert(key: rsa.RSAPrivateKey, algorithm: SigningHash) -> bytes:
    pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.DIGEST_LENGTH)
    return _builder(key.public_key()).sign(key, algorithm, rsa_padding=pss).public_bytes(_DER)


def ecdsa_cert(curve: ec.EllipticCurve, algorithm: SigningHash) -> bytes:
    key = ec.generate_private_key(curve)
    return _builder(key.public_key()).sign(key, algorithm).public_bytes(_DER)


def ed25519_cert() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return _builder(key.public_key()).sign(key, None).public_bytes(_DER)


def ed448_cert() -> bytes:
    key = ed448.Ed448PrivateKey.generate()
    return _builder(key.public_key()).sign(key, None).public_bytes(_DER)


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def legacy_rsa_cert(key: rsa.RSAPrivateKey, hash_name: str) -> bytes:
    """Build a certificate signed with MD5 or SHA-1, which cryptography no longer signs.

    The TBSCertificate of a SHA-256 certificate gets the legacy algorithm identifier, is
    signed with the legacy hash, and is wrapped into a Certificate by hand.
    """
    oid = _LEGACY_RSA_OIDS[hash_name]
    tbs = x509.load_der_x509_certificate(rsa_cert(key, hashes.SHA256())).tbs_certificate_bytes
    assert tbs.count(_SHA256_WITH_RSA) == 1
    tbs = tbs.replace(_SHA256_WITH_RSA, oid)
    signature = key.sign(tbs, padding.PKCS1v15(), _LEGACY_HASHES[hash_name])
    algorithm = _der(0x30, oid + b"\x05\x00")
    return _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))


# -- tls-server-end-point ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hash_name", "algorithm"),
    [("sha256", hashes.SHA256()), ("sha384", hashes.SHA384()), ("sha512", hashes.SHA512())],
)
def test_end_point_rsa(rsa_key: rsa.RSAPrivateKey, hash_name: str, algorithm: SigningHash) -> None:
    der = rsa_cert(rsa_key, algorithm)

    assert tls_server_end_point(der) == hashlib.new(hash_name, der).digest()


def test_end_point_rsa_pss(rsa_key: rsa.RSAPrivateKey) -> None:
    der = rsa_pss_cert(rsa_key, hashes.SHA384())

    assert tls_server_end_point(der) == hashlib.sha384(der).digest()


@pytest.mark.parametrize(
    ("curve", "algorithm", "hash_name"),
    [
        (ec.SECP384R1(), hashes.SHA384(), "sha384"),
        (ec.SECP256R1(), hashes.SHA256(), "sha256"),
    ],
)
def test_end_point_ecdsa(curve: ec.EllipticCurve, algorithm: SigningHash, hash_name: str) -> None:
    der = ecdsa_cert(curve, algorithm)

    assert tls_server_end_point(der) == hashlib.new(hash_name, der).digest()


@pytest.mark.parametrize("hash_name", ["sha1", "md5"])
def test_end_point_legacy_hash_upgraded(rsa_key: rsa.RSAPrivateKey, hash_name: str) -> None:
    der = legacy_rsa_cert(rsa_key, hash_name)

    algorithm = x509.load_der_x509_certificate(der).signature_hash_algorithm
    assert algorithm is not None
    assert algorithm.name == hash_name
    assert tls_server_end_point(der) == hashlib.sha256(der).digest()


@pytest.mark.parametrize(("make", "name"), [(ed25519_cert, "Ed25519"), (ed448_cert, "Ed448")])
def test_end_point_unavailable_without_hash(make: Callable[[], bytes], name: str) -> None:
    der = make()

    with pytest.raises(ChannelBindingUnavailable, match=name) as info:
        tls_server_end_point(der)

    assert info.value.algorithm == name
    assert isinstance(info.value, AuthenticationError)


def test_end_point_garbage_certificate() -> None:
    with pytest.raises(ChannelBindingUnavailable, match="could not parse") as info:
        tls_server_end_point(b"not a certificate")

    assert info.value.algorithm is None


# -- mechanism choice ----------------------------------------------------------------------

BOTH = (SCRAM_SHA_256_PLUS, SCRAM_SHA_256)
PLAIN_ONLY = (SCRAM_SHA_256,)


@pytest.fixture(scope="module")
def rsa_der(rsa_key: rsa.RSAPrivateKey) -> bytes:
    return rsa_cert(rsa_key, hashes.SHA256())


@pytest.fixture(scope="module")
def ed25519_der() -> bytes:
    return ed25519_cert()


@pytest.mark.parametrize(
    ("offered", "channel_binding", "tls", "mechanism", "flag"),
    [
        (BOTH, ChannelBinding.PREFER, True, SCRAM_SHA_256_PLUS, Gs2Flag.BINDING),
        (BOTH, ChannelBinding.REQUIRE, True, SCRAM_SHA_256_PLUS, Gs2Flag.BINDING),
        (BOTH, ChannelBinding.DISABLE, True, SCRAM_SHA_256, Gs2Flag.NO_BINDING),
        (PLAIN_ONLY, ChannelBinding.PREFER, True, SCRAM_SHA_256, Gs2Flag.SERVER_LACKS_BINDING),
        (PLAIN_ONLY, ChannelBinding.DISABLE, True, SCRAM_SHA_256, Gs2Flag.NO_BINDING),
        (PLAIN_ONLY, ChannelBinding.PREFER, False, SCRAM_SHA_256, Gs2Flag.NO_BINDING),
        (PLAIN_ONLY, ChannelBinding.DISABLE, False, SCRAM_SHA_256, Gs2Flag.NO_BINDING),
        (
            (SCRAM_SHA_256, "OAUTHBEARER"),
            ChannelBinding.PREFER,
            False,
            SCRAM_SHA_256,
            Gs2Flag.NO_BINDING,
        ),
    ],
)
def test_select_mechanism_choices(
    rsa_der: bytes,
    offered: tuple[str, ...],
    channel_binding: ChannelBinding,
    tls: bool,
    mechanism: str,
    flag: Gs2Flag,
) -> None:
    choice = select_mechanism(
        offered, channel_binding=channel_binding, tls_peer_certificate=rsa_der if tls else None
    )

    assert choice.mechanism == mechanism
    assert choice.flag is flag
    if flag is Gs2Flag.BINDING:
        assert choice.binding_data == hashlib.sha256(rsa_der).digest()
        assert choice.gs2_header == b"p=tls-server-end-point,,"
    else:
        assert choice.binding_data == b""
        assert choice.gs2_header == f"{flag.value},,".encode()


@pytest.mark.parametrize(
    ("offered", "channel_binding", "tls", "message"),
    [
        (BOTH, ChannelBinding.REQUIRE, False, "channel binding required, but SSL not in use"),
        (PLAIN_ONLY, ChannelBinding.REQUIRE, False, "channel binding required, but SSL not in use"),
        (
            PLAIN_ONLY,
            ChannelBinding.REQUIRE,
            True,
            "channel binding is required, but server did not offer an authentication method "
            "that supports channel binding",
        ),
        (
            BOTH,
            ChannelBinding.PREFER,
            False,
            "server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection",
        ),
        (
            BOTH,
            ChannelBinding.DISABLE,
            False,
            "server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection",
        ),
        (("OAUTHBEARER",), ChannelBinding.PREFER, True, "none of the server's SASL"),
        ((), ChannelBinding.PREFER, True, "none of the server's SASL"),
        ((SCRAM_SHA_256_PLUS,), ChannelBinding.DISABLE, True, "offered only SCRAM-SHA-256-PLUS"),
    ],
)
def test_select_mechanism_errors(
    rsa_der: bytes,
    offered: tuple[str, ...],
    channel_binding: ChannelBinding,
    tls: bool,
    message: str,
) -> None:
    with pytest.raises(AuthenticationError) as info:
        select_mechanism(
            offered,
            channel_binding=channel_binding,
            tls_peer_certificate=rsa_der if tls else None,
        )

    assert message in info.value.message


def test_ed25519_prefer_falls_back(ed25519_der: bytes) -> None:
    choice = select_mechanism(
        BOTH, channel_binding=ChannelBinding.PREFER, tls_peer_certificate=ed25519_der
    )

    assert choice.mechanism == SCRAM_SHA_256
    assert choice.flag is Gs2Flag.NO_BINDING


def test_ed25519_prefer_without_plus(ed25519_der: bytes) -> None:
    choice = select_mechanism(
        PLAIN_ONLY, channel_binding=ChannelBinding.PREFER, tls_peer_certificate=ed25519_der
    )

    # The client cannot bind this channel, so it must not claim it could ("y").
    assert choice.flag is Gs2Flag.NO_BINDING


def test_ed25519_require_names_algorithm(ed25519_der: bytes) -> None:
    with pytest.raises(ChannelBindingUnavailable, match="Ed25519") as info:
        select_mechanism(
            BOTH, channel_binding=ChannelBinding.REQUIRE, tls_peer_certificate=ed25519_der
        )

    assert info.value.algorithm == "Ed25519"


def test_ed25519_plus_only_prefer(ed25519_der: bytes) -> None:
    with pytest.raises(ChannelBindingUnavailable, match="Ed25519"):
        select_mechanism(
            (SCRAM_SHA_256_PLUS,),
            channel_binding=ChannelBinding.PREFER,
            tls_peer_certificate=ed25519_der,
        )
