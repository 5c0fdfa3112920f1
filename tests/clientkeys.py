"""Client keys in every format for the provider tests, and the PKI that issues them.

The PKI has a root CA that issues client certificates (RSA, ECDSA and Ed25519 keys) and an
intermediate CA that issues the server certificate, so that a server sends a two-level chain.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from aiopgtls._cluster import ClusterFactory, PostgresCluster, Role, ServerTLS

PASSWORD = "key pass phrase 42"
ALGORITHMS = ("rsa", "ecdsa", "ed25519")

# Format name -> (file suffix, encrypted).  "traditional" is PKCS#1 for RSA and SEC1 for ECDSA.
FORMATS = {
    "pem-pkcs8": (".key", False),
    "pem-traditional": (".key", False),
    "pem-pkcs8-encrypted": (".key", True),
    "pem-traditional-encrypted": (".key", True),  # the Proc-Type/DEK-Info form
    "der-pkcs8": (".pk8", False),
    "der-traditional": (".der", False),
    "der-pkcs8-encrypted": (".pk8", True),
    "pkcs12": (".p12", True),
    "pkcs12-legacy": (".pfx", True),  # 3DES and SHA-1, as older tools write
    "pkcs12-plain": (".p12", False),
}

TRADITIONAL = ("pem-traditional", "pem-traditional-encrypted", "der-traditional")


def applies(algorithm: str, key_format: str) -> bool:
    """Ed25519 keys have no traditional (PKCS#1/SEC1) encoding."""
    return not (algorithm == "ed25519" and key_format in TRADITIONAL)


def encrypted(key_format: str) -> bool:
    return FORMATS[key_format][1]


@dataclasses.dataclass(frozen=True)
class ClientCredential:
    """A client key with its certificate (from the root CA) and serial number."""

    key: PrivateKeyTypes
    certificate: x509.Certificate

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_der(self) -> bytes:
        """The unencrypted PKCS#8 DER, the plaintext that must never reach the disk."""
        return self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def encode(self, key_format: str, password: str = PASSWORD) -> bytes:
        """Return the key in ``key_format``, encrypted with ``password`` where that applies."""
        secret = password.encode()
        if key_format.startswith("pkcs12"):
            return self._pkcs12(key_format, secret)

        encoding = serialization.Encoding.DER
        if key_format.startswith("pem"):
            encoding = serialization.Encoding.PEM
        private_format = serialization.PrivateFormat.PKCS8
        if key_format in TRADITIONAL:
            private_format = serialization.PrivateFormat.TraditionalOpenSSL
        protection: serialization.KeySerializationEncryption = serialization.NoEncryption()
        if encrypted(key_format):
            protection = serialization.BestAvailableEncryption(secret)
        return self.key.private_bytes(encoding, private_format, protection)

    def _pkcs12(self, key_format: str, secret: bytes) -> bytes:
        protection: serialization.KeySerializationEncryption
        if key_format == "pkcs12-plain":
            protection = serialization.NoEncryption()
        elif key_format == "pkcs12-legacy":
            protection = (
                serialization.PrivateFormat.PKCS12.encryption_builder()
                .kdf_rounds(2048)
                .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                .hmac_hash(hashes.SHA1())
                .build(secret)
            )
        else:
            protection = serialization.BestAvailableEncryption(secret)
        return pkcs12.serialize_key_and_certificates(
            b"user",
            self.key,  # type: ignore[arg-type]
            self.certificate,
            None,
            protection,
        )


@dataclasses.dataclass
class ClientPKI:
    """The CAs, the server key pair and the files that clients and the server read."""

    directory: Path
    root: trustme.CA
    intermediate: trustme.CA
    server: trustme.LeafCert
    root_file: Path
    server_cert_file: Path
    server_key_file: Path

    def write(self, name: str, data: bytes, mode: int = 0o600) -> Path:
        path = self.directory / name
        path.unlink(missing_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        return path

    def issue_client(self, algorithm: str, user: str) -> ClientCredential:
        """Issue a client certificate for ``user`` from the root CA."""
        if algorithm == "ed25519":
            return self._issue_ed25519(user)
        key_type = trustme.KeyType.RSA if algorithm == "rsa" else trustme.KeyType.ECDSA
        leaf = self.root.issue_cert(f"{user}@client.test", common_name=user, key_type=key_type)
        key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
        certificate = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
        return ClientCredential(key, certificate)

    def _issue_ed25519(self, user: str) -> ClientCredential:
        key = ed25519.Ed25519PrivateKey.generate()
        root_cert = x509.load_pem_x509_certificate(self.root.cert_pem.bytes())
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
            .issuer_name(root_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(f"{user}.client.test")]), critical=False
            )
            .sign(self._root_key(), hashes.SHA256())  # type: ignore[arg-type]
        )
        return ClientCredential(key, certificate)

    def _root_key(self) -> PrivateKeyTypes:
        return serialization.load_pem_private_key(self.root.private_key_pem.bytes(), None)

    def crl(self, name: str, issuer: trustme.CA, revoked: tuple[int, ...] = ()) -> Path:
        """Write a CRL signed by ``issuer`` that revokes the given serial numbers."""
        now = datetime.datetime.now(datetime.timezone.utc)
        issuer_cert = x509.load_pem_x509_certificate(issuer.cert_pem.bytes())
        issuer_key = serialization.load_pem_private_key(issuer.private_key_pem.bytes(), None)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer_cert.subject)
            .last_update(now - datetime.timedelta(hours=1))
            .next_update(now + datetime.timedelta(days=1))
        )
        for serial in revoked:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - datetime.timedelta(hours=1))
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        crl = builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
        return self.write(name, crl.public_bytes(serialization.Encoding.PEM), 0o644)

    @property
    def server_serial(self) -> int:
        return x509.load_pem_x509_certificate(self.server.cert_chain_pems[0].bytes()).serial_number


