"""The sslmode ladder's decisions, without any I/O."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiopgtls._ladder import (
    TRANSITIONS,
    Action,
    Event,
    InvalidTransition,
    Ladder,
    State,
    methods_for,
    render_mermaid,
)
from aiopgtls._negotiation import SSL_REQUEST, classify_ssl_reply
from aiopgtls._params import SSLMode
from aiopgtls._result import Method

P, S = Method.PLAINTEXT, Method.SSL


def walk(sslmode: SSLMode, events: list[Event]) -> list[tuple[Action, Method | None, bool]]:
    """Feed ``events`` to a fresh ladder and return every step it returned."""
    ladder = Ladder(methods_for(sslmode))
    steps = [ladder.start()]
    for event in events:
        steps.append(ladder.handle(event))
    return [(step.action, step.method, step.new_connection) for step in steps]


@pytest.mark.parametrize(
    ("sslmode", "expected"),
    [
        (SSLMode.DISABLE, (P,)),
        (SSLMode.ALLOW, (P, S)),
        (SSLMode.PREFER, (S, P)),
        (SSLMode.REQUIRE, (S,)),
        (SSLMode.VERIFY_CA, (S,)),
        (SSLMode.VERIFY_FULL, (S,)),
    ],
)
def test_methods_follow_libpq_order(sslmode: SSLMode, expected: tuple[Method, ...]) -> None:
    assert methods_for(sslmode) == expected


@pytest.mark.parametrize("sslmode", list(SSLMode))
def test_unix_socket_is_plaintext_only(sslmode: SSLMode) -> None:
    assert methods_for(sslmode, unix_socket=True) == (P,)


def test_prefer_happy_path() -> None:
    steps = walk(
        SSLMode.PREFER,
        [
            Event.CONTEXT_READY,
            Event.TCP_CONNECTED,
            Event.REPLY_S,
            Event.HANDSHAKE_OK,
            Event.STARTUP_OK,
        ],
    )
    assert [action for action, _, _ in steps] == [
        Action.PREPARE_TLS,
        Action.OPEN_CONNECTION,
        Action.SEND_SSLREQUEST,
        Action.START_TLS,
        Action.RUN_STARTUP,
        Action.FINISH,
    ]


def test_prefer_reply_n_continues_on_same_socket() -> None:
    steps = walk(SSLMode.PREFER, [Event.CONTEXT_READY, Event.TCP_CONNECTED, Event.REPLY_N])
    assert steps[-1] == (Action.RUN_STARTUP, P, False)


def test_prefer_handshake_failure_reconnects_plaintext() -> None:
    steps = walk(
        SSLMode.PREFER,
        [Event.CONTEXT_READY, Event.TCP_CONNECTED, Event.REPLY_S, Event.HANDSHAKE_FAILED],
    )
    assert steps[-1] == (Action.OPEN_CONNECTION, P, True)


def test_prefer_rejection_over_tls_reconnects_plaintext() -> None:
    steps = walk(
        SSLMode.PREFER,
        [
            Event.CONTEXT_READY,
            Event.TCP_CONNECTED,
            Event.REPLY_S,
            Event.HANDSHAKE_OK,
            Event.REJECTED_BEFORE_AUTH,
        ],
    )
    assert steps[-1] == (Action.OPEN_CONNECTION, P, True)


def test_prefer_plaintext_rejection_after_fallback_fails() -> None:
    steps = walk(
        SSLMode.PREFER,
        [Event.CONTEXT_READY, Event.TCP_CONNECTED, Event.REPLY_N, Event.REJECTED_BEFORE_AUTH],
    )
    assert steps[-1][0] is Action.FAIL


def test_allow_rejection_retries_with_tls() -> None:
    steps = walk(SSLMode.ALLOW, [Event.TCP_CONNECTED, Event.REJECTED_BEFORE_AUTH])
    assert steps[-1] == (Action.PREPARE_TLS, S, False)
    ladder = Ladder(methods_for(SSLMode.ALLOW))
    ladder.start()
    ladder.handle(Event.TCP_CONNECTED)
    ladder.handle(Event.REJECTED_BEFORE_AUTH)
    step = ladder.handle(Event.CONTEXT_READY)
    assert (step.action, step.method, step.new_connection) == (Action.OPEN_CONNECTION, S, True)


def test_allow_tls_retry_refused_fails() -> None:
    steps = walk(
        SSLMode.ALLOW,
        [
            Event.TCP_CONNECTED,
            Event.REJECTED_BEFORE_AUTH,
            Event.CONTEXT_READY,
            Event.TCP_CONNECTED,
            Event.REPLY_N,
        ],
    )
    assert steps[-1][0] is Action.FAIL


@pytest.mark.parametrize("sslmode", [SSLMode.REQUIRE, SSLMode.VERIFY_CA, SSLMode.VERIFY_FULL])
@pytest.mark.parametrize(
    "last_event", [Event.REPLY_N, Event.HANDSHAKE_FAILED, Event.REJECTED_BEFORE_AUTH]
)
def test_tls_only_modes_never_fall_back(sslmode: SSLMode, last_event: Event) -> None:
    events = [Event.CONTEXT_READY, Event.TCP_CONNECTED]
    if last_event is not Event.REPLY_N:
        events.append(Event.REPLY_S)
    if last_event is Event.REJECTED_BEFORE_AUTH:
        events.append(Event.HANDSHAKE_OK)
    steps = walk(sslmode, [*events, last_event])
    assert steps[-1][0] is Action.FAIL


@pytest.mark.parametrize("event", [Event.REPLY_E, Event.REPLY_INVALID, Event.CONNECTION_LOST])
def test_fatal_ssl_replies_end_even_prefer(event: Event) -> None:
    steps = walk(SSLMode.PREFER, [Event.CONTEXT_READY, Event.TCP_CONNECTED, event])
    assert steps[-1][0] is Action.FAIL


def test_cannot_connect_now_moves_to_next_host() -> None:
    steps = walk(SSLMode.ALLOW, [Event.TCP_CONNECTED, Event.CANNOT_CONNECT_NOW])
    assert steps[-1][0] is Action.NEXT_HOST


def test_error_after_auth_is_final() -> None:
    steps = walk(
        SSLMode.PREFER,
        [
            Event.CONTEXT_READY,
            Event.TCP_CONNECTED,
            Event.REPLY_S,
            Event.HANDSHAKE_OK,
            Event.STARTUP_FAILED,
        ],
    )
    assert steps[-1][0] is Action.FAIL


def test_timeout_moves_to_next_address() -> None:
    steps = walk(SSLMode.PREFER, [Event.CONTEXT_READY, Event.TCP_CONNECTED, Event.TIMED_OUT])
    assert steps[-1][0] is Action.NEXT_ADDRESS


def test_unknown_event_raises_invalid_transition() -> None:
    ladder = Ladder(methods_for(SSLMode.REQUIRE))
    ladder.start()
    with pytest.raises(InvalidTransition, match="invalid event reply-s in state preparing-tls"):
        ladder.handle(Event.REPLY_S)


@settings(max_examples=300, deadline=None)
@given(
    sslmode=st.sampled_from(list(SSLMode)),
    events=st.lists(st.sampled_from(list(Event)), max_size=12),
)
def test_random_events_end_in_known_states(sslmode: SSLMode, events: list[Event]) -> None:
    ladder = Ladder(methods_for(sslmode))
    ladder.start()
    for event in events:
        before = ladder.state
        try:
            step = ladder.handle(event)
        except InvalidTransition:
            assert (before, event) not in TRANSITIONS
            assert ladder.state is before
            continue
        assert step.method in methods_for(sslmode)
        if ladder.state in (State.CONNECTED, State.FAILED):
            assert step.action in (
                Action.FINISH,
                Action.FAIL,
                Action.NEXT_ADDRESS,
                Action.NEXT_HOST,
            )


def test_mermaid_lists_every_transition() -> None:
    diagram = render_mermaid()
    assert diagram.startswith("stateDiagram-v2")
    for (state, event), _rule in TRANSITIONS.items():
        assert f"    {state.name.lower()} --> " in diagram
        assert f": {event.value}" in diagram


def test_docs_diagram_is_current() -> None:
    """docs/ladder.md embeds the diagram; regenerate it with scripts/render-ladder.py."""
    docs = (Path(__file__).parent.parent / "docs" / "ladder.md").read_text()
    assert render_mermaid() in docs


def test_sslrequest_bytes() -> None:
    assert SSL_REQUEST == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"


@pytest.mark.parametrize(
    ("data", "event", "fragment"),
    [
        (b"S", Event.REPLY_S, None),
        (b"N", Event.REPLY_N, "server does not support SSL"),
        (b"E\x00\x00\x00\x10SFATAL", Event.REPLY_E, "error response during SSL exchange"),
        (b"Sxyz", Event.REPLY_INVALID, "unencrypted data after SSL response"),
        (b"X", Event.REPLY_INVALID, "invalid response to SSL negotiation: X"),
        (b"\x00", Event.REPLY_INVALID, "invalid response to SSL negotiation: byte 0x00"),
        (b"", Event.CONNECTION_LOST, "closed the connection"),
    ],
)
def test_ssl_reply_classification(data: bytes, event: Event, fragment: str | None) -> None:
    got_event, _rest, error = classify_ssl_reply(data)
    assert got_event is event
    if fragment is None:
        assert error is None
    else:
        assert error is not None
        assert fragment in error.message


def test_error_reply_text_is_not_shown() -> None:
    _event, _rest, error = classify_ssl_reply(b"E\x00\x00\x00\x20SFATAL\x00Msecret server text\x00")
    assert error is not None
    assert "secret server text" not in error.message


def test_bytes_after_n_are_kept_for_plaintext() -> None:
    _event, rest, _error = classify_ssl_reply(b"NR\x00")
    assert rest == b"R\x00"
