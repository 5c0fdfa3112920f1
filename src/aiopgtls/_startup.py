"""The startup phase over an anyio byte stream: StartupMessage, authentication, ReadyForQuery.

``run_startup`` is the default startup callable of ``connect()``.  It authenticates with
trust, cleartext password, MD5 or SCRAM-SHA-256(-PLUS) and applies libpq's channel binding
rules.  The message decoding and SCRAM logic live in ``_wire`` and ``_scram``, and this
module moves the bytes and chooses the reply to each request.

``run_startup`` never reads past ReadyForQuery: it requests exactly the bytes of the
message in progress from the stream, so anything the server sends afterwards stays in the
stream for the protocol implementation that takes it over.  It sets no timeout of its own
(the caller wraps it, for ``connect_timeout``) and never closes the stream or sends
Terminate, even on failure; closing is the caller's job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Mapping

import anyio
import anyio.abc
import anyio.to_thread

from ._params import ChannelBinding, ConnectParams
from ._result import BackendKeyData, StartupResult
from ._scram import ScramClient, select_mechanism
from ._wire import (
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
)
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionClosedError,
    ProtocolViolationError,
    ServerRejectedError,
)

logger = logging.getLogger(__name__)

# ssl.SSLError is an OSError; anyio's TLS stream wraps most of them in BrokenResourceError.
_STREAM_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, OSError)


@dataclasses.dataclass(frozen=True)
class StartupRequest:
    """What the startup sends and how it may authenticate.

    ``tls_peer_certificate`` is the DER server leaf certificate when the stream runs over
    TLS and None for plaintext.  It decides whether SSL counts as in use for the channel
    binding rules, and it provides the tls-server-end-point data.  ``startup_parameters``
    are further run-time parameters for the StartupMessage, such as ``options`` or
    ``client_encoding``.  The password is kept out of the repr.
    """

    user: str
    dbname: str
    password: str | None = dataclasses.field(default=None, repr=False)
    application_name: str | None = None
    channel_binding: ChannelBinding = ChannelBinding.PREFER
    tls_peer_certificate: bytes | None = dataclasses.field(default=None, repr=False)
    startup_parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_params(
        cls, params: ConnectParams, *, tls_peer_certificate: bytes | None
    ) -> StartupRequest:
        """Build the request for ``params`` on a stream with the given server certificate."""
        return cls(
            user=params.user,
            dbname=params.dbname,
            password=params.password,
            application_name=params.application_name,
            channel_binding=params.channel_binding,
            tls_peer_certificate=tls_peer_certificate,
        )

    def __post_init__(self) -> None:
        # Checked here because the password is only encoded once the server requests it.
        if self.password is None:
            return
        if "\x00" in self.password:
            raise ConfigurationError(
                "invalid password: it contains a NUL character, which the PostgreSQL "
                "protocol cannot carry; remove it",
                parameter="password",
            )
        if not self.password.isascii():
            try:
                self.password.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigurationError(
                    "invalid password: it contains a lone surrogate code point, which has no "
                    "UTF-8 encoding; pass the password as proper Unicode text",
                    parameter="password",
                ) from None


async def run_startup(stream: anyio.abc.ByteStream, request: StartupRequest) -> StartupResult:
    """Send the StartupMessage, authenticate and read up to and including ReadyForQuery.

    Raises ServerRejectedError for an ErrorResponse (``after_auth`` is True when it came
    after AuthenticationOk), AuthenticationError when the client gives up (no password,
    channel binding rules, SCRAM checks), ConnectionClosedError when the stream ends and
    ProtocolViolationError for malformed or unexpected messages.
    """
    channel = _MessageChannel(stream)
    startup_message = encode_startup_message(
        request.user, request.dbname, request.application_name, request.startup_parameters
    )
    await channel.send(startup_message)

    notices: list[Mapping[str, str]] = []
    auth = _Authentication(request)
    await _authenticate(channel, auth, notices)
    result = await _receive_session_state(channel, notices)
    return dataclasses.replace(
        result,
        authentication=auth.method,
        channel_binding_skipped=auth.binding_skipped,
        unread=channel.unread,
    )


async def _authenticate(
    channel: _MessageChannel, auth: _Authentication, notices: list[Mapping[str, str]]
) -> None:
    while True:
        message = await channel.receive("an authentication request")
        if isinstance(message, ErrorResponse):
            raise server_rejected(message.fields, after_auth=False)
        if isinstance(message, NoticeResponse):
            notices.append(message.fields)
        elif isinstance(message, NegotiateProtocolVersion):
            _accept_negotiation(message)
        elif isinstance(message, AuthenticationOk):
            auth.accept_ok()
            return
        elif isinstance(message, AuthenticationSASLContinue):
            await channel.send(await _continue_sasl(auth, message))
        elif isinstance(message, AuthenticationSASLFinal):
            auth.finish_sasl(message)
        else:
            await channel.send(auth.answer(message))


# PBKDF2 at PostgreSQL's default 4096 iterations takes about 1 ms, less than handing it to a
# worker thread costs; a server asking for many more runs it off the event loop.
_INLINE_ITERATIONS = 16384


async def _continue_sasl(auth: _Authentication, message: AuthenticationSASLContinue) -> bytes:
    if _iteration_count(message.data) <= _INLINE_ITERATIONS:
        return auth.continue_sasl(message)
    return await anyio.to_thread.run_sync(auth.continue_sasl, message, abandon_on_cancel=True)


def _iteration_count(server_first: bytes) -> int:
    """Return the i= attribute of a SCRAM server-first message, or a huge number if absent."""
    for attribute in server_first.split(b","):
        if attribute.startswith(b"i=") and attribute[2:].isdigit():
            return int(attribute[2:])
    return 1 << 62  # malformed: let the worker thread path raise the parse error


async def _receive_session_state(
    channel: _MessageChannel, notices: list[Mapping[str, str]]
) -> StartupResult:
    parameters: dict[str, str] = {}
    backend_key: BackendKeyData | None = None
    while True:
        message = await channel.receive("ReadyForQuery")
        if isinstance(message, ParameterStatus):
            parameters[message.name] = message.value
        elif isinstance(message, BackendKeyData):
            backend_key = message
        elif isinstance(message, NoticeResponse):
            notices.append(message.fields)
        elif isinstance(message, ErrorResponse):
            raise server_rejected(message.fields, after_auth=True)
        elif isinstance(message, ReadyForQuery):
            return StartupResult(
                server_parameters=parameters, backend_key=backend_key, notices=tuple(notices)
            )
        else:
            raise _unexpected(message, "after AuthenticationOk")


# -- authentication decisions (no I/O) -----------------------------------------------------

_ANSWERABLE = (
    AuthenticationCleartextPassword,
    AuthenticationMD5Password,
    AuthenticationSASL,
    AuthenticationUnsupported,
)


class _Authentication:
    """The client side of one authentication exchange: the reply to each request, and when
    AuthenticationOk may end it."""

    def __init__(self, request: StartupRequest) -> None:
        self.request = request
        self.method = "trust"
        self.binding_skipped: str | None = None
        self.scram: ScramClient | None = None

    def answer(self, message: BackendMessage) -> bytes:
        """Return the reply to a password, MD5 or SASL request; raise for anything else."""
        if not isinstance(message, _ANSWERABLE):
            raise _unexpected(message, "during authentication")

        self._check_channel_binding(message)
        if isinstance(message, AuthenticationCleartextPassword):
            logger.debug("authenticating user %r with a cleartext password", self.request.user)
            self.method = "password"
            return encode_password_message(self._password("password"))
        if isinstance(message, AuthenticationMD5Password):
            logger.debug("authenticating user %r with an MD5 password", self.request.user)
            self.method = "md5"
            return encode_password_message(self._md5_digest(message.salt))
        if isinstance(message, AuthenticationSASL):
            return self._start_sasl(message)
        raise AuthenticationError(
            f"authentication method {message.method} (request code {message.code}) is not "
            "supported; change the pg_hba.conf entry for this user and host to "
            "scram-sha-256, md5, password or trust"
        )

    def continue_sasl(self, message: AuthenticationSASLContinue) -> bytes:
        """Return the SASLResponse to the server-first message."""
        scram = self._scram(message)
        return encode_sasl_response(scram.process_server_first(message.data))

    def finish_sasl(self, message: AuthenticationSASLFinal) -> None:
        """Verify the server-final message."""
        self._scram(message).process_server_final(message.data)

    def accept_ok(self) -> None:
        """Check that AuthenticationOk may end the exchange."""
        if self.scram is not None and not self.scram.finished:
            # libpq (check_expected_areq() in fe-auth.c) accepts this unless
            # channel_binding=require or require_auth is set.
            # This client rejects it, because the server never proved knowledge of the
            # password.
            raise AuthenticationError(
                "server sent AuthenticationOk before finishing the SCRAM exchange, so it did "
                "not prove that it knows the password; check that the host and port reach "
                "the intended server and not a proxy"
            )
        if self.request.channel_binding is ChannelBinding.REQUIRE and not (
            self.scram is not None and self.scram.channel_bound
        ):
            raise AuthenticationError(
                "channel binding required, but server authenticated client without channel "
                "binding; check pg_hba.conf for a trust, password or md5 entry for this user "
                "(they skip channel binding) or set channel_binding=prefer"
            )

    def _start_sasl(self, message: AuthenticationSASL) -> bytes:
        if self.scram is not None:
            raise ProtocolViolationError(
                "server sent a second AuthenticationSASL request in the same startup; "
                "the server does not follow the PostgreSQL protocol"
            )
        choice = select_mechanism(
            message.mechanisms,
            channel_binding=self.request.channel_binding,
            tls_peer_certificate=self.request.tls_peer_certificate,
        )
        self.scram = ScramClient(self._password(choice.mechanism), choice)
        self.method = choice.mechanism
        self.binding_skipped = choice.binding_skipped
        logger.debug(
            "authenticating user %r with %s, GS2 flag %s",
            self.request.user,
            choice.mechanism,
            choice.flag,
        )
        return encode_sasl_initial_response(choice.mechanism, self.scram.client_first_message())

    def _scram(self, message: BackendMessage) -> ScramClient:
        if self.scram is None:
            raise ProtocolViolationError(
                f"server sent {type(message).__name__} without AuthenticationSASL first; "
                "the server does not follow the PostgreSQL protocol"
            )
        return self.scram

    def _check_channel_binding(
        self,
        message: AuthenticationCleartextPassword
        | AuthenticationMD5Password
        | AuthenticationSASL
        | AuthenticationUnsupported,
    ) -> None:
        # Under channel_binding=require, no reply goes to a non-SASL request, because that
        # reply could give the password to a server that has not proven its identity.
        if self.request.channel_binding is not ChannelBinding.REQUIRE:
            return
        if isinstance(message, AuthenticationSASL):
            return
        raise AuthenticationError(
            "channel binding required but not supported by server's authentication request "
            f"({_describe(message)}); use scram-sha-256 in pg_hba.conf or set "
            "channel_binding=prefer"
        )

    def _password(self, method: str) -> str:
        password = self.request.password
        if not password:
            raise AuthenticationError(
                f'the server requested {method} authentication for user "{self.request.user}", '
                "but no password was given; pass password="
            )
        return password

    def _md5_digest(self, salt: bytes) -> str:
        # PostgreSQL's MD5 scheme: "md5" + md5(md5(password + user) + salt), in hex.
        password = self._password("md5").encode("utf-8")
        inner = hashlib.md5(password + self.request.user.encode("utf-8")).hexdigest()
        outer = hashlib.md5(inner.encode("ascii") + salt).hexdigest()
        return "md5" + outer


def _describe(message: BackendMessage) -> str:
    if isinstance(message, AuthenticationUnsupported):
        return f"{message.method} authentication"
    if isinstance(message, AuthenticationCleartextPassword):
        return "cleartext password authentication"
    if isinstance(message, AuthenticationMD5Password):
        return "md5 authentication"
    return type(message).__name__


def _accept_negotiation(message: NegotiateProtocolVersion) -> None:
    # The client asks for protocol 3.0, which every server since 7.4 supports, so the
    # server can only be reporting startup options it ignored.
    if message.newest_minor_version > 0:
        raise ProtocolViolationError(
            "server sent NegotiateProtocolVersion offering protocol 3."
            f"{message.newest_minor_version}, newer than the 3.0 the client requested; the "
            "server does not follow the PostgreSQL protocol"
        )
    # The client sends no "_pq_." options, so nothing depends on the list; a DEBUG record
    # keeps it visible.
    logger.debug(
        "server supports protocol 3.%d and ignored the startup options %s",
        message.newest_minor_version,
        ", ".join(message.unrecognized_options) or "(none)",
    )


# -- errors --------------------------------------------------------------------------------


def format_server_message(fields: Mapping[str, str]) -> str:
    """Format ErrorResponse or NoticeResponse fields as libpq shows them.

    The first line is ``SEVERITY:  message``; DETAIL and HINT follow on their own lines.
    """
    severity = fields.get("S") or fields.get("V") or "ERROR"
    lines = [f"{severity}:  {fields.get('M', '(no message from the server)')}"]
    if "D" in fields:
        lines.append(f"DETAIL:  {fields['D']}")
    if "H" in fields:
        lines.append(f"HINT:  {fields['H']}")
    return "\n".join(lines)


def server_rejected(fields: Mapping[str, str], *, after_auth: bool) -> ServerRejectedError:
    """Build the ServerRejectedError for an ErrorResponse received during startup."""
    return ServerRejectedError(
        format_server_message(fields),
        sqlstate=fields.get("C"),
        fields=fields,
        after_auth=after_auth,
    )


def _unexpected(message: BackendMessage, phase: str) -> ProtocolViolationError:
    return ProtocolViolationError(
        f"unexpected {type(message).__name__} message from the server {phase}; the server "
        "does not follow the PostgreSQL protocol"
    )


# -- the byte stream -----------------------------------------------------------------------


class _MessageChannel:
    """Sends frontend messages and receives backend messages.

    It reads whole chunks from the stream, because one receive() per message costs a
    TLS-layer round of Python calls each.  Bytes read past the last message returned are
    kept in ``unread`` so that the caller can hand them on.
    """

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self._decoder = BackendDecoder()
        self._pending: list[BackendMessage] = []
        self.unread = b""

    async def send(self, data: bytes) -> None:
        try:
            await self._stream.send(data)
        except _STREAM_ERRORS as exc:
            raise _closed("while sending the startup messages") from exc

    async def receive(self, expected: str) -> BackendMessage:
        """Return the next message; the decoder gets exactly the bytes each message needs."""
        while not self._pending:
            if not self.unread:
                try:
                    self.unread = await self._stream.receive()
                except _STREAM_ERRORS as exc:
                    raise _closed(f"while waiting for {expected}") from exc
            needed = self._decoder.bytes_needed
            chunk, self.unread = self.unread[:needed], self.unread[needed:]
            self._pending.extend(self._decoder.feed(chunk))
        return self._pending.pop(0)


def _closed(when: str) -> ConnectionClosedError:
    return ConnectionClosedError(
        f"server closed the connection unexpectedly {when}; the server may have terminated "
        "abnormally or dropped the connection, check the server log"
    )
