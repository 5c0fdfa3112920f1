#!/usr/bin/env python3
"""Rewrite the Mermaid diagram in docs/ladder.md from the ladder's transition table."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from aiopgtls._ladder import render_mermaid

DOC = Path(__file__).resolve().parent.parent / "docs" / "ladder.md"
BLOCK = re.compile(r"```mermaid\n.*?```", re.DOTALL)


def main() -> int:
    text = DOC.read_text()
    updated, count = BLOCK.subn(lambda _: f"```mermaid\n{render_mermaid()}```", text, count=1)
    if count != 1:
        print(f"{DOC}: no ```mermaid block found", file=sys.stderr)
        return 1
    DOC.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
