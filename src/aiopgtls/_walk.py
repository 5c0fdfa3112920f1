"""The anyio side of the ladder for one server address.

Decisions live in ``_ladder``; this module performs the step it is given, reports what
happened as an event and keeps the record of attempts.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import ssl
import time
import warnings
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute

from ._certmode import check_certificate_mode, records_certificate_exchange
from ._ladder import Action, Event, Ladder, Step, methods_for
from ._negotiation import SSL_REQUEST, classify_ssl_reply
from ._params import ConnectParams, SSLCertMode, SSLNegotiation
from ._provider import AttemptInfo, ContextProvider, verifies_chain
from ._result import Attempt, Method, Outcome, StartupResult
from ._startup import StartupRequest
from ._streams import PrefixedStream
from ._tcp import open_tcp
from ._tls import TLSFacts, sni_name, start_tls
from ._trace import Tracer
from .errors import (
    AiopgtlsError,
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    ConnectionClosedError,
    ConnectTimeoutError,
    InsecureFallbackWarning,
    ServerRejectedError,
    TCPConnectError,
    TLSHandshakeError,
)

StartupCallable = Callable[[anyio.abc.ByteStream, StartupRequest], Awaitable[StartupResult]]

TERMINAL = (Action.FINISH, Action.FAIL, Action.NEXT_ADDRESS, Action.NEXT_HOST)


@dataclasses.dataclass
class AddressRun:
    """The mutable state of the ladder's walk over one address."""

    address: str
    stream: anyio.abc.ByteStream | None = None
    context: ssl.SSLContext | None = None
    facts: TLSFacts | None = None
    attempt: Attempt | None = None
    error: ConnectError | None = None
    attempt_started: float = 0.0
    attempt_has_socket: bool = False
    startup_result: StartupResult | None = None


