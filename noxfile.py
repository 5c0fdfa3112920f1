"""nox sessions: the test matrix, lint and type check (``nox -l`` lists them).

The ``tests`` session runs the whole suite for one cell of the matrix.  A cell is a Python
version (3.10 to 3.13), a PostgreSQL major version (15 to 18, installed by
``scripts/install_postgres.py`` when missing) and the TLS version that every test server is
pinned to.  Cells tagged ``ci`` are the part of the matrix that ``.ci/run`` runs; see
docs/testing.md for how to run one cell or the whole matrix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

PYTHONS = ("3.10", "3.11", "3.12", "3.13")
POSTGRES_VERSIONS = ("15", "16", "17", "18")
TLS_VERSIONS = ("1.2", "1.3")

# CI covers every PostgreSQL and TLS version on one Python, and every other Python on the
# oldest PostgreSQL with TLS 1.2 and the newest with TLS 1.3: 14 of the 32 cells.
CI_PYTHON = "3.11"

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True
nox.options.reuse_venv = "yes"


def _interpreter(version: str) -> str:
    """Return the newest pyenv-installed interpreter of ``version``, else ``version`` itself.

    pyenv's shims run only the versions selected with ``pyenv global`` or ``pyenv local``,
    so nox would not find the other installed versions on PATH.
    """
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = []
    for folder in root.glob(f"{version}.*"):
        match = re.fullmatch(rf"{re.escape(version)}\.(\d+)", folder.name)
        program = folder / "bin" / f"python{version}"
        if match and program.is_file():
            candidates.append((int(match.group(1)), str(program)))
    return max(candidates)[1] if candidates else version


def _is_ci_cell(python: str, postgres: str, tls: str) -> bool:
    oldest = postgres == POSTGRES_VERSIONS[0] and tls == TLS_VERSIONS[0]
    newest = postgres == POSTGRES_VERSIONS[-1] and tls == TLS_VERSIONS[-1]
    return python == CI_PYTHON or oldest or newest


def _cells() -> list[nox.param]:
    cells = []
    for python in PYTHONS:
        for postgres in POSTGRES_VERSIONS:
            for tls in TLS_VERSIONS:
                tags = ["ci"] if _is_ci_cell(python, postgres, tls) else []
                cell_id = f"{python}, pg{postgres}, tls{tls}"
                interpreter = _interpreter(python)
                cells.append(nox.param(interpreter, postgres, tls, id=cell_id, tags=tags))
    return cells


@nox.session
@nox.parametrize(("python", "postgres", "tls"), _cells())
def tests(session: nox.Session, postgres: str, tls: str) -> None:
    """Run the suite against one PostgreSQL version, servers pinned to one TLS version."""
    session.run("python", "scripts/install_postgres.py", postgres)
    session.install("-e", ".[test]")
    session.run(
        "python",
        "-m",
        "pytest",
        *session.posargs,
        env={"AIOPGTLS_PG_VERSIONS": postgres, "AIOPGTLS_TLS_VERSION": tls},
    )


@nox.session(python=_interpreter(CI_PYTHON), tags=["ci"])
def lint(session: nox.Session) -> None:
    """Check the code with ruff (lint rules and formatting)."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=_interpreter(CI_PYTHON), tags=["ci"])
def typecheck(session: nox.Session) -> None:
    """Type-check the package, the scripts and this file with mypy --strict."""
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", "src/aiopgtls", "scripts", "noxfile.py")
