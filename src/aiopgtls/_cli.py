"""The ``aiopgtls`` command: ``probe`` a server, or run the ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence

import anyio

from . import _cli_certs, _cli_params
from ._connect import connect
from ._report import ProbeReport, render_json, render_text
from ._resolve import resolve_params
from .errors import ConfigurationError, ConnectError, SecurityWarning

EXIT_OK = 0
EXIT_CONNECT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiopgtls",
        description="Walk libpq's sslmode ladder against a PostgreSQL server and explain it.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    probe = commands.add_parser(
        "probe",
        help="connect with a conninfo string or URI and print each attempt",
        description="Connect like libpq 18 and print every attempt, fallback and the outcome. "
        "Exit status: 0 connected, 1 connection failed, 2 invalid arguments.",
    )
    probe.add_argument("conninfo", help='e.g. "host=db.example.com sslmode=verify-full" or a URI')
    probe.add_argument("--json", action="store_true", help="print one JSON object instead")
    probe.add_argument(
        "--backend", choices=("asyncio", "trio"), default="asyncio", help="anyio backend to use"
    )

    demo = commands.add_parser(
        "demo",
        help="start a throwaway local PostgreSQL with test certificates and probe every sslmode",
    )
    demo.add_argument("--json", action="store_true", help="print the results as JSON")
    demo.add_argument(
        "--pg-bin", default=None, help="directory with initdb and pg_ctl (default: search)"
    )
    _cli_params.add_parser(commands)
    _cli_certs.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader of our output went away (for example "| head"); nothing is left to do.
        sys.stderr.close()
        return EXIT_OK


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "probe":
        return _probe(args.conninfo, as_json=args.json, backend=args.backend)
    if args.command == "params":
        return _cli_params.run(args)
    if args.command == "certs":
        return _cli_certs.run(args)
    from ._demo import run_demo

    return run_demo(as_json=args.json, pg_bin=args.pg_bin)


def _probe(conninfo: str, *, as_json: bool, backend: str) -> int:
    try:
        params = resolve_params(conninfo, {})
        report = ProbeReport(params)
        anyio.run(_connect_for_report, conninfo, report, backend=backend)
    except ConfigurationError as exc:
        print(f"aiopgtls: invalid connection settings: {exc}", file=sys.stderr)
        if as_json:
            print(json.dumps(_invalid_json(exc), indent=2))
        return EXIT_USAGE

    if as_json:
        print(json.dumps(render_json(report), indent=2))
    else:
        print(render_text(report))
    return EXIT_OK if report.connection is not None else EXIT_CONNECT_FAILED


def _invalid_json(exc: ConfigurationError) -> dict[str, object]:
    return {
        "ok": False,
        "encrypted": False,
        "tls_version": None,
        "verified": "none",
        "attempts": [],
        "error": str(exc),
        "error_type": type(exc).__name__,
        "parameter": exc.parameter,
    }


async def _connect_for_report(conninfo: str, report: ProbeReport) -> None:
    with warnings.catch_warnings(record=True) as caught:
        # The report shows security warnings itself instead of printing them to stderr.
        warnings.simplefilter("always", SecurityWarning)
        try:
            connection = await connect(conninfo, trace=report.record)
        except ConnectError as exc:
            report.error = exc
            return
        finally:
            report.warnings.extend(
                f"{item.category.__name__}: {item.message}"
                for item in caught
                if issubclass(item.category, SecurityWarning)
            )
    report.connection = connection
    await connection.aclose()


if __name__ == "__main__":
    sys.exit(main())
