"""Minimal DER reading: element headers and the children of a constructed element.

cryptography decodes certificates and keys into objects, but some checks need the raw
structure: the names libpq compares in a certificate, and the outer layout that
distinguishes the client key formats.
"""

from __future__ import annotations

__all__ = ("children", "element_content", "read_header")


def element_content(data: bytes, position: int, expected: int) -> bytes:
    """Return the content of the element at ``position``; its identifier must be ``expected``."""
    identifier, start, end = read_header(data, position)
    if identifier != expected:
        raise ValueError(f"expected DER identifier 0x{expected:02x}, found 0x{identifier:02x}")
    return data[start:end]


def children(data: bytes) -> list[tuple[int, bytes]]:
    """Split the content of a constructed element into (identifier, content) pairs."""
    found = []
    position = 0
    while position < len(data):
        identifier, start, end = read_header(data, position)
        found.append((identifier, data[start:end]))
        position = end
    return found


def read_header(data: bytes, position: int) -> tuple[int, int, int]:
    """Read the DER header at ``position``; return (first identifier byte, start, end).

    Multi-byte tags are skipped over but reported by their first byte, which never equals
    one of the universal identifiers callers look for.  Malformed input raises ValueError or
    IndexError.
    """
    identifier = data[position]
    position += 1
    if identifier & 0x1F == 0x1F:
        while data[position] & 0x80:
            position += 1
        position += 1

    length = data[position]
    position += 1
    if length & 0x80:
        size = length & 0x7F
        if size == 0 or size > 4:
            raise ValueError(f"unsupported DER length form 0x{length:02x}")
        length = int.from_bytes(data[position : position + size], "big")
        position += size

    if position + length > len(data):
        raise ValueError("DER element runs past the end of its parent")
    return identifier, position, position + length
