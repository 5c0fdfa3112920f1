"""Loading context providers named by sslfactory, and choosing a connection's provider.

The providers that the tests load by name are defined in this module, so their dotted path
is ``tests.test_factory:NAME``.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

import aiopgtls
from aiopgtls import _factory
from aiopgtls._factory import load_provider, provider_for
from aiopgtls._libpq_files import default_provider
from aiopgtls._provider import AttemptInfo
from aiopgtls._providers import NonValidatingProvider, PinnedCertificateProvider

HERE = "tests.test_factory"


# --- providers and factories loaded by name -----------------------------------------------------


class ArgumentProvider:
    """A provider class that records the sslfactoryarg it was created with."""

    def __init__(self, argument: str | None = None) -> None:
        self.argument = argument

    async def __call__(self, attempt: AttemptInfo) -> ssl.SSLContext:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class NoArgumentProvider:
    def __init__(self) -> None:
        self.created = True

    async def __call__(self, attempt: AttemptInfo) -> ssl.SSLContext:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


async def function_provider(attempt: AttemptInfo) -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def provider_factory(argument: str = "none") -> ArgumentProvider:
    return ArgumentProvider(f"factory:{argument}")


def failing_factory(argument: str | None = None) -> ArgumentProvider:
    raise RuntimeError("the secret store is unreachable")


def not_a_provider_factory() -> int:
    return 42


instance_provider = ArgumentProvider("instance")
NOT_CALLABLE = "just a string"


class Namespace:
    nested = ArgumentProvider("nested")


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_factory, "_loaded", type(_factory._loaded)())


# --- the loading convention ---------------------------------------------------------------------


def test_class_gets_argument() -> None:
    provider = load_provider(f"{HERE}:ArgumentProvider", "file:/ca.pem")

    assert isinstance(provider, ArgumentProvider)
    assert provider.argument == "file:/ca.pem"


def test_class_without_argument() -> None:
    provider = load_provider(f"{HERE}:NoArgumentProvider")

    assert isinstance(provider, NoArgumentProvider)
    assert provider.created


def test_dotted_form_without_colon() -> None:
    provider = load_provider(f"{HERE}.ArgumentProvider", "x")

    assert isinstance(provider, ArgumentProvider)
    assert provider.argument == "x"


def test_async_function_is_provider() -> None:
    assert load_provider(f"{HERE}:function_provider") is function_provider


def test_factory_function_called_with_argument() -> None:
    with_argument = load_provider(f"{HERE}:provider_factory", "abc")
    without = load_provider(f"{HERE}:provider_factory")

    assert isinstance(with_argument, ArgumentProvider)
    assert with_argument.argument == "factory:abc"
    assert isinstance(without, ArgumentProvider)
    assert without.argument == "factory:none"


def test_instance_and_nested_attribute() -> None:
    assert load_provider(f"{HERE}:instance_provider") is instance_provider
    assert load_provider(f"{HERE}:Namespace.nested") is Namespace.nested


def test_loaded_provider_is_reused() -> None:
    first = load_provider(f"{HERE}:ArgumentProvider", "a")
    again = load_provider(f"{HERE}:ArgumentProvider", "a")
    other = load_provider(f"{HERE}:ArgumentProvider", "b")

    assert first is again
    assert other is not first


def test_builtin_provider_by_name(tmp_path: Path) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(trustme.CA().cert_pem.bytes())

    pinned = load_provider("aiopgtls._providers:PinnedCertificateProvider", f"file:{root}")
    open_provider = load_provider("aiopgtls._providers:NonValidatingProvider")

    assert isinstance(pinned, PinnedCertificateProvider)
    assert isinstance(open_provider, NonValidatingProvider)


# --- errors name the path and the fix -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "argument", "problem", "fix"),
    [
        (
            "no_such_module_xyz:Provider",
            None,
            "could not import module no_such_module_xyz",
            "install",
        ),
        (f"{HERE}:Missing", None, f"module {HERE} has no attribute Missing", "after the colon"),
        ("Provider", None, "has no module part", "package.module:attr"),
        (f"{HERE}:function_provider", "x", "takes no sslfactoryarg", "unset sslfactoryarg"),
        (f"{HERE}:instance_provider", "x", "takes no sslfactoryarg", "unset sslfactoryarg"),
        (
            f"{HERE}:NoArgumentProvider",
            "x",
            "creating the provider with sslfactoryarg failed",
            "check",
        ),
        (f"{HERE}:failing_factory", None, "secret store is unreachable", "check sslfactoryarg"),
        (f"{HERE}:NOT_CALLABLE", None, "it is of type str, not a context", "async function"),
        (f"{HERE}:not_a_provider_factory", None, "it is of type int, not a context", "factory"),
    ],
)
def test_load_errors(path: str, argument: str | None, problem: str, fix: str) -> None:
    with pytest.raises(aiopgtls.ConfigurationError) as caught:
        load_provider(path, argument)

    message = str(caught.value)
    assert message.startswith(f"could not load sslfactory={path}: ")
    assert problem in message
    assert fix in message
    assert caught.value.parameter == "sslfactory"
    assert caught.value.value == path


def test_pgjdbc_class_names_point_to_equivalent() -> None:
    with pytest.raises(aiopgtls.ConfigurationError) as caught:
        load_provider("org.postgresql.ssl.NonValidatingFactory")

    assert "pgjdbc (Java) class" in str(caught.value)
    assert "aiopgtls:NonValidatingProvider" in str(caught.value)


def test_provider_argument_errors_pass_through() -> None:
    with pytest.raises(aiopgtls.ConfigurationError, match="has no known form") as caught:
        load_provider("aiopgtls._providers:PinnedCertificateProvider", "classpath:ca.pem")

    assert caught.value.parameter == "sslfactoryarg"


# --- choosing the provider of a connection ------------------------------------------------------


@pytest.mark.anyio
async def test_provider_for_default() -> None:
    params = aiopgtls.resolve_params("host=db.example.test user=u", {})

    assert await provider_for(params, None) is default_provider


@pytest.mark.anyio
async def test_provider_for_system_roots_uses_default() -> None:
    params = aiopgtls.resolve_params("host=db.example.test user=u sslrootcert=system", {})

    assert await provider_for(params, None) is default_provider


@pytest.mark.anyio
async def test_provider_for_explicit() -> None:
    params = aiopgtls.resolve_params("host=db.example.test user=u", {})

    assert await provider_for(params, instance_provider) is instance_provider


@pytest.mark.anyio
async def test_provider_for_named() -> None:
    conninfo = f"host=db.example.test user=u sslfactory={HERE}:ArgumentProvider sslfactoryarg=zz"
    params = aiopgtls.resolve_params(conninfo, {})

    provider = await provider_for(params, None)

    assert isinstance(provider, ArgumentProvider)
    assert provider.argument == "zz"


@pytest.mark.anyio
async def test_provider_for_both_rejected() -> None:
    params = aiopgtls.resolve_params(f"host=h user=u sslfactory={HERE}:function_provider", {})

    with pytest.raises(aiopgtls.ConfigurationError, match="pass only one"):
        await provider_for(params, instance_provider)
