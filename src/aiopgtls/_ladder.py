"""The sslmode ladder for one server address, as a state machine that does no I/O.

The I/O layer reports what happened as an ``Event``, and the ladder returns the next
``Step`` to take.  Every decision libpq 18 makes in ``PQconnectPoll()`` about encryption
lives in ``TRANSITIONS`` below, so the rules can be read (and drawn) in one place:

- Each sslmode allows an ordered list of methods: ``allow`` tries plaintext, then TLS;
  ``prefer`` tries TLS, then plaintext; ``disable`` only plaintext; ``require`` and the
  verify modes only TLS.  Unix-domain sockets only use plaintext.
- An 'N' reply to SSLRequest moves to the next method on the same socket.
- A failed TLS handshake, or an ErrorResponse before AuthenticationOk, moves to the next
  method on a new connection to the same address.
- An 'E' reply, an unknown reply byte, bytes after 'S', a closed connection, an error after
  AuthenticationOk and local authentication failures end the whole attempt.
- A socket failure or timeout moves on to the next address; SQLSTATE 57P03 (the server is
  starting up or shutting down) moves on to the next host without an encryption retry.
"""

from __future__ import annotations

import dataclasses
import enum

from ._params import SSLMode
from ._result import Method


class State(enum.Enum):
    IDLE = "idle"
    PREPARING_TLS = "preparing-tls"  # awaiting the context provider
    CONNECTING = "connecting"
    AWAITING_SSL_REPLY = "awaiting-ssl-reply"
    TLS_HANDSHAKE = "tls-handshake"
    STARTUP = "startup"
    CONNECTED = "connected"
    FAILED = "failed"


class Event(enum.Enum):
    BEGIN = "begin"
    CONTEXT_READY = "context-ready"
    CONTEXT_FAILED = "context-failed"
    TCP_CONNECTED = "tcp-connected"
    TCP_FAILED = "tcp-failed"
    TIMED_OUT = "timed-out"
    REPLY_S = "reply-s"
    REPLY_N = "reply-n"
    REPLY_E = "reply-e"
    REPLY_INVALID = "reply-invalid"  # an unknown byte, or plaintext bytes after 'S'
    CONNECTION_LOST = "connection-lost"
    HANDSHAKE_OK = "handshake-ok"
    HANDSHAKE_FAILED = "handshake-failed"  # includes chain and host name verification
    STARTUP_OK = "startup-ok"
    REJECTED_BEFORE_AUTH = "rejected-before-auth"
    CANNOT_CONNECT_NOW = "cannot-connect-now"  # SQLSTATE 57P03
    STARTUP_FAILED = "startup-failed"  # after AuthenticationOk, or a local failure


class Action(enum.Enum):
    PREPARE_TLS = "prepare-tls"  # ask the context provider for this attempt's SSLContext
    OPEN_CONNECTION = "open-connection"
    SEND_SSLREQUEST = "send-sslrequest"
    START_TLS = "start-tls"
    RUN_STARTUP = "run-startup"
    FINISH = "finish"
    FAIL = "fail"  # give up on the whole connection
    NEXT_ADDRESS = "next-address"  # give up on this address, try the next one
    NEXT_HOST = "next-host"  # give up on this host, try the next one


class Rule(enum.Enum):
    """The effect of a transition.

    ``Ladder`` resolves the rules that depend on the remaining methods; the others map to one
    action each.
    """

    BEGIN_METHOD = "begin-method"
    CONNECT = "connect"
    NEGOTIATE = "negotiate"  # plaintext: run startup; TLS: send SSLRequest
    START_TLS = "start-tls"
    RUN_STARTUP = "run-startup"
    NEXT_METHOD_SAME_SOCKET = "next-method-same-socket"
    NEXT_METHOD_NEW_CONNECTION = "next-method-new-connection"
    FINISH = "finish"
    FAIL = "fail"
    NEXT_ADDRESS = "next-address"
    NEXT_HOST = "next-host"


_ANY_ACTIVE = (
    State.PREPARING_TLS,
    State.CONNECTING,
    State.AWAITING_SSL_REPLY,
    State.TLS_HANDSHAKE,
    State.STARTUP,
)

