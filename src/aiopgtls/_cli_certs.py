"""``aiopgtls certs DIR``: write the throwaway certificate set that docker-compose.yml mounts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._certs import write_certificate_set
from ._setups import CLIENT_CERT_USER

EXIT_OK = 0
EXIT_FAILED = 2


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``certs`` subcommand."""
    parser = subparsers.add_parser(
        "certs",
        help="write throwaway test CAs, server and client certificates into a folder",
        description="Generate fresh test certificate authorities, server certificates (RSA, "
        "ECDSA P-256 and P-384, Ed25519) and a client certificate, and write them as PEM files "
        "into DIR; keys get mode 0600.  docker-compose.yml mounts ./certs made this way.  "
        "Never use these certificates outside tests.",
    )
    parser.add_argument("directory", metavar="DIR", type=Path, help="folder to write into")
    parser.add_argument(
        "--client-user",
        default=CLIENT_CERT_USER,
        help=f"common name of the client certificate (default: {CLIENT_CERT_USER})",
    )


def run(args: argparse.Namespace) -> int:
    """Write the certificate set and list the files written; return the exit status."""
    directory: Path = args.directory
    try:
        certs = write_certificate_set(directory, args.client_user)
    except RuntimeError as exc:
        print(f"aiopgtls certs: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(
            f"aiopgtls certs: cannot write certificates into {str(directory)!r}: {exc}; "
            "choose a folder you can write to",
            file=sys.stderr,
        )
        return EXIT_FAILED

    for path in certs.files():
        print(path)
    return EXIT_OK
