#!/usr/bin/env bash
# Run the test suite: create .venv if needed, install the package with its test extra,
# install the PostgreSQL versions in AIOPGTLS_PG_VERSIONS, then run pytest from the
# repository root with any arguments given to this script.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

venv="$repo_root/.venv"
python="$venv/bin/python"
install_stamp="$venv/.aiopgtls-test-install"

if ! "$python" -c 'import sys' 2>/dev/null; then
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        echo "scripts/test.sh: python3 is missing or older than 3.10; install Python 3.10+" >&2
        exit 1
    fi
    echo "scripts/test.sh: creating $venv" >&2
    python3 -m venv --clear "$venv"
fi

# Reinstall only when pyproject.toml changed since the last successful install.
wanted_stamp="$("$python" -c 'import hashlib, sys; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest(), sys.version)')"
if [[ ! -f "$install_stamp" || "$(cat "$install_stamp")" != "$wanted_stamp" ]]; then
    echo "scripts/test.sh: installing aiopgtls[test] into $venv" >&2
    "$python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
    printf '%s\n' "$wanted_stamp" >"$install_stamp"
fi

# Versions named in AIOPGTLS_PG_VERSIONS must be installed; the script returns at once for
# cached ones.  Without the variable the suite uses PostgreSQL 15 and whatever is installed.
if [[ -n "${AIOPGTLS_PG_VERSIONS:-}" ]]; then
    IFS=, read -r -a pg_versions <<<"$AIOPGTLS_PG_VERSIONS"
    "$python" scripts/install_postgres.py "${pg_versions[@]}"
fi

exec "$python" -m pytest "$@"
