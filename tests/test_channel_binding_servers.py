"""SCRAM channel binding against PostgreSQL 18 with RSA, ECDSA P-384 and Ed25519 certificates.

The tls-server-end-point binding data hashes the server certificate with the hash of its
signature algorithm, so each certificate exercises a different path: SHA-256 (RSA), SHA-384
(ECDSA P-384) and none at all (Ed25519).  The server checks the binding data, so a wrong
hash would make the login fail.

libpq 18 (psycopg's bundled copy) fails on an Ed25519 certificate even under the default
``channel_binding=prefer``, because it cannot compute binding data but still picks
SCRAM-SHA-256-PLUS.  aiopgtls deliberately differs there: under ``prefer`` it logs in
without binding and records why; under ``require`` it fails naming the algorithm.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

import aiopgtls

from .conftest import PgServer, ServerFactory
from .pgquery import server_sees_ssl

pytestmark = [pytest.mark.anyio, pytest.mark.server]

VERSION = 18
SETUP_ROOTS = {"cb_rsa": "ca_rsa", "cb_p384": "ca_p384", "cb_ed25519": "ca_ed25519"}
BINDABLE_SETUPS = ("cb_rsa", "cb_p384")
CHANNEL_BINDINGS = ("disable", "prefer", "require")


def settings_for(server: PgServer, channel_binding: str) -> dict[str, Any]:
    root = getattr(server.certs, SETUP_ROOTS[server.setup])
    return {
        "host": "localhost",
        "hostaddr": "127.0.0.1",
        "port": str(server.port),
        "user": "scram",
        "password": server.password("scram"),
        "dbname": "postgres",
        "sslmode": "verify-full",
        "sslrootcert": str(root),
        "channel_binding": channel_binding,
        "connect_timeout": "10",
    }


def libpq_connects(settings: dict[str, Any]) -> bool:
    try:
        connection = psycopg.connect(**settings)
    except psycopg.OperationalError:
        return False
    with connection:
        return True


async def ours_connects(settings: dict[str, Any]) -> bool:
    try:
        connection = await aiopgtls.connect(**settings)
    except aiopgtls.ConnectError:
        return False
    async with connection:
        assert await server_sees_ssl(connection.stream) is True
    return True


@pytest.mark.parametrize("setup", BINDABLE_SETUPS)
async def test_require_binds(
    pg_server_factory: ServerFactory, setup: str, empty_home: Path
) -> None:
    server = pg_server_factory(setup, VERSION)

    connection = await aiopgtls.connect(**settings_for(server, "require"))
    async with connection:
        seen_by_server = await server_sees_ssl(connection.stream)

    assert connection.authentication == "SCRAM-SHA-256-PLUS"
    assert connection.channel_binding_skipped is None
    assert seen_by_server is True


@pytest.mark.parametrize("setup", BINDABLE_SETUPS)
async def test_libpq_require_binds(
    pg_server_factory: ServerFactory, setup: str, empty_home: Path
) -> None:
    server = pg_server_factory(setup, VERSION)

    connected = await anyio.to_thread.run_sync(libpq_connects, settings_for(server, "require"))

    assert connected is True


async def test_ed25519_prefer_skips_binding(
    pg_server_factory: ServerFactory, empty_home: Path
) -> None:
    server = pg_server_factory("cb_ed25519", VERSION)
    events: list[tuple[str, Mapping[str, Any]]] = []

    connection = await aiopgtls.connect(
        **settings_for(server, "prefer"), trace=lambda name, info: events.append((name, info))
    )
    async with connection:
        seen_by_server = await server_sees_ssl(connection.stream)

    assert connection.authentication == "SCRAM-SHA-256"
    assert connection.channel_binding_skipped is not None
    assert "Ed25519" in connection.channel_binding_skipped
    assert seen_by_server is True
    completed = [info for name, info in events if name == "startup.complete"]
    assert len(completed) == 1
    assert "Ed25519" in str(completed[0]["channel_binding_skipped"])


async def test_ed25519_prefer_fails_in_libpq(
    pg_server_factory: ServerFactory, empty_home: Path
) -> None:
    server = pg_server_factory("cb_ed25519", VERSION)

    with pytest.raises(psycopg.OperationalError, match="digest"):
        await anyio.to_thread.run_sync(
            lambda: psycopg.connect(**settings_for(server, "prefer")).close()
        )


async def test_ed25519_require_names_algorithm(
    pg_server_factory: ServerFactory, empty_home: Path
) -> None:
    server = pg_server_factory("cb_ed25519", VERSION)

    with pytest.raises(aiopgtls.ChannelBindingUnavailable) as caught:
        await aiopgtls.connect(**settings_for(server, "require"))

    assert caught.value.algorithm == "Ed25519"
    assert "Ed25519" in str(caught.value)
    assert "channel_binding" in str(caught.value)
    assert len(caught.value.attempts) == 1


@pytest.mark.parametrize("setup", list(SETUP_ROOTS))
async def test_outcomes_equal_libpq(
    pg_server_factory: ServerFactory, setup: str, empty_home: Path
) -> None:
    server = pg_server_factory(setup, VERSION)
    disagreements = []
    for channel_binding in CHANNEL_BINDINGS:
        settings = settings_for(server, channel_binding)
        theirs = await anyio.to_thread.run_sync(libpq_connects, settings)
        ours = await ours_connects(settings)
        if (setup, channel_binding) == ("cb_ed25519", "prefer"):
            # The deliberate difference: libpq fails, aiopgtls logs in without binding.
            assert (theirs, ours) == (False, True)
        elif ours != theirs:
            disagreements.append(f"channel_binding={channel_binding}: libpq={theirs} ours={ours}")

    assert disagreements == [], "\n".join(disagreements)
