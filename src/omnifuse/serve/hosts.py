"""Which names a request's ``Host`` header may carry (a defence against DNS rebinding).

A page on ``http://attacker.example`` can have the browser resolve that name to 127.0.0.1 and
then read a key-less loopback server as if it were its own origin: the requests reach the
server, but with ``Host: attacker.example``. The server therefore answers only requests whose
Host is one of its own names:

- ``localhost``, ``127.0.0.1`` and ``::1`` (written ``[::1]`` in the header), with any port;
- the address or name it was bound to (``ServeConfig.host``);
- when bound to every address (``0.0.0.0`` or ``::``), any IP address (a rebinding attack needs
  a name, so an address in the Host header is never one) and this machine's host name;
- the names added with ``--allowed-host`` / ``ServeConfig.allowed_hosts``; ``*`` accepts any
  Host and gives the defence up (only behind a proxy that checks names itself).

Names compare without case, port and trailing dot.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

from omnifuse.errors import ConfigError

ANY_HOST = "*"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("0.0.0.0", "::")
NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$")
"""A DNS name (or IPv4 address) once lower-cased and stripped of a trailing dot."""
SHOWN_CHARS = 100


def host_name(value: str) -> str | None:
    """The name of a ``Host`` header value (``Example.org:8000`` → ``example.org``,
    ``[::1]:8000`` → ``::1``); None when it is not a well-formed host."""
    value = value.strip()
    if value.startswith("["):
        inside, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return None
        try:
            return str(ipaddress.IPv6Address(inside))
        except ValueError:
            return None
    name, colon, port = value.partition(":")
    if colon and not re.fullmatch(r"\d{1,5}", port):
        return None
    name = name.lower().removesuffix(".")
    return name if NAME.fullmatch(name) else None


def configured_name(value: str) -> str:
    """A name given in the configuration, normalised like a Host header's; ConfigError when it
    is not a bare name or address."""
    if value == ANY_HOST:
        return value
    if not isinstance(value, str) or not value:
        raise ConfigError(f"allowed host {value!r} must be a non-empty name")
    bare = value.strip("[]") if value.startswith("[") else value
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if re.fullmatch(r"[^:]+:\d{1,5}", value):
        raise ConfigError(f"allowed host {value!r}: give the name without a port (any port goes)")
    name = host_name(value)
    if name is None:
        raise ConfigError(f"allowed host {value!r} is not a host name or IP address")
    return name


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostAllowList:
    """The names a server answers to (see the module's description)."""

    def __init__(self, bound_host: str, extra: Iterable[str] = ()) -> None:
        if isinstance(extra, str):
            raise ConfigError(f"allowed hosts must be a list of names, got {extra!r}")
        names = {*LOOPBACK_NAMES, *map(configured_name, extra)}
        self.any = ANY_HOST in names
        bound = configured_name(bound_host)
        self.any_address = bound in WILDCARD_ADDRESSES
        names.add(bound)
        if self.any_address:
            machine = host_name(socket.gethostname())
            if machine is not None:
                names.add(machine)
        self.names = frozenset(names - {ANY_HOST})

    def accepts(self, header_values: list[str]) -> bool:
        """Whether a request with these ``Host`` headers (one, unless ``*`` is allowed) is for
        this server."""
        return self.any or (len(header_values) == 1 and self.allows(header_values[0]))

    def allows(self, header_value: str) -> bool:
        """Whether ``header_value`` names this server."""
        if self.any:
            return True
        name = host_name(header_value)
        if name is None:
            return False
        return name in self.names or (self.any_address and is_ip_address(name))

    def refusal(self, header_values: list[str]) -> str:
        """Why a request with these ``Host`` headers is refused, for its error message."""
        if len(header_values) != 1:
            return f"a request needs one Host header, not {len(header_values)}"
        shown = header_values[0][:SHOWN_CHARS]
        name = host_name(header_values[0])
        if name is None:
            return f"the Host header {shown!r} is not a host name"
        return (
            f"the Host {name!r} is not a name of this server; if it is, start the server with "
            f"--allowed-host {name}"
        )