TRANSITIONS: dict[tuple[State, Event], Rule] = {
    (State.IDLE, Event.BEGIN): Rule.BEGIN_METHOD,
    (State.PREPARING_TLS, Event.CONTEXT_READY): Rule.CONNECT,
    (State.PREPARING_TLS, Event.CONTEXT_FAILED): Rule.FAIL,
    (State.CONNECTING, Event.TCP_CONNECTED): Rule.NEGOTIATE,
    (State.CONNECTING, Event.TCP_FAILED): Rule.NEXT_ADDRESS,
    (State.AWAITING_SSL_REPLY, Event.REPLY_S): Rule.START_TLS,
    (State.AWAITING_SSL_REPLY, Event.REPLY_N): Rule.NEXT_METHOD_SAME_SOCKET,
    (State.AWAITING_SSL_REPLY, Event.REPLY_E): Rule.FAIL,
    (State.AWAITING_SSL_REPLY, Event.REPLY_INVALID): Rule.FAIL,
    (State.AWAITING_SSL_REPLY, Event.CONNECTION_LOST): Rule.FAIL,
    (State.TLS_HANDSHAKE, Event.HANDSHAKE_OK): Rule.RUN_STARTUP,
    (State.TLS_HANDSHAKE, Event.HANDSHAKE_FAILED): Rule.NEXT_METHOD_NEW_CONNECTION,
    (State.STARTUP, Event.STARTUP_OK): Rule.FINISH,
    (State.STARTUP, Event.REJECTED_BEFORE_AUTH): Rule.NEXT_METHOD_NEW_CONNECTION,
    (State.STARTUP, Event.CANNOT_CONNECT_NOW): Rule.NEXT_HOST,
    (State.STARTUP, Event.STARTUP_FAILED): Rule.FAIL,
    (State.STARTUP, Event.CONNECTION_LOST): Rule.FAIL,
    # libpq's connect_timeout moves on to the next address from any point of the attempt.
    **{(state, Event.TIMED_OUT): Rule.NEXT_ADDRESS for state in _ANY_ACTIVE},
}


class InvalidTransition(RuntimeError):
    """Raised when the I/O layer reports an event the current state has no rule for."""


@dataclasses.dataclass(frozen=True)
class Step:
    """The next thing the I/O layer must do.

    ``method`` is the method the step belongs to. ``new_connection`` is true when the step
    needs a fresh socket (a retry) and false when it continues on the current one.
    """

    action: Action
    method: Method | None
    new_connection: bool = False


def methods_for(
    sslmode: SSLMode, *, unix_socket: bool = False, direct: bool = False
) -> tuple[Method, ...]:
    """Return the methods libpq 18 tries, in order, for ``sslmode`` on one address.

    ``direct`` (sslnegotiation=direct) replaces the SSLRequest with an immediate handshake;
    parameter validation only allows it with require or stronger, which never fall back.
    """
    if unix_socket or sslmode is SSLMode.DISABLE:
        return (Method.PLAINTEXT,)
    if sslmode is SSLMode.ALLOW:
        return (Method.PLAINTEXT, Method.SSL)
    if sslmode is SSLMode.PREFER:
        return (Method.SSL, Method.PLAINTEXT)
    return (Method.DIRECT_SSL,) if direct else (Method.SSL,)


