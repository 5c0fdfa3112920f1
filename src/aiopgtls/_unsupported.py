"""libpq keywords whose values aiopgtls cannot honour, and why each one is rejected.

Ignoring any of these settings would make the connection weaker than the caller asked for,
or change what the connection means, so a non-empty value raises ConfigurationError before
a socket opens.  docs/parameters.md lists every keyword with its treatment.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._conninfo import SECRET_KEYWORDS
from ._values import Setting
from .errors import ConfigurationError

# keyword -> (reason it is not supported, what to do instead)
_REJECTED: Mapping[str, tuple[str, str]] = {
    "require_auth": (
        "restricting the authentication methods the server may request is not implemented, "
        "and ignoring it could let a weaker method through",
        "remove require_auth, or connect with libpq",
    ),
    "requirepeer": (
        "checking the operating system user of the server process on a Unix-domain socket "
        "is not implemented",
        "remove requirepeer, or connect with libpq",
    ),
    "scram_client_key": (
        "authenticating with stored SCRAM keys is not implemented",
        "pass the password instead",
    ),
    "scram_server_key": (
        "authenticating with stored SCRAM keys is not implemented",
        "pass the password instead",
    ),
    "oauth_issuer": (
        "OAuth authentication (PostgreSQL 18) is not implemented",
        "remove the oauth_* settings, or connect with libpq",
    ),
    "oauth_client_id": (
        "OAuth authentication (PostgreSQL 18) is not implemented",
        "remove the oauth_* settings, or connect with libpq",
    ),
    "oauth_client_secret": (
        "OAuth authentication (PostgreSQL 18) is not implemented",
        "remove the oauth_* settings, or connect with libpq",
    ),
    "oauth_scope": (
        "OAuth authentication (PostgreSQL 18) is not implemented",
        "remove the oauth_* settings, or connect with libpq",
    ),
}

# keyword -> {rejected value: (reason, what to do instead)}
_REJECTED_VALUES: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "gssencmode": {
        "require": (
            "aiopgtls never uses GSSAPI encryption",
            "use sslmode=verify-full for an encrypted connection, or gssencmode=prefer",
        ),
    },
}


def check_unsupported(settings: Mapping[str, Setting]) -> None:
    """Raise ConfigurationError for the first setting that aiopgtls cannot honour."""
    for keyword, (reason, remedy) in _REJECTED.items():
        setting = settings.get(keyword)
        if setting is not None and setting.value != "":
            raise _unsupported(keyword, setting, reason, remedy)

    for keyword, values in _REJECTED_VALUES.items():
        setting = settings.get(keyword)
        if setting is not None and setting.value in values:
            reason, remedy = values[setting.value]
            raise _unsupported(keyword, setting, reason, remedy)


def _unsupported(keyword: str, setting: Setting, reason: str, remedy: str) -> ConfigurationError:
    if keyword in SECRET_KEYWORDS:
        shown = f"{keyword} (the value is not shown)"
        value = None
    else:
        shown = f'{keyword}="{setting.value}"'
        value = setting.value
    return ConfigurationError(
        f"aiopgtls does not support {shown} (from {setting.source}): {reason}; {remedy}",
        parameter=keyword,
        value=value,
    )