class Walker:
    """Walks the ladder on the addresses of one host.

    ``params`` holds only that host; ``attempts`` is shared by every walker of one
    connect() call, so attempt numbers count across hosts.
    """

    def __init__(
        self,
        params: ConnectParams,
        provider: ContextProvider,
        startup: StartupCallable | None,
        tracer: Tracer,
        attempts: list[Attempt],
    ) -> None:
        self.params = params
        self.provider = provider
        self.startup = startup
        self.tracer = tracer
        self.attempts = attempts

    async def walk(self, run: AddressRun) -> Step:
        """Walk the ladder on ``run.address`` until it connects or gives up on it."""
        ladder = Ladder(
            methods_for(
                self.params.sslmode,
                unix_socket=self.params.is_unix_socket,
                direct=self.params.sslnegotiation is SSLNegotiation.DIRECT,
            )
        )
        timeout = self.params.connect_timeout or math.inf
        step = ladder.start()
        try:
            with anyio.move_on_after(timeout) as scope:
                while step.action not in TERMINAL:
                    event = await self._perform(step, run)
                    step = self._advance(ladder, event, run)
            if scope.cancelled_caught:
                step = self._timed_out(ladder, run, timeout)
        finally:
            if step.action is not Action.FINISH:
                await self._close(run)
        if step.action is Action.FINISH:
            self._end_attempt(run, Outcome.CONNECTED)
        return step

    def _advance(self, ladder: Ladder, event: Event, run: AddressRun) -> Step:
        failed_method = ladder.method
        step = ladder.handle(event)
        if event is Event.REPLY_N:
            refused = step.action in TERMINAL
            self._end_attempt(run, Outcome.FAILED if refused else Outcome.SERVER_REFUSED_TLS)
        if step.action in TERMINAL or step.method is failed_method:
            return step

        reason = event.value
        self.tracer.emit(
            "fallback",
            from_method=str(failed_method),
            to_method=str(step.method),
            reason=reason,
            new_connection=step.action is not Action.RUN_STARTUP,
        )
        if event is Event.HANDSHAKE_FAILED and step.method is Method.PLAINTEXT:
            warnings.warn(
                InsecureFallbackWarning(
                    f"sslmode=prefer: the TLS attempt to {self.params.host} port "
                    f"{self.params.port} failed ({run.error.message if run.error else reason}), "
                    "so the connection continues unencrypted; use sslmode=require or stronger "
                    "to forbid this"
                ),
                stacklevel=2,
            )
        run.error = None
        run.facts = None
        run.context = None
        return step

    def _timed_out(self, ladder: Ladder, run: AddressRun, timeout: float) -> Step:
        self.tracer.emit("timeout", address=run.address, seconds=timeout)
        error = ConnectTimeoutError(
            f"timeout expired after {timeout:g} s (connect_timeout) in state "
            f"{ladder.state.value}; check that the server is reachable and responding, or raise "
            "connect_timeout"
        )
        self._fail_attempt(run, error)
        return ladder.handle(Event.TIMED_OUT)

    async def _perform(self, step: Step, run: AddressRun) -> Event:
        assert step.method is not None
        if step.action is Action.PREPARE_TLS:
            return await self._prepare_tls(run, step.method)
        if step.action is Action.OPEN_CONNECTION:
            return await self._open_connection(run, step.method)
        if step.action is Action.SEND_SSLREQUEST:
            return await self._send_sslrequest(run)
        if step.action is Action.START_TLS:
            return await self._start_tls(run)
        return await self._run_startup(run, step.method)

    # -- the steps ---------------------------------------------------------------------

    async def _prepare_tls(self, run: AddressRun, method: Method) -> Event:
        attempt = self._begin_attempt(run, method)
        info = AttemptInfo(
            host=self.params.host,
            address=run.address,
            port=self.params.port,
            sslmode=self.params.sslmode,
            number=attempt.number,
            params=self.params,
        )
        try:
            context = await self.provider(info)
            self._check_context(context)
        except ConnectError as exc:
            self.tracer.emit("context.failed", attempt=attempt.number, error=exc.message)
            self._fail_attempt(run, exc)
            return Event.CONTEXT_FAILED
        except ConfigurationError as exc:
            # A configuration mistake ends the whole connect(), but the record keeps it.
            self.tracer.emit("context.failed", attempt=attempt.number, error=str(exc))
            attempt.error = exc
            self._end_attempt(run, Outcome.FAILED)
            raise
        except AiopgtlsError:
            raise
        except Exception as exc:
            name = provider_name(self.provider)
            error = TLSHandshakeError(f"context provider {name} failed: {exc!r}")
            error.__cause__ = exc
            self._fail_attempt(run, error)
            return Event.CONTEXT_FAILED

        run.context = context
        self.tracer.emit(
            "context.ready", attempt=attempt.number, verifies_chain=verifies_chain(context)
        )
        return Event.CONTEXT_READY

    def _check_context(self, context: object) -> None:
        name = provider_name(self.provider)
        if (
            isinstance(context, ssl.SSLContext)
            and self.params.sslcertmode is SSLCertMode.REQUIRE
            and not records_certificate_exchange(context)
        ):
            raise ConfigurationError(
                f"context provider {name} returned a context that does not record the "
                "certificate exchange, which sslcertmode=require needs; build it with "
                "aiopgtls.create_context() or call aiopgtls.record_certificate_exchange() on it",
                parameter="sslcertmode",
                value="require",
            )
        if not isinstance(context, ssl.SSLContext):
            raise ConfigurationError(
                f"context provider {name} returned {type(context).__name__}, not an "
                "ssl.SSLContext; return the context to use for this attempt"
            )
        if self.params.sslmode.requires_verification and not verifies_chain(context):
            raise ConfigurationError(
                f"context provider {name} returned a context that does not verify the server "
                f"certificate, but sslmode={self.params.sslmode} requires verification; set "
                "verify_mode=ssl.CERT_REQUIRED with trusted roots, or use sslmode=require",
                parameter="sslmode",
                value=str(self.params.sslmode),
            )

    async def _open_connection(self, run: AddressRun, method: Method) -> Event:
        await self._close(run)
        attempt = run.attempt
        if attempt is None or attempt.outcome is not None or run.attempt_has_socket:
            self._begin_attempt(run, method)
        run.attempt_has_socket = True
        try:
            if self.params.is_unix_socket:
                run.stream = await anyio.connect_unix(run.address)
            else:
                run.stream = await open_tcp(run.address, self.params.port)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            self.tracer.emit("tcp.failed", address=run.address, error=reason)
            self._fail_attempt(
                run,
                TCPConnectError(
                    f"could not connect to {run.address} port {self.params.port}: {reason}; is the "
                    "server running on that host and accepting TCP/IP connections?"
                ),
            )
            return Event.TCP_FAILED

        _apply_keepalives(run.stream, self.params)
        self.tracer.emit("tcp.connected", address=run.address, port=self.params.port)
        return Event.TCP_CONNECTED

    async def _send_sslrequest(self, run: AddressRun) -> Event:
        assert run.stream is not None
        self.tracer.emit("sslrequest.sent", address=run.address)
        try:
            await run.stream.send(SSL_REQUEST)
            data = await run.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            data = b""

        event, rest, error = classify_ssl_reply(data)
        self.tracer.emit("sslrequest.answered", reply=data[:1].decode("latin-1") or "EOF")
        if rest:
            run.stream = PrefixedStream(run.stream, rest)
        if error is not None:
            self._fail_attempt(run, error, end=event is not Event.REPLY_N)
        return event

    async def _start_tls(self, run: AddressRun) -> Event:
        assert run.stream is not None
        assert run.context is not None
        assert run.attempt is not None
        direct = run.attempt.method is Method.DIRECT_SSL
        self.tracer.emit(
            "tls.handshake.started",
            negotiation="direct" if direct else "postgres",
            sni=sni_name(self.params),
        )
        try:
            tls_stream, facts = await start_tls(run.stream, run.context, self.params, direct=direct)
        except TLSHandshakeError as exc:
            self.tracer.emit("tls.handshake.failed", error=exc.message, kind=type(exc).__name__)
            self._fail_attempt(run, exc)
            return Event.HANDSHAKE_FAILED

        run.stream = tls_stream
        run.facts = facts
        self.tracer.emit(
            "tls.handshake.complete",
            version=facts.version,
            cipher=facts.cipher,
            alpn=facts.alpn_protocol,
            verified=str(facts.verified),
        )
        return Event.HANDSHAKE_OK

    async def _run_startup(self, run: AddressRun, method: Method) -> Event:
        assert run.stream is not None
        if run.attempt is None or run.attempt.method is not method:
            self._begin_attempt(run, method)  # plaintext on the same socket after 'N'
            run.attempt_has_socket = True
        if self.startup is None:
            run.startup_result = StartupResult()
            return Event.STARTUP_OK

        self.tracer.emit("startup.started", user=self.params.user, dbname=self.params.dbname)
        try:
            run.startup_result = await self.startup(run.stream, self._startup_request(run))
        except ServerRejectedError as exc:
            _add_passfile_hint(exc, self.params)
            self.tracer.emit(
                "startup.rejected",
                sqlstate=exc.sqlstate,
                after_auth=exc.after_auth,
                error=exc.message,
            )
            self._fail_attempt(run, exc)
            if exc.after_auth:
                return Event.STARTUP_FAILED
            if exc.sqlstate == "57P03":
                return Event.CANNOT_CONNECT_NOW
            return Event.REJECTED_BEFORE_AUTH
        except ConnectionClosedError as exc:
            self._fail_attempt(run, exc)
            return Event.CONNECTION_LOST
        except ConnectError as exc:
            self.tracer.emit("startup.failed", error=exc.message, kind=type(exc).__name__)
            self._fail_attempt(run, exc)
            return Event.STARTUP_FAILED
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError) as exc:
            error = ConnectionClosedError(
                "server closed the connection unexpectedly during startup; the server may have "
                "terminated abnormally, check its log"
            )
            error.__cause__ = exc
            self._fail_attempt(run, error)
            return Event.CONNECTION_LOST

        result = run.startup_result
        if result.unread:
            run.stream = PrefixedStream(run.stream, result.unread)
        try:
            check_certificate_mode(self.params.sslcertmode, _ssl_object(run.stream))
        except AuthenticationError as exc:
            self.tracer.emit("startup.failed", error=exc.message, kind=type(exc).__name__)
            self._fail_attempt(run, exc)
            return Event.STARTUP_FAILED
        self.tracer.emit(
            "startup.complete",
            user=self.params.user,
            authentication=result.authentication,
            channel_binding_skipped=result.channel_binding_skipped,
        )
        return Event.STARTUP_OK

    def _startup_request(self, run: AddressRun) -> StartupRequest:
        params = self.params
        return StartupRequest(
            user=params.user,
            dbname=params.dbname,
            password=params.password,
            application_name=params.application_name,
            channel_binding=params.channel_binding,
            tls_peer_certificate=run.facts.peer_certificate_der if run.facts else None,
            startup_parameters=params.startup_parameters,
        )

    # -- records -----------------------------------------------------------------------

    def _begin_attempt(self, run: AddressRun, method: Method) -> Attempt:
        attempt = Attempt(
            number=len(self.attempts) + 1,
            host=self.params.host,
            address=run.address,
            port=self.params.port,
            method=method,
        )
        self.attempts.append(attempt)
        run.attempt = attempt
        run.attempt_started = time.monotonic()
        run.attempt_has_socket = False
        run.error = None
        self.tracer.emit(
            "attempt.started",
            number=attempt.number,
            method=str(method),
            address=run.address,
            port=self.params.port,
        )
        return attempt

    def _fail_attempt(self, run: AddressRun, error: ConnectError, *, end: bool = True) -> None:
        run.error = error
        if run.attempt is not None:
            error._set_context(
                host=self.params.host,
                port=self.params.port,
                sslmode=str(self.params.sslmode),
                attempt=run.attempt,
            )
            if end:
                self._end_attempt(run, Outcome.FAILED)

    def _end_attempt(self, run: AddressRun, outcome: Outcome) -> None:
        attempt = run.attempt
        if attempt is None or attempt.outcome is not None:
            return
        attempt.outcome = outcome
        if outcome is Outcome.FAILED:
            if run.error is not None:
                attempt.error = run.error
            self.tracer.emit(
                "attempt.failed",
                number=attempt.number,
                method=str(attempt.method),
                error=attempt.error_text,
            )
        attempt.duration = time.monotonic() - run.attempt_started

    async def _close(self, run: AddressRun) -> None:
        if run.stream is not None:
            stream, run.stream = run.stream, None
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(stream)