class Ladder:
    """Walks the methods for one address.  A ladder is used once and then discarded."""

    def __init__(self, methods: tuple[Method, ...]) -> None:
        if not methods:
            raise ValueError("a ladder needs at least one method")
        self.state = State.IDLE
        self._methods = list(methods)
        self.method: Method = self._methods.pop(0)

    @property
    def remaining(self) -> tuple[Method, ...]:
        return tuple(self._methods)

    def start(self) -> Step:
        return self.handle(Event.BEGIN)

    def handle(self, event: Event) -> Step:
        """Apply ``event`` to the current state and return the next step."""
        rule = TRANSITIONS.get((self.state, event))
        if rule is None:
            raise InvalidTransition(f"invalid event {event.value} in state {self.state.value}")
        return self._apply(rule)

    def _apply(self, rule: Rule) -> Step:
        if rule is Rule.BEGIN_METHOD:
            return self._begin_method()
        if rule is Rule.CONNECT:
            return self._go(State.CONNECTING, Action.OPEN_CONNECTION, new_connection=True)
        if rule is Rule.NEGOTIATE:
            if self.method is Method.SSL:
                return self._go(State.AWAITING_SSL_REPLY, Action.SEND_SSLREQUEST)
            if self.method is Method.DIRECT_SSL:
                return self._go(State.TLS_HANDSHAKE, Action.START_TLS)
            return self._go(State.STARTUP, Action.RUN_STARTUP)
        if rule is Rule.START_TLS:
            return self._go(State.TLS_HANDSHAKE, Action.START_TLS)
        if rule is Rule.RUN_STARTUP:
            return self._go(State.STARTUP, Action.RUN_STARTUP)
        if rule is Rule.NEXT_METHOD_SAME_SOCKET:
            return self._next_method(same_socket=True)
        if rule is Rule.NEXT_METHOD_NEW_CONNECTION:
            return self._next_method(same_socket=False)
        if rule is Rule.FINISH:
            return self._go(State.CONNECTED, Action.FINISH)
        return self._go(State.FAILED, _TERMINAL_ACTIONS[rule])

    def _begin_method(self) -> Step:
        if self.method.uses_tls:
            return self._go(State.PREPARING_TLS, Action.PREPARE_TLS)
        return self._go(State.CONNECTING, Action.OPEN_CONNECTION, new_connection=True)

    def _next_method(self, *, same_socket: bool) -> Step:
        if not self._methods:
            return self._go(State.FAILED, Action.FAIL)
        self.method = self._methods.pop(0)
        if same_socket and self.method is Method.PLAINTEXT:
            # After 'N' the server waits for a startup packet on the same socket.
            return self._go(State.STARTUP, Action.RUN_STARTUP)
        return self._begin_method()

    def _go(self, state: State, action: Action, *, new_connection: bool = False) -> Step:
        self.state = state
        return Step(action, self.method, new_connection=new_connection)


_TERMINAL_ACTIONS = {
    Rule.FAIL: Action.FAIL,
    Rule.NEXT_ADDRESS: Action.NEXT_ADDRESS,
    Rule.NEXT_HOST: Action.NEXT_HOST,
}


# The states each rule can lead to, for the diagram; which one applies depends on the method.
_RULE_TARGETS: dict[Rule, tuple[State, ...]] = {
    Rule.BEGIN_METHOD: (State.PREPARING_TLS, State.CONNECTING),
    Rule.CONNECT: (State.CONNECTING,),
    Rule.NEGOTIATE: (State.AWAITING_SSL_REPLY, State.TLS_HANDSHAKE, State.STARTUP),
    Rule.START_TLS: (State.TLS_HANDSHAKE,),
    Rule.RUN_STARTUP: (State.STARTUP,),
    Rule.NEXT_METHOD_SAME_SOCKET: (State.STARTUP, State.FAILED),
    Rule.NEXT_METHOD_NEW_CONNECTION: (State.PREPARING_TLS, State.CONNECTING, State.FAILED),
    Rule.FINISH: (State.CONNECTED,),
    Rule.FAIL: (State.FAILED,),
    Rule.NEXT_ADDRESS: (State.FAILED,),
    Rule.NEXT_HOST: (State.FAILED,),
}


def render_mermaid() -> str:
    """Return the transition table as a Mermaid state diagram for the docs.

    Each edge is labelled with the event and, where the rule decides between targets, the
    rule's name.
    """
    lines = ["stateDiagram-v2", "    [*] --> idle"]
    for (state, event), rule in TRANSITIONS.items():
        targets = _RULE_TARGETS[rule]
        label = event.value if len(targets) == 1 else f"{event.value} ({rule.value})"
        for target in targets:
            lines.append(f"    {state.name.lower()} --> {target.name.lower()}: {label}")
    lines.append("    connected --> [*]")
    lines.append("    failed --> [*]")
    return "\n".join(lines) + "\n"
