"""connect(): resolve the parameters, then try each host and address like libpq 18.

libpq moves on to the next address after a socket failure or a ``connect_timeout`` expiry,
and to the next host after SQLSTATE 57P03, a failed name lookup or a session that does not
fit ``target_session_attrs``.  Everything else (a TLS or authentication failure, an 'E'
reply) ends the whole connection attempt, so that a bad certificate on the first host never
sends the password to the second.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from typing import Any

import anyio
import anyio.abc

from ._factory import provider_for
from ._ladder import Action
from ._params import ConnectParams, TargetSessionAttrs
from ._provider import ContextProvider
from ._resolve import resolve_params
from ._result import Attempt, Connection, Outcome, Verification
from ._session_attrs import check, query_state, state_from_parameters
from ._startup import run_startup
from ._trace import TraceCallback, Tracer
from ._walk import AddressRun, StartupCallable, Walker
from .errors import ConfigurationError, ConnectError, TargetSessionAttrsError, TCPConnectError

__all__ = ("StartupCallable", "connect", "resolve_params")


async def connect(
    conninfo: str | None = None,
    /,
    *,
    params: ConnectParams | None = None,
    context_provider: ContextProvider | None = None,
    startup: StartupCallable | None = run_startup,
    trace: TraceCallback | None = None,
    **settings: Any,
) -> Connection:
    """Connect to a PostgreSQL server the way libpq 18 does and return the connection.

    ``conninfo`` is a ``key=value`` string or a ``postgresql://`` URI, and keyword arguments
    override its values. The environment, service file and password file fill in the rest
    as in libpq.  ``params`` passes parameters resolved earlier with ``resolve_params()``
    instead.  ``context_provider`` supplies the ``ssl.SSLContext`` of each TLS attempt (by
    default the one ``sslfactory`` names, or libpq's files under ``~/.postgresql``).

    ``startup`` runs the frontend protocol up to ReadyForQuery. It reports a server
    rejection by raising ``ServerRejectedError``, so that allow and prefer can fall back.
    Pass ``None`` to receive the stream right after encryption is negotiated.  ``trace``
    receives every step as ``(event_name, info)``.

    Raises ConfigurationError for invalid settings, before any socket is opened, and a
    ConnectError subclass when every attempt failed.
    """
    if params is None:
        # The service and password files are small local files, read on the event loop as
        # libpq, psycopg and asyncpg do, because a worker thread would add about a millisecond
        # to every connection.  Callers who want no file I/O here pass params= instead.
        params = resolve_params(conninfo, settings)
    elif conninfo is not None or settings:
        raise ConfigurationError(
            "pass either params= or a conninfo string and keyword arguments, not both; "
            "resolve everything into one ConnectParams with resolve_params()"
        )
    _check_startup(params, startup)
    provider = await provider_for(params, context_provider)
    session = _Session(params, provider, startup, Tracer(trace))
    return await session.run()


def _check_startup(params: ConnectParams, startup: StartupCallable | None) -> None:
    if startup is None and params.target_session_attrs is not TargetSessionAttrs.ANY:
        raise ConfigurationError(
            f"target_session_attrs={params.target_session_attrs} needs a startup to check the "
            "session, but startup=None; pass a startup callable or target_session_attrs=any",
            parameter="target_session_attrs",
            value=str(params.target_session_attrs),
        )


class _Session:
    """One connect() call: walks the hosts in order, and each host's addresses."""

    def __init__(
        self,
        params: ConnectParams,
        provider: ContextProvider,
        startup: StartupCallable | None,
        tracer: Tracer,
    ) -> None:
        self.params = params
        self.provider = provider
        self.startup = startup
        self.tracer = tracer
        self.attempts: list[Attempt] = []
        self.error: ConnectError | None = None

    async def run(self) -> Connection:
        params = self.params
        self.tracer.emit(
            "connect.started", host=params.host, port=params.port, sslmode=str(params.sslmode)
        )
        order = list(range(len(params.hosts)))
        if params.load_balance_hosts == "random":
            random.shuffle(order)

        for wanted in _passes(params.target_session_attrs):
            for index in order:
                connection, give_up = await self._try_host(params.for_host(index), wanted)
                if connection is not None:
                    return connection
                if give_up:
                    return self._raise()
        return self._raise()

    async def _try_host(
        self, params: ConnectParams, wanted: TargetSessionAttrs
    ) -> tuple[Connection | None, bool]:
        """Try every address of the single host in ``params``.

        Returns the connection, or None and whether the whole connect() must give up.
        """
        try:
            addresses = await self._resolve(params)
        except ConnectError as exc:
            self._set_error(exc, params)
            return None, False

        walker = Walker(params, self.provider, self.startup, self.tracer, self.attempts)
        for address in addresses:
            run = AddressRun(address)
            try:
                step = await walker.walk(run)
            except ConfigurationError as exc:
                exc.attempts = tuple(self.attempts)
                self.tracer.emit("connect.failed", error=str(exc), kind=type(exc).__name__)
                raise
            if step.action is Action.FINISH:
                connection = await self._accept(params, run, wanted)
                return connection, False
            assert run.error is not None
            self.error = run.error
            if step.action is Action.NEXT_HOST:
                return None, False
            if step.action is not Action.NEXT_ADDRESS:
                return None, True
        return None, False

    async def _resolve(self, params: ConnectParams) -> list[str]:
        if params.is_unix_socket:
            return [_unix_socket_path(params.host, params.port)]
        if params.hostaddr:
            return [params.hostaddr]
        if _is_ip_literal(params.host):
            # Nothing to resolve, so the resolver's worker thread is not needed.
            self.tracer.emit("address.resolved", host=params.host, addresses=(params.host,))
            return [params.host]
        try:
            infos = await anyio.getaddrinfo(params.host, params.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise TCPConnectError(
                f'could not translate host name "{params.host}" to address: {exc.strerror}; '
                "check the host name, or pass hostaddr"
            ) from exc

        addresses: list[str] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            if str(sockaddr[0]) not in addresses:
                addresses.append(str(sockaddr[0]))
        if params.load_balance_hosts == "random":
            random.shuffle(addresses)
        self.tracer.emit("address.resolved", host=params.host, addresses=tuple(addresses))
        return addresses

    async def _accept(
        self, params: ConnectParams, run: AddressRun, wanted: TargetSessionAttrs
    ) -> Connection | None:
        """Check target_session_attrs; return the connection, or None to try the next host."""
        connection = self._connection(params, run)
        if wanted is TargetSessionAttrs.ANY:
            return self._complete(connection)
        try:
            state = state_from_parameters(wanted, connection.server_parameters)
            if state is None:
                state = await query_state(connection.stream, wanted)
            check(wanted, state)
        except TargetSessionAttrsError as exc:
            await connection.aclose()
            self._reject_session(run, exc, params)
            return None
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            await connection.aclose()
            error = TargetSessionAttrsError(
                f"could not check target_session_attrs={wanted}: {exc!r}; the next host in the "
                "list is tried, if there is one"
            )
            self._reject_session(run, error, params)
            return None
        return self._complete(connection)

    def _reject_session(
        self, run: AddressRun, error: TargetSessionAttrsError, params: ConnectParams
    ) -> None:
        attempt = run.attempt
        if attempt is not None:
            attempt.outcome = Outcome.FAILED
            attempt.error = error
            error._set_context(
                host=params.host, port=params.port, sslmode=str(params.sslmode), attempt=attempt
            )
        self.error = error
        self.tracer.emit(
            "attempt.failed",
            number=attempt.number if attempt else None,
            method=str(attempt.method) if attempt else None,
            error=error.message,
        )

    def _connection(self, params: ConnectParams, run: AddressRun) -> Connection:
        assert run.stream is not None
        assert run.startup_result is not None
        facts = run.facts
        result = run.startup_result
        return Connection(
            stream=run.stream,
            params=params,
            encrypted=facts is not None,
            verified=facts.verified if facts else Verification.NONE,
            tls_version=facts.version if facts else None,
            cipher=facts.cipher if facts else None,
            alpn_protocol=facts.alpn_protocol if facts else None,
            peer_certificate=facts.peer_certificate if facts else None,
            server_parameters=dict(result.server_parameters),
            backend_key=result.backend_key,
            attempts=tuple(self.attempts),
            notices=tuple(result.notices),
            authentication=result.authentication,
            channel_binding_skipped=result.channel_binding_skipped,
        )

    def _complete(self, connection: Connection) -> Connection:
        self.tracer.emit(
            "connect.complete",
            encrypted=connection.encrypted,
            verified=str(connection.verified),
            attempts=len(self.attempts),
        )
        return connection

    def _set_error(self, error: ConnectError, params: ConnectParams) -> None:
        error.host, error.port, error.sslmode = params.host, params.port, str(params.sslmode)
        self.error = error

    def _raise(self) -> Connection:
        error = self.error
        assert error is not None
        error.attempts = tuple(self.attempts)
        if error.host is None:
            self._set_error(error, self.params)
        self.tracer.emit("connect.failed", error=error.message, kind=type(error).__name__)
        raise error


def _passes(wanted: TargetSessionAttrs) -> tuple[TargetSessionAttrs, ...]:
    # prefer-standby first looks for a standby on every host, then accepts any server.
    if wanted is TargetSessionAttrs.PREFER_STANDBY:
        return (TargetSessionAttrs.PREFER_STANDBY, TargetSessionAttrs.ANY)
    return (wanted,)


def _unix_socket_path(host: str, port: int) -> str:
    if host.startswith("@"):
        return "\0" + host[1:] + f"/.s.PGSQL.{port}"  # Linux's abstract namespace
    return f"{host}/.s.PGSQL.{port}"


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
