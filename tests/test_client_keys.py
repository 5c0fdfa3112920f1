"""Client keys in every format against a real server that demands a client certificate.

The module starts its own PostgreSQL server, because the tests issue client certificates
with RSA, ECDSA and Ed25519 keys and CRLs, which needs the private keys of the CAs.  The
server certificate comes from an intermediate CA, so the server sends a two-level chain.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import psycopg
import pytest

import aiopgtls
from aiopgtls._cluster import ClusterFactory
from aiopgtls._libpq_files import LibpqFileProvider
from aiopgtls._providers import InMemoryProvider

from .clientkeys import (
    ALGORITHMS,
    CERT_USER,
    FORMATS,
    PASSWORD,
    ClientCredential,
    KeyServer,
    applies,
    encrypted,
    running_key_server,
)
from .pgquery import query_one_row

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("empty_home")]


@pytest.fixture(scope="module")
def key_server(
    pg_cluster_factory: ClusterFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeyServer]:
    with running_key_server(pg_cluster_factory, tmp_path_factory.mktemp("client-keys")) as server:
        yield server


async def client_serial(connection: aiopgtls.Connection) -> int:
    """Return the serial number of the client certificate the server saw."""
    row = await query_one_row(
        connection.stream, "SELECT client_serial FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    )
    assert row[0] is not None, "the server saw no client certificate"
    return int(row[0])


async def connect_serial(settings: Mapping[str, Any], **options: Any) -> int:
    connection = await aiopgtls.connect(**settings, **options)
    async with connection:
        return await client_serial(connection)


def write_key(
    tmp_path: Path, credential: ClientCredential, key_format: str, mode: int = 0o600
) -> tuple[Path, Path]:
    """Write the certificate and the key in ``key_format``; return (cert, key) paths."""
    cert = tmp_path / "client.crt"
    cert.write_bytes(credential.cert_pem())
    key = tmp_path / f"client-{key_format}{FORMATS[key_format][0]}"
    key.unlink(missing_ok=True)
    key.write_bytes(credential.encode(key_format))
    key.chmod(mode)
    return cert, key


CASES = [
    (algorithm, key_format)
    for algorithm in ALGORITHMS
    for key_format in FORMATS
    if applies(algorithm, key_format)
]


# --- every format connects, with the right password ----------------------------------------


@pytest.mark.parametrize(("algorithm", "key_format"), CASES)
async def test_key_format_connects(
    key_server: KeyServer, tmp_path: Path, algorithm: str, key_format: str
) -> None:
    credential = key_server.credentials[algorithm]
    cert, key = write_key(tmp_path, credential, key_format)
    extra = {"sslkey": str(key), "sslcert": str(cert)}
    if encrypted(key_format):
        extra["sslpassword"] = PASSWORD

    serial = await connect_serial(key_server.settings(**extra))

    assert serial == credential.serial


@pytest.mark.parametrize("key_format", ["pkcs12", "pkcs12-legacy", "pkcs12-plain"])
async def test_archive_needs_no_certificate_file(
    key_server: KeyServer, tmp_path: Path, key_format: str
) -> None:
    credential = key_server.credentials["ecdsa"]
    _, key = write_key(tmp_path, credential, key_format)
    missing_cert = tmp_path / "no-such.crt"

    serial = await connect_serial(
        key_server.settings(sslkey=str(key), sslcert=str(missing_cert), sslpassword=PASSWORD)
    )

    assert serial == credential.serial


async def test_plain_key_ignores_password(key_server: KeyServer, tmp_path: Path) -> None:
    credential = key_server.credentials["rsa"]
    cert, key = write_key(tmp_path, credential, "der-pkcs8")

    serial = await connect_serial(
        key_server.settings(sslcert=str(cert), sslkey=str(key), sslpassword="unused")
    )

    assert serial == credential.serial


# --- wrong and missing passwords -------------------------------------------------------------


ENCRYPTED_CASES = [case for case in CASES if encrypted(case[1])]


@pytest.mark.parametrize(("algorithm", "key_format"), ENCRYPTED_CASES)
async def test_wrong_password_names_key_file(
    key_server: KeyServer, tmp_path: Path, algorithm: str, key_format: str
) -> None:
    cert, key = write_key(tmp_path, key_server.credentials[algorithm], key_format)
    settings = key_server.settings(sslcert=str(cert), sslkey=str(key), sslpassword="not it")

    with pytest.raises(aiopgtls.ClientCertificateError) as caught:
        await aiopgtls.connect(**settings)

    message = str(caught.value)
    assert f'"{key}"' in message
    assert "wrong sslpassword (bad decrypt)" in message
    assert "not it" not in message
    assert caught.value.path == str(key)


@pytest.mark.parametrize(("algorithm", "key_format"), ENCRYPTED_CASES)
async def test_missing_password_fails_at_once(
    key_server: KeyServer, tmp_path: Path, algorithm: str, key_format: str
) -> None:
    cert, key = write_key(tmp_path, key_server.credentials[algorithm], key_format)
    events: list[str] = []
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        with anyio.fail_after(10), pytest.raises(aiopgtls.ClientCertificateError) as caught:
            await aiopgtls.connect(
                **key_server.settings(sslcert=str(cert), sslkey=str(key)),
                trace=lambda name, info: events.append(name),
            )
        group.cancel_scope.cancel()

    assert caught.value.message.startswith(f'private key file "{key}" is encrypted; pass its')
    assert "sslpassword" in str(caught.value)
    assert "tcp.connected" not in events  # rejected before any connection was opened
    assert ticks > 0  # the event loop kept running


async def test_password_callback_decrypts_once(key_server: KeyServer, tmp_path: Path) -> None:
    credential = key_server.credentials["ed25519"]
    _, key = write_key(tmp_path, credential, "pkcs12")
    asked: list[str] = []

    async def password(path: str) -> str:
        asked.append(path)
        return PASSWORD

    provider = LibpqFileProvider(password_callback=password)
    settings = key_server.settings(sslkey=str(key))

    first = await connect_serial(settings, context_provider=provider)
    second = await connect_serial(settings, context_provider=provider)

    assert first == second == credential.serial
    assert asked == [str(key)]


async def test_callback_skipped_for_plain_key(key_server: KeyServer, tmp_path: Path) -> None:
    cert, key = write_key(tmp_path, key_server.credentials["rsa"], "pem-pkcs8")

    async def password(path: str) -> str:
        raise AssertionError(f"asked for the pass phrase of the plain key {path}")

    serial = await connect_serial(
        key_server.settings(sslcert=str(cert), sslkey=str(key)),
        context_provider=LibpqFileProvider(password_callback=password),
    )

    assert serial == key_server.credentials["rsa"].serial


# --- libpq agrees where it reads the format --------------------------------------------------


def libpq_connects(settings: Mapping[str, Any]) -> bool:
    try:
        with psycopg.connect(**settings, gssencmode="disable", connect_timeout=10):
            return True
    except psycopg.OperationalError:
        return False


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_libpq_formats_connect_here(
    key_server: KeyServer, tmp_path: Path, algorithm: str
) -> None:
    credential = key_server.credentials[algorithm]
    read_by_libpq = []
    for key_format in FORMATS:
        if not applies(algorithm, key_format):
            continue
        cert, key = write_key(tmp_path, credential, key_format)
        settings = key_server.settings(sslcert=str(cert), sslkey=str(key))
        if encrypted(key_format):
            settings["sslpassword"] = PASSWORD
        if await anyio.to_thread.run_sync(libpq_connects, settings):
            read_by_libpq.append(key_format)
            assert await connect_serial(settings) == credential.serial, key_format

    # libpq 18 reads PEM keys and unencrypted DER keys.
    assert "pem-pkcs8" in read_by_libpq
    assert "pem-pkcs8-encrypted" in read_by_libpq
    assert "der-pkcs8" in read_by_libpq
    assert "pkcs12" not in read_by_libpq
    assert "der-pkcs8-encrypted" not in read_by_libpq


# --- key file permissions --------------------------------------------------------------------


@pytest.mark.parametrize("key_format", ["pem-pkcs8", "der-pkcs8", "pkcs12"])
async def test_open_key_file_rejected_like_libpq(
    key_server: KeyServer, tmp_path: Path, key_format: str
) -> None:
    cert, key = write_key(tmp_path, key_server.credentials["ecdsa"], key_format, mode=0o644)
    settings = key_server.settings(sslcert=str(cert), sslkey=str(key), sslpassword=PASSWORD)

    with pytest.raises(aiopgtls.ClientCertificateError) as caught:
        await aiopgtls.connect(**settings)

    message = str(caught.value)
    assert f'private key file "{key}" has group or world access' in message
    assert "u=rw (0600) or less" in message
    assert caught.value.path == str(key)
    if key_format == "pem-pkcs8":
        assert not await anyio.to_thread.run_sync(libpq_connects, settings)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
@pytest.mark.parametrize(("owner", "accepted"), [(0, True), (101, False)])
async def test_group_readable_key_depends_on_owner(
    key_server: KeyServer, tmp_path: Path, owner: int, *, accepted: bool
) -> None:
    credential = key_server.credentials["rsa"]
    cert, key = write_key(tmp_path, credential, "pkcs12", mode=0o640)
    os.chown(key, owner, -1)
    settings = key_server.settings(sslcert=str(cert), sslkey=str(key), sslpassword=PASSWORD)

    if accepted:
        assert await connect_serial(settings) == credential.serial
    else:
        with pytest.raises(aiopgtls.ClientCertificateError, match="not owned by root"):
            await aiopgtls.connect(**settings)


# --- rotation ----------------------------------------------------------------------------------


def replace_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` atomically, as certificate rotation tools do."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(data)
    fresh.chmod(mode)
    os.replace(fresh, path)


@pytest.mark.parametrize("key_format", ["pem-pkcs8", "pkcs12"])
async def test_rotated_files_used_by_next_connection(
    key_server: KeyServer, tmp_path: Path, key_format: str
) -> None:
    old = key_server.credentials["ecdsa"]
    new = key_server.pki.issue_client("ecdsa", CERT_USER)
    cert, key = write_key(tmp_path, old, key_format)
    settings = key_server.settings(sslcert=str(cert), sslkey=str(key), sslpassword=PASSWORD)
    provider = LibpqFileProvider(revalidate_after=0.2)

    first = await connect_serial(settings, context_provider=provider)
    replace_file(cert, new.cert_pem(), 0o644)
    replace_file(key, new.encode(key_format))
    # The provider checks its files again once revalidate_after seconds have passed.
    await anyio.sleep(0.3)
    second = await connect_serial(settings, context_provider=provider)

    assert first == old.serial
    assert second == new.serial


# --- no plaintext key on disk ------------------------------------------------------------------


def watched_directories() -> list[Path]:
    candidates = [tempfile.gettempdir(), "/dev/shm", "/var/tmp", os.getcwd(), os.environ["HOME"]]
    return [Path(path) for path in dict.fromkeys(candidates) if os.path.isdir(path)]


def files_changed_since(directories: list[Path], start_ns: int) -> list[Path]:
    """Return the regular files under ``directories`` written or created since ``start_ns``."""
    found = []
    pending = [str(directory) for directory in directories]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        if max(st.st_mtime_ns, st.st_ctime_ns) >= start_ns:
                            found.append(Path(entry.path))
    return found


def descriptor_targets() -> set[str]:
    targets = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            targets.add(f"{fd}:{os.readlink(f'/proc/self/fd/{fd}')}")
    return targets


def plaintext_forms(credential: ClientCredential) -> list[bytes]:
    """The decrypted key as DER and as the first PEM body line, PKCS#8 and traditional."""
    forms = [credential.key_der(), credential.encode("der-traditional")]
    for key_format in ("pem-pkcs8", "pem-traditional"):
        forms.append(credential.encode(key_format).splitlines()[1])
    return forms