def _add_passfile_hint(error: ServerRejectedError, params: ConnectParams) -> None:
    source = params.sources.get("password", "")
    if error.sqlstate == "28P01" and source.startswith("password file"):
        # libpq adds the same hint, so users know which file contains the rejected password.
        error.message += f'\npassword retrieved from file "{params.passfile}"'


def _apply_keepalives(stream: anyio.abc.ByteStream, params: ConnectParams) -> None:
    """Set libpq's TCP keepalive and user-timeout options on the socket (Linux names)."""
    sock: socket.socket | None = stream.extra(SocketAttribute.raw_socket, None)
    if sock is None or sock.family == socket.AF_UNIX:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1 if params.keepalives else 0)
    options = (
        ("TCP_KEEPIDLE", params.keepalives_idle),
        ("TCP_KEEPINTVL", params.keepalives_interval),
        ("TCP_KEEPCNT", params.keepalives_count),
        ("TCP_USER_TIMEOUT", params.tcp_user_timeout),
    )
    for name, value in options:
        option = getattr(socket, name, None)
        if value is not None and option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _ssl_object(stream: anyio.abc.ByteStream) -> ssl.SSLObject | None:
    ssl_object: ssl.SSLObject | None = stream.extra(TLSAttribute.ssl_object, None)
    return ssl_object


def provider_name(provider: object) -> str:
    """Return a dotted name for ``provider`` to use in messages."""
    kind = provider if isinstance(provider, type) else type(provider)
    name = getattr(provider, "__qualname__", None) or kind.__qualname__
    return f"{kind.__module__}.{name}"
