"""``aiopgtls params``: print the resolved connection parameters and where each came from.

Resolution is the same as for ``connect()``: conninfo, service file, environment, built-in
defaults and password file.  Secrets are shown only as "set" or "not set".
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

from ._environment import KEYWORD_ORDER
from ._params import ConnectParams
from ._resolve import resolve_params
from .errors import ConfigurationError

EXIT_OK = 0
EXIT_USAGE = 2

_SECRETS = ("password", "sslpassword")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``params`` subcommand to the ``aiopgtls`` command."""
    parser = subparsers.add_parser(
        "params",
        help="print the resolved connection parameters and the source of each",
        description="Resolve a conninfo string or URI the way libpq 18 does, with the service "
        "file, PG* environment variables, built-in defaults and the password file, and print "
        "every parameter with its source. Exit status: 0 valid, 2 invalid settings.",
    )
    parser.add_argument(
        "conninfo",
        nargs="?",
        default="",
        help='e.g. "service=prod sslmode=verify-full" or a URI (default: empty, which shows '
        "what the environment and the defaults give)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")


def run(args: argparse.Namespace) -> int:
    """Resolve ``args.conninfo`` and print the parameters; return the exit status."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            params = resolve_params(args.conninfo, {})
    except ConfigurationError as exc:
        print(f"aiopgtls: invalid connection settings: {exc}", file=sys.stderr)
        if args.json:
            error = {"ok": False, "error": str(exc), "parameter": exc.parameter}
            print(json.dumps(error, indent=2))
        return EXIT_USAGE

    for warning in caught:
        print(f"aiopgtls: warning: {warning.message}", file=sys.stderr)
    if args.json:
        print(json.dumps(describe(params), indent=2))
    else:
        print(render_text(params))
    return EXIT_OK


def describe(params: ConnectParams) -> dict[str, Any]:
    """Return the parameters as JSON-ready data, with secrets as "set" or "not set"."""
    parameters = {}
    for keyword in KEYWORD_ORDER:
        row = _row(params, keyword)
        if row is not None:
            parameters[keyword] = {"value": row[0], "source": row[1]}

    startup = {
        name: {"value": value, "source": params.sources.get(name)}
        for name, value in params.startup_parameters.items()
    }
    hosts = [
        {
            "host": host.host,
            "hostaddr": host.hostaddr,
            "port": host.port,
            "unix_socket": host.is_unix_socket,
            "password": _shown_secret(host.password),
            "password_source": host.password_source,
        }
        for host in params.hosts
    ]
    return {
        "parameters": parameters,
        "hosts": hosts,
        "startup_parameters": startup,
        "conninfo": params.to_conninfo(include_secrets=False),
    }


def render_text(params: ConnectParams) -> str:
    """Return the parameters as an aligned table, then the hosts and the startup parameters."""
    rows = [("keyword", "value", "source")]
    for keyword in KEYWORD_ORDER:
        row = _row(params, keyword)
        if row is not None:
            rows.append((keyword, _shown(row[0]), row[1] or "-"))
    width_keyword = max(len(row[0]) for row in rows)
    width_value = min(40, max(len(row[1]) for row in rows))
    lines = [f"{k:<{width_keyword}}  {v:<{width_value}}  {s}" for k, v, s in rows]

    lines.append("")
    lines.append("hosts:")
    for number, host in enumerate(params.hosts, start=1):
        where = f"{host.host} port {host.port}"
        if host.hostaddr:
            where += f" (hostaddr {host.hostaddr})"
        password = _shown_secret(host.password)
        if host.password_source:
            password += f" ({host.password_source})"
        lines.append(f"  {number}. {where}, password {password}")

    if params.startup_parameters:
        lines.append("")
        lines.append("startup parameters:")
        for name, value in params.startup_parameters.items():
            source = params.sources.get(name, "-")
            lines.append(f"  {name}={_shown(value)}  ({source})")
    return "\n".join(lines)


def _row(params: ConnectParams, keyword: str) -> tuple[str, str | None] | None:
    """Return (value, source) of ``keyword``, or None when it has no value."""
    if keyword in _SECRETS:
        value = params.password if keyword == "password" else params.sslpassword
        return _shown_secret(value), params.sources.get(keyword)
    if keyword == "host" and keyword not in params.settings:
        return ",".join(host.host for host in params.hosts), params.sources.get(keyword, "default")
    if keyword not in params.settings:
        return None
    return params.settings[keyword], params.sources.get(keyword, "default")


def _shown_secret(value: str | None) -> str:
    return "set" if value else "not set"


def _shown(value: str) -> str:
    return value if value else "''"
