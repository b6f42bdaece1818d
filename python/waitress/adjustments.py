"""Server settings: the option table, its converters, validation and CLI pre-parsing.

Every setting is a row of ``_OPTIONS``: name, converter, default, CLI metavar, help text and
help section. That one table gives the class-attribute defaults of :class:`Adjustments`, the
converter applied to each keyword argument (PasteDeploy passes strings, so ``"8080"`` and
``"true"`` must work everywhere), the getopt long options of :meth:`Adjustments.parse_args`
and the ``waitress-serve --help`` text (built in :mod:`waitress.runner`).

Rules, in the order :class:`Adjustments` applies them (SPEC §2.3):

1. conflicting keys (``listen``/``host``/``port``/``sockets``/``unix_socket``) are checked by
   *presence*, not value;
2. passing ``send_bytes`` warns (deprecated); an unknown key is an error; every value goes
   through its converter, whose own errors propagate unchanged;
3. ``listen`` is resolved with ``getaddrinfo`` into ``(family, socktype, proto, sockaddr)``
   tuples (SPEC §2.2);
4. the proxy settings are checked for consistency;
5. pre-bound ``sockets`` are checked for kind.

Housekeeping-only options: ``cleanup_interval``, ``asyncore_loop_timeout``,
``asyncore_use_poll``, ``recv_bytes`` and ``send_bytes`` are accepted and converted exactly as
in waitress, but the Rust core has no select loop and enforces ``channel_timeout`` with a
timer per connection, so they only tune housekeeping (SPEC D8, §3.14) and change nothing on
the wire.
"""

from __future__ import annotations

import getopt
import socket
import warnings
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    FrozenSet,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
    cast,
)

from .compat import HAS_IPV6, WIN

__all__ = [
    "KNOWN_PROXY_HEADERS",
    "Adjustments",
    "as_socket_list",
    "asbool",
    "aslist",
    "aslist_cronly",
    "asoctal",
    "asset",
    "slash_fixed_str",
    "str_iftruthy",
    "truthy",
]

#: Lower-cased strings that :func:`asbool` reads as true.
truthy: FrozenSet[str] = frozenset({"t", "true", "y", "yes", "on", "1"})

#: The proxy headers that ``trusted_proxy_headers`` may name (lower-case).
KNOWN_PROXY_HEADERS: FrozenSet[str] = frozenset(
    {
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-by",
        "forwarded",
    }
)

#: One resolved listener: ``(family, socktype, proto, sockaddr)`` as ``getaddrinfo`` gives it.
SockInfo = Tuple[int, int, int, Tuple[Any, ...]]


def asbool(s: object) -> bool:
    """Read a config value as a boolean: ``None`` is false, a bool is itself, and any other
    value is true when its stripped, lower-cased ``str`` is one of :data:`truthy`."""
    if s is None:
        return False
    if isinstance(s, bool):
        return s
    return str(s).strip().lower() in truthy


def asoctal(s: str) -> int:
    """Parse a permission string as octal (``"600"`` -> ``0o600``).

    Only strings are accepted: an int such as ``600`` raises ``TypeError``, as in waitress,
    because its digits would be read as decimal.
    """
    return int(s, 8)


def aslist_cronly(value: Union[str, Iterable[str]]) -> List[str]:
    """Split a string into its stripped, non-empty lines; any other iterable becomes a list."""
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    return list(value)


def aslist(value: Union[str, Iterable[str]]) -> List[str]:
    """Split a string (or each string of an iterable) on any whitespace, newlines included,
    into one flat list."""
    words: List[str] = []
    for line in aslist_cronly(value):
        words.extend(line.split())
    return words


def asset(value: Union[str, Iterable[str]]) -> Set[str]:
    """:func:`aslist` as a set."""
    return set(aslist(value))


