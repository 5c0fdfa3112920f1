"""The startup-phase codec: frontend encoders, the backend decoder, and fuzzing of the latter."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiopgtls._result import BackendKeyData
from aiopgtls._wire import (
    MAX_STARTUP_MESSAGE_LENGTH,
    AuthenticationCleartextPassword,
    AuthenticationMD5Password,
    AuthenticationOk,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    AuthenticationUnsupported,
    BackendDecoder,
    BackendMessage,
    ErrorResponse,
    NegotiateProtocolVersion,
    NoticeResponse,
    ParameterStatus,
    ReadyForQuery,
    encode_password_message,
    encode_sasl_initial_response,
    encode_sasl_response,
    encode_startup_message,
    encode_terminate,
)
from aiopgtls.errors import ConfigurationError, ProtocolViolationError


def backend(type_byte: bytes, payload: bytes) -> bytes:
    """Frame ``payload`` as a backend message: type byte, int32 length (itself included)."""
    return type_byte + struct.pack("!I", len(payload) + 4) + payload


def auth(code: int, extra: bytes = b"") -> bytes:
    return backend(b"R", struct.pack("!i", code) + extra)


def decode_all(data: bytes) -> list[BackendMessage]:
    decoder = BackendDecoder()
    messages = decoder.feed(data)
    assert decoder.buffered == 0
    return messages


def parse_startup(message: bytes) -> tuple[int, list[tuple[str, str]]]:
    """Split a StartupMessage into its protocol version and parameter pairs."""
    (length, version) = struct.unpack("!II", message[:8])
    assert length == len(message)
    assert message.endswith(b"\x00\x00")
    fields = message[8:-1].split(b"\x00")[:-1]
    names, values = fields[0::2], fields[1::2]
    return version, [(n.decode(), v.decode()) for n, v in zip(names, values, strict=True)]


# -- frontend encoders ---------------------------------------------------------------------


def test_startup_message_layout() -> None:
    message = encode_startup_message(
        "alice", "app", "demo", {"options": "-c search_path=x", "client_encoding": "UTF8"}
    )

    version, pairs = parse_startup(message)

    assert version == 196608  # 3.0
    assert pairs == [
        ("user", "alice"),
        ("database", "app"),
        ("application_name", "demo"),
        ("options", "-c search_path=x"),
        ("client_encoding", "UTF8"),
    ]


def test_startup_message_optional_fields_left_out() -> None:
    _, pairs = parse_startup(encode_startup_message("alice", "", None))

    assert pairs == [("user", "alice")]


def test_startup_message_utf8_values() -> None:
    _, pairs = parse_startup(encode_startup_message("jörg", "daten", "über"))

    assert pairs[0] == ("user", "jörg")
    assert pairs[2] == ("application_name", "über")


@pytest.mark.parametrize("name", ["user", "database", "application_name", ""])
def test_startup_message_rejects_reserved_names(name: str) -> None:
    with pytest.raises(ConfigurationError, match="startup parameter name") as info:
        encode_startup_message("alice", "app", None, {name: "x"})

    assert info.value.parameter == name


def test_startup_message_rejects_nul() -> None:
    with pytest.raises(ConfigurationError, match="NUL character") as info:
        encode_startup_message("al\x00ice", "app")

    assert info.value.parameter == "user"
    assert info.value.value == "al\x00ice"


def test_password_message_layout() -> None:
    assert encode_password_message("secret") == b"p\x00\x00\x00\x0bsecret\x00"


def test_password_message_nul_hides_value() -> None:
    with pytest.raises(ConfigurationError) as info:
        encode_password_message("se\x00cret")

    assert info.value.value is None
    assert "cret" not in str(info.value)


def test_sasl_initial_response_layout() -> None:
    data = b"n,,n=,r=abc"

    message = encode_sasl_initial_response("SCRAM-SHA-256", data)

    mechanism_end = 5 + len(b"SCRAM-SHA-256\x00")
    assert message[:1] == b"p"
    assert struct.unpack("!I", message[1:5])[0] == len(message) - 1
    assert message[5:mechanism_end] == b"SCRAM-SHA-256\x00"
    assert struct.unpack("!i", message[mechanism_end : mechanism_end + 4])[0] == len(data)
    assert message[mechanism_end + 4 :] == data


def test_sasl_response_layout() -> None:
    assert encode_sasl_response(b"c=biws") == b"p\x00\x00\x00\x0ac=biws"


def test_terminate_layout() -> None:
    assert encode_terminate() == b"X\x00\x00\x00\x04"


# -- backend decoder: each message type ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (auth(0), AuthenticationOk()),
        (auth(3), AuthenticationCleartextPassword()),
        (auth(5, b"\x01\x02\x03\x04"), AuthenticationMD5Password(b"\x01\x02\x03\x04")),
        (
            auth(10, b"SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00"),
            AuthenticationSASL(("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256")),
        ),
        (auth(10, b"\x00"), AuthenticationSASL(())),
        (
            auth(11, b"r=abc,s=c2FsdA==,i=4096"),
            AuthenticationSASLContinue(b"r=abc,s=c2FsdA==,i=4096"),
        ),
        (auth(12, b"v=xyz"), AuthenticationSASLFinal(b"v=xyz")),
        (auth(7), AuthenticationUnsupported(7)),
        (auth(8, b"gss token"), AuthenticationUnsupported(8)),
        (auth(9), AuthenticationUnsupported(9)),
        (auth(42), AuthenticationUnsupported(42)),
        (backend(b"S", b"server_version\x0015.4\x00"), ParameterStatus("server_version", "15.4")),
        (backend(b"Z", b"I"), ReadyForQuery("I")),
        (backend(b"Z", b"T"), ReadyForQuery("T")),
        (backend(b"Z", b"E"), ReadyForQuery("E")),
        (
            backend(b"v", struct.pack("!ii", 0, 2) + b"_pq_.a\x00_pq_.b\x00"),
            NegotiateProtocolVersion(0, ("_pq_.a", "_pq_.b")),
        ),
    ],
)
def test_decoder_parses_message(data: bytes, expected: BackendMessage) -> None:
    assert decode_all(data) == [expected]


@pytest.mark.parametrize(("code", "method"), [(7, "GSSAPI"), (9, "SSPI"), (42, "unknown")])
def test_unsupported_method_names(code: int, method: str) -> None:
    (message,) = decode_all(auth(code))

    assert isinstance(message, AuthenticationUnsupported)
    assert message.method == method


def test_error_response_all_fields() -> None:
    codes = "SVCMDHPpqWstcdnFLR"
    payload = b"".join(code.encode() + f"value {code}".encode() + b"\x00" for code in codes)

    (message,) = decode_all(backend(b"E", payload + b"\x00"))

    assert isinstance(message, ErrorResponse)
    assert message.fields == {code: f"value {code}" for code in codes}


def test_notice_response_fields() -> None:
    payload = b"SWARNING\x00C01000\x00Mcareful\x00\x00"

    (message,) = decode_all(backend(b"N", payload))

    assert message == NoticeResponse({"S": "WARNING", "C": "01000", "M": "careful"})


def test_error_response_invalid_utf8_replaced() -> None:
    (message,) = decode_all(backend(b"E", b"Mbad \xff byte\x00\x00"))

    assert isinstance(message, ErrorResponse)
    assert message.fields["M"] == "bad \ufffd byte"


@pytest.mark.parametrize("key_length", [4, 32, 256])
def test_backend_key_data_lengths(key_length: int) -> None:
    key = bytes(range(256))[:key_length]

    (message,) = decode_all(backend(b"K", struct.pack("!i", 1234) + key))

    assert message == BackendKeyData(process_id=1234, secret_key=key)


@pytest.mark.parametrize("key_length", [0, 3, 257])
def test_backend_key_data_bad_lengths(key_length: int) -> None:
    data = backend(b"K", struct.pack("!i", 1234) + b"k" * key_length)

    with pytest.raises(ProtocolViolationError, match=f"cancel key is {key_length} bytes"):
        decode_all(data)


def test_session_sequence_decodes_in_order() -> None:
    data = (
        auth(0)
        + backend(b"S", b"in_hot_standby\x00off\x00")
        + backend(b"K", struct.pack("!i", 7) + b"abcd")
        + backend(b"Z", b"I")
    )

    messages = decode_all(data)

    assert messages == [
        AuthenticationOk(),
        ParameterStatus("in_hot_standby", "off"),
        BackendKeyData(7, b"abcd"),
        ReadyForQuery("I"),
    ]


def test_decoder_byte_by_byte() -> None:
    data = auth(5, b"salt") + backend(b"Z", b"I")
    decoder = BackendDecoder()
    messages: list[BackendMessage] = []

    for index in range(len(data)):
        messages.extend(decoder.feed(data[index : index + 1]))

    assert messages == [AuthenticationMD5Password(b"salt"), ReadyForQuery("I")]
    assert decoder.buffered == 0


def test_bytes_needed_is_exact() -> None:
    data = backend(b"S", b"name\x00value\x00") + backend(b"Z", b"I")
    decoder = BackendDecoder()
    messages: list[BackendMessage] = []
    position = 0

    while position < len(data):
        needed = decoder.bytes_needed
        messages.extend(decoder.feed(data[position : position + needed]))
        position += needed
        assert decoder.buffered == 0 or len(messages) < 2

    assert messages == [ParameterStatus("name", "value"), ReadyForQuery("I")]
    assert decoder.bytes_needed == 5


def test_bytes_needed_counts_body() -> None:
    decoder = BackendDecoder()

    decoder.feed(backend(b"S", b"name\x00value\x00")[:7])

    assert decoder.bytes_needed == 4 + len(b"name\x00value\x00") + 1 - 7


# -- backend decoder: violations -----------------------------------------------------------


def test_unknown_type_rejected() -> None:
    with pytest.raises(ProtocolViolationError, match=r"message type b'D' \(byte 0x44\)"):
        BackendDecoder().feed(backend(b"D", b""))


def test_http_reply_rejected() -> None:
    with pytest.raises(ProtocolViolationError, match="byte 0x48"):
        BackendDecoder().feed(b"HTTP/1.1 400 Bad Request\r\n")


def test_oversized_length_rejected_before_body() -> None:
    header = b"E" + struct.pack("!I", MAX_STARTUP_MESSAGE_LENGTH + 1)

    with pytest.raises(ProtocolViolationError) as info:
        BackendDecoder().feed(header)

    assert "ErrorResponse" in info.value.message
    assert "b'E'" in info.value.message
    assert str(MAX_STARTUP_MESSAGE_LENGTH + 1) in info.value.message


def test_length_below_four_rejected() -> None:
    with pytest.raises(ProtocolViolationError, match="invalid length 3"):
        BackendDecoder().feed(b"Z" + struct.pack("!I", 3))


def test_custom_max_length() -> None:
    decoder = BackendDecoder(max_length=16)

    with pytest.raises(ProtocolViolationError, match="invalid length 17"):
        decoder.feed(backend(b"S", b"x" * 13))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (auth(0, b"\x00"), "unexpected bytes"),
        (auth(3, b"\x00\x00"), "unexpected bytes"),
        (auth(5, b"abc"), "too short"),
        (auth(5, b"abcde"), "unexpected bytes"),
        (auth(10, b"SCRAM-SHA-256\x00"), "not terminated"),
        (backend(b"R", b"\x00\x00"), "too short"),
        (backend(b"S", b"name\x00value"), "not terminated"),
        (backend(b"S", b"name\x00value\x00extra"), "unexpected bytes"),
        (backend(b"E", b"Mmessage\x00"), "too short"),
        (backend(b"E", b"Mmessage"), "not terminated"),
        (backend(b"E", b"Mmessage\x00\x00x"), "unexpected bytes"),
        (backend(b"K", b"\x00\x00"), "too short"),
        (backend(b"Z", b""), "too short"),
        (backend(b"Z", b"IT"), "unexpected bytes"),
        (backend(b"Z", b"X"), "unknown transaction status"),
        (backend(b"v", struct.pack("!ii", 0, -1)), "negative option count"),
        (backend(b"v", struct.pack("!ii", 0, 2) + b"_pq_.a\x00"), "not terminated"),
    ],
)
def test_malformed_body_rejected(data: bytes, problem: str) -> None:
    with pytest.raises(ProtocolViolationError, match=problem):
        BackendDecoder().feed(data)


# -- fuzzing -------------------------------------------------------------------------------

_VALID_MESSAGES = st.sampled_from(
    [
        auth(0),
        auth(3),
        auth(5, b"salt"),
        auth(10, b"SCRAM-SHA-256\x00\x00"),
        auth(11, b"r=x,s=eA==,i=1"),
        auth(12, b"v=x"),
        auth(7),
        backend(b"E", b"SFATAL\x00Mno\x00\x00"),
        backend(b"N", b"SNOTICE\x00Mhi\x00\x00"),
        backend(b"S", b"a\x00b\x00"),
        backend(b"K", b"\x00\x00\x00\x01abcd"),
        backend(b"Z", b"I"),
        backend(b"v", b"\x00\x00\x00\x00\x00\x00\x00\x00"),
    ]
)


def _feed_in_chunks(data: bytes, cuts: list[int]) -> list[BackendMessage]:
    decoder = BackendDecoder()
    messages: list[BackendMessage] = []
    start = 0
    for cut in sorted(cut % (len(data) + 1) for cut in cuts):
        messages.extend(decoder.feed(data[start:cut]))
        start = max(start, cut)
    messages.extend(decoder.feed(data[start:]))
    return messages


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=512), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_fuzz_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    try:
        messages = _feed_in_chunks(data, cuts)
    except ProtocolViolationError:
        return

    # Whatever decodes in chunks decodes the same way in one piece.
    assert messages == BackendDecoder().feed(data)


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from([b"R", b"E", b"N", b"S", b"K", b"Z", b"v"]),
    body=st.binary(max_size=64),
)
def test_fuzz_known_types_arbitrary_bodies(prefix: bytes, body: bytes) -> None:
    decoder = BackendDecoder()
    try:
        messages = decoder.feed(backend(prefix, body))
    except ProtocolViolationError:
        return
    assert len(messages) == 1
    assert decoder.buffered == 0


@settings(max_examples=200, deadline=None)
@given(
    chosen=st.lists(_VALID_MESSAGES, min_size=1, max_size=10),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
)
def test_fuzz_chunking_preserves_messages(chosen: list[bytes], cuts: list[int]) -> None:
    data = b"".join(chosen)

    assert _feed_in_chunks(data, cuts) == decode_all(data)
    assert len(decode_all(data)) == len(chosen)
