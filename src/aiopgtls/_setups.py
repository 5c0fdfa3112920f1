"""The server setups that the test suite, the demo and the docker-compose file share.

A setup is what one PostgreSQL server is configured with: its TLS files (named by the
:class:`~aiopgtls._certs.CertificateSet` attribute that contains them), its pg_hba.conf rules,
its roles and its databases.  The test fixtures start a throwaway cluster from a setup, and
``scripts/generate_compose.py`` renders the same setup as a docker-compose service, so both
always describe the same server.

Setups:

``ssl_off``
    ssl=off; every user is trusted on ``host`` lines.
``main``
    ssl=on with the CA-A certificate for localhost, 127.0.0.1, ::1 and db.example.test, and
    one user per pg_hba rule (see ``MAIN_HBA``), so one server covers every way in.  It also
    trusts CA-A for client certificates and has the database ``app``.
``hostssl_only``
    ssl=on with the CA-A certificate; every user is on ``hostssl`` lines only, so plaintext
    connections are rejected.
``client_cert``
    ssl=on with the CA-A certificate; every user must log in with a client certificate from
    CA-A whose common name is the user name (``cert`` authentication).
``other_ca``
    ssl=on with a certificate from the unrelated CA-B for the same names.
``other_host``
    ssl=on with a CA-A certificate for other.example.test only.
``chain``
    ssl=on with a leaf issued by an intermediate of CA-C; the server sends leaf and
    intermediate, clients trust only the CA-C root.
``cb_rsa``, ``cb_p384``, ``cb_ed25519``
    ssl=on with a certificate signed with sha256WithRSAEncryption, ecdsa-with-SHA384 or
    Ed25519, and one SCRAM user ``scram`` on ``hostssl`` lines, for channel binding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._certs import CertificateSet, KeyPair
from ._cluster import Role, ServerTLS

__all__ = (
    "CLIENT_CERT_USER",
    "COMPOSE_SETUPS",
    "LOOPBACK_NETWORKS",
    "SETUPS",
    "TLS_PROTOCOL_VERSIONS",
    "HbaRule",
    "ServerSetup",
    "TLSFiles",
)

LOOPBACK_NETWORKS = ("127.0.0.1/32", "::1/128")
CLIENT_CERT_USER = "certuser"

# Values of AIOPGTLS_TLS_VERSION and the server setting each one pins.
TLS_PROTOCOL_VERSIONS = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}


@dataclass(frozen=True)
class HbaRule:
    """One pg_hba.conf rule for all databases; ``method`` may carry options after it."""

    connection_type: str
    user: str
    method: str

    def lines(self, networks: Sequence[str]) -> list[str]:
        """Return the pg_hba.conf lines of this rule, one per client network."""
        return [f"{self.connection_type} all {self.user} {net} {self.method}" for net in networks]


@dataclass(frozen=True)
class TLSFiles:
    """The files a server takes from a CertificateSet, by attribute name.

    ``server`` names a :class:`KeyPair` attribute (for example ``"server_a"``);
    ``client_ca``, when set, names the root file trusted for client certificates.
    """

    server: str
    client_ca: str | None = None

    def key_pair(self, certs: CertificateSet) -> KeyPair:
        pair = getattr(certs, self.server)
        assert isinstance(pair, KeyPair), self.server
        return pair

    def ca_file(self, certs: CertificateSet) -> Path | None:
        if self.client_ca is None:
            return None
        path = getattr(certs, self.client_ca)
        assert isinstance(path, Path), self.client_ca
        return path


@dataclass(frozen=True)
class ServerSetup:
    """The configuration of one server; its roles and databases are created after start."""

    name: str
    tls: TLSFiles | None
    hba_rules: tuple[HbaRule, ...]
    roles: tuple[Role, ...] = ()
    databases: Mapping[str, str] = field(default_factory=dict)  # name -> owner

    def hba_lines(self, networks: Sequence[str] = LOOPBACK_NETWORKS) -> list[str]:
        """Return the pg_hba.conf lines for clients from ``networks``, in rule order."""
        return [line for rule in self.hba_rules for line in rule.lines(networks)]

    def server_tls(self, certs: CertificateSet, tls_version: str | None = None) -> ServerTLS | None:
        """Return the server's TLS settings, or None for ssl=off.

        ``tls_version`` (a key of ``TLS_PROTOCOL_VERSIONS``) pins both the minimum and the
        maximum protocol version; None keeps the default range (TLS 1.2 and newer).
        """
        if self.tls is None:
            return None

        pair = self.tls.key_pair(certs)
        ca_file = self.tls.ca_file(certs)
        if tls_version is None:
            return ServerTLS(pair.cert, pair.key, ca_file)
        pinned = TLS_PROTOCOL_VERSIONS[tls_version]
        return ServerTLS(pair.cert, pair.key, ca_file, pinned, pinned)


def _rules(connection_type: str, user: str, method: str) -> tuple[HbaRule, ...]:
    return (HbaRule(connection_type, user, method),)


# First match wins, so each user's rule decides alone whether it may connect, and how.
MAIN_HBA = (
    *_rules("hostssl", "sslonly", "trust"),
    *_rules("hostnossl", "nosslonly", "trust"),
    *_rules("host", "scram", "scram-sha-256"),
    *_rules("host", "md5user", "md5"),
    *_rules("host", "pwuser", "password"),
    *_rules("hostssl", CLIENT_CERT_USER, "cert"),
    # Any certificate from CA-A is accepted here, whatever its common name.
    *_rules("hostssl", "verifyca", "trust clientcert=verify-ca"),
    *_rules("host", "postgres", "trust"),
    *_rules("host", "app", "trust"),
)

MAIN_ROLES = (
    Role("sslonly"),
    Role("nosslonly"),
    Role("scram", "scram-secret"),
    Role("md5user", "md5-secret", password_encryption="md5"),
    Role("pwuser", "plain-secret"),
    Role(CLIENT_CERT_USER),
    Role("verifyca"),
    Role("app"),
)

TRUST_ALL_HBA = _rules("host", "all", "trust")

HOSTSSL_ONLY_HBA = (
    *_rules("hostssl", "scram", "scram-sha-256"),
    *_rules("hostssl", "all", "trust"),
)

CHANNEL_BINDING_HBA = _rules("hostssl", "scram", "scram-sha-256")
CHANNEL_BINDING_ROLES = (Role("scram", "binding-secret"),)

_SETUP_LIST = (
    ServerSetup("ssl_off", tls=None, hba_rules=TRUST_ALL_HBA, roles=(Role("app"),)),
    ServerSetup(
        "main",
        tls=TLSFiles("server_a", client_ca="ca_a"),
        hba_rules=MAIN_HBA,
        roles=MAIN_ROLES,
        databases={"app": "app"},
    ),
    ServerSetup(
        "hostssl_only",
        tls=TLSFiles("server_a"),
        hba_rules=HOSTSSL_ONLY_HBA,
        roles=(Role("app"), Role("scram", "scram-secret")),
    ),
    ServerSetup(
        "client_cert",
        tls=TLSFiles("server_a", client_ca="ca_a"),
        hba_rules=_rules("hostssl", "all", "cert"),
        roles=(Role(CLIENT_CERT_USER),),
    ),
    ServerSetup("other_ca", tls=TLSFiles("server_b"), hba_rules=TRUST_ALL_HBA),
    ServerSetup("other_host", tls=TLSFiles("server_other_host"), hba_rules=TRUST_ALL_HBA),
    ServerSetup("chain", tls=TLSFiles("server_chain"), hba_rules=TRUST_ALL_HBA),
    ServerSetup(
        "cb_rsa",
        tls=TLSFiles("server_rsa"),
        hba_rules=CHANNEL_BINDING_HBA,
        roles=CHANNEL_BINDING_ROLES,
    ),
    ServerSetup(
        "cb_p384",
        tls=TLSFiles("server_p384"),
        hba_rules=CHANNEL_BINDING_HBA,
        roles=CHANNEL_BINDING_ROLES,
    ),
    ServerSetup(
        "cb_ed25519",
        tls=TLSFiles("server_ed25519"),
        hba_rules=CHANNEL_BINDING_HBA,
        roles=CHANNEL_BINDING_ROLES,
    ),
)

SETUPS: Mapping[str, ServerSetup] = {setup.name: setup for setup in _SETUP_LIST}

# The setups that docker-compose.yml offers for each PostgreSQL version, in port order.
COMPOSE_SETUPS = ("ssl_off", "main", "hostssl_only", "client_cert")
