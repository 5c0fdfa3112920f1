"""One helper that reports each connection step to a user callback and to ``logging``.

Event names are dotted, from the general to the specific (``tls.handshake.complete``).
The info mapping never holds a password or pass phrase: callers pass only the fields below.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger("aiopgtls")

TraceCallback = Callable[[str, Mapping[str, Any]], None]

EVENTS = (
    "connect.started",
    "address.resolved",
    "attempt.started",
    "context.ready",
    "context.failed",
    "tcp.connected",
    "tcp.failed",
    "sslrequest.sent",
    "sslrequest.answered",
    "tls.handshake.started",
    "tls.handshake.complete",
    "tls.handshake.failed",
    "startup.started",
    "startup.complete",
    "startup.rejected",
    "startup.failed",
    "attempt.failed",
    "fallback",
    "timeout",
    "connect.complete",
    "connect.failed",
)


class Tracer:
    """Send named events to an optional callback and to the ``aiopgtls`` logger at DEBUG."""

    def __init__(self, callback: TraceCallback | None = None) -> None:
        self._callback = callback

    def emit(self, name: str, **info: Any) -> None:
        if name not in EVENTS:
            raise ValueError(f"unknown trace event {name!r}")
        if logger.isEnabledFor(logging.DEBUG):
            details = " ".join(f"{key}={value}" for key, value in info.items())
            logger.debug("%s %s", name, details)
        if self._callback is not None:
            self._callback(name, info)
