"""Choosing the context provider of a connection, and loading one named by ``sslfactory``.

``sslfactory=package.module:attr`` names a provider the way pgjdbc's ``sslfactory`` names an
SSLSocketFactory class, and ``sslfactoryarg`` is the one string passed to it.  What ``attr``
is decides how it is used:

- a class is instantiated with ``sslfactoryarg`` as its only argument, or with no argument
  when sslfactoryarg is unset;
- an ``async def`` function is itself the provider, called once per TLS attempt;
- any other function is a factory, called like a class;
- any other callable object is itself the provider.

sslfactoryarg is rejected for the last two forms, which take no argument.  Each loaded
provider is kept per (sslfactory, sslfactoryarg), so its context cache survives across
connections.
"""

from __future__ import annotations

import collections
import importlib
import inspect
import threading
from collections.abc import Callable
from typing import cast

import anyio.to_thread

from ._libpq_files import default_provider
from ._params import ConnectParams
from ._provider import ContextProvider
from .errors import ConfigurationError

__all__ = ("load_provider", "provider_for")

_MAX_LOADED = 32

# pgjdbc's factories and the providers that do the same job here.
_PGJDBC_EQUIVALENTS = {
    "org.postgresql.ssl.NonValidatingFactory": "aiopgtls:NonValidatingProvider",
    "org.postgresql.ssl.SingleCertValidatingFactory": "aiopgtls:PinnedCertificateProvider",
    "org.postgresql.ssl.DefaultJavaSSLFactory": "aiopgtls:SystemTrustProvider",
    "org.postgresql.ssl.LibPQFactory": "no sslfactory (libpq's files are the default)",
    "org.postgresql.ssl.jdbc4.LibPQFactory": "no sslfactory (libpq's files are the default)",
}

_loaded: collections.OrderedDict[tuple[str, str | None], ContextProvider] = (
    collections.OrderedDict()
)
_loaded_lock = threading.Lock()


async def provider_for(params: ConnectParams, explicit: ContextProvider | None) -> ContextProvider:
    """Return the context provider for a connection with ``params``.

    That is ``explicit`` (the ``context_provider`` argument) when given, else the provider
    named by ``sslfactory``, loaded in a worker thread because importing may block, else the
    default provider, which follows libpq's files and also handles ``sslrootcert=system``.
    Raises ConfigurationError when both are given or the named provider cannot be loaded.
    """
    factory = params.sslfactory
    if explicit is not None:
        if factory is not None:
            raise ConfigurationError(
                f"both context_provider and sslfactory={factory} were given; pass only one",
                parameter="sslfactory",
                value=factory,
            )
        return explicit
    if factory is None:
        return default_provider
    return await anyio.to_thread.run_sync(load_provider, factory, params.sslfactoryarg)


def load_provider(path: str, argument: str | None = None) -> ContextProvider:
    """Load the provider named ``package.module:attr`` (or ``package.module.attr``).

    See the module documentation for how ``attr`` and ``argument`` are used.  The result is
    cached per (path, argument).  This imports modules, so async code calls it in a worker
    thread.  Raises ConfigurationError naming the path and what to fix.
    """
    key = (path, argument)
    with _loaded_lock:
        provider = _loaded.get(key)
        if provider is not None:
            _loaded.move_to_end(key)
            return provider

    provider = _instantiate(_resolve(path), path, argument)
    with _loaded_lock:
        provider = _loaded.setdefault(key, provider)
        while len(_loaded) > _MAX_LOADED:
            _loaded.popitem(last=False)
    return provider


def _resolve(path: str) -> object:
    module_name, attribute = _split(path)
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise _error(path, f"could not import module {module_name}: {exc}", _fix(path)) from exc

    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise _error(
                path,
                f"module {module_name} has no attribute {attribute}",
                "check the name after the colon",
            ) from exc
    return target


def _split(path: str) -> tuple[str, str]:
    text = path.strip()
    if ":" in text:
        module_name, _, attribute = text.partition(":")
    else:
        module_name, _, attribute = text.rpartition(".")
    if not module_name or not attribute:
        raise _error(
            path,
            "the name has no module part",
            "write package.module:attr, for example aiopgtls:SystemTrustProvider",
        )
    return module_name, attribute


def _fix(path: str) -> str:
    equivalent = _PGJDBC_EQUIVALENTS.get(path.strip())
    if equivalent is not None:
        return f"that is a pgjdbc (Java) class; here use {equivalent}"
    return "install the package that provides it, or correct the module name"


def _instantiate(target: object, path: str, argument: str | None) -> ContextProvider:
    if inspect.iscoroutinefunction(target) or not (
        inspect.isclass(target) or inspect.isfunction(target) or inspect.isbuiltin(target)
    ):
        if argument is not None:
            raise _error(
                path,
                "it is a provider, which takes no sslfactoryarg",
                "unset sslfactoryarg, or name a class or factory function that takes it",
            )
        return _checked(target, path)

    factory = cast("Callable[..., object]", target)
    try:
        provider = factory() if argument is None else factory(argument)
    except ConfigurationError:
        raise
    except Exception as exc:
        with_argument = "with sslfactoryarg" if argument is not None else "without an argument"
        raise _error(
            path,
            f"creating the provider {with_argument} failed: {exc!r}",
            "check sslfactoryarg against what the provider expects",
        ) from exc
    return _checked(provider, path)


def _checked(provider: object, path: str) -> ContextProvider:
    if not callable(provider):
        raise _error(
            path,
            f"it is of type {type(provider).__name__}, not a context provider",
            "name an async function, a class or a factory of context providers",
        )
    return cast(ContextProvider, provider)


def _error(path: str, problem: str, fix: str) -> ConfigurationError:
    return ConfigurationError(
        f"could not load sslfactory={path}: {problem}; {fix}",
        parameter="sslfactory",
        value=path,
    )
