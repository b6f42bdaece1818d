"""Platform facts that the rest of waitress branches on.

They live in one module, as in waitress, so that code and tests import (or monkeypatch)
them from a single place instead of probing the platform again.
"""

from __future__ import annotations

import socket
import sys

__all__ = ["HAS_IPV6", "IPPROTO_IPV6", "IPV6_V6ONLY", "MAXINT", "WIN"]

#: True on Windows, which has no service-name ports in ``listen`` and no Unix sockets here.
WIN: bool = sys.platform == "win32"

#: The largest native integer, used where a count needs a "no limit" value.
MAXINT: int = sys.maxsize

#: Whether this Python was built with IPv6 support (``ipv4=False`` needs it).
HAS_IPV6: bool = socket.has_ipv6

# Some Windows builds of CPython have lacked these two constants; the fallbacks are the
# winsock values (IPPROTO_IPV6 is 41 everywhere, IPV6_V6ONLY is 27 on Windows).
#: Protocol level for IPv6 socket options.
IPPROTO_IPV6: int = getattr(socket, "IPPROTO_IPV6", 41)
#: Socket option that makes an AF_INET6 listener refuse IPv4-mapped connections.
IPV6_V6ONLY: int = getattr(socket, "IPV6_V6ONLY", 27)
