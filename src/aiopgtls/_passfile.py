"""Password file (``~/.pgpass``) lookups with libpq 18's matching rules.

Follows ``passwordFromFile()`` and ``pwdfMatchesString()`` in fe-connect.c:

- Each line is ``host:port:database:user:password``; a line starting with ``#`` is a comment
  and trailing carriage returns and newlines are stripped.  Nothing else is trimmed.
- A field that is exactly ``*`` matches anything.  Otherwise the field must equal the value,
  byte for byte and case-sensitively, where ``\\`` takes the next character literally (so
  ``\\:`` and ``\\*`` match ":" and "*").
- The host looked up is ``host``, or ``hostaddr`` when ``host`` is empty.  An empty host, or the
  default Unix-socket directory, is looked up as ``localhost``.  An empty port is 5432.
- The first matching line wins.  Its password ends at the first unescaped ``:``.
- The file is ignored, with a SecurityWarning, when it is not a regular file or when group or
  others have any access to it (POSIX only).  A missing or unreadable file is ignored quietly.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Mapping

from ._environment import home_directory
from .errors import SecurityWarning

DEFAULT_HOST_NAME = "localhost"
DEFAULT_PORT_TEXT = "5432"
PASSFILE_NAME = ".pgpass"


def default_passfile(environ: Mapping[str, str]) -> str | None:
    """Return ``~/.pgpass``, or None when there is no home directory."""
    home = home_directory(environ)
    return f"{home}/{PASSFILE_NAME}" if home else None


def lookup_password(
    path: str, *, host: str, port: str, dbname: str, user: str, default_socket_dir: str
) -> str | None:
    """Return the password that the file at ``path`` stores for this host, or None.

    ``host`` is the host name, Unix-socket directory or (when the host is empty) the
    hostaddr; ``port`` is the port text as given.
    """
    if not dbname or not user:
        return None
    if host == "" or (host.startswith(("/", "@")) and host == default_socket_dir):
        host = DEFAULT_HOST_NAME
    port = port or DEFAULT_PORT_TEXT

    data = _read_checked(path)
    if data is None:
        return None
    wanted = [field.encode("utf-8", "surrogateescape") for field in (host, port, dbname, user)]
    for line in data.split(b"\n"):
        password = _match_line(line, wanted)
        if password is not None:
            return password.decode("utf-8", "surrogateescape")
    return None


def _read_checked(path: str) -> bytes | None:
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return None

    if not stat.S_ISREG(status.st_mode):
        warnings.warn(
            SecurityWarning(
                f'password file "{path}" is not a plain file, so it is ignored; point passfile '
                "or PGPASSFILE at a regular file"
            ),
            stacklevel=5,
        )
        return None
    if os.name == "posix" and status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(
            SecurityWarning(
                f'password file "{path}" has group or world access, so it is ignored; '
                f'permissions should be u=rw (0600) or less: run chmod 0600 "{path}"'
            ),
            stacklevel=5,
        )
        return None

    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return None


def _match_line(line: bytes, wanted: list[bytes]) -> bytes | None:
    if line.startswith(b"#"):
        return None
    rest: bytes | None = line.rstrip(b"\r\n")
    if not rest:
        return None
    for field in wanted:
        rest = _match_field(rest, field)
        if rest is None:
            return None
    return _unescape_password(rest)


def _match_field(text: bytes, token: bytes) -> bytes | None:
    """Return the text after a field that matches ``token``, or None when it does not."""
    if text.startswith(b"*:"):
        return text[2:]

    pos = 0
    matched = 0
    while pos < len(text):
        escaped = text[pos] == ord("\\")
        if escaped:
            pos += 1
            if pos == len(text):
                return None
        if text[pos] == ord(":") and not escaped and matched == len(token):
            return text[pos + 1 :]
        if matched == len(token) or text[pos] != token[matched]:
            return None
        pos += 1
        matched += 1
    return None


def _unescape_password(text: bytes) -> bytes:
    password = bytearray()
    pos = 0
    while pos < len(text) and text[pos] != ord(":"):
        if text[pos] == ord("\\") and pos + 1 < len(text):
            pos += 1
        password.append(text[pos])
        pos += 1
    return bytes(password)
