"""Connection service files (``pg_service.conf``), read the way libpq 18 reads them.

The lookup follows ``parseServiceInfo()`` and ``parseServiceFile()`` in fe-connect.c:

- The user's file is ``PGSERVICEFILE`` when that variable is set (even when it names a
  missing file, which is an error), otherwise ``~/.pg_service.conf`` when it exists.
- When the user's file has no group of that name, the system file
  ``PGSYSCONFDIR/pg_service.conf`` is searched, when it exists.
- A service that neither file defines is an error.

Inside a file, only the first ``[name]`` group counts; text after the closing bracket is
ignored.  Lines are stripped of white space at both ends, ``#`` starts a comment, and each
other line is ``keyword=value`` with no space allowed around the keyword.  When a keyword
appears twice in the group, the first value wins.  Lines outside the group are never
checked.  The file is read as bytes and decoded as UTF-8 with ``surrogateescape``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from ._conninfo import LIBPQ_KEYWORDS
from ._environment import SERVICE_FILE_VARIABLE, home_directory, sysconfdir
from ._values import C_SPACES
from .errors import ConfigurationError

_C_SPACE_BYTES = C_SPACES.encode()


@dataclasses.dataclass(frozen=True)
class ServiceEntry:
    """The settings of one service group, in file order, with the file they came from."""

    name: str
    path: str
    settings: Mapping[str, str]

    @property
    def source(self) -> str:
        """The source label of the settings, such as ``service file (/etc/x.conf, [prod])``."""
        return f"service file ({self.path}, [{self.name}])"


def find_service(name: str, environ: Mapping[str, str]) -> ServiceEntry:
    """Return the settings of service ``name`` from the user's or the system's service file.

    Raises ConfigurationError when a file cannot be read, a line of the group is invalid or
    no file defines the service.
    """
    user_file = environ.get(SERVICE_FILE_VARIABLE)
    if user_file is None:
        home = home_directory(environ)
        candidate = f"{home}/.pg_service.conf" if home else None
        if candidate is not None and os.path.exists(candidate):
            user_file = candidate

    searched = []
    if user_file is not None:
        searched.append(user_file)
        entry = read_service_file(user_file, name)
        if entry is not None:
            return entry

    system_file = f"{sysconfdir(environ)}/pg_service.conf"
    if os.path.exists(system_file):
        searched.append(system_file)
        entry = read_service_file(system_file, name)
        if entry is not None:
            return entry

    where = ", ".join(f'"{path}"' for path in searched) or "no service file exists"
    raise ConfigurationError(
        f'definition of service "{name}" not found (searched: {where}); add a [{name}] group '
        f"to ~/.pg_service.conf or the file named by {SERVICE_FILE_VARIABLE}, or fix the "
        "service name",
        parameter="service",
        value=name,
    )


def read_service_file(path: str, name: str) -> ServiceEntry | None:
    """Return the ``[name]`` group of the file at ``path``, or None when it has none."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except IsADirectoryError:
        # libpq's fopen() succeeds on a directory and the first read ends the file.
        return None
    except OSError as exc:
        raise ConfigurationError(
            f'service file "{path}" not found ({exc.strerror}); create it or point '
            f"{SERVICE_FILE_VARIABLE} at an existing file",
            parameter="service",
            value=name,
        ) from exc

    settings = _parse_group(data, name.encode("utf-8", "surrogateescape"), path)
    if settings is None:
        return None
    return ServiceEntry(name=name, path=path, settings=settings)


def _parse_group(data: bytes, name: bytes, path: str) -> dict[str, str] | None:
    settings: dict[str, str] | None = None
    for number, raw_line in enumerate(data.split(b"\n"), start=1):
        line = raw_line.strip(_C_SPACE_BYTES)
        if not line or line.startswith(b"#"):
            continue

        if line.startswith(b"["):
            if settings is not None:
                break
            if line[1 : len(name) + 1] == name and line[len(name) + 1 : len(name) + 2] == b"]":
                settings = {}
            continue

        if settings is not None:
            keyword, value = _parse_line(line, path, number)
            settings.setdefault(keyword, value)
    return settings


def _parse_line(line: bytes, path: str, number: int) -> tuple[str, str]:
    where = f'service file "{path}", line {number}'
    if line.startswith(b"ldap"):
        raise ConfigurationError(
            f"LDAP service lookups are not supported ({where}); put the connection settings "
            "into the group itself",
            parameter="service",
        )

    raw_keyword, equals, raw_value = line.partition(b"=")
    keyword = raw_keyword.decode("utf-8", "surrogateescape")
    if not equals:
        raise ConfigurationError(
            f'syntax error in {where}: missing "=" after "{keyword}"; write each setting as '
            "keyword=value",
            parameter="service",
        )
    if keyword == "service":
        raise ConfigurationError(
            f"nested service specifications are not supported in {where}; remove the service= line",
            parameter="service",
        )
    if keyword not in LIBPQ_KEYWORDS:
        raise ConfigurationError(
            f'syntax error in {where}: invalid connection option "{keyword}"; use a libpq '
            "keyword with no spaces before the =",
            parameter="service",
        )
    if b"\0" in raw_value:
        raise ConfigurationError(
            f'the value of "{keyword}" in {where} contains a NUL byte; remove it',
            parameter=keyword,
        )
    return keyword, raw_value.decode("utf-8", "surrogateescape")
