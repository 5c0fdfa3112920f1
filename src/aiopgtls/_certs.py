"""Throwaway certificate authorities and certificates for the test suite and the demo.

Everything is generated with trustme, which is an optional dependency (the ``test`` and
``demo`` extras), so it is imported only when a certificate set is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trustme

__all__ = ("SERVER_NAMES", "CertificateSet", "KeyPair", "write_certificate_set")

# Names in the subjectAltName of every "good" server certificate: both loopback addresses,
# the name that resolves to them, and a DNS name that resolves nowhere (for tests that set
# ``hostaddr`` and verify against ``host``).
SERVER_NAMES = ("localhost", "127.0.0.1", "::1", "db.example.test")

OTHER_HOST_NAME = "other.example.test"

PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate file (leaf first, then any intermediates) and its unencrypted key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class CertificateSet:
    """Paths of the PEM files written by :func:`write_certificate_set`.

    ``ca_a``, ``ca_b`` and ``ca_c`` are unrelated self-signed roots.  Each server key pair's
    certificate file contains the chain a server sends: the leaf, then any intermediates.
    """

    directory: Path
    ca_a: Path
    ca_b: Path
    ca_c: Path
    intermediate_c: Path
    server_a: KeyPair
    server_b: KeyPair
    server_other_host: KeyPair
    server_chain: KeyPair
    client: KeyPair
    client_user: str

    @property
    def wrong_root(self) -> Path:
        """A root file that does not contain the issuer of ``server_a`` (it is CA-B)."""
        return self.ca_b


def write_certificate_set(directory: Path, client_user: str = "certuser") -> CertificateSet:
    """Generate fresh CAs and certificates and write them as PEM files into ``directory``.

    ``client_user`` becomes the common name of the client certificate, which is what the
    server's ``cert`` authentication compares with the requested user name.  Keys are written
    with mode 0600, certificates with 0644.
    """
    try:
        import trustme
    except ImportError as exc:
        raise RuntimeError(
            "trustme is not installed, but it is needed to generate test certificates; "
            "install the 'test' or 'demo' extra, e.g. pip install 'aiopgtls[demo]'"
        ) from exc

    directory.mkdir(parents=True, exist_ok=True)

    ca_a = trustme.CA(organization_unit_name="aiopgtls test CA-A")
    ca_b = trustme.CA(organization_unit_name="aiopgtls test CA-B")
    ca_c = trustme.CA(organization_unit_name="aiopgtls test CA-C")
    intermediate_c = ca_c.create_child_ca()

    return CertificateSet(
        directory=directory,
        ca_a=_write_ca(ca_a, directory / "ca-a.crt"),
        ca_b=_write_ca(ca_b, directory / "ca-b.crt"),
        ca_c=_write_ca(ca_c, directory / "ca-c.crt"),
        intermediate_c=_write_ca(intermediate_c, directory / "intermediate-c.crt"),
        server_a=_write_leaf(ca_a.issue_cert(*SERVER_NAMES), directory, "server-a"),
        server_b=_write_leaf(ca_b.issue_cert(*SERVER_NAMES), directory, "server-b"),
        server_other_host=_write_leaf(
            ca_a.issue_cert(OTHER_HOST_NAME), directory, "server-other-host"
        ),
        server_chain=_write_leaf(
            intermediate_c.issue_cert(*SERVER_NAMES[:3]), directory, "server-chain"
        ),
        client=_write_leaf(_issue_client_cert(ca_a, client_user), directory, "client"),
        client_user=client_user,
    )


def _issue_client_cert(ca: trustme.CA, user: str) -> trustme.LeafCert:
    # trustme needs at least one subjectAltName entry for a well-formed certificate;
    # PostgreSQL's cert authentication reads only the common name.
    return ca.issue_cert(f"{user}@client.example.test", common_name=user)


def _write_ca(ca: trustme.CA, path: Path) -> Path:
    _write_file(path, ca.cert_pem.bytes(), PUBLIC_FILE_MODE)
    return path


def _write_leaf(leaf: trustme.LeafCert, directory: Path, stem: str) -> KeyPair:
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    pair = KeyPair(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    _write_file(pair.cert, chain, PUBLIC_FILE_MODE)
    _write_file(pair.key, leaf.private_key_pem.bytes(), PRIVATE_FILE_MODE)
    return pair


def _write_file(path: Path, data: bytes, mode: int) -> None:
    # Create with the final mode so a key is never readable by others, not even briefly.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(path, mode)