def slash_fixed_str(s: str) -> str:
    """Normalise a URL prefix: strip whitespace; a non-empty result gets exactly one leading
    ``/`` and no trailing ``/`` (``"///foo/"`` -> ``"/foo"``)."""
    s = s.strip()
    if s:
        s = "/" + s.lstrip("/").rstrip("/")
    return s


def str_iftruthy(s: object) -> Optional[str]:
    """``str(s)`` if ``s`` is truthy, else ``None`` (so ``""`` means "unset")."""
    return str(s) if s else None


def as_socket_list(sockets: Iterable[object]) -> List[socket.socket]:
    """Keep only the ``socket.socket`` objects; anything else is dropped silently, as in
    waitress (so ``--sockets=...`` on the command line yields an empty list)."""
    return [sock for sock in sockets if isinstance(sock, socket.socket)]


class _str_marker(str):
    """The type of the default ``host``: an exact ``str`` means ``host`` was given."""


class _int_marker(int):
    """The type of the default ``port``: an exact ``int`` means ``port`` was given."""


class _Option(NamedTuple):
    """One row of the option table."""

    name: str
    converter: Callable[[Any], Any]
    default: Any
    #: Placeholder shown in ``--name=METAVAR``; empty for booleans (``--[no-]name``).
    metavar: str
    help: str
    #: ``"standard"`` or ``"tuning"``: the ``--help`` section; ``""`` keeps it out of --help.
    section: str
    #: How ``--help`` shows the default when ``str(default)`` would mislead.
    shown_default: Optional[str] = None


