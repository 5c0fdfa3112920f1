"""Caching of built contexts, shared by every built-in context provider.

A context is reused while the configuration that built it and every file it read stay the
same.  The files are checked again at most once per ``revalidate_after`` seconds.  A replaced
or edited file changes the cache key, so the next attempt after that builds a new context and
rotated certificates take effect without a restart.  Building runs in a worker thread, never
on the event loop.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import os
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import anyio.to_thread

from ._context import key_log_warning
from ._keyload import PasswordCallback, PasswordSource
from ._params import ConnectParams
from ._provider import AttemptInfo

__all__ = ("CachingProvider", "ContextCache", "file_state")

DEFAULT_MAX_SIZE = 64
# A context handed out less than this many seconds ago is reused without checking its files
# again, which keeps a worker thread out of every connection.  So a replaced certificate
# file takes effect after at most this delay.
DEFAULT_REVALIDATE_SECONDS = 1.0


def file_state(path: str | None) -> tuple[int, int, int] | None:
    """Return what identifies one version of a file, or None when it cannot be examined.

    NOTE: for a directory (sslcrldir, SSL_CERT_DIR) this covers the directory entry only, so
    a file edited in place inside it is not noticed until another cache key part changes.
    """
    if path is None:
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class ContextCache:
    """At most ``max_size`` contexts by key, least recently used first out.

    Concurrent requests for a missing key build it once; a failed build is not kept.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self._max_size = max_size
        self._contexts: collections.OrderedDict[Hashable, ssl.SSLContext] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()
        self._build_locks: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        """Return the context for ``key``, calling ``build`` first if there is none."""
        with self._lock:
            context = self._lookup(key)
            if context is not None:
                return context
            build_lock = self._build_locks.setdefault(key, threading.Lock())

        try:
            with build_lock:
                with self._lock:
                    context = self._lookup(key)
                if context is None:
                    context = build()
                    self._store(key, context)
        finally:
            with self._lock:
                self._build_locks.pop(key, None)
        return context

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._contexts)

    def clear(self) -> None:
        with self._lock:
            self._contexts.clear()

    def _lookup(self, key: Hashable) -> ssl.SSLContext | None:
        context = self._contexts.get(key)
        if context is not None:
            self._contexts.move_to_end(key)
        return context

    def _store(self, key: Hashable, context: ssl.SSLContext) -> None:
        with self._lock:
            self._contexts[key] = context
            self._contexts.move_to_end(key)
            while len(self._contexts) > self._max_size:
                self._contexts.popitem(last=False)


class CachingProvider:
    """Base class of the built-in providers: builds in a worker thread and caches contexts.

    Subclasses implement ``_cache_key()`` and ``_build()``, and may override ``_fetch()`` to
    obtain material on the event loop before the build (an in-memory provider's callback).
    ``password_callback`` is awaited for the pass phrase of an encrypted client key when
    sslpassword is unset; it receives a description of the key, such as its file name.
    """

    def __init__(
        self,
        *,
        password_callback: PasswordCallback | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        revalidate_after: float = DEFAULT_REVALIDATE_SECONDS,
    ) -> None:
        self.password_callback = password_callback
        self.revalidate_after = revalidate_after
        self._cache = ContextCache(max_size)
        self._max_size = max_size
        # Contexts handed out recently, by parameters, with the time their files were checked.
        self._recent: collections.OrderedDict[ConnectParams, tuple[ssl.SSLContext, float]] = (
            collections.OrderedDict()
        )
        # Secrets in cache keys are HMACs under this per-process key, so a memory dump of
        # the cache cannot be used to test password guesses.
        self._digest_key = secrets.token_bytes(32)

    async def __call__(self, attempt: AttemptInfo) -> ssl.SSLContext:
        if attempt.params.sslkeylogfile:
            key_log_warning(attempt.params.sslkeylogfile)
        material = await self._fetch(attempt)
        if material is not None:
            return await anyio.to_thread.run_sync(self._context_for, attempt.params, material)

        recent = self._recent.get(attempt.params)
        now = time.monotonic()
        if recent is not None and now - recent[1] < self.revalidate_after:
            return recent[0]
        context = await anyio.to_thread.run_sync(self._context_for, attempt.params, None)
        self._remember(attempt.params, context, now)
        return context

    def _remember(self, params: ConnectParams, context: ssl.SSLContext, now: float) -> None:
        self._recent[params] = (context, now)
        self._recent.move_to_end(params)
        while len(self._recent) > self._max_size:
            self._recent.popitem(last=False)

    def get_context(self, params: ConnectParams) -> ssl.SSLContext:
        """Return the cached context for ``params``, building it first if needed.

        This blocks on file I/O; async code calls the provider, which runs it in a worker
        thread.  An async password callback works only through that path.
        """
        return self._context_for(params, None)

    def clear(self) -> None:
        """Forget every cached context."""
        self._cache.clear()
        self._recent.clear()

    def _context_for(self, params: ConnectParams, material: Any) -> ssl.SSLContext:
        key = (type(self), self._common_key(params), self._cache_key(params, material))

        def build() -> ssl.SSLContext:
            return self._build(params, material, self._passwords(params, material))

        return self._cache.get(key, build)

    def _common_key(self, params: ConnectParams) -> Hashable:
        return (
            params.sslmode.requires_verification,
            params.ssl_min_protocol_version,
            params.ssl_max_protocol_version,
            params.sslcertmode,
            params.sslkeylogfile,
            self.secret_digest(params.sslpassword),
        )

    def secret_digest(self, value: str | bytes | None) -> bytes | None:
        """Return a keyed digest of a secret for cache keys, or None for None."""
        if value is None:
            return None
        data = value.encode("utf-8") if isinstance(value, str) else value
        return hmac.new(self._digest_key, data, hashlib.sha256).digest()

    def _passwords(self, params: ConnectParams, material: Any) -> PasswordSource:
        return PasswordSource(params.sslpassword, self.password_callback)

    async def _fetch(self, attempt: AttemptInfo) -> Any:
        return None

    def _cache_key(self, params: ConnectParams, material: Any) -> Hashable:
        raise NotImplementedError

    def _build(
        self, params: ConnectParams, material: Any, passwords: PasswordSource
    ) -> ssl.SSLContext:
        raise NotImplementedError
