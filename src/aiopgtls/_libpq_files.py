"""The default context provider: an ``ssl.SSLContext`` built from libpq's files and rules.

build_libpq_context() makes the decisions of ``initialize_SSL()`` in libpq's
fe-secure-openssl.c (PostgreSQL 15 to 18):

- A root certificate file (``sslrootcert`` or ``~/.postgresql/root.crt``) that exists turns on
  chain verification in every sslmode that uses TLS, so require, prefer and allow verify too.
  A missing file is an error only under verify-ca and verify-full.
- CRLs (``sslcrl``, ``sslcrldir`` or ``~/.postgresql/root.crl``) are loaded only with a root
  file, and a CRL that cannot be loaded is ignored.
- A client certificate (``sslcert`` or ``~/.postgresql/postgresql.crt``) is used when it
  exists, and then its key must exist and pass libpq's permission check.

LibpqFileProvider runs that builder in a worker thread and reuses each context until one of
its files changes.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import logging
import os
import secrets
import ssl
import sys
import threading
from collections.abc import Callable, Hashable

import anyio.to_thread
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ._keyfile import check_key_permissions
from ._params import ConnectParams
from ._provider import AttemptInfo
from .errors import ClientCertificateError, ConfigurationError

__all__ = (
    "LibpqFileProvider",
    "LibpqFiles",
    "build_libpq_context",
    "default_directory",
    "default_provider",
    "resolve_files",
)

logger = logging.getLogger(__name__)

ROOT_CERT_FILE = "root.crt"
ROOT_CRL_FILE = "root.crl"
USER_CERT_FILE = "postgresql.crt"
USER_KEY_FILE = "postgresql.key"

_MISSING_ROOT_HINT = (
    "Either provide the file, use the system's trusted roots with sslrootcert=system, or "
    "change sslmode to disable server certificate verification."
)

_TLS_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}

# OpenSSL hands the pass phrase callback a 1024-byte buffer (PEM_BUFSIZE) and libpq copies at
# most 1023 bytes into it, so a longer sslpassword is cut there.
_MAX_PASSWORD_BYTES = 1023

_ENCRYPTED_PEM_MARKERS = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


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


def build_libpq_context(params: ConnectParams) -> ssl.SSLContext:
    """Build the SSLContext that libpq would use for ``params``.

    This reads files, so call it from a worker thread in async code.  Raises
    ConfigurationError for a root certificate problem and ClientCertificateError for a client
    certificate or key problem.
    """
    return _build(params, resolve_files(params))


def _build(params: ConnectParams, files: LibpqFiles) -> ssl.SSLContext:
    context = _new_context(params)
    if _load_root_certificate(context, params, files.root):
        _load_crl(context, params, files)
    _load_client_certificate(context, params, files)
    return context


def _new_context(params: ConnectParams) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The verify-full name check follows libpq's rules and runs after the handshake.
    context.check_hostname = False
    # libpq verifies the chain only when a root certificate file is loaded.
    context.verify_mode = ssl.CERT_NONE
    # OpenSSL's default chain building as in libpq: no partial chains and no X509_STRICT
    # checks, which Python 3.13's create_default_context() would add.
    context.verify_flags = ssl.VERIFY_X509_TRUSTED_FIRST
    # libpq 17+ offers ALPN "postgresql" on every handshake; direct-TLS servers require it.
    context.set_alpn_protocols(["postgresql"])
    # Compression exposes secrets through ciphertext lengths (CRIME); libpq turns it off.
    context.options |= ssl.OP_NO_COMPRESSION
    # PostgreSQL servers disable renegotiation, and renegotiation has a history of attacks.
    context.options |= ssl.OP_NO_RENEGOTIATION
    # An unset minimum leaves OpenSSL's own floor, as libpq does, instead of Python's TLS 1.2.
    context.minimum_version = _tls_version(
        params.ssl_min_protocol_version, ssl.TLSVersion.MINIMUM_SUPPORTED
    )
    context.maximum_version = _tls_version(
        params.ssl_max_protocol_version, ssl.TLSVersion.MAXIMUM_SUPPORTED
    )
    return context


def _tls_version(name: str | None, unset: ssl.TLSVersion) -> ssl.TLSVersion:
    # Python emits a DeprecationWarning for TLSv1 and TLSv1.1; it reaches the caller unchanged.
    return unset if name is None else _TLS_VERSIONS[name]


def _load_root_certificate(
    context: ssl.SSLContext, params: ConnectParams, path: str | None
) -> bool:
    """Load the root certificate file if it exists; return whether the chain is verified."""
    if path == "system":
        # TODO: sslrootcert=system (libpq 16+) loads OpenSSL's default paths and makes
        # verify-full the default sslmode.
        raise ConfigurationError(
            "sslrootcert=system is not supported yet; pass the path of a root certificate "
            "file, or ./system for a file named system",
            parameter="sslrootcert",
            value=path,
        )

    if path is not None and _exists(path):
        try:
            context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f'could not read root certificate file "{path}": {_reason(exc)}; the file '
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
        # libpq silently ignores a CRL it cannot load; we log a warning for a configured one.
        if params.sslcrl is not None or params.sslcrldir is not None:
            logger.warning(
                "ignoring CRL sslcrl=%r sslcrldir=%r, as libpq does: %s",
                params.sslcrl,
                params.sslcrldir,
                _reason(exc),
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


# --- the client certificate ------------------------------------------------------------------


def _load_client_certificate(
    context: ssl.SSLContext, params: ConnectParams, files: LibpqFiles
) -> None:
    cert = files.cert
    if cert is None or not _client_certificate_exists(cert):
        return
    if files.key is None:
        raise ClientCertificateError(
            f'certificate file "{cert}" is present, but no private key file was found because '
            "the home directory is unknown; pass sslkey",
            path=cert,
        )

    key = files.key
    key_data = _read_key_file(key)
    password = params.sslpassword
    if password is None and _is_encrypted_pem(key_data):
        raise ClientCertificateError(_encrypted_message(key), path=key)

    try:
        context.load_cert_chain(cert, key, password=_password_callback(key, password))
    except (OSError, ssl.SSLError) as exc:
        raise _load_failure(exc, cert, key, key_data, password) from exc


def _client_certificate_exists(cert: str) -> bool:
    try:
        os.stat(cert)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise ClientCertificateError(
            f'could not open certificate file "{cert}": {_reason(exc)}; fix the file or point '
            "sslcert at another one",
            path=cert,
        ) from exc
    return True


def _read_key_file(key: str) -> bytes:
    """Check the key file as libpq does, then return its contents."""
    try:
        st = os.stat(key)
    except FileNotFoundError as exc:
        raise ClientCertificateError(
            f'certificate present, but not private key file "{key}"; put the key there or '
            "point sslkey at it",
            path=key,
        ) from exc
    except OSError as exc:
        raise ClientCertificateError(
            f'could not stat private key file "{key}": {_reason(exc)}', path=key
        ) from exc

    check_key_permissions(key, st)
    try:
        with open(key, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ClientCertificateError(
            f'could not read private key file "{key}": {_reason(exc)}', path=key
        ) from exc


def _is_encrypted_pem(data: bytes) -> bool:
    return any(marker in data for marker in _ENCRYPTED_PEM_MARKERS)


def _encrypted_message(key: str) -> str:
    return f'private key file "{key}" is encrypted; pass its pass phrase with sslpassword'


def _password_callback(key: str, password: str | None) -> Callable[[], bytes]:
    """Return the pass phrase callback, which keeps OpenSSL from prompting on a terminal."""

    def supply_password() -> bytes:
        if password is None:
            raise ClientCertificateError(_encrypted_message(key), path=key)
        return password.encode("utf-8")[:_MAX_PASSWORD_BYTES]

    return supply_password


def _load_failure(
    exc: OSError, cert: str, key: str, key_data: bytes, password: str | None
) -> ClientCertificateError:
    """Explain why OpenSSL could not load the certificate and key.

    Python reports most failures as "PEM lib", so the files are examined again with
    cryptography to find the cause.
    """
    if isinstance(exc, ssl.SSLError) and exc.reason == "KEY_VALUES_MISMATCH":
        return ClientCertificateError(
            f'certificate does not match private key file "{key}"; the certificate in '
            f'"{cert}" was issued for another key, so pass the matching sslcert and sslkey',
            path=key,
        )

    certificate_problem = _certificate_problem(cert)
    if certificate_problem is not None:
        return ClientCertificateError(
            f'could not read certificate file "{cert}": {certificate_problem}', path=cert
        )

    key_problem = _key_problem(key, key_data, password)
    if key_problem is not None:
        return key_problem
    return ClientCertificateError(
        f'could not load certificate file "{cert}" with private key file "{key}": {_reason(exc)}',
        path=key,
    )


def _certificate_problem(cert: str) -> str | None:
    try:
        with open(cert, "rb") as file:
            x509.load_pem_x509_certificates(file.read())
    except OSError as exc:
        return _reason(exc)
    except ValueError:
        return "the file contains no valid PEM certificate"
    return None


def _key_problem(key: str, key_data: bytes, password: str | None) -> ClientCertificateError | None:
    encrypted = _is_encrypted_pem(key_data)
    secret = password.encode("utf-8")[:_MAX_PASSWORD_BYTES] if password and encrypted else None
    try:
        serialization.load_pem_private_key(key_data, secret)
    except TypeError:
        # cryptography found encryption that the PEM header test missed.
        return ClientCertificateError(_encrypted_message(key), path=key)
    except ValueError as exc:
        if encrypted and "password" in str(exc).lower():
            return ClientCertificateError(
                f'could not decrypt private key file "{key}": wrong sslpassword (bad decrypt)',
                path=key,
            )
        return ClientCertificateError(
            f'could not load private key file "{key}": {_key_format_problem(key_data)}',
            path=key,
        )
    except UnsupportedAlgorithm:
        return ClientCertificateError(
            f'could not load private key file "{key}": unsupported key algorithm', path=key
        )
    return None


def _key_format_problem(key_data: bytes) -> str:
    if b"-----BEGIN" not in key_data:
        # TODO: libpq also accepts an unencrypted DER (PKCS-8) key; pgjdbc accepts PKCS-12.
        return (
            "the file is not in PEM format; DER keys are not supported yet, convert the key "
            "with: openssl pkey -in KEY -out KEY.pem"
        )
    return "the PEM data is not a valid private key of a supported type"


def _reason(exc: BaseException) -> str:
    """Return a short description of an OpenSSL or operating system error."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


