"""The default context provider: an ``ssl.SSLContext`` built from libpq's files and rules.

build_libpq_context() makes the decisions of ``initialize_SSL()`` in libpq's
fe-secure-openssl.c (PostgreSQL 15 to 18):

- A root certificate file (``sslrootcert`` or ``~/.postgresql/root.crt``) that exists turns on
  chain verification in every sslmode that uses TLS, so require, prefer and allow verify too.
  A missing file is an error only under verify-ca and verify-full.  ``sslrootcert=system``
  trusts the system's roots instead.
- CRLs (``sslcrl``, ``sslcrldir`` or ``~/.postgresql/root.crl``) are loaded only with a root
  file, and a CRL that cannot be loaded is ignored.
- A client certificate (``sslcert`` or ``~/.postgresql/postgresql.crt``) is used when it
  exists, and then its key must exist and pass libpq's permission check (see _client_files,
  which also reads the key formats libpq does not).

LibpqFileProvider runs that builder in a worker thread and reuses each context until one of
its files changes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import ssl
import sys
from collections.abc import Hashable
from typing import Any

from ._cache import CachingProvider, file_state
from ._client_files import client_files_state, load_client_files, reason
from ._context import create_context, finish_context
from ._keyload import PasswordSource
from ._params import ConnectParams
from ._trust import load_system_roots, system_context_class, system_trust_state
from .errors import ConfigurationError

__all__ = (
    "LibpqFileProvider",
    "LibpqFiles",
    "build_libpq_context",
    "default_directory",
    "default_provider",
    "load_root_rules",
    "resolve_files",
    "root_context_class",
    "root_rules_state",
)

logger = logging.getLogger(__name__)

ROOT_CERT_FILE = "root.crt"
ROOT_CRL_FILE = "root.crl"
USER_CERT_FILE = "postgresql.crt"
USER_KEY_FILE = "postgresql.key"
SYSTEM_ROOTS = "system"

_MISSING_ROOT_HINT = (
    "Either provide the file, use the system's trusted roots with sslrootcert=system, or "
    "change sslmode to disable server certificate verification."
)


# --- file locations ------------------------------------------------------------------------


def default_directory() -> str | None:
    """Return the directory of libpq's default files, or None when no home directory is known.

    That is ``$HOME/.postgresql``, with the home directory taken from the password database
    when HOME is unset or empty, and ``%APPDATA%\\postgresql`` on Windows.
    """
    if sys.platform == "win32":
        # NOTE: libpq calls SHGetFolderPath(CSIDL_APPDATA); the APPDATA variable normally matches.
        appdata = os.environ.get("APPDATA")
        return os.path.join(appdata, "postgresql") if appdata else None

    home = os.environ.get("HOME")
    if not home:
        home = _password_database_home()
    return os.path.join(home, ".postgresql") if home else None


def _password_database_home() -> str | None:
    if sys.platform == "win32":
        return None
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return None


@dataclasses.dataclass(frozen=True)
class LibpqFiles:
    """The files one connection uses after libpq's defaults are applied.

    A field is None when no path applies: the parameter is unset and there is no home
    directory, or for ``crl``/``crldir`` the other one was given.
    """

    root: str | None
    crl: str | None
    crldir: str | None
    cert: str | None
    key: str | None


def resolve_files(params: ConnectParams) -> LibpqFiles:
    """Apply libpq's default file names under ``~/.postgresql`` to the unset file parameters."""
    crl_given = params.sslcrl is not None or params.sslcrldir is not None
    needs_directory = None in (params.sslrootcert, params.sslcert, params.sslkey) or not crl_given
    directory = default_directory() if needs_directory else None

    def default(name: str) -> str | None:
        return os.path.join(directory, name) if directory is not None else None

    return LibpqFiles(
        root=params.sslrootcert or default(ROOT_CERT_FILE),
        crl=params.sslcrl if crl_given else default(ROOT_CRL_FILE),
        crldir=params.sslcrldir,
        cert=params.sslcert or default(USER_CERT_FILE),
        key=params.sslkey or default(USER_KEY_FILE),
    )


# --- the builder -----------------------------------------------------------------------------


def build_libpq_context(
    params: ConnectParams, passwords: PasswordSource | None = None
) -> ssl.SSLContext:
    """Build the SSLContext that libpq would use for ``params``.

    This reads files, so call it from a worker thread in async code.  ``passwords`` supplies
    the pass phrase of an encrypted key (by default sslpassword).  Raises
    ConfigurationError for a root certificate problem and ClientCertificateError for a
    client certificate or key problem.
    """
    if passwords is None:
        passwords = PasswordSource(params.sslpassword)
    return _build(params, resolve_files(params), passwords)


