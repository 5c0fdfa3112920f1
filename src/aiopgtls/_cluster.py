"""Throwaway PostgreSQL servers on loopback, for the test suite and the ``aiopgtls demo`` CLI.

A :class:`ClusterFactory` runs ``initdb`` once into a template data directory and copies it
for every :class:`PostgresCluster` it creates, because initdb takes about a second and the
test suite starts several servers.  Each cluster lives in its own folder (data directory,
Unix socket directory, TLS files, server log) under one temporary base folder and listens on
a free TCP port on 127.0.0.1 and ::1.  It is stopped and deleted on ``close()``, on leaving
a ``with`` block, or at interpreter exit.

PostgreSQL refuses to run as root, so when this process is root every server binary runs as
the ``postgres`` OS user through ``runuser`` and the cluster folders are owned by that user.
The code is synchronous (subprocess) on purpose: it runs in fixtures and CLI set-up, never
inside an event loop.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

__all__ = (
    "PG_BIN_ENV",
    "ClusterError",
    "ClusterFactory",
    "PostgresCluster",
    "Role",
    "ServerTLS",
    "find_postgres_bin",
    "postgres_version",
)

PG_BIN_ENV = "AIOPGTLS_PG_BIN"

SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
SYSTEM_PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")

# Timeout in seconds for one server tool run (initdb, pg_ctl start/stop, psql).
COMMAND_TIMEOUT = 60
START_ATTEMPTS = 3
LOG_TAIL_LINES = 40

# Settings every cluster gets; ServerTLS and the caller's settings are applied on top.
BASE_SETTINGS: Mapping[str, str] = {
    "listen_addresses": ",".join(LOOPBACK_ADDRESSES),
    "max_connections": "30",
    "shared_buffers": "16MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "password_encryption": "scram-sha-256",
    # PostgreSQL 18 turned this into a list of stages; "on" still logs the receipt,
    # authentication and authorization of each connection there.
    "log_connections": "on",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "ssl": "off",
}


class ClusterError(RuntimeError):
    """Raised when a throwaway PostgreSQL server cannot be found, created, started or used."""


# --- locating the server binaries --------------------------------------------------------


def find_postgres_bin(version: int | None = None) -> Path:
    """Return the directory that contains ``initdb``, ``pg_ctl`` and ``postgres``.

    The search order is: the ``AIOPGTLS_PG_BIN`` environment variable; the repository's
    ``.pgbin/<version>/bin`` cache; ``/usr/lib/postgresql/<version>/bin``; then ``PATH``.
    With ``version=None`` the highest version found in a folder is used.

    :raises ClusterError: when no candidate matches, or ``AIOPGTLS_PG_BIN`` is unusable.
    """
    configured = os.environ.get(PG_BIN_ENV)
    if configured:
        return _check_configured_bin(Path(configured), version)

    searched: list[str] = []
    for candidate in _bin_candidates(version, searched):
        if _has_server_tools(candidate):
            return candidate

    requested = "any version" if version is None else f"version {version}"
    raise ClusterError(
        f"PostgreSQL server binaries ({', '.join(SERVER_TOOLS)}) for {requested} not found; "
        f"searched: {'; '.join(searched)}. Install them (on Debian: apt-get install "
        f"postgresql-{version or 15}) or set {PG_BIN_ENV} to the bin directory of an "
        "installation."
    )


def postgres_version(bin_dir: Path) -> int:
    """Return the major version of the PostgreSQL binaries in ``bin_dir``."""
    output = _run([str(bin_dir / "pg_ctl"), "--version"]).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)", output)
    if match is None:
        raise ClusterError(
            f"cannot read the PostgreSQL version from {bin_dir / 'pg_ctl'} --version "
            f"(output: {output.strip()!r}); check that {bin_dir} is a PostgreSQL bin directory"
        )
    return int(match.group(1))


def _check_configured_bin(path: Path, version: int | None) -> Path:
    if not _has_server_tools(path):
        raise ClusterError(
            f"{PG_BIN_ENV}={str(path)!r} does not contain {', '.join(SERVER_TOOLS)}; "
            "point it at the bin directory of a PostgreSQL installation, or unset it"
        )
    if version is not None and postgres_version(path) != version:
        raise ClusterError(
            f"{PG_BIN_ENV}={str(path)!r} contains PostgreSQL {postgres_version(path)}, but "
            f"version {version} was requested; unset {PG_BIN_ENV} or point it at a "
            f"PostgreSQL {version} bin directory"
        )
    return path


def _bin_candidates(version: int | None, searched: list[str]) -> Iterable[Path]:
    """Yield candidate bin directories in search order, recording each place looked at."""
    repository = _repository_root()
    cache = repository / ".pgbin" if repository is not None else None
    for root in (cache, SYSTEM_PG_ROOT):
        if root is None:
            continue
        searched.append(f"{root}/{version or '<highest>'}/bin")
        chosen = version if version is not None else _highest_version_dir(root)
        if chosen is not None:
            yield root / str(chosen) / "bin"

    searched.append("PATH")
    on_path = shutil.which("initdb")
    if on_path is not None:
        bin_dir = Path(on_path).resolve().parent
        if version is None or postgres_version(bin_dir) == version:
            yield bin_dir


def _repository_root() -> Path | None:
    # Only an editable install (src layout) has a repository around this file.
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def _highest_version_dir(root: Path) -> int | None:
    if not root.is_dir():
        return None
    versions = [int(child.name) for child in root.iterdir() if child.name.isdigit()]
    return max(versions, default=None)


def _has_server_tools(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / tool, os.X_OK) for tool in SERVER_TOOLS)


# --- configuration records -----------------------------------------------------------------


@dataclass(frozen=True)
class ServerTLS:
    """TLS material and protocol limits for a server; the files are copied into the cluster.

    ``cert_file`` contains the leaf certificate followed by any intermediates the server should
    send.  ``ca_file``, when set, lists the roots trusted for client certificates.  An empty
    ``max_protocol_version`` means no upper limit.
    """

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    min_protocol_version: str = "TLSv1.2"
    max_protocol_version: str = ""


@dataclass(frozen=True)
class Role:
    """A login role to create; ``password_encryption`` selects how its password is stored."""

    name: str
    password: str | None = field(default=None, repr=False)
    password_encryption: Literal["scram-sha-256", "md5"] = "scram-sha-256"


# --- running commands as the server's OS user ------------------------------------------------


@dataclass(frozen=True)
class _ServerAccount:
    """The OS account that owns the data directories and runs the server binaries.

    ``user`` is ``None`` when the binaries run as the current (non-root) user.
    """

    user: str | None
    uid: int
    gid: int

    @classmethod
    def resolve(cls, user: str) -> _ServerAccount:
        if os.geteuid() != 0:
            return cls(None, os.geteuid(), os.getegid())

        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise ClusterError(
                f"running as root, but the OS user {user!r} that should run PostgreSQL does "
                f"not exist; create it (useradd --system {user}) or run as a non-root user"
            ) from None
        if shutil.which("runuser") is None:
            raise ClusterError(
                "running as root needs runuser (util-linux) to start PostgreSQL as "
                f"{user!r}; install util-linux or run as a non-root user"
            )
        return cls(user, entry.pw_uid, entry.pw_gid)

    def command(self, argv: Sequence[str]) -> list[str]:
        if self.user is None:
            return list(argv)
        return ["runuser", "-u", self.user, "--", *argv]

    def chown(self, path: Path) -> None:
        if self.user is not None:
            os.lchown(path, self.uid, self.gid)

    def chown_tree(self, root: Path) -> None:
        if self.user is None:
            return
        self.chown(root)
        for folder, dirs, files in os.walk(root):
            for name in (*dirs, *files):
                self.chown(Path(folder, name))

    def write_file(self, path: Path, text: str | bytes, mode: int = 0o644) -> None:
        """Write a file that the server must read, owned by the server's account."""
        data = text.encode() if isinstance(text, str) else text
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(path, mode)
        self.chown(path)

    def make_dir(self, path: Path, mode: int = 0o755) -> Path:
        path.mkdir(mode=mode)
        os.chmod(path, mode)
        self.chown(path)
        return path


