#!/usr/bin/env bash
# Run what CI runs: install PostgreSQL 16 to 18 into .pgbin/ (15 comes from the system), then
# the nox sessions tagged "ci": lint, typecheck and the CI cells of the test matrix (Python
# 3.11 on every PostgreSQL and TLS version, the other Pythons on two corners).  About 20
# minutes on 2 cores.  Extra arguments go to nox, e.g. scripts/test-ci.sh -s lint.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

python3 scripts/install_postgres.py 16 17 18

# nox runs from a virtualenv of its own, so it never depends on the project's .venv.
runner="$repo_root/.nox/.runner"
if ! "$runner/bin/python" -c 'import nox' 2>/dev/null; then
    python3 -m venv --clear "$runner"
    "$runner/bin/python" -m pip install --quiet --disable-pip-version-check 'nox>=2024.4'
fi

started=$SECONDS
status=0
if (($#)); then
    "$runner/bin/python" -m nox "$@" || status=$?
else
    "$runner/bin/python" -m nox --tags ci || status=$?
fi
echo "scripts/test-ci.sh: nox took $((SECONDS - started)) s (exit status $status)" >&2
exit "$status"