def _build(params: ConnectParams, files: LibpqFiles, passwords: PasswordSource) -> ssl.SSLContext:
    context = create_context(params, root_context_class(files))
    load_root_rules(context, params, files)
    load_client_files(context, params, files.cert, files.key, passwords)
    return finish_context(context, params)


def root_context_class(files: LibpqFiles) -> type[ssl.SSLContext]:
    """Return the context class that libpq's root rules need: truststore's for system roots."""
    return system_context_class() if files.root == SYSTEM_ROOTS else ssl.SSLContext


def load_root_rules(context: ssl.SSLContext, params: ConnectParams, files: LibpqFiles) -> None:
    """Apply libpq's root certificate and CRL rules to ``context``."""
    if _load_root_certificate(context, params, files.root):
        _load_crl(context, params, files)


def root_rules_state(files: LibpqFiles) -> Hashable:
    """Return what identifies the current content of the root and CRL files, for cache keys."""
    if files.root == SYSTEM_ROOTS:
        return (SYSTEM_ROOTS, system_trust_state())
    paths = (files.root, files.crl, files.crldir)
    return (paths, tuple(file_state(path) for path in paths))


def _load_root_certificate(
    context: ssl.SSLContext, params: ConnectParams, path: str | None
) -> bool:
    """Load the root certificate file if it exists; return whether the chain is verified."""
    if path == SYSTEM_ROOTS:
        # The word wins over a file named "system"; libpq's docs suggest ./system for that.
        # CRLs are not loaded with the system's roots, as in libpq.
        load_system_roots(context)
        return False

    if path is not None and _exists(path):
        try:
            context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f'could not read root certificate file "{path}": {reason(exc)}; the file '
                "must contain one or more PEM certificates",
                parameter="sslrootcert",
                value=path,
            ) from exc
        context.verify_mode = ssl.CERT_REQUIRED
        return True

    if not params.sslmode.requires_verification:
        return False
    if path is None:
        message = (
            "could not get home directory to locate root certificate file; set HOME or pass "
            f"sslrootcert\n{_MISSING_ROOT_HINT}"
        )
    else:
        message = f'root certificate file "{path}" does not exist\n{_MISSING_ROOT_HINT}'
    raise ConfigurationError(message, parameter="sslrootcert", value=path)


def _load_crl(context: ssl.SSLContext, params: ConnectParams, files: LibpqFiles) -> None:
    """Load the CRL file and directory; check revocation only if all of them loaded."""
    if files.crl is None and files.crldir is None:
        return
    try:
        if files.crl is not None:
            context.load_verify_locations(cafile=files.crl)
        if files.crldir is not None:
            context.load_verify_locations(capath=files.crldir)
    except (OSError, ssl.SSLError) as exc:
        # libpq silently ignores a CRL it cannot load, and here a DEBUG record notes it.
        if params.sslcrl is not None or params.sslcrldir is not None:
            logger.debug(
                "ignoring CRL sslcrl=%r sslcrldir=%r, as libpq does: %s",
                params.sslcrl,
                params.sslcrldir,
                reason(exc),
            )
        return
    # CRL_CHECK | CRL_CHECK_ALL, like libpq: every certificate of the chain needs a CRL.
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN


def _exists(path: str) -> bool:
    # libpq tests with stat(), so an entry it cannot stat counts as missing.
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


# --- the provider ----------------------------------------------------------------------------


class LibpqFileProvider(CachingProvider):
    """The default context provider: contexts built like libpq's, reused while files stay put.

    A context is cached per configuration, keyed by the file paths, TLS versions, whether the
    sslmode requires verification, sslcertmode, sslkeylogfile, a keyed digest of
    sslpassword and each file's inode, modification time and size.  Replacing or editing a
    file therefore builds a new context on the next attempt.  At most ``max_size`` contexts
    are kept, least recently used first out.  ``password_callback`` is awaited for the pass
    phrase of an encrypted key when sslpassword is unset; it receives the key file's path.
    """

    def _cache_key(self, params: ConnectParams, material: Any) -> Hashable:
        files = resolve_files(params)
        return (files, root_rules_state(files), client_files_state(params, files.cert, files.key))

    def _build(
        self, params: ConnectParams, material: Any, passwords: PasswordSource
    ) -> ssl.SSLContext:
        return _build(params, resolve_files(params), passwords)


default_provider = LibpqFileProvider()
