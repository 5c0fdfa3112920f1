"""SCRAM-SHA-256 and SCRAM-SHA-256-PLUS client (RFC 5802, RFC 7677) as PostgreSQL uses it.

Nothing here does I/O.  ``select_mechanism`` applies libpq's rules for choosing between
the mechanisms the server offers and for the channel binding flag of the GS2 header.
``ScramClient`` then produces the client messages and checks the server's.

As in libpq, the client-first message carries an empty user name (``n=,``) because the
server takes the user from the StartupMessage, and the password goes through SASLprep when
it can and is used as raw UTF-8 otherwise.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from collections.abc import Sequence

from ._channel_binding import CHANNEL_BINDING_TYPE, tls_server_end_point
from ._params import ChannelBinding
from .errors import AuthenticationError, ChannelBindingUnavailable, ProtocolViolationError

SCRAM_SHA_256 = "SCRAM-SHA-256"
SCRAM_SHA_256_PLUS = "SCRAM-SHA-256-PLUS"

# libpq sends 18 random bytes, base64-encoded to 24 characters.
NONCE_BYTES = 18

# PostgreSQL's scram_iterations setting accepts 1 to INT_MAX.
MAX_ITERATIONS = 2**31 - 1

_KEY_LENGTH = hashlib.sha256().digest_size


# -- mechanism and GS2 header --------------------------------------------------------------


class Gs2Flag(str, enum.Enum):
    """The gs2-cbind-flag that opens the GS2 header."""

    NO_BINDING = "n"  # the client does not support channel binding, or it is disabled
    SERVER_LACKS_BINDING = "y"  # the client could bind, but the server did not offer PLUS
    BINDING = "p"  # channel binding is used (SCRAM-SHA-256-PLUS)

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class MechanismChoice:
    """The chosen SASL mechanism, its GS2 flag and, for PLUS, the channel binding data."""

    mechanism: str
    flag: Gs2Flag
    binding_data: bytes = dataclasses.field(default=b"", repr=False)
    # Why channel binding was not used although TLS is up and binding was allowed.
    binding_skipped: str | None = None

    @property
    def gs2_header(self) -> bytes:
        """The GS2 header that opens client-first and is repeated, encoded, in client-final."""
        if self.flag is Gs2Flag.BINDING:
            return f"p={CHANNEL_BINDING_TYPE},,".encode()
        return f"{self.flag},,".encode()


def select_mechanism(
    offered: Sequence[str],
    *,
    channel_binding: ChannelBinding,
    tls_peer_certificate: bytes | None,
) -> MechanismChoice:
    """Choose the SCRAM mechanism and GS2 flag for the mechanisms the server ``offered``.

    ``tls_peer_certificate`` is the DER server certificate when the connection uses TLS and
    None otherwise.  The rules are libpq's, with one deliberate difference: under
    ``channel_binding=prefer``, when the certificate's signature algorithm has no hash
    (Ed25519, Ed448), libpq fails while this falls back to SCRAM-SHA-256 with flag ``n``.
    Raises AuthenticationError (or its subclass ChannelBindingUnavailable) when no
    acceptable mechanism remains.
    """
    tls_in_use = tls_peer_certificate is not None
    if channel_binding is ChannelBinding.REQUIRE and not tls_in_use:
        raise AuthenticationError(
            "channel binding required, but SSL not in use; connect with sslmode=require "
            "or stronger, or set channel_binding=prefer"
        )
    if SCRAM_SHA_256_PLUS in offered and not tls_in_use:
        # A server only offers PLUS over TLS, so something stripped TLS on the way.
        raise AuthenticationError(
            "server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection; "
            "a proxy may have removed SSL, so connect with sslmode=require or stronger"
        )
    if not (SCRAM_SHA_256_PLUS in offered or SCRAM_SHA_256 in offered):
        raise AuthenticationError(
            "none of the server's SASL authentication mechanisms are supported: the server "
            f"offered {', '.join(offered) or 'none'}, this client supports {SCRAM_SHA_256} "
            f"and {SCRAM_SHA_256_PLUS}; change the authentication method in pg_hba.conf"
        )

    binding_data, unavailable = _binding_data(channel_binding, tls_peer_certificate)
    if SCRAM_SHA_256_PLUS in offered and channel_binding is not ChannelBinding.DISABLE:
        if binding_data is not None:
            return MechanismChoice(SCRAM_SHA_256_PLUS, Gs2Flag.BINDING, binding_data)
        if unavailable is not None and (
            channel_binding is ChannelBinding.REQUIRE or SCRAM_SHA_256 not in offered
        ):
            raise unavailable

    if channel_binding is ChannelBinding.REQUIRE:
        raise AuthenticationError(
            "channel binding is required, but server did not offer an authentication method "
            f"that supports channel binding (offered: {', '.join(offered)}); use "
            "scram-sha-256 over SSL on the server or set channel_binding=prefer"
        )
    if SCRAM_SHA_256 not in offered:
        raise AuthenticationError(
            f"the server offered only {SCRAM_SHA_256_PLUS}, which needs channel binding, but "
            "channel_binding=disable; set channel_binding=prefer"
        )

    # The flag "y" shows that this client could have bound the channel, so a server that
    # does offer PLUS detects a man in the middle who removed it from the offer.
    can_bind = binding_data is not None
    skipped = None
    if unavailable is not None:
        skipped = unavailable.message
    elif tls_peer_certificate is not None and channel_binding is not ChannelBinding.DISABLE:
        skipped = "the server did not offer SCRAM-SHA-256-PLUS"
    return MechanismChoice(
        SCRAM_SHA_256,
        Gs2Flag.SERVER_LACKS_BINDING if can_bind else Gs2Flag.NO_BINDING,
        binding_skipped=skipped,
    )


def _binding_data(
    channel_binding: ChannelBinding, tls_peer_certificate: bytes | None
) -> tuple[bytes | None, ChannelBindingUnavailable | None]:
    if channel_binding is ChannelBinding.DISABLE or tls_peer_certificate is None:
        return None, None
    try:
        return tls_server_end_point(tls_peer_certificate), None
    except ChannelBindingUnavailable as exc:
        return None, exc


# -- SASLprep ------------------------------------------------------------------------------

_PROHIBITED_OUTPUT = (
    stringprep.in_table_c12,
    stringprep.in_table_c21,
    stringprep.in_table_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
    stringprep.in_table_a1,  # unassigned code points, prohibited for stored strings
)


def saslprep(text: str) -> str | None:
    """Prepare ``text`` with the SASLprep profile of stringprep (RFC 4013).

    Returns None when the result would be empty or would contain prohibited characters.
    Pure ASCII passes through unchanged, as PostgreSQL does.
    """
    if text.isascii():
        return text

    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in text
        if not stringprep.in_table_b1(char)
    )
    if not mapped:
        return None

    # NOTE: RFC 4013 checks the normalized string, but PostgreSQL's src/common/saslprep.c
    # checks the mapped string before normalization.  The server prepares stored passwords
    # with that code, so this checks the same string to derive the same key.
    if any(check(char) for char in mapped for check in _PROHIBITED_OUTPUT):
        return None
    if not _bidi_allowed(mapped):
        return None
    return unicodedata.normalize("NFKC", mapped)


def _bidi_allowed(text: str) -> bool:
    if not any(stringprep.in_table_d1(char) for char in text):
        return True
    if any(stringprep.in_table_d2(char) for char in text):
        return False
    return stringprep.in_table_d1(text[0]) and stringprep.in_table_d1(text[-1])


def password_bytes(password: str) -> bytes:
    """Return the bytes SCRAM hashes: SASLprep output, or the raw UTF-8 when it fails."""
    prepared = saslprep(password)
    return (prepared if prepared is not None else password).encode("utf-8")


# -- SCRAM math (RFC 5802 section 3) ------------------------------------------------------


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


def salted_password(password: bytes, salt: bytes, iterations: int) -> bytes:
    """Compute SaltedPassword := Hi(password, salt, i) with HMAC-SHA-256."""
    return hashlib.pbkdf2_hmac("sha256", password, salt, iterations)


def client_proof(salted: bytes, auth_message: bytes) -> bytes:
    """Compute ClientProof := ClientKey XOR HMAC(H(ClientKey), AuthMessage)."""
    client_key = _hmac(salted, b"Client Key")
    stored_key = hashlib.sha256(client_key).digest()
    signature = _hmac(stored_key, auth_message)
    return bytes(a ^ b for a, b in zip(client_key, signature, strict=True))


def server_signature(salted: bytes, auth_message: bytes) -> bytes:
    """Compute ServerSignature := HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage)."""
    return _hmac(_hmac(salted, b"Server Key"), auth_message)


# -- the client state machine --------------------------------------------------------------


class _State(enum.Enum):
    INITIAL = "initial"
    FIRST_SENT = "client-first sent"
    FINAL_SENT = "client-final sent"
    FINISHED = "finished"


def _malformed(message: str, problem: str) -> ProtocolViolationError:
    return ProtocolViolationError(
        f"malformed SCRAM {message} from the server: {problem}; the server does not follow RFC 5802"
    )


def _attributes(message: str, text: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=" or not (part[0].isascii() and part[0].isalpha()):
            raise _malformed(message, f"attribute {part!r} is not of the form x=value")
        pairs.append((part[0], part[2:]))
    return pairs


def _expect(message: str, pairs: list[tuple[str, str]], index: int, name: str) -> str:
    if len(pairs) <= index or pairs[index][0] != name:
        raise _malformed(message, f'attribute "{name}" expected in position {index + 1}')
    return pairs[index][1]


def _decode_base64(message: str, name: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise _malformed(message, f'attribute "{name}" is not valid base64') from exc


def _parse_iterations(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_ITERATIONS:
        raise _malformed(
            "server-first-message",
            f"invalid iteration count {value!r}, expected 1 to {MAX_ITERATIONS}",
        )
    return int(value)


class ScramClient:
    """One SCRAM-SHA-256(-PLUS) exchange, driven by the caller.

    Call ``client_first_message()``, pass the server-first message to
    ``process_server_first()`` and send what it returns, then pass the server-final message
    to ``process_server_final()``.  ``process_server_first()`` runs PBKDF2 with the server's
    iteration count, so a caller on an event loop may run it in a worker thread.
    Malformed server messages raise ProtocolViolationError; a wrong nonce, a server error
    (``e=``) or a server signature that does not verify raises AuthenticationError.
    """

    def __init__(self, password: str, choice: MechanismChoice, *, nonce: str | None = None) -> None:
        self.choice = choice
        self._password = password_bytes(password)
        self._nonce = nonce or base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode()
        self._state = _State.INITIAL
        self._client_first_bare = f"n=,r={self._nonce}"
        self._auth_message = b""
        self._salted = b""

    def __repr__(self) -> str:
        return f"<ScramClient {self.choice.mechanism} {self._state.value}>"

    @property
    def mechanism(self) -> str:
        return self.choice.mechanism

    @property
    def finished(self) -> bool:
        """Whether the server signature has been verified."""
        return self._state is _State.FINISHED

    @property
    def channel_bound(self) -> bool:
        """Whether the exchange finished with channel binding, which authenticates the server."""
        return self.finished and self.choice.flag is Gs2Flag.BINDING

    def client_first_message(self) -> bytes:
        """Return client-first-message: the GS2 header, an empty user name and the nonce."""
        self._check_state(_State.INITIAL, "client-first-message")
        self._state = _State.FIRST_SENT
        return self.choice.gs2_header + self._client_first_bare.encode()

    def process_server_first(self, data: bytes) -> bytes:
        """Check server-first-message and return client-final-message with the proof."""
        self._check_state(_State.FIRST_SENT, "server-first-message")
        server_first = self._text("server-first-message", data)
        pairs = _attributes("server-first-message", server_first)
        nonce = _expect("server-first-message", pairs, 0, "r")
        salt = _decode_base64(
            "server-first-message", "s", _expect("server-first-message", pairs, 1, "s")
        )
        iterations = _parse_iterations(_expect("server-first-message", pairs, 2, "i"))
        if not salt:
            raise _malformed("server-first-message", "the salt is empty")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise AuthenticationError(
                "invalid SCRAM response from the server: its nonce does not extend the "
                "client nonce (nonce mismatch); the server or something between it and the "
                "client is not following the protocol"
            )

        channel_binding = base64.b64encode(self.choice.gs2_header + self.choice.binding_data)
        final_without_proof = f"c={channel_binding.decode()},r={nonce}"
        self._auth_message = ",".join(
            (self._client_first_bare, server_first, final_without_proof)
        ).encode()
        self._salted = salted_password(self._password, salt, iterations)
        proof = base64.b64encode(client_proof(self._salted, self._auth_message))
        self._state = _State.FINAL_SENT
        return f"{final_without_proof},p={proof.decode()}".encode()

    def process_server_final(self, data: bytes) -> None:
        """Check server-final-message: a server error or the server signature."""
        self._check_state(_State.FINAL_SENT, "server-final-message")
        pairs = _attributes("server-final-message", self._text("server-final-message", data))
        if pairs and pairs[0][0] == "e":
            raise AuthenticationError(
                f"error received from server in SCRAM exchange: {pairs[0][1]}; check the "
                "user name and password"
            )

        encoded = _expect("server-final-message", pairs, 0, "v")
        signature = _decode_base64("server-final-message", "v", encoded)
        if len(signature) != _KEY_LENGTH:
            raise _malformed(
                "server-final-message",
                f"the server signature is {len(signature)} bytes long, expected {_KEY_LENGTH}",
            )
        expected = server_signature(self._salted, self._auth_message)
        if not hmac.compare_digest(signature, expected):
            raise AuthenticationError(
                "server signature does not match: the server could not prove that it knows "
                "the password, so it may not be the server you meant to reach; check the host "
                "and the password stored on the server"
            )
        self._state = _State.FINISHED

    def _check_state(self, expected: _State, step: str) -> None:
        if self._state is not expected:
            raise ProtocolViolationError(
                f"unexpected SCRAM {step} in state {self._state.value}; the server sent the "
                "SASL messages out of order"
            )

    @staticmethod
    def _text(message: str, data: bytes) -> str:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _malformed(message, "it is not valid UTF-8") from exc
        if not text:
            raise _malformed(message, "it is empty")
        return text