# Help texts are written for this project. Compared with waitress 3.0.2's --help we also list
# the proxy options and --server-name (waitress's main branch lists them too), the options of
# SPEC D7, and the real default of --send-bytes.
_OPTIONS: Tuple[_Option, ...] = (
    _Option(
        "host",
        str,
        _str_marker("0.0.0.0"),  # noqa: S104 (listening on every address is the point)
        "ADDR",
        "Hostname or IP address to listen on. 0.0.0.0 means every IPv4 address of this "
        "host. Cannot be combined with --listen.",
        "standard",
    ),
    _Option(
        "port",
        int,
        _int_marker(8080),
        "PORT",
        "TCP port to listen on. Cannot be combined with --listen.",
        "standard",
    ),
    _Option(
        "listen",
        aslist,
        ["0.0.0.0:8080"],
        "ip:port",
        "Address and port to listen on, for example 127.0.0.1:8080, [::1]:8080 or *:8080 "
        "(every IPv4 and IPv6 address). Give the option several times to listen on several "
        "addresses. Cannot be combined with --host or --port.",
        "standard",
        "0.0.0.0:8080",
    ),
    _Option(
        "ipv4",
        asbool,
        True,
        "",
        "Use the IPv4 addresses that --listen hosts resolve to.",
        "standard",
    ),
    _Option(
        "ipv6",
        asbool,
        True,
        "",
        "Use the IPv6 addresses that --listen hosts resolve to.",
        "standard",
    ),
    _Option(
        "unix_socket",
        str,
        None,
        "PATH",
        "Path of a Unix domain socket to listen on instead of TCP. Cannot be combined with "
        "--host, --port or --listen.",
        "standard",
    ),
    _Option(
        "unix_socket_perms",
        asoctal,
        0o600,
        "PERMS",
        "Permissions of the Unix socket file, in octal.",
        "standard",
        "600",
    ),
    _Option(
        "url_scheme",
        str,
        "http",
        "STR",
        "wsgi.url_scheme of every request, unless a trusted proxy header says otherwise.",
        "standard",
    ),
    _Option(
        "url_prefix",
        slash_fixed_str,
        "",
        "STR",
        "Path prefix the application is mounted at: it becomes SCRIPT_NAME and is removed "
        "from the start of PATH_INFO.",
        "standard",
    ),
    _Option(
        "ident",
        str_iftruthy,
        "waitress",
        "STR",
        "Server identity, sent in the Server response header and error pages. An empty "
        "value sends no Server header.",
        "standard",
    ),
    _Option(
        "server_name",
        str,
        "waitress.invalid",
        "NAME",
        "SERVER_NAME of every request, unless a trusted proxy header says otherwise.",
        "standard",
    ),
    _Option(
        "trusted_proxy",
        str_iftruthy,
        None,
        "IP",
        "Address of the reverse proxy whose headers are trusted; * trusts every peer, and "
        "localhost is the peer of a Unix socket.",
        "standard",
    ),
    _Option(
        "trusted_proxy_count",
        int,
        None,
        "INT",
        "How many proxies, counted from the last, to trust in multi-valued proxy headers. "
        "Needs --trusted-proxy.",
        "standard",
        "1",
    ),
    _Option(
        "trusted_proxy_headers",
        asset,
        set(),
        "LIST",
        "Space-separated proxy headers to trust: forwarded, or any of x-forwarded-for, "
        "x-forwarded-host, x-forwarded-proto, x-forwarded-port and x-forwarded-by. Needs "
        "--trusted-proxy; if --trusted-proxy is given without it, only x-forwarded-proto is "
        "trusted (deprecated).",
        "standard",
        "none",
    ),
    _Option(
        "log_untrusted_proxy_headers",
        asbool,
        False,
        "",
        "Log a warning when untrusted proxy headers are removed from a request.",
        "standard",
    ),
    _Option(
        "clear_untrusted_proxy_headers",
        asbool,
        True,
        "",
        "Remove the proxy headers that are not trusted before the application sees them.",
        "standard",
    ),
    _Option(
        "sockets",
        as_socket_list,
        [],
        "",
        "Pre-bound sockets; only meaningful from Python, so not listed in --help.",
        "",
    ),
    _Option(
        "threads",
        int,
        4,
        "INT",
        "Number of threads that run the application.",
        "tuning",
    ),
    _Option(
        "backlog",
        int,
        1024,
        "INT",
        "Connections the kernel may queue before they are accepted (the listen() backlog).",
        "tuning",
    ),
    _Option(
        "recv_bytes",
        int,
        8192,
        "INT",
        "Bytes read from a socket at a time. Housekeeping only.",
        "tuning",
    ),
    _Option(
        "send_bytes",
        int,
        1,
        "INT",
        "Deprecated: passing it warns. Housekeeping only.",
        "tuning",
    ),
    _Option(
        "outbuf_overflow",
        int,
        1048576,
        "INT",
        "Bytes of response kept in memory per output buffer before it spills to a temporary file.",
        "tuning",
    ),
    _Option(
        "outbuf_high_watermark",
        int,
        16777216,
        "INT",
        "Bytes of unsent response on a connection at which the application is paused until "
        "the client catches up.",
        "tuning",
    ),
    _Option(
        "inbuf_overflow",
        int,
        524288,
        "INT",
        "Bytes of request body kept in memory before it spills to a temporary file.",
        "tuning",
    ),
    _Option(
        "connection_limit",
        int,
        2048,
        "INT",
        "Open connections at which the server stops accepting new ones; they wait in the "
        "backlog until the count drops.",
        "tuning",
    ),
    _Option(
        "cleanup_interval",
        int,
        30,
        "INT",
        "Seconds between sweeps for idle connections. Housekeeping only: --channel-timeout "
        "is enforced per connection.",
        "tuning",
    ),
    _Option(
        "channel_timeout",
        int,
        120,
        "INT",
        "Seconds of inactivity after which a connection with no request in progress is closed.",
        "tuning",
    ),
    _Option(
        "log_socket_errors",
        asbool,
        True,
        "",
        "Log socket errors and failed accept() calls.",
        "tuning",
    ),
    _Option(
        "max_request_header_size",
        int,
        262144,
        "INT",
        "Largest request line plus headers, in bytes; larger heads get 431.",
        "tuning",
    ),
    _Option(
        "max_request_body_size",
        int,
        1073741824,
        "INT",
        "Largest request body, in bytes; larger bodies get 413.",
        "tuning",
    ),
    _Option(
        "expose_tracebacks",
        asbool,
        False,
        "",
        "Show the traceback of an application error in the 500 response body.",
        "tuning",
    ),
    _Option(
        "asyncore_loop_timeout",
        int,
        1,
        "INT",
        "Timeout, in seconds, of the select loop of waitress. Housekeeping only.",
        "tuning",
    ),
    _Option(
        "asyncore_use_poll",
        asbool,
        False,
        "",
        "Use poll() instead of select() in the waitress event loop. Accepted for "
        "compatibility; housekeeping only.",
        "tuning",
    ),
    _Option(
        "channel_request_lookahead",
        int,
        0,
        "INT",
        "Requests read ahead on one connection while the application handles an earlier "
        "one; above 0 this also lets the application see that the client disconnected.",
        "tuning",
    ),
    _Option(
        "header_timeout",
        int,
        30,
        "INT",
        "Seconds allowed to receive a whole request head, from its first byte or from the "
        "end of the previous response; slower clients get 408 and are disconnected.",
        "tuning",
    ),
    _Option(
        "max_request_line",
        int,
        65536,
        "INT",
        "Longest request line, in bytes; longer ones get 414.",
        "tuning",
    ),
    _Option(
        "max_request_headers",
        int,
        200,
        "INT",
        "Most header fields in one request; more get 431.",
        "tuning",
    ),
    _Option(
        "shutdown_timeout",
        int,
        30,
        "INT",
        "Seconds that in-flight requests may run after SIGTERM (or Ctrl-C) before the "
        "server stops anyway; a second signal stops it at once.",
        "tuning",
    ),
)