def make_pki(directory: Path) -> ClientPKI:
    directory.mkdir(parents=True, exist_ok=True)
    root = trustme.CA(organization_unit_name="aiopgtls provider tests root")
    intermediate = root.create_child_ca()
    server = intermediate.issue_cert("localhost", "127.0.0.1", "::1")
    pki = ClientPKI(
        directory=directory,
        root=root,
        intermediate=intermediate,
        server=server,
        root_file=directory / "root.crt",
        server_cert_file=directory / "server.crt",
        server_key_file=directory / "server.key",
    )
    pki.write("root.crt", root.cert_pem.bytes(), 0o644)
    chain = b"".join(blob.bytes() for blob in server.cert_chain_pems)
    pki.write("server.crt", chain, 0o644)
    pki.write("server.key", server.private_key_pem.bytes())
    return pki


# --- a server that demands client certificates ---------------------------------------------


CERT_USER = "certuser"
LOOPBACK = ("127.0.0.1/32", "::1/128")


def hba(kind: str, user: str, method: str) -> list[str]:
    return [f"{kind} all {user} {network} {method}" for network in LOOPBACK]


HBA_LINES = [
    *hba("hostssl", CERT_USER, "cert"),
    *hba("hostssl", "verifyca", "trust clientcert=verify-ca"),
    *hba("hostssl", "sslonly", "trust"),
    *hba("host", "plainok", "trust"),
]
ROLES = (CERT_USER, "verifyca", "sslonly", "plainok")


class KeyServer:
    """The running server, its PKI and one client credential per key algorithm."""

    def __init__(self, cluster: PostgresCluster, pki: ClientPKI) -> None:
        self.cluster = cluster
        self.pki = pki
        self.credentials = {
            algorithm: pki.issue_client(algorithm, CERT_USER) for algorithm in ALGORITHMS
        }

    @property
    def port(self) -> int:
        return self.cluster.port

    def settings(self, user: str = CERT_USER, **extra: str) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": str(self.port),
            "user": user,
            "dbname": "postgres",
            "sslmode": "verify-ca",
            "sslrootcert": str(self.pki.root_file),
            **extra,
        }


@contextlib.contextmanager
def running_key_server(factory: ClusterFactory, directory: Path) -> Iterator[KeyServer]:
    """Start a server that trusts the PKI's root for client certificates; stop it after."""
    pki = make_pki(directory / "pki")
    tls = ServerTLS(pki.server_cert_file, pki.server_key_file, pki.root_file)
    cluster = factory.create(f"client-keys-{time.monotonic_ns()}", HBA_LINES, tls=tls)
    with cluster:
        cluster.start()
        for role in ROLES:
            cluster.create_role(Role(role))
        yield KeyServer(cluster, pki)
