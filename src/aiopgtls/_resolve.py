"""Resolve connection parameters from every place libpq 18 takes them from, in its order.

Precedence, highest first.  It follows ``conninfo_array_parse()``, ``conninfo_add_defaults()``
and ``pqConnectOptions2()`` in fe-connect.c:

1. Keyword arguments.  None counts as unset.  An empty string is a value, as in psycopg's
   ``connect()`` (libpq's ``PQconnectdbParams()`` would skip it).
2. The conninfo string or URI.  An empty value counts as set: ``host=''`` keeps PGHOST out
   and means the default host.
3. The service file group named by ``service`` (from 1 or 2) or else by PGSERVICE.  It only
   fills keywords that 1 and 2 left unset, and within the group the first line wins.
4. Environment variables (PGHOST, PGSSLMODE ...), for keywords still unset.  An empty
   variable counts as set.  PGREQUIRESSL=1 means sslmode=require when PGSSLMODE is unset.
5. Built-in defaults.  ``user`` is the effective operating system user, ``dbname`` the
   user, and ``host`` the default Unix-socket directory.  When no source above set sslmode
   and ``sslrootcert=system``, sslmode is verify-full.
6. The password file, only for a password that is still unset or empty, looked up for each
   host separately.

The service file comes before the environment, as in fe-connect.c, although libpq's
documentation lists the environment first.
"""

from __future__ import annotations

import enum
import functools
import os
import types
from collections.abc import Mapping

import anyio.to_thread

from ._build import build
from ._conninfo import check_keyword, check_value, parse_conninfo
from ._environment import (
    BUILTIN_DEFAULTS,
    ENVIRONMENT_VARIABLES,
    KEYWORD_ORDER,
    REQUIRESSL_VARIABLE,
    environment_source,
    operating_system_user,
)
from ._params import ConnectParams
from ._service_file import find_service
from ._values import SOURCE_CONNINFO, SOURCE_DEFAULT, SOURCE_KEYWORD, Setting
from .errors import ConfigurationError

__all__ = ("Setting", "resolve_params", "resolve_params_async", "resolve_without_files")

# Keywords whose keyword argument may be a bool, written as "1" or "0".
FLAG_KEYWORDS = frozenset({"sslsni", "keepalives", "sslcompression", "gssdelegation"})

_NO_KEYWORDS: Mapping[str, object] = types.MappingProxyType({})


def resolve_params(
    conninfo: str | None,
    keywords: Mapping[str, object] = _NO_KEYWORDS,
    *,
    environ: Mapping[str, str] | None = None,
) -> ConnectParams:
    """Resolve and validate connection parameters like libpq 18 (see the module docstring).

    ``environ`` replaces ``os.environ``.  Reads the service file and the password file, so
    async code should call ``resolve_params_async()``.  Raises ConfigurationError naming the
    parameter, its value (never a secret's) and where the value came from.
    """
    environment = os.environ if environ is None else environ
    settings = collect_explicit(conninfo, keywords)
    settings = apply_defaults(settings, environment, use_files=True)
    return build(settings, environment, use_files=True)


async def resolve_params_async(
    conninfo: str | None,
    keywords: Mapping[str, object] = _NO_KEYWORDS,
    *,
    environ: Mapping[str, str] | None = None,
) -> ConnectParams:
    """Run ``resolve_params()`` in a worker thread, because it reads files."""
    call = functools.partial(resolve_params, conninfo, keywords, environ=environ)
    return await anyio.to_thread.run_sync(call)


def resolve_without_files(keywords: Mapping[str, object]) -> ConnectParams:
    """Validate keyword arguments and apply built-in defaults only.

    No environment variable, service file or password file is read.
    """
    if keywords.get("service") not in (None, ""):
        raise ConfigurationError(
            "service needs resolve_params(), which reads the service file; build_params() "
            "reads no files",
            parameter="service",
            value=str(keywords["service"]),
        )
    settings = collect_explicit(None, keywords)
    settings = apply_defaults(settings, {}, use_files=False)
    return build(settings, {}, use_files=False)


def collect_explicit(conninfo: str | None, keywords: Mapping[str, object]) -> dict[str, Setting]:
    """Return the settings of the conninfo string, overridden by the keyword arguments."""
    settings: dict[str, Setting] = {}
    if conninfo is not None:
        for keyword, text in parse_conninfo(conninfo).items():
            settings[keyword] = Setting(text, SOURCE_CONNINFO)

    for keyword, argument in keywords.items():
        check_keyword(keyword)
        converted = keyword_text(keyword, argument)
        if converted is not None:
            settings[keyword] = Setting(converted, SOURCE_KEYWORD)
    return settings


def keyword_text(keyword: str, value: object) -> str | None:
    """Convert a keyword argument to libpq's text form, or to None for an unset value."""
    if value is None:
        return None
    if isinstance(value, bool):
        if keyword not in FLAG_KEYWORDS:
            raise _type_error(keyword, value, "a string")
        return "1" if value else "0"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, int):
        return str(value)
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str):
        raise _type_error(keyword, value, "a string, an int or a path")
    check_value(keyword, text)
    return text


def apply_defaults(
    explicit: Mapping[str, Setting], environ: Mapping[str, str], *, use_files: bool
) -> dict[str, Setting]:
    """Fill unset keywords from the service file, the environment and the built-in defaults."""
    settings = dict(explicit)
    if use_files:
        _apply_service(settings, environ)

    sslmode_defaulted = False
    for keyword in KEYWORD_ORDER:
        if keyword in settings:
            continue
        variable = ENVIRONMENT_VARIABLES.get(keyword)
        if variable is not None and variable in environ:
            settings[keyword] = Setting(environ[variable], environment_source(variable))
            continue
        if keyword == "sslmode":
            if environ.get(REQUIRESSL_VARIABLE, "").startswith("1"):
                settings[keyword] = Setting("require", environment_source(REQUIRESSL_VARIABLE))
                continue
            sslmode_defaulted = True
        if keyword in BUILTIN_DEFAULTS:
            settings[keyword] = Setting(BUILTIN_DEFAULTS[keyword], SOURCE_DEFAULT)
        elif keyword == "user":
            user = operating_system_user()
            if user is not None:
                settings[keyword] = Setting(user, SOURCE_DEFAULT)

    rootcert = settings.get("sslrootcert")
    if sslmode_defaulted and rootcert is not None and rootcert.value == "system":
        settings["sslmode"] = Setting("verify-full", SOURCE_DEFAULT)
    return settings


def _apply_service(settings: dict[str, Setting], environ: Mapping[str, str]) -> None:
    service = settings.get("service")
    if service is not None:
        name: str | None = service.value
    else:
        name = environ.get(ENVIRONMENT_VARIABLES["service"])
    if name is None:
        return
    entry = find_service(name, environ)
    for keyword, value in entry.settings.items():
        settings.setdefault(keyword, Setting(value, entry.source))


def _type_error(keyword: str, value: object, expected: str) -> ConfigurationError:
    return ConfigurationError(
        f"invalid {keyword} value of type {type(value).__name__}; pass {expected}",
        parameter=keyword,
    )