_OPTION_BY_NAME: Dict[str, _Option] = {opt.name: opt for opt in _OPTIONS}


class Adjustments:
    """Validated server settings.

    Class attributes hold the defaults; ``Adjustments(**kw)`` stores each converted keyword on
    the instance, then resolves ``listen`` and checks the proxy and socket settings, raising
    ``ValueError`` for anything inconsistent (see the module docstring for the order).
    ``socket_options`` is class-level only: set it by subclassing, not as a keyword.
    """

    # Declared for type checkers; the defaults are installed from _OPTIONS below the class.
    host: str
    port: int
    #: After ``__init__``: the resolved listeners. The class default is ``["0.0.0.0:8080"]``.
    listen: List[SockInfo]
    ipv4: bool
    ipv6: bool
    unix_socket: Optional[str]
    unix_socket_perms: int
    url_scheme: str
    url_prefix: str
    ident: Optional[str]
    server_name: str
    trusted_proxy: Optional[str]
    #: After ``__init__`` always an int (an unset count becomes 1).
    trusted_proxy_count: int
    trusted_proxy_headers: Set[str]
    log_untrusted_proxy_headers: bool
    clear_untrusted_proxy_headers: bool
    sockets: List[socket.socket]
    threads: int
    backlog: int
    recv_bytes: int
    send_bytes: int
    outbuf_overflow: int
    outbuf_high_watermark: int
    inbuf_overflow: int
    connection_limit: int
    cleanup_interval: int
    channel_timeout: int
    log_socket_errors: bool
    max_request_header_size: int
    max_request_body_size: int
    expose_tracebacks: bool
    asyncore_loop_timeout: int
    asyncore_use_poll: bool
    channel_request_lookahead: int
    header_timeout: int
    max_request_line: int
    max_request_headers: int
    shutdown_timeout: int

    #: Options set on every accepted TCP connection, as ``(level, option, value)``.
    socket_options: ClassVar[List[Tuple[int, int, int]]] = [
        (getattr(socket, "SOL_TCP", socket.IPPROTO_TCP), socket.TCP_NODELAY, 1)
    ]

    def __init__(self, **kw: Any) -> None:
        self._check_conflicts(kw)
        if "send_bytes" in kw:
            warnings.warn(
                "send_bytes will be removed in a future release",
                DeprecationWarning,
                stacklevel=2,
            )
        for name in kw:
            if name not in _OPTION_BY_NAME:
                raise ValueError(f"Unknown adjustment {name!r}")
        for name, value in kw.items():
            setattr(self, name, _OPTION_BY_NAME[name].converter(value))

        # Until it is resolved, ``listen`` holds "host:port" strings.
        entries = cast(List[str], self.listen)
        # Defaults are marker instances; a converted value never is (str()/int() of a
        # subclass instance returns the exact type), so this detects an explicit host/port.
        if not isinstance(self.host, _str_marker) or not isinstance(self.port, _int_marker):
            entries = [f"{self.host}:{self.port}"]

        if not self.ipv4 and not HAS_IPV6:
            raise ValueError(
                "IPv4 is disabled but IPv6 is not available. Cowardly refusing to start."
            )
        self.listen = self._resolve_listen(entries)
        self._check_proxy_settings()
        if self.sockets:
            self.check_sockets(self.sockets)

    @staticmethod
    def _check_conflicts(kw: Dict[str, Any]) -> None:
        """SPEC §2.3 rules 1-6: ways to choose listeners that exclude each other."""
        host_or_port = "host" in kw or "port" in kw
        if "listen" in kw and host_or_port:
            raise ValueError("host or port may not be set if listen is set.")
        if "listen" in kw and "sockets" in kw:
            raise ValueError("socket may not be set if listen is set.")
        if "sockets" in kw and host_or_port:
            raise ValueError("host or port may not be set if sockets is set.")
        if "sockets" in kw and "unix_socket" in kw:
            raise ValueError("unix_socket may not be set if sockets is set")
        if "unix_socket" in kw and host_or_port:
            raise ValueError("unix_socket may not be set if host or port is set")
        if "unix_socket" in kw and "listen" in kw:
            raise ValueError("unix_socket may not be set if listen is set")

    def _resolve_listen(self, entries: Sequence[str]) -> List[SockInfo]:
        """Resolve ``host:port`` entries into listeners (SPEC §2.2).

        Each entry splits on its last colon unless that would cut inside ``[...]``; a missing
        port is ``self.port``; ``[...]`` is unwrapped and ``*`` means every address. A
        resolved ``(address, port)`` seen before is dropped, except that port 0 (a fresh
        ephemeral port per socket) is always kept.
        """
        if self.ipv4 and not self.ipv6:
            family = socket.AF_INET
        elif self.ipv6 and not self.ipv4:
            family = socket.AF_INET6
        else:
            family = socket.AF_UNSPEC

        listeners: List[SockInfo] = []
        seen: Set[Tuple[str, int]] = set()
        for entry in entries:
            host, sep, port = entry.rpartition(":")
            if not sep or "]" in port:
                host, port = entry, str(self.port)
            if WIN and not port.isdigit():
                raise ValueError("Windows does not support service names instead of port numbers")
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
            try:
                infos = socket.getaddrinfo(
                    None if host == "*" else host,
                    port,
                    family,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    socket.AI_PASSIVE,
                )
            except (OSError, UnicodeError, OverflowError) as exc:
                # gaierror for unknown hosts/services or a family mismatch; UnicodeError for
                # hosts IDNA cannot encode.
                raise ValueError("Invalid host/port specified.") from exc
            for fam, socktype, proto, _canonname, sockaddr in infos:
                address, resolved_port = str(sockaddr[0]), int(sockaddr[1])
                key = (address.split("%", 1)[0], resolved_port)
                if resolved_port != 0 and key in seen:
                    continue
                seen.add(key)
                listeners.append((fam, socktype, proto, sockaddr))
        return listeners

    def _check_proxy_settings(self) -> None:
        """SPEC §2.3 rules 11-15."""
        if self.trusted_proxy_count is not None and not self.trusted_proxy:
            raise ValueError("trusted_proxy_count has no meaning without setting trusted_proxy")
        if self.trusted_proxy_count is None:
            self.trusted_proxy_count = 1

        headers = {header.lower() for header in self.trusted_proxy_headers}
        if headers and not self.trusted_proxy:
            raise ValueError("trusted_proxy_headers has no meaning without setting trusted_proxy")
        unknown = headers - KNOWN_PROXY_HEADERS
        if unknown:
            raise ValueError(
                f"Received unknown trusted_proxy_headers value ({', '.join(sorted(unknown))}) "
                f"expected one of {', '.join(sorted(KNOWN_PROXY_HEADERS))}"
            )
        if "forwarded" in headers and len(headers) > 1:
            raise ValueError(
                "The Forwarded proxy header and the X-Forwarded-{By,Host,Proto,Port,For} "
                "headers are mutually exclusive. Can't trust both!"
            )
        if self.trusted_proxy and not headers:
            warnings.warn(
                "Implicitly trusting X-Forwarded-Proto for backwards compatibility. Set "
                "trusted_proxy_headers explicitly; this fallback will be removed in a "
                "future release.",
                DeprecationWarning,
                stacklevel=3,
            )
            headers = {"x-forwarded-proto"}
        self.trusted_proxy_headers = headers

    @classmethod
    def parse_args(cls, argv: Sequence[str]) -> Tuple[Dict[str, Union[str, bool]], List[str]]:
        """Pre-parse ``waitress-serve`` arguments with getopt (SPEC §2.4).

        Returns ``(kw, args)``: ``kw`` always has ``help`` and ``call`` (bools); each option
        given maps to its raw string, booleans to ``"true"``/``"false"``, and repeated
        ``--listen`` values accumulate into one space-separated string. Raises
        ``getopt.GetoptError`` (unique-prefix abbreviations are accepted, as getopt does).
        """
        long_opts = ["help", "call"]
        for row in _OPTIONS:
            flag = row.name.replace("_", "-")
            if row.converter is asbool:
                long_opts += [flag, f"no-{flag}"]
            else:
                long_opts.append(f"{flag}=")

        kw: Dict[str, Union[str, bool]] = {"help": False, "call": False}
        opts, args = getopt.getopt(list(argv), "", long_opts)
        for flag, value in opts:
            name = flag[2:].replace("-", "_")
            option = _OPTION_BY_NAME.get(name)
            if name in ("help", "call"):
                kw[name] = True
            elif option is None:
                # Only booleans have a no- form, so this is one (getopt checked the name).
                kw[name[3:]] = "false"
            elif option.converter is asbool:
                kw[name] = "true"
            elif name == "listen":
                kw[name] = f"{kw.get(name, '')} {value}"
            else:
                kw[name] = value
        return kw, args

    @classmethod
    def check_sockets(cls, sockets: Iterable[socket.socket]) -> None:
        """Reject a mix of Internet and Unix sockets, and anything not a stream socket of
        those families (SPEC §2.3 rule 16)."""
        inet_families = {socket.AF_INET, socket.AF_INET6}
        unix_family = getattr(socket, "AF_UNIX", None)
        has_inet = has_unix = has_other = False
        for sock in sockets:
            if sock.type != socket.SOCK_STREAM:
                has_other = True
            elif sock.family in inet_families:
                has_inet = True
            elif unix_family is not None and sock.family == unix_family:
                has_unix = True
            else:
                has_other = True
        if has_inet and has_unix:
            raise ValueError("Internet and UNIX sockets may not be mixed.")
        if has_other:
            raise ValueError("Only Internet or UNIX stream sockets may be used.")


def _install_defaults() -> None:
    """Make each option's default a class attribute of :class:`Adjustments`."""
    for option in _OPTIONS:
        setattr(Adjustments, option.name, option.default)


_install_defaults()
