"""Turn a connection result or failure into the words and JSON that ``probe`` prints."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ._params import ConnectParams
from ._result import Attempt, Connection
from .errors import ConnectError

_FALLBACK_REASONS = {
    "reply-n": "the server answered the SSLRequest with 'N' (no TLS), same connection",
    "handshake-failed": "the TLS handshake or certificate check failed, new connection",
    "rejected-before-auth": "the server rejected the startup before authentication, new connection",
}


@dataclasses.dataclass
class ProbeReport:
    """The events, warnings and outcome that ``probe`` collects from one connect() call."""

    params: ConnectParams
    connection: Connection | None = None
    error: ConnectError | None = None
    events: list[tuple[str, Mapping[str, Any]]] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def attempts(self) -> Sequence[Attempt]:
        if self.connection is not None:
            return self.connection.attempts
        return self.error.attempts if self.error is not None else ()

    def record(self, name: str, info: Mapping[str, Any]) -> None:
        self.events.append((name, dict(info)))


def render_text(report: ProbeReport) -> str:
    """Return the walk in plain words, one line per attempt and fallback."""
    params = report.params
    targets = ", ".join(f"{host.host or host.hostaddr} port {host.port}" for host in params.hosts)
    lines = [
        f"Connecting to {targets} with sslmode={params.sslmode}, "
        f"sslnegotiation={params.sslnegotiation}"
    ]
    for name, info in report.events:
        if name == "attempt.started":
            lines.append(
                f"  attempt {info['number']}: {info['method']} to {info['address']} "
                f"port {info['port']}"
            )
        elif name == "tls.handshake.started":
            lines.append(f"    TLS handshake ({info['negotiation']} negotiation)")
        elif name == "tls.handshake.complete":
            lines.append(f"    TLS {info['version']} established, verified: {info['verified']}")
        elif name == "attempt.failed":
            lines.append(f"    failed: {info['error']}")
        elif name == "fallback":
            reason = _FALLBACK_REASONS.get(str(info["reason"]), str(info["reason"]))
            lines.append(f"  fallback to {info['to_method']}: {reason}")
        elif name == "timeout":
            lines.append(f"    timed out after {info['seconds']:g} s")
    lines.extend(f"Warning: {warning}" for warning in report.warnings)
    lines.append(_outcome_line(report))
    return "\n".join(lines)


def _outcome_line(report: ProbeReport) -> str:
    connection = report.connection
    if connection is None:
        kind = type(report.error).__name__ if report.error else "error"
        message = report.error.message if report.error else "unknown failure"
        return f"Failed ({kind}): {message}"
    server = connection.server_parameters.get("server_version")
    suffix = f" Server version {server}." if server else ""
    if not connection.encrypted:
        return f"Connected WITHOUT encryption.{suffix}"
    verified = {
        "none": "certificate not verified",
        "chain": "certificate chain verified, host name not checked",
        "chain-and-name": "certificate chain and host name verified",
    }[str(connection.verified)]
    return (
        f"SSL connection (protocol: {connection.tls_version}, cipher: {connection.cipher}, "
        f"ALPN: {connection.alpn_protocol or 'none'}); {verified}.{suffix}"
    )


def render_json(report: ProbeReport) -> dict[str, Any]:
    """Return the report as one JSON-ready object."""
    connection = report.connection
    error = report.error
    return {
        "ok": connection is not None,
        "host": report.params.host,
        "port": report.params.port,
        "sslmode": str(report.params.sslmode),
        "sslnegotiation": str(report.params.sslnegotiation),
        "encrypted": bool(connection and connection.encrypted),
        "tls_version": connection.tls_version if connection else None,
        "cipher": connection.cipher if connection else None,
        "alpn": connection.alpn_protocol if connection else None,
        "verified": str(connection.verified) if connection else "none",
        "authentication": connection.authentication if connection else None,
        "channel_binding_skipped": connection.channel_binding_skipped if connection else None,
        "server_version": connection.server_parameters.get("server_version")
        if connection
        else None,
        "attempts": [_attempt_json(attempt) for attempt in report.attempts],
        "error": error.message if error else None,
        "error_type": type(error).__name__ if error else None,
        "warnings": list(report.warnings),
    }


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "address": attempt.address,
        "port": attempt.port,
        "method": str(attempt.method),
        "outcome": str(attempt.outcome) if attempt.outcome else None,
        "error": attempt.error_text,
        "error_type": type(attempt.error).__name__ if attempt.error else None,
        "duration_ms": round(attempt.duration * 1000, 3),
    }
