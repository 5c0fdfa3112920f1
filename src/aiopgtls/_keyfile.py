"""libpq's rule for the permissions of a client private key file."""

from __future__ import annotations

import os
import shlex
import stat
import sys

from .errors import ClientCertificateError

__all__ = ("check_key_permissions",)

# Bits libpq rejects (initialize_SSL() in fe-secure-openssl.c, PG 15 to 18).  A root-owned key
# may be group-readable so that members of a group can share a system-wide key.
_REJECTED_IF_ROOT = stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO
_REJECTED_OTHERWISE = stat.S_IRWXG | stat.S_IRWXO


def check_key_permissions(path: str, st: os.stat_result) -> None:
    """Raise ClientCertificateError unless ``path`` may be used as a private key file.

    ``st`` is the result of ``os.stat(path)``.  The file must be a regular file.  Outside
    Windows it must have mode 0600 or less, or 0640 or less when owned by root.  libpq skips
    the mode check on Windows and Cygwin, where Unix permissions may not exist, and so do we.
    """
    if not stat.S_ISREG(st.st_mode):
        raise ClientCertificateError(
            f'private key file "{path}" is not a regular file; point sslkey at the key file itself',
            path=path,
        )
    if sys.platform in ("win32", "cygwin"):
        return

    owned_by_root = st.st_uid == 0
    rejected = _REJECTED_IF_ROOT if owned_by_root else _REJECTED_OTHERWISE
    if st.st_mode & rejected:
        message = _permission_message(path, st.st_mode, owned_by_root)
        raise ClientCertificateError(message, path=path)


def _permission_message(path: str, mode: int, owned_by_root: bool) -> str:
    mode_text = f"{stat.S_IMODE(mode):04o}"
    owner = "owned by root" if owned_by_root else "not owned by root"
    return (
        f'private key file "{path}" has group or world access (mode {mode_text}, {owner}); '
        "the file must have permissions u=rw (0600) or less if owned by the current user, or "
        "u=rw,g=r (0640) or less if owned by root; fix it with: chmod 0600 "
        f"{shlex.quote(path)}"
    )
