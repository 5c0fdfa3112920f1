"""Tests of libpq's permission rule for client private key files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from aiopgtls._keyfile import check_key_permissions
from aiopgtls.errors import ClientCertificateError

NON_ROOT_UID = 101

needs_root = pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() != 0, reason="changing a file's owner needs root"
)
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="Unix permissions")


def key_file(tmp_path: Path, mode: int, uid: int | None = None) -> Path:
    path = tmp_path / "postgresql.key"
    path.write_text("not a real key\n")
    path.chmod(mode)
    if uid is not None:
        os.chown(path, uid, -1)
    return path


def check(path: Path) -> None:
    check_key_permissions(str(path), os.stat(path))


@needs_root
@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640, 0o440, 0o700])
def test_root_owned_key_accepted(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, mode, uid=0)

    check(path)

    assert os.stat(path).st_uid == 0


@needs_root
@pytest.mark.parametrize("mode", [0o644, 0o660, 0o650, 0o604, 0o602, 0o601, 0o666])
def test_root_owned_key_rejected(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, mode, uid=0)

    with pytest.raises(ClientCertificateError) as caught:
        check(path)

    assert caught.value.path == str(path)
    assert f"mode {mode:04o}" in str(caught.value)


@needs_root
@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_user_owned_key_accepted(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, mode, uid=NON_ROOT_UID)

    check(path)

    assert os.stat(path).st_uid == NON_ROOT_UID


@needs_root
@pytest.mark.parametrize("mode", [0o640, 0o610, 0o620, 0o604, 0o644])
def test_user_owned_key_rejected(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, mode, uid=NON_ROOT_UID)

    with pytest.raises(ClientCertificateError, match="not owned by root"):
        check(path)


@needs_root
def test_every_mode_follows_rule(tmp_path: Path) -> None:
    for uid, allowed_bits in ((0, 0o740), (NON_ROOT_UID, 0o700)):
        path = key_file(tmp_path, 0o600, uid=uid)
        for mode in range(0o1000):
            path.chmod(mode)
            try:
                check(path)
            except ClientCertificateError:
                accepted = False
            else:
                accepted = True

            assert accepted is (mode & ~allowed_bits == 0), (uid, oct(mode))


@posix_only
def test_message_names_file_rule_and_fix(tmp_path: Path) -> None:
    path = key_file(tmp_path, 0o644)

    with pytest.raises(ClientCertificateError) as caught:
        check(path)

    message = str(caught.value)
    assert f'private key file "{path}" has group or world access' in message
    assert "0644" in message
    assert "u=rw (0600) or less" in message
    assert "u=rw,g=r (0640) or less if owned by root" in message
    assert f"chmod 0600 {path}" in message


@posix_only
def test_fix_quotes_path_for_shell(tmp_path: Path) -> None:
    directory = tmp_path / "my keys"
    directory.mkdir()
    path = key_file(directory, 0o644)

    with pytest.raises(ClientCertificateError) as caught:
        check(path)

    assert f"chmod 0600 '{path}'" in str(caught.value)


def test_directory_rejected(tmp_path: Path) -> None:
    with pytest.raises(ClientCertificateError, match="is not a regular file") as caught:
        check(tmp_path)

    assert caught.value.path == str(tmp_path)


@posix_only
def test_windows_skips_mode_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = key_file(tmp_path, 0o644)
    monkeypatch.setattr(sys, "platform", "win32")

    check(path)

    with pytest.raises(ClientCertificateError, match="is not a regular file"):
        check(tmp_path)
