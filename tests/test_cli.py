"""The ``aiopgtls`` command line, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PgServer


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "aiopgtls", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def conninfo(server: PgServer, **extra: str) -> str:
    pairs = {"host": "localhost", "port": str(server.port), "user": "app", "dbname": "postgres"}
    pairs.update(extra)
    return " ".join(f"{key}={value}" for key, value in pairs.items())


def test_probe_json_verify_full(pg_main: PgServer, tmp_path: Path) -> None:
    info = conninfo(pg_main, sslmode="verify-full", sslrootcert=str(pg_main.certs.ca_a))
    result = run_cli("probe", "--json", info, home=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["encrypted"] is True
    assert report["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert report["verified"] == "chain-and-name"
    assert report["error"] is None
    assert [(a["method"], a["outcome"]) for a in report["attempts"]] == [("ssl", "connected")]


def test_probe_text_explains_fallback(pg_main: PgServer, tmp_path: Path) -> None:
    info = conninfo(pg_main, sslmode="prefer", sslrootcert=str(pg_main.certs.ca_b))
    result = run_cli("probe", info, home=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "attempt 1: ssl" in text
    assert "fallback to plaintext: the TLS handshake or certificate check failed" in text
    assert "attempt 2: plaintext" in text
    assert "Connected WITHOUT encryption" in text


def test_probe_text_for_tls(pg_main: PgServer, tmp_path: Path) -> None:
    result = run_cli("probe", conninfo(pg_main, sslmode="require"), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "SSL connection (protocol: TLSv1." in result.stdout
    assert "certificate not verified" in result.stdout


def test_probe_failure_exits_one(pg_main: PgServer, tmp_path: Path) -> None:
    info = conninfo(pg_main, user="sslonly", sslmode="disable")
    result = run_cli("probe", "--json", info, home=tmp_path)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["error_type"] == "ServerRejectedError"
    assert "pg_hba.conf" in report["error"]
    assert report["attempts"][0]["outcome"] == "failed"


@pytest.mark.parametrize(
    "info",
    ["sslmode=bogus", "host=localhost port=notaport", "this is not a conninfo"],
)
def test_probe_invalid_arguments_exit_two(info: str, tmp_path: Path) -> None:
    result = run_cli("probe", info, home=tmp_path)
    assert result.returncode == 2
    assert "invalid" in result.stderr
    assert result.stdout == ""


def test_probe_requires_conninfo(tmp_path: Path) -> None:
    result = run_cli("probe", home=tmp_path)
    assert result.returncode == 2


def test_demo_probes_every_sslmode(tmp_path: Path) -> None:
    result = run_cli("demo", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["case"]: row for row in json.loads(result.stdout)}
    assert rows["disable"]["encrypted"] is False
    assert rows["prefer, no root file"]["encrypted"] is True
    assert rows["prefer, wrong CA"]["encrypted"] is False
    assert "SecurityWarning" in rows["prefer, wrong CA"]["detail"]
    assert rows["require, wrong CA"]["outcome"] == "failed"
    assert rows["verify-ca, no root file"]["outcome"] == "failed"
    assert rows["verify-full, right CA"]["verified"] == "chain-and-name"
    assert rows["verify-full, other name"]["outcome"] == "failed"
    assert rows["verify-full, SCRAM-PLUS"]["outcome"] == "connected"
    assert rows["allow, hostssl-only user"]["encrypted"] is True