@contextlib.contextmanager
def load_paths_recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record what each path handed to load_cert_chain() pointed at when it was called."""
    seen: list[str] = []
    original = ssl.SSLContext.load_cert_chain

    def recording(
        self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None
    ) -> None:
        for path in (certfile, keyfile):
            if path is not None:
                seen.append(os.readlink(path) if os.path.islink(path) else os.path.realpath(path))
        original(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", recording)
    yield seen


def providers_and_settings(
    key_server: KeyServer, tmp_path: Path, credential: ClientCredential
) -> Iterator[tuple[str, aiopgtls.ContextProvider, dict[str, Any]]]:
    """Yield one connection setup per key format that is decrypted by this package."""
    for key_format in ("pkcs12", "pkcs12-legacy", "der-pkcs8-encrypted"):
        directory = tmp_path / key_format
        directory.mkdir()
        cert, key = write_key(directory, credential, key_format)
        settings = key_server.settings(sslcert=str(cert), sslkey=str(key), sslpassword=PASSWORD)
        yield key_format, LibpqFileProvider(), settings

    in_memory = InMemoryProvider(key=credential.encode("pkcs12"), password=PASSWORD)
    yield "in-memory", in_memory, key_server.settings()


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="needs memfd_create (Linux)")
async def test_decrypted_key_never_on_disk(
    key_server: KeyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credential = key_server.pki.issue_client("ecdsa", CERT_USER)
    setups = list(providers_and_settings(key_server, tmp_path, credential))
    # A second of margin covers file systems with coarse timestamps.
    start_ns = time.time_ns() - 1_000_000_000
    descriptors = descriptor_targets()

    with load_paths_recorded(monkeypatch) as loaded_from:
        for key_format, provider, settings in setups:
            serial = await connect_serial(settings, context_provider=provider)
            assert serial == credential.serial, key_format

    assert len(loaded_from) == len(setups)
    assert all(target.startswith("/memfd:") for target in loaded_from), loaded_from
    leaked = descriptor_targets() - descriptors
    assert not [target for target in leaked if "memfd:" in target or str(tmp_path) in target]
    secrets = plaintext_forms(credential)
    for path in files_changed_since(watched_directories(), start_ns):
        with contextlib.suppress(OSError):
            content = path.read_bytes()
            assert not any(secret in content for secret in secrets), path
