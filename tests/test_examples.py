"""The programs in examples/ run against a real server."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

import aiopgtls

from .conftest import PgServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = pytest.mark.anyio


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_cached_bundle_provider_fetches_once(
    pg_main: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load_example("cached_bundle_provider")
    conninfo = f"host=localhost port={pg_main.port} user=sslonly dbname=postgres"

    await example.main(conninfo, str(pg_main.certs.ca_a))

    output = capsys.readouterr().out
    assert output.count("verified: chain-and-name") == 2
    assert "the bundle was fetched 1 time(s)" in output


async def test_cached_bundle_provider_rejects_other_ca(pg_main: PgServer) -> None:
    example = load_example("cached_bundle_provider")

    async def fetch_other() -> bytes:
        return pg_main.certs.ca_b.read_bytes()

    provider = example.CachedBundleProvider(fetch_other)
    with pytest.raises(aiopgtls.CertificateVerifyError):
        await aiopgtls.connect(
            f"host=localhost port={pg_main.port} user=sslonly dbname=postgres",
            sslmode="verify-full",
            context_provider=provider,
        )
    assert provider.fetches == 1
