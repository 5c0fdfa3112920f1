"""Host lists: ``host``, ``hostaddr`` and ``port`` split and matched as libpq 18 does.

From ``pqConnectOptions2()``: the number of hosts is the number of hostaddr items when
hostaddr is non-empty, else the number of host items, else one.  A non-empty host list must
have exactly that many items.  One port applies to every host; otherwise there must be one
port per host.  Items are split at every comma with nothing trimmed.  An empty host item
without a hostaddr means the default Unix-socket directory, and an empty port item the
default port.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from ._environment import default_socket_dir
from ._params import DEFAULT_PORT, HostSpec
from ._values import SOURCE_DEFAULT, Setting, check_hostaddr, parse_port
from .errors import ConfigurationError


class HostItem(NamedTuple):
    """One host's raw text items; the port text is kept for the password file lookup."""

    host: str
    hostaddr: str
    port: str


def split_host_list(settings: Mapping[str, Setting]) -> list[HostItem]:
    """Split the host, hostaddr and port settings into one item per host."""
    hosts = _items(settings, "host")
    addresses = _items(settings, "hostaddr")
    count = 1
    if addresses:
        count = len(addresses)
    elif hosts:
        count = len(hosts)

    if hosts and len(hosts) != count:
        raise ConfigurationError(
            f"could not match {len(hosts)} host names (host{_from(settings, 'host')}) to "
            f"{count} hostaddr values (hostaddr{_from(settings, 'hostaddr')}); give one host "
            "name per hostaddr, or leave host empty",
            parameter="host",
            value=settings["host"].value,
        )

    ports = _items(settings, "port")
    if len(ports) == 1:
        ports = ports * count
    elif ports and len(ports) != count:
        raise ConfigurationError(
            f"could not match {len(ports)} port numbers (port{_from(settings, 'port')}) to "
            f"{count} hosts; give one port for every host, or a single port for all of them",
            parameter="port",
            value=settings["port"].value,
        )

    return [
        HostItem(
            host=hosts[index] if hosts else "",
            hostaddr=addresses[index] if addresses else "",
            port=ports[index] if ports else "",
        )
        for index in range(count)
    ]


def build_hosts(items: list[HostItem], settings: Mapping[str, Setting]) -> tuple[HostSpec, ...]:
    """Check every item and fill in the default host and port."""
    hosts = []
    for item in items:
        if item.hostaddr:
            check_hostaddr(item.hostaddr, _source(settings, "hostaddr"))
        port = parse_port(item.port, _source(settings, "port"))
        host = item.host
        if not host and not item.hostaddr:
            host = default_socket_dir() or "localhost"
        hosts.append(
            HostSpec(
                host=host,
                hostaddr=item.hostaddr or None,
                port=DEFAULT_PORT if port is None else port,
            )
        )
    return tuple(hosts)


def _items(settings: Mapping[str, Setting], keyword: str) -> list[str]:
    setting = settings.get(keyword)
    if setting is None or setting.value == "":
        return []
    return setting.value.split(",")


def _source(settings: Mapping[str, Setting], keyword: str) -> str:
    setting = settings.get(keyword)
    return SOURCE_DEFAULT if setting is None else setting.source


def _from(settings: Mapping[str, Setting], keyword: str) -> str:
    return f" from {_source(settings, keyword)}"
