"""A custom context provider that fetches a CA bundle once and reuses it.

Many deployments publish their database CA bundle somewhere (a secret manager, an internal
HTTPS endpoint, a config service).  This provider awaits a fetch function the first time a
connection needs it, keeps the bundle for ``max_age`` seconds, and builds its contexts with
``aiopgtls.create_context()``, so they keep libpq's protocol settings: ALPN "postgresql",
the TLS version limits and no compression.

Run it with a conninfo string and a bundle file, read in place of the remote source:

    python examples/cached_bundle_provider.py "host=db.example.com user=app" bundle.pem
"""

from __future__ import annotations

import ssl
import sys
import time
from collections.abc import Awaitable, Callable

import anyio

import aiopgtls
from aiopgtls import AttemptInfo, create_context


class CachedBundleProvider:
    """Trusts the CA bundle returned by ``fetch_bundle``, fetched at most once per ``max_age``.

    Concurrent attempts share one fetch.  The context is rebuilt only when the bundle or the
    TLS version settings change.  Client certificates are not handled here; combine this
    with ``load_cert_chain()`` or use ``aiopgtls.InMemoryProvider`` for those.
    """

    def __init__(
        self, fetch_bundle: Callable[[], Awaitable[bytes]], *, max_age: float = 3600.0
    ) -> None:
        self._fetch_bundle = fetch_bundle
        self._max_age = max_age
        self._bundle: bytes | None = None
        self._fetched_at = 0.0
        self._lock = anyio.Lock()
        self._contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
        self.fetches = 0

    async def __call__(self, attempt: AttemptInfo) -> ssl.SSLContext:
        bundle = await self._current_bundle()
        params = attempt.params
        key = (params.ssl_min_protocol_version, params.ssl_max_protocol_version)
        context = self._contexts.get(key)
        if context is None:
            context = create_context(params)
            context.load_verify_locations(cadata=bundle.decode("ascii"))
            context.verify_mode = ssl.CERT_REQUIRED
            self._contexts[key] = context
        return context

    async def _current_bundle(self) -> bytes:
        async with self._lock:
            expired = time.monotonic() - self._fetched_at > self._max_age
            if self._bundle is None or expired:
                bundle = await self._fetch_bundle()
                self.fetches += 1
                if bundle != self._bundle:
                    self._contexts.clear()
                self._bundle = bundle
                self._fetched_at = time.monotonic()
            return self._bundle


async def main(conninfo: str, bundle_path: str) -> None:
    async def fetch_bundle() -> bytes:
        # Replace this with the call to your secret manager or HTTPS endpoint.
        return await anyio.Path(bundle_path).read_bytes()

    provider = CachedBundleProvider(fetch_bundle)
    for _ in range(2):
        connection = await aiopgtls.connect(
            conninfo, sslmode="verify-full", context_provider=provider
        )
        async with connection:
            print(f"connected with {connection.tls_version}, verified: {connection.verified}")
    print(f"the bundle was fetched {provider.fetches} time(s)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} CONNINFO BUNDLE_FILE")
    anyio.run(main, sys.argv[1], sys.argv[2])