def _run(
    argv: Sequence[str],
    *,
    input_text: str | None = None,
    cwd: Path | None = None,
    secrets: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run a command with libpq's PG* variables removed, raising ClusterError on failure.

    Every string in ``secrets`` is masked in the error message.
    """
    try:
        result = subprocess.run(
            argv,
            input=input_text,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=_clean_environment(),
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClusterError(f"command {' '.join(argv)!r} failed: {exc}") from exc

    if result.returncode != 0:
        output = _mask(f"{result.stdout}{result.stderr}".strip(), secrets)
        raise ClusterError(
            f"command {' '.join(argv)!r} failed with exit status {result.returncode}: {output}"
        )
    return result


def _clean_environment() -> dict[str, str]:
    # PGDATA, PGPORT, PGSSLMODE and the other PG* variables of the caller's shell would
    # silently change which cluster the tools act on and how psql connects.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _mask(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


# --- SQL and configuration quoting ------------------------------------------------------------


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    # standard_conforming_strings is on since PostgreSQL 9.1, so only quotes need doubling.
    return "'" + value.replace("'", "''") + "'"


def _quote_setting(value: str) -> str:
    # postgresql.conf strings process backslash escapes, unlike SQL literals.
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _pick_free_port() -> int:
    """Return a TCP port that is currently free on 127.0.0.1 and, if it exists, ::1.

    The port is released before the server binds it, so another process can take it in
    between; :meth:`PostgresCluster.start` retries with a new port in that case.
    """
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if _ipv6_port_free(port):
            return port
    raise ClusterError("no TCP port free on both 127.0.0.1 and ::1 after 20 tries")


def _ipv6_port_free(port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", port))
    except OSError as exc:
        # Without IPv6 loopback the server listens on 127.0.0.1 only, so any port will do.
        return exc.errno != errno.EADDRINUSE
    return True


# --- one server --------------------------------------------------------------------------------


class PostgresCluster:
    """One throwaway PostgreSQL server created by :meth:`ClusterFactory.create`.

    Use it as a context manager (start on entry, stop and delete on exit) or call
    :meth:`start` and :meth:`close`.  The TCP port is chosen at each start.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        name: str,
        directory: Path,
        bin_dir: Path,
        version: int,
        settings: Mapping[str, str],
        account: _ServerAccount,
    ) -> None:
        self.name = name
        self.directory = directory
        self.bin_dir = bin_dir
        self.version = version
        self._settings = dict(settings)
        self._account = account
        self._port: int | None = None

    def __repr__(self) -> str:
        return f"<PostgresCluster {self.name!r} PostgreSQL {self.version} port={self._port}>"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory / "socket"

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def port(self) -> int:
        if self._port is None:
            raise ClusterError(f"cluster {self.name!r} has no port yet; call start() first")
        return self._port

    @property
    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def log_text(self) -> str:
        """Return the whole server log, or an empty string before the first start."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def start(self) -> None:
        """Start the server and wait until it accepts connections.

        :raises ClusterError: with the tail of the server log when the server does not start.
        """
        if self.running:
            return

        _LIVE_CLUSTERS.add(self)
        for attempt in range(1, START_ATTEMPTS + 1):
            log_offset = len(self.log_text())
            self._port = _pick_free_port()
            self._write_settings()
            try:
                self._pg_ctl("-l", str(self.log_path), "-w", "-t", str(COMMAND_TIMEOUT), "start")
                return
            except ClusterError as exc:
                self._kill_postmaster()
                new_log = self.log_text()[log_offset:]
                if "already in use" in new_log and attempt < START_ATTEMPTS:
                    continue
                raise ClusterError(
                    f"PostgreSQL {self.version} cluster {self.name!r} failed to start on port "
                    f"{self._port}: {exc}\nLast lines of the server log {self.log_path}:\n"
                    f"{self.log_tail()}"
                ) from exc

    def stop(self) -> None:
        """Stop the server immediately (no checkpoint: the data is thrown away anyway)."""
        try:
            if self.running:
                self._pg_ctl("-m", "immediate", "-w", "-t", str(COMMAND_TIMEOUT), "stop")
        except ClusterError:
            self._kill_postmaster()
        finally:
            _LIVE_CLUSTERS.discard(self)

    def close(self) -> None:
        """Stop the server and delete its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def run_sql(self, sql: str, *, dbname: str = "postgres", secrets: Sequence[str] = ()) -> str:
        """Run ``sql`` as the superuser over the Unix socket and return psql's unaligned output.

        The statements go through stdin, so they never show up in the process list; strings
        in ``secrets`` are masked in error messages.
        """
        argv = [
            str(self._psql()), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER,
            "-d", dbname, "-f", "-",
        ]  # fmt: skip
        return _run(argv, input_text=sql, secrets=secrets).stdout.strip()

    def create_role(self, role: Role) -> None:
        """Create a login role whose password is stored as ``role.password_encryption``."""
        statements = [
            # A failing statement would otherwise be copied, password included, to the log.
            "SET log_min_error_statement = 'panic';",
            f"SET password_encryption = {_quote_literal(role.password_encryption)};",
        ]
        create = f"CREATE ROLE {_quote_identifier(role.name)} LOGIN"
        if role.password is not None:
            create += f" PASSWORD {_quote_literal(role.password)}"
        statements.append(create + ";")

        secrets = [role.password] if role.password is not None else []
        self.run_sql("\n".join(statements), secrets=secrets)

    def create_database(self, name: str, owner: str | None = None) -> None:
        sql = f"CREATE DATABASE {_quote_identifier(name)}"
        if owner is not None:
            sql += f" OWNER {_quote_identifier(owner)}"
        self.run_sql(sql + ";")

    def _write_settings(self) -> None:
        settings = {
            **self._settings,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
        }
        lines = [f"{key} = {_quote_setting(value)}" for key, value in settings.items()]
        self._account.write_file(self.data_dir / "cluster.conf", "\n".join(lines) + "\n")

    def _pg_ctl(self, *args: str) -> None:
        argv = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args]
        _run(self._account.command(argv), cwd=self.directory)

    def _psql(self) -> Path:
        own = self.bin_dir / "psql"
        if os.access(own, os.X_OK):
            return own
        # NOTE: some binary bundles ship only the server; any psql can run the simple
        # statements used here, so fall back to the one on PATH.
        on_path = shutil.which("psql")
        if on_path is None:
            raise ClusterError(
                f"psql not found in {self.bin_dir} or on PATH; install a PostgreSQL client "
                "(on Debian: apt-get install postgresql-client)"
            )
        return Path(on_path)

    def _kill_postmaster(self) -> None:
        """Kill the postmaster recorded in postmaster.pid, if any, after pg_ctl failed."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return

        # A stale pid file may name an unrelated process that reused the pid, so kill only a
        # process whose command line names this data directory.
        if self._is_own_postmaster(pid):
            # The backends notice the postmaster's death and exit on their own.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "postmaster.pid").unlink()

    def _is_own_postmaster(self, pid: int) -> bool:
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            # NOTE: without /proc (not Linux) a postmaster that pg_ctl failed to stop is
            # left running.
            return False
        return os.fsencode(self.data_dir) in arguments


# --- creating servers ----------------------------------------------------------------------


class ClusterFactory:
    """Factory of throwaway clusters, all copied from one ``initdb`` template.

    One factory serves one PostgreSQL version (the binaries in ``bin_dir``).
    ``parent`` is the folder in which the factory makes its temporary base folder (the
    system temporary folder by default).  When running as root the base folder is made
    world-traversable so that ``server_user`` can reach its clusters.
    """

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        version: int | None = None,
        parent: Path | None = None,
        server_user: str = "postgres",
    ) -> None:
        self.bin_dir = bin_dir if bin_dir is not None else find_postgres_bin(version)
        self.version = postgres_version(self.bin_dir)
        self._account = _ServerAccount.resolve(server_user)
        self.base_dir = Path(tempfile.mkdtemp(prefix="aiopgtls-pg-", dir=parent))
        os.chmod(self.base_dir, 0o755)
        self._template: Path | None = None
        self._clusters: list[PostgresCluster] = []
        _OPEN_FACTORIES.add(self)

    def __repr__(self) -> str:
        return f"<ClusterFactory PostgreSQL {self.version} at {self.base_dir}>"

    def tool_path(self, name: str) -> Path:
        """Return the path of the server tool ``name`` (``pg_basebackup``, say) in ``bin_dir``.

        :raises ClusterError: when the tool is missing, as in the npm builds of PostgreSQL 16
            to 18 that scripts/install_postgres.py installs, which ship only initdb, pg_ctl
            and postgres.
        """
        path = self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise ClusterError(
                f"{name} not found in {self.bin_dir} (PostgreSQL {self.version}); use an "
                f"installation that includes it, e.g. the postgresql-{self.version} system package"
            )
        return path

    def create(
        self,
        name: str,
        hba_lines: Sequence[str],
        *,
        tls: ServerTLS | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> PostgresCluster:
        """Create a stopped cluster named ``name`` (a folder name, unique per factory).

        ``hba_lines`` become pg_hba.conf after one ``local all all trust`` line, which the
        factory needs for its own superuser sessions over the Unix socket.  ``settings``
        override the defaults and the TLS settings.
        """
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or (self.base_dir / name).exists():
            raise ClusterError(
                f"invalid or duplicate cluster name {name!r}; use a new name made of letters, "
                "digits, '.', '_' and '-'"
            )

        directory = self._account.make_dir(self.base_dir / name)
        cluster = PostgresCluster(
            name=name,
            directory=directory,
            bin_dir=self.bin_dir,
            version=self.version,
            settings={**BASE_SETTINGS, **self._tls_settings(directory, tls), **(settings or {})},
            account=self._account,
        )
        self._clusters.append(cluster)

        self._copy_template(cluster.data_dir)
        self._account.make_dir(cluster.socket_dir)
        self._write_hba(cluster.data_dir, hba_lines)
        with (cluster.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude 'cluster.conf'\n")
        return cluster

    def close(self) -> None:
        """Stop and delete every cluster of this factory, then the template and base folder."""
        try:
            for cluster in self._clusters:
                cluster.stop()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            _OPEN_FACTORIES.discard(self)

    def __enter__(self) -> ClusterFactory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _template_data_dir(self) -> Path:
        if self._template is None:
            folder = self._account.make_dir(self.base_dir / ".template")
            data_dir = folder / "data"
            initdb = [
                str(self.bin_dir / "initdb"), "-D", str(data_dir), "-U", SUPERUSER,
                "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
            ]  # fmt: skip
            _run(self._account.command(initdb), cwd=folder)
            self._template = data_dir
        return self._template

    def _copy_template(self, data_dir: Path) -> None:
        shutil.copytree(self._template_data_dir(), data_dir, symlinks=True)
        self._account.chown_tree(data_dir)

    def _write_hba(self, data_dir: Path, hba_lines: Sequence[str]) -> None:
        lines = ["local all all trust", *hba_lines]
        self._account.write_file(data_dir / "pg_hba.conf", "\n".join(lines) + "\n", 0o600)

    def _tls_settings(self, directory: Path, tls: ServerTLS | None) -> dict[str, str]:
        if tls is None:
            return {"ssl": "off"}

        # Copies owned by the server account: PostgreSQL rejects a key file that others can
        # read or that belongs to another user, and the originals may sit in a folder the
        # server account cannot enter.
        tls_dir = self._account.make_dir(directory / "tls")
        settings = {
            "ssl": "on",
            "ssl_cert_file": self._copy_tls_file(tls.cert_file, tls_dir / "server.crt", 0o644),
            "ssl_key_file": self._copy_tls_file(tls.key_file, tls_dir / "server.key", 0o600),
            "ssl_min_protocol_version": tls.min_protocol_version,
            "ssl_max_protocol_version": tls.max_protocol_version,
        }
        if tls.ca_file is not None:
            settings["ssl_ca_file"] = self._copy_tls_file(tls.ca_file, tls_dir / "ca.crt", 0o644)
        return settings

    def _copy_tls_file(self, source: Path, target: Path, mode: int) -> str:
        self._account.write_file(target, source.read_bytes(), mode)
        return str(target)


# --- last-resort cleanup -----------------------------------------------------------------------

_LIVE_CLUSTERS: set[PostgresCluster] = set()
_OPEN_FACTORIES: set[ClusterFactory] = set()


@atexit.register
def _close_leftovers() -> None:
    """Stop servers and delete folders that their owner did not close (e.g. after Ctrl-C).

    NOTE: nothing runs when the process is killed with SIGKILL; pg_ctl starts the server
    detached, so such a server keeps running until stopped by hand.
    """
    for cluster in list(_LIVE_CLUSTERS):
        cluster.stop()
    for factory in list(_OPEN_FACTORIES):
        factory.close()
