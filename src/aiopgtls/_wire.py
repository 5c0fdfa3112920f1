"""The PostgreSQL messages of the startup phase: frontend encoders and a backend decoder.

Nothing here does I/O.  The encoders build the frontend messages that the startup needs
(protocol 3.0), and ``BackendDecoder`` turns bytes from the server into typed messages.
The decoder only accepts the message types that a server may send before ReadyForQuery,
and it raises ``ProtocolViolationError`` for anything else, malformed or oversized.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping
from typing import TypeAlias

from ._result import BackendKeyData
from .errors import ConfigurationError, ProtocolViolationError

PROTOCOL_VERSION_3_0 = 3 << 16

# A startup-phase message longer than this is treated as a protocol violation, so that a
# broken or hostile server cannot make the client buffer unbounded data.  Legitimate startup
# messages are far smaller.
MAX_STARTUP_MESSAGE_LENGTH = 1 << 20

# Cancel keys are 4 bytes long in protocol 3.0, and protocol 3.2 (PostgreSQL 18) allows up
# to 256 bytes.
MAX_SECRET_KEY_LENGTH = 256

_HEADER = struct.Struct("!cI")
_INT32 = struct.Struct("!i")
_UINT32 = struct.Struct("!I")
_HEADER_SIZE = _HEADER.size

# Message type bytes a server may send during startup, with their protocol names.
STARTUP_MESSAGE_TYPES: Mapping[bytes, str] = {
    b"R": "Authentication",
    b"E": "ErrorResponse",
    b"N": "NoticeResponse",
    b"S": "ParameterStatus",
    b"K": "BackendKeyData",
    b"Z": "ReadyForQuery",
    b"v": "NegotiateProtocolVersion",
}

# Authentication request codes this client does not implement, named as the protocol
# documentation names them.
UNSUPPORTED_AUTHENTICATION_METHODS: Mapping[int, str] = {
    2: "Kerberos V5",
    4: "crypt",
    6: "SCM credential",
    7: "GSSAPI",
    8: "GSSAPI (continue)",
    9: "SSPI",
}


# -- backend messages ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class AuthenticationOk:
    """AuthenticationOk: the server accepted the client's credentials."""


@dataclasses.dataclass(frozen=True, slots=True)
class AuthenticationCleartextPassword:
    """AuthenticationCleartextPassword: the server requests the password in cleartext."""


