"""target_session_attrs: does an authenticated session fit what the caller asked for?

libpq 18 decides from the ``in_hot_standby`` and ``default_transaction_read_only`` server
parameters, which PostgreSQL 14 and newer report at startup.  Older servers are asked with
``SHOW transaction_read_only`` or ``SELECT pg_is_in_recovery()`` instead.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import anyio.abc

from ._params import TargetSessionAttrs
from .errors import ProtocolViolationError, TargetSessionAttrsError

_READ_ONLY_QUERY = "SHOW transaction_read_only"
_STANDBY_QUERY = "SELECT pg_is_in_recovery()"

_MISMATCH = {
    (TargetSessionAttrs.READ_WRITE, True): "session is read-only",
    (TargetSessionAttrs.READ_ONLY, False): "session is not read-only",
    (TargetSessionAttrs.PRIMARY, True): "server is in hot standby mode",
    (TargetSessionAttrs.STANDBY, False): "server is not in hot standby mode",
    (TargetSessionAttrs.PREFER_STANDBY, False): "server is not in hot standby mode",
}


def needs_read_only(wanted: TargetSessionAttrs) -> bool:
    """Tell whether ``wanted`` is decided by read-only state (else by hot standby state)."""
    return wanted in (TargetSessionAttrs.READ_WRITE, TargetSessionAttrs.READ_ONLY)


def state_from_parameters(wanted: TargetSessionAttrs, parameters: Mapping[str, str]) -> bool | None:
    """Return the state that decides ``wanted``, or None when the server did not report it.

    For read-write and read-only the state is "read-only"; for the others it is "in hot
    standby".  A standby is read-only too, as in libpq.
    """
    standby = parameters.get("in_hot_standby")
    if not needs_read_only(wanted):
        return None if standby is None else standby == "on"
    read_only = parameters.get("default_transaction_read_only")
    if standby is None or read_only is None:
        return None
    return standby == "on" or read_only == "on"


def check(wanted: TargetSessionAttrs, state: bool) -> None:
    """Raise TargetSessionAttrsError when ``state`` does not fit ``wanted``."""
    reason = _MISMATCH.get((wanted, state))
    if reason is not None:
        raise TargetSessionAttrsError(
            f"{reason}, but target_session_attrs={wanted}; the next host in the list is tried, "
            "if there is one"
        )


async def query_state(stream: anyio.abc.ByteStream, wanted: TargetSessionAttrs) -> bool:
    """Ask the server for the state that decides ``wanted`` (servers older than 14)."""
    sql = _READ_ONLY_QUERY if needs_read_only(wanted) else _STANDBY_QUERY
    value = await _query_scalar(stream, sql)
    return value in ("on", "t")


async def _query_scalar(stream: anyio.abc.ByteStream, sql: str) -> str | None:
    payload = sql.encode() + b"\x00"
    await stream.send(b"Q" + struct.pack("!i", len(payload) + 4) + payload)
    buffer = b""
    value: str | None = None
    while True:
        while len(buffer) < 5 or len(buffer) < 1 + struct.unpack("!i", buffer[1:5])[0]:
            chunk = await stream.receive()
            buffer += chunk
        kind, length = buffer[:1], struct.unpack("!i", buffer[1:5])[0]
        body, buffer = buffer[5 : 1 + length], buffer[1 + length :]
        if kind == b"D" and value is None:
            value = _first_column(body)
        elif kind == b"E":
            raise TargetSessionAttrsError(
                f'"{sql}" failed; the next host in the list is tried, if there is one'
            )
        elif kind == b"Z":
            return value


def _first_column(body: bytes) -> str | None:
    if len(body) < 6:
        raise ProtocolViolationError("server sent a DataRow too short to hold a column")
    (size,) = struct.unpack("!i", body[2:6])
    return None if size < 0 else body[6 : 6 + size].decode()
