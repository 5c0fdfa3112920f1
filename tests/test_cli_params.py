"""``aiopgtls params``: the resolved parameters with their sources, secrets never shown."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from aiopgtls import _cli_params


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run each test without PG* variables, in an empty home directory."""
    for name in list(os.environ):
        if name.startswith("PG"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PGSYSCONFDIR", str(tmp_path / "etc"))
    return home


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aiopgtls")
    _cli_params.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_text_output_names_sources(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPORT", "5433")

    status = _cli_params.run(parse(["params", "host=db.example.test password=hunter2"]))

    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert status == 0
    assert lines["host"] == ["db.example.test", "conninfo"]
    assert lines["port"] == ["5433", "environment", "(PGPORT)"]
    assert lines["password"] == ["set", "conninfo"]
    assert lines["sslmode"] == ["prefer", "default"]
    assert "hunter2" not in out


def test_json_output(capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    passfile = isolated / ".pgpass"
    passfile.write_text("*:*:*:*:hunter2\n")
    passfile.chmod(0o600)

    status = _cli_params.run(parse(["params", "--json", "host=a,b port=1,2 sslpassword=k3y"]))

    out = capsys.readouterr().out
    data = json.loads(out)
    assert status == 0
    assert data["parameters"]["port"] == {"value": "1,2", "source": "conninfo"}
    assert data["parameters"]["password"] == {
        "value": "set",
        "source": f"password file ({passfile})",
    }
    assert data["parameters"]["sslpassword"]["value"] == "set"
    assert [host["port"] for host in data["hosts"]] == [1, 2]
    assert data["hosts"][1]["password"] == "set"
    assert "hunter2" not in out
    assert "k3y" not in out


def test_invalid_settings_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    status = _cli_params.run(parse(["params", "sslmode=bogus"]))

    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert 'invalid sslmode value "bogus"' in captured.err


def test_secret_in_invalid_settings_is_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    status = _cli_params.run(parse(["params", "password='hunter2"]))

    captured = capsys.readouterr()
    assert status == 2
    assert "hunter2" not in captured.err


def test_default_conninfo_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["params"])

    status = _cli_params.run(args)

    assert args.conninfo == ""
    assert status == 0
    assert "host" in capsys.readouterr().out


def test_passfile_warning_goes_to_stderr(
    capsys: pytest.CaptureFixture[str], isolated: Path
) -> None:
    passfile = isolated / ".pgpass"
    passfile.write_text("*:*:*:*:hunter2\n")
    passfile.chmod(0o644)

    status = _cli_params.run(parse(["params", "host=h"]))

    captured = capsys.readouterr()
    assert status == 0
    assert "aiopgtls: warning: password file" in captured.err
    assert "has group or world access" in captured.err
    assert "hunter2" not in captured.err + captured.out


def test_startup_parameters_listed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGTZ", "UTC")

    _cli_params.run(parse(["params", "--json", "options='-c geqo=off'"]))

    data = json.loads(capsys.readouterr().out)
    assert data["startup_parameters"] == {
        "options": {"value": "-c geqo=off", "source": "conninfo"},
        "timezone": {"value": "UTC", "source": "environment (PGTZ)"},
    }