@dataclasses.dataclass(frozen=True, slots=True)
class AuthenticationMD5Password:
    """AuthenticationMD5Password with the 4-byte salt for the MD5 digest."""

    salt: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class AuthenticationSASL:
    """AuthenticationSASL with the SASL mechanisms the server offers, in its order."""

    mechanisms: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class AuthenticationSASLContinue:
    """AuthenticationSASLContinue with the mechanism's challenge (SCRAM server-first)."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class AuthenticationSASLFinal:
    """AuthenticationSASLFinal with the mechanism's outcome (SCRAM server-final)."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class AuthenticationUnsupported:
    """An authentication request for a method this client lacks (GSSAPI, SSPI or unknown)."""

    code: int

    @property
    def method(self) -> str:
        """The protocol name of the requested method, or a placeholder for unknown codes."""
        return UNSUPPORTED_AUTHENTICATION_METHODS.get(self.code, "unknown")


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorResponse:
    """ErrorResponse with every field keyed by its one-letter code (S, V, C, M, D, H...)."""

    fields: Mapping[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class NoticeResponse:
    """NoticeResponse with every field keyed by its one-letter code."""

    fields: Mapping[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class ParameterStatus:
    """ParameterStatus: the current value of one run-time parameter reported by the server."""

    name: str
    value: str


@dataclasses.dataclass(frozen=True, slots=True)
class ReadyForQuery:
    """ReadyForQuery with the transaction status: ``I`` idle, ``T`` in a block, ``E`` failed."""

    status: str


@dataclasses.dataclass(frozen=True, slots=True)
class NegotiateProtocolVersion:
    """NegotiateProtocolVersion: the newest minor version the server supports and the
    ``_pq_.`` startup options it did not recognize."""

    newest_minor_version: int
    unrecognized_options: tuple[str, ...]


AuthenticationRequest: TypeAlias = (
    AuthenticationOk
    | AuthenticationCleartextPassword
    | AuthenticationMD5Password
    | AuthenticationSASL
    | AuthenticationSASLContinue
    | AuthenticationSASLFinal
    | AuthenticationUnsupported
)

BackendMessage: TypeAlias = (
    AuthenticationRequest
    | ErrorResponse
    | NoticeResponse
    | ParameterStatus
    | BackendKeyData
    | ReadyForQuery
    | NegotiateProtocolVersion
)


# -- frontend encoders ---------------------------------------------------------------------


def _cstring(value: str, parameter: str, *, secret: bool = False) -> bytes:
    if "\x00" in value:
        raise ConfigurationError(
            f"invalid {parameter}: it contains a NUL character, which the PostgreSQL "
            "protocol cannot carry; remove it",
            parameter=parameter,
            value=None if secret else value,
        )
    return value.encode("utf-8") + b"\x00"


def _message(type_byte: bytes, payload: bytes) -> bytes:
    return type_byte + _UINT32.pack(len(payload) + 4) + payload


def encode_startup_message(
    user: str,
    database: str | None = None,
    application_name: str | None = None,
    parameters: Mapping[str, str] | None = None,
) -> bytes:
    """Encode a protocol 3.0 StartupMessage.

    ``parameters`` are further run-time parameters (``options``, ``client_encoding``...)
    sent after user, database and application_name.  An empty database is left out, so
    the server uses the user name.  Raises ConfigurationError for a name or value that
    contains NUL, or when ``parameters`` repeats user, database or application_name.
    """
    pairs: list[tuple[str, str]] = [("user", user)]
    if database:
        pairs.append(("database", database))
    if application_name is not None:
        pairs.append(("application_name", application_name))
    for name, value in (parameters or {}).items():
        if name in ("user", "database", "application_name") or not name:
            raise ConfigurationError(
                f'invalid startup parameter name "{name}"; pass user, database and '
                "application_name through their own arguments",
                parameter=name,
            )
        pairs.append((name, value))

    payload = bytearray(_UINT32.pack(PROTOCOL_VERSION_3_0))
    for name, value in pairs:
        payload += _cstring(name, "startup parameter name")
        payload += _cstring(value, name)
    payload += b"\x00"
    return _UINT32.pack(len(payload) + 4) + bytes(payload)


def encode_password_message(password: str) -> bytes:
    """Encode a PasswordMessage carrying a cleartext password or an ``md5...`` digest."""
    return _message(b"p", _cstring(password, "password", secret=True))


def encode_sasl_initial_response(mechanism: str, data: bytes) -> bytes:
    """Encode a SASLInitialResponse: the chosen mechanism and its first client message."""
    payload = _cstring(mechanism, "SASL mechanism") + _INT32.pack(len(data)) + data
    return _message(b"p", payload)


def encode_sasl_response(data: bytes) -> bytes:
    """Encode a SASLResponse carrying the next client message of the SASL exchange."""
    return _message(b"p", data)


def encode_terminate() -> bytes:
    """Encode a Terminate message."""
    return _message(b"X", b"")


# -- backend decoder -----------------------------------------------------------------------


class _Reader:
    """Reads the fields of one message body and raises ProtocolViolationError on overrun."""

    def __init__(self, type_name: str, body: bytes) -> None:
        self.type_name = type_name
        self.body = body
        self.position = 0

    def violation(self, problem: str) -> ProtocolViolationError:
        return ProtocolViolationError(
            f"invalid {self.type_name} message from the server: {problem}; the server or "
            "something between it and the client does not follow the PostgreSQL protocol"
        )

    def remaining(self) -> int:
        return len(self.body) - self.position

    def int32(self) -> int:
        if self.remaining() < 4:
            raise self.violation("message is too short for a 4-byte integer")
        (value,) = _INT32.unpack_from(self.body, self.position)
        self.position += 4
        return int(value)

    def take(self, count: int) -> bytes:
        if count < 0 or self.remaining() < count:
            raise self.violation(f"message is too short for {count} more bytes")
        data = self.body[self.position : self.position + count]
        self.position += count
        return data

    def rest(self) -> bytes:
        return self.take(self.remaining())

    def cstring(self) -> str:
        end = self.body.find(b"\x00", self.position)
        if end < 0:
            raise self.violation("string is not terminated by a NUL byte")
        raw = self.body[self.position : end]
        self.position = end + 1
        # Startup messages use the server encoding; "replace" keeps a non-UTF-8 server's
        # text readable instead of failing the connection over a message.
        return raw.decode("utf-8", errors="replace")

    def finish(self) -> None:
        if self.remaining():
            raise self.violation(f"{self.remaining()} unexpected bytes after the last field")


def _parse_authentication(reader: _Reader) -> AuthenticationRequest:
    code = reader.int32()
    message: AuthenticationRequest
    if code == 0:
        message = AuthenticationOk()
    elif code == 3:
        message = AuthenticationCleartextPassword()
    elif code == 5:
        message = AuthenticationMD5Password(reader.take(4))
    elif code == 10:
        message = AuthenticationSASL(_parse_mechanisms(reader))
    elif code == 11:
        message = AuthenticationSASLContinue(reader.rest())
    elif code == 12:
        message = AuthenticationSASLFinal(reader.rest())
    else:
        # GSSAPI and SSPI requests carry method-specific data that is of no use here.
        reader.rest()
        message = AuthenticationUnsupported(code)
    reader.finish()
    return message


def _parse_mechanisms(reader: _Reader) -> tuple[str, ...]:
    mechanisms: list[str] = []
    while (name := reader.cstring()) != "":
        mechanisms.append(name)
    return tuple(mechanisms)


def _parse_fields(reader: _Reader) -> dict[str, str]:
    fields: dict[str, str] = {}
    while (code := reader.take(1)) != b"\x00":
        fields[code.decode("latin-1")] = reader.cstring()
    reader.finish()
    return fields


def _parse_parameter_status(reader: _Reader) -> ParameterStatus:
    message = ParameterStatus(reader.cstring(), reader.cstring())
    reader.finish()
    return message


def _parse_backend_key_data(reader: _Reader) -> BackendKeyData:
    process_id = reader.int32()
    secret_key = reader.rest()
    if not 4 <= len(secret_key) <= MAX_SECRET_KEY_LENGTH:
        raise reader.violation(
            f"cancel key is {len(secret_key)} bytes long, expected 4 to {MAX_SECRET_KEY_LENGTH}"
        )
    return BackendKeyData(process_id=process_id, secret_key=secret_key)


def _parse_ready_for_query(reader: _Reader) -> ReadyForQuery:
    status = reader.take(1).decode("latin-1")
    reader.finish()
    if status not in ("I", "T", "E"):
        raise reader.violation(f"unknown transaction status {status!r}")
    return ReadyForQuery(status)


def _parse_negotiate_protocol_version(reader: _Reader) -> NegotiateProtocolVersion:
    newest_minor_version = reader.int32()
    count = reader.int32()
    if count < 0:
        raise reader.violation(f"negative option count {count}")
    options = tuple(reader.cstring() for _ in range(count))
    reader.finish()
    return NegotiateProtocolVersion(newest_minor_version, options)


def _parse_body(type_byte: bytes, body: bytes) -> BackendMessage:
    reader = _Reader(STARTUP_MESSAGE_TYPES[type_byte], body)
    if type_byte == b"R":
        return _parse_authentication(reader)
    if type_byte == b"E":
        return ErrorResponse(_parse_fields(reader))
    if type_byte == b"N":
        return NoticeResponse(_parse_fields(reader))
    if type_byte == b"S":
        return _parse_parameter_status(reader)
    if type_byte == b"K":
        return _parse_backend_key_data(reader)
    if type_byte == b"Z":
        return _parse_ready_for_query(reader)
    return _parse_negotiate_protocol_version(reader)


def _check_header(type_byte: bytes, length: int, max_length: int) -> None:
    if type_byte not in STARTUP_MESSAGE_TYPES:
        raise ProtocolViolationError(
            f"unexpected message type {type_byte!r} (byte 0x{type_byte.hex()}) from the "
            "server during startup; the server or something between it and the client does "
            "not speak the PostgreSQL protocol 3.0, check the host and port"
        )
    if length < 4 or length > max_length:
        name = STARTUP_MESSAGE_TYPES[type_byte]
        raise ProtocolViolationError(
            f"invalid length {length} in {name} message (type {type_byte!r}) from the server "
            f"during startup; the limit is 4 to {max_length} bytes, so the server or "
            "something between it and the client does not follow the PostgreSQL protocol"
        )


class BackendDecoder:
    """Incremental decoder for the server's startup-phase messages.

    Feed it bytes in chunks of any size; it returns each message once its last byte has
    arrived.  ``bytes_needed`` lets a reader request exactly the rest of the current
    message, so that nothing after it is read from the socket.  A header with an unknown
    type or a length outside 4..``max_length`` raises ProtocolViolationError as soon as its
    five bytes are in, before the body is awaited.
    """

    def __init__(self, max_length: int = MAX_STARTUP_MESSAGE_LENGTH) -> None:
        self._buffer = bytearray()
        self._max_length = max_length

    @property
    def bytes_needed(self) -> int:
        """The number of bytes that complete the message in progress (always at least 1)."""
        if len(self._buffer) < _HEADER_SIZE:
            return _HEADER_SIZE - len(self._buffer)
        _, length = _HEADER.unpack_from(self._buffer)
        return 1 + int(length) - len(self._buffer)

    @property
    def buffered(self) -> int:
        """The number of bytes received but not yet part of a returned message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[BackendMessage]:
        """Append ``data`` and return the messages it completed, in order."""
        self._buffer += data
        messages: list[BackendMessage] = []
        while (message := self._next_message()) is not None:
            messages.append(message)
        return messages

    def _next_message(self) -> BackendMessage | None:
        if len(self._buffer) < _HEADER_SIZE:
            return None
        type_byte, length = _HEADER.unpack_from(self._buffer)
        _check_header(type_byte, length, self._max_length)
        end = 1 + length
        if len(self._buffer) < end:
            return None

        body = bytes(self._buffer[_HEADER_SIZE:end])
        del self._buffer[:end]
        return _parse_body(type_byte, body)