# --- the provider ----------------------------------------------------------------------------


class LibpqFileProvider:
    """The default context provider: contexts built like libpq's, reused while files stay put.

    A context is cached per configuration, keyed by the file paths, TLS versions, whether the
    sslmode requires verification, a keyed digest of sslpassword and each file's inode,
    modification time and size.  Replacing or editing a file therefore builds a new context
    on the next attempt.  At most ``max_size`` contexts are kept, least recently used first out.
    """

    def __init__(self, max_size: int = 64) -> None:
        self._max_size = max_size
        self._contexts: collections.OrderedDict[Hashable, ssl.SSLContext] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()
        self._build_locks: dict[Hashable, threading.Lock] = {}
        # The cache key contains an HMAC of sslpassword under this per-process key, so a
        # memory dump of the cache cannot be used to test password guesses.
        self._digest_key = secrets.token_bytes(32)

    async def __call__(self, attempt: AttemptInfo) -> ssl.SSLContext:
        return await anyio.to_thread.run_sync(self.get_context, attempt.params)

    def get_context(self, params: ConnectParams) -> ssl.SSLContext:
        """Return the cached context for ``params``, building it first if needed.

        This blocks on file I/O; async code calls the provider, which runs it in a worker
        thread.  Concurrent calls for the same configuration build the context once.
        """
        files = resolve_files(params)
        key = self._cache_key(params, files)
        with self._lock:
            context = self._lookup(key)
            if context is not None:
                return context
            build_lock = self._build_locks.setdefault(key, threading.Lock())

        try:
            with build_lock:
                with self._lock:
                    context = self._lookup(key)
                if context is None:
                    context = _build(params, files)
                    self._store(key, context)
        finally:
            with self._lock:
                self._build_locks.pop(key, None)
        return context

    def clear(self) -> None:
        """Forget every cached context."""
        with self._lock:
            self._contexts.clear()

    def _cache_key(self, params: ConnectParams, files: LibpqFiles) -> Hashable:
        password_digest = None
        if params.sslpassword is not None:
            password = params.sslpassword.encode("utf-8")
            password_digest = hmac.new(self._digest_key, password, hashlib.sha256).digest()
        paths = (files.root, files.crl, files.crldir, files.cert, files.key)
        return (
            params.sslmode.requires_verification,
            files,
            params.ssl_min_protocol_version,
            params.ssl_max_protocol_version,
            password_digest,
            tuple(_file_state(path) for path in paths),
        )

    def _lookup(self, key: Hashable) -> ssl.SSLContext | None:
        context = self._contexts.get(key)
        if context is not None:
            self._contexts.move_to_end(key)
        return context

    def _store(self, key: Hashable, context: ssl.SSLContext) -> None:
        with self._lock:
            self._contexts[key] = context
            self._contexts.move_to_end(key)
            while len(self._contexts) > self._max_size:
                self._contexts.popitem(last=False)


def _file_state(path: str | None) -> tuple[int, int, int] | None:
    """Return what identifies one version of a file, or None when it cannot be examined.

    NOTE: for sslcrldir this covers the directory entry only, so a CRL edited in place inside
    the directory is not noticed until another cache key changes.
    """
    if path is None:
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


default_provider = LibpqFileProvider()
