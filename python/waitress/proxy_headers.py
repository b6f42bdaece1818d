"""WSGI middleware that applies (or removes) reverse-proxy headers: SPEC Part A §4.

Rules, in the order the middleware applies them:

1. Headers are read only from a trusted peer: ``trusted_proxy`` is ``"*"`` or equals
   ``REMOTE_ADDR`` exactly (``"localhost"`` for Unix sockets). From any other peer all six
   proxy headers are untrusted.
2. Of a trusted peer's headers only those named in ``trusted_proxy_headers`` are read.
   ``forwarded`` (RFC 7239) excludes the ``x-forwarded-*`` family: when it is trusted they
   are all untrusted.
3. Only the last ``trusted_proxy_count`` hops of a list header are trusted; the header
   itself is rewritten to those hops so the application never sees the hops we ignored
   (waitress 3.0.2, issue #451).
4. What was learnt sets ``wsgi.url_scheme``, ``SERVER_NAME``, ``SERVER_PORT``,
   ``HTTP_HOST``, ``REMOTE_ADDR``, ``REMOTE_HOST`` and ``REMOTE_PORT``.
5. A trusted header that cannot be parsed is logged and answered with 400 here, at the
   WSGI level; the application is not called.
6. With ``clear_untrusted`` every untrusted proxy header is deleted from the environ, so
   an application cannot be fooled by a value a client wrote itself.

Nothing is validated as an address or a number: like waitress we pass on what a trusted
proxy said, and only reject what we cannot split.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

from .utilities import BadRequest, logger, undquote

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "PROXY_HEADERS",
    "Forwarded",
    "MalformedProxyHeader",
    "clear_untrusted_headers",
    "parse_proxy_headers",
    "proxy_headers_middleware",
    "strip_brackets",
]

#: The proxy headers this module knows, as environ keys without the ``HTTP_`` prefix.
PROXY_HEADERS = frozenset(
    {
        "X_FORWARDED_FOR",
        "X_FORWARDED_HOST",
        "X_FORWARDED_PROTO",
        "X_FORWARDED_PORT",
        "X_FORWARDED_BY",
        "FORWARDED",
    }
)

_MULTIPLE_VALUES = "Unspecified behavior for multiple values found in header"

#: Default port of each scheme we accept from a proxy.
_DEFAULT_PORTS = {"http": "80", "https": "443"}


class Forwarded(NamedTuple):
    """One element of an RFC 7239 ``Forwarded`` header; absent parameters are ``""``."""

    by: str
    for_: str
    host: str
    proto: str


class MalformedProxyHeader(Exception):
    """A trusted proxy header could not be parsed.

    ``header`` is the name reported to the client, ``reason`` says what was wrong and
    ``value`` is what was received.
    """

    def __init__(self, header: str, reason: str, value: str) -> None:
        super().__init__(header, reason, value)
        self.header = header
        self.reason = reason
        self.value = value


def strip_brackets(addr: str) -> str:
    """Remove the square brackets around an IPv6 literal: ``"[::1]"`` -> ``"::1"``."""
    if addr.startswith("[") and addr.endswith("]"):
        return addr[1:-1]
    return addr


def _display_name(key: str) -> str:
    """``X_FORWARDED_BY`` -> ``X-Forwarded-By``."""
    return "-".join(part.capitalize() for part in key.split("_"))


def proxy_headers_middleware(
    app: WSGIApplication,
    trusted_proxy: Optional[str] = None,
    trusted_proxy_count: int = 1,
    trusted_proxy_headers: Optional[Iterable[str]] = None,
    clear_untrusted: bool = True,
    log_untrusted: bool = False,
    logger: logging.Logger = logger,
) -> WSGIApplication:
    """Wrap ``app`` so that every request goes through the rules in this module's header."""
    trusted_headers = frozenset(name.lower() for name in trusted_proxy_headers or ())

    def translate_proxy_headers(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        untrusted_headers: Iterable[str] = PROXY_HEADERS
        remote_peer = environ.get("REMOTE_ADDR")
        if trusted_proxy and (trusted_proxy == "*" or remote_peer == trusted_proxy):
            try:
                untrusted_headers = parse_proxy_headers(
                    environ, trusted_proxy_count, trusted_headers, logger=logger
                )
            except MalformedProxyHeader as exc:
                logger.warning(
                    'Malformed proxy header "%s" from "%s": %s value: %s',
                    exc.header,
                    remote_peer,
                    exc.reason,
                    exc.value,
                )
                error = BadRequest(f'Header "{exc.header}" malformed.')
                return error.wsgi_response(environ, start_response)
        if clear_untrusted:
            clear_untrusted_headers(
                environ, untrusted_headers, log_warning=log_untrusted, logger=logger
            )
        return app(environ, start_response)

    if not trusted_proxy and clear_untrusted and not log_untrusted:
        # All this middleware does is rule 6 with nothing to log: the Rust core can leave
        # the six headers out of the environ and call ``app`` itself (server._sites).
        translate_proxy_headers.drops_proxy_headers_of = app  # type: ignore[attr-defined]
    return translate_proxy_headers


def _last_raw(pieces: List[str], count: int) -> str:
    """The header value cut down to its last ``count`` comma-separated pieces, as sent.

    The pieces keep their quoting and the separators the proxy wrote; only the space left
    at the front by the cut is stripped (SPEC §4.2: ``"192.0.2.1, 198.51.100.2,
    203.0.113.1"`` with two trusted hops becomes ``"198.51.100.2, 203.0.113.1"``).
    """
    return ",".join(pieces[-count:]).strip()


def _bracket_ipv6(hop: str) -> str:
    """Bracket a bare IPv6 literal so that a later ``:port`` split cannot cut it."""
    if "." not in hop and ":" in hop and not hop.endswith("]"):
        return f"[{hop}]"
    return hop


def _parse_forwarded_element(element: str, logger: logging.Logger) -> Forwarded:
    """Parse ``for=...;host=...`` (RFC 7239 §4). Raises ValueError when malformed."""
    params = {"by": "", "for": "", "host": "", "proto": ""}
    for pair in element.strip().split(";"):
        pair = pair.lower()
        if not pair:
            continue  # RFC 7239 §4: forwarded-pair is optional between the ";"s
        token, equals, value = pair.partition("=")
        if not equals:
            raise ValueError('Invalid forwarded-pair missing "="')
        # RFC 7239 §4 has no whitespace around "=" or ";" (only around ",").
        if token.strip() != token:
            raise ValueError("Token may not be surrounded by whitespace")
        if value.strip() != value:
            raise ValueError("Value may not be surrounded by whitespace")
        if token in params:
            params[token] = undquote(value)
        else:
            logger.warning("Unknown Forwarded token: %s", token)
    return Forwarded(params["by"], params["for"], params["host"], params["proto"])


def _single_value(environ: WSGIEnvironment, key: str, name: str) -> Optional[str]:
    """Read a header that must carry one (possibly quoted) value, or None if absent."""
    raw: Optional[str] = environ.get(key)
    if raw is None:
        return None
    try:
        value = undquote(raw)
        if "," in value:
            raise ValueError(_MULTIPLE_VALUES)
    except ValueError as exc:
        raise MalformedProxyHeader(name, str(exc), raw) from exc
    return value


def _trusted_hops(raw: str, name: str, count: int, bracket: bool) -> Tuple[str, str]:
    """Parse a comma-separated hop list; return its first trusted hop and its rewrite.

    The first of the last ``count`` hops is the one the nearest trusted proxy was talking
    to; the rewrite is the header cut down to those hops.
    """
    pieces = raw.split(",")
    try:
        hops = [undquote(piece.strip()) for piece in pieces]
    except ValueError as exc:
        raise MalformedProxyHeader(name, str(exc), raw) from exc
    first = hops[-count:][0]
    if bracket:
        first = _bracket_ipv6(first)
    return first, _last_raw(pieces, count)


def parse_proxy_headers(
    environ: WSGIEnvironment,
    trusted_proxy_count: int,
    trusted_proxy_headers: Optional[Iterable[str]],
    logger: logging.Logger = logger,
) -> Set[str]:
    """Apply the trusted proxy headers to ``environ``; return the keys still untrusted.

    The keys are those of ``PROXY_HEADERS``. Raises ``MalformedProxyHeader`` (before
    changing ``environ``) when a trusted header cannot be parsed.
    """
    trusted = {name.lower() for name in trusted_proxy_headers or ()}
    if "forwarded" in trusted:
        trusted = {"forwarded"}  # RFC 7239 replaces the X-Forwarded-* family; never mix them
    untrusted = set(PROXY_HEADERS) - {name.upper().replace("-", "_") for name in trusted}
    # Fewer than one trusted hop is a misconfiguration; trust the nearest one, not all.
    count = max(trusted_proxy_count, 1)

    client = host = proto = port = ""
    proto_header = "X-Forwarded-Proto"
    rewrites: Dict[str, str] = {}

    if "forwarded" in trusted:
        raw = environ.get("HTTP_FORWARDED")
        if raw is not None:
            elements = raw.split(",")
            try:
                proxies = [_parse_forwarded_element(e, logger) for e in elements]
            except ValueError as exc:
                raise MalformedProxyHeader("Forwarded", str(exc), raw) from exc
            # From the nearest trusted proxy outwards: the oldest value wins, because it is
            # what the client itself asked for (host, scheme) or is (address).
            for proxy in reversed(proxies[-count:]):
                client = proxy.for_ or client
                host = proxy.host or host
                proto = proxy.proto or proto
            proto_header = "Forwarded Proto="
            rewrites["HTTP_FORWARDED"] = _last_raw(elements, count)
    else:
        raw = environ.get("HTTP_X_FORWARDED_FOR")
        if raw is not None and "x-forwarded-for" in trusted:
            client, rewrites["HTTP_X_FORWARDED_FOR"] = _trusted_hops(
                raw, "X-Forwarded-For", count, bracket=True
            )
        raw = environ.get("HTTP_X_FORWARDED_HOST")
        if raw is not None and "x-forwarded-host" in trusted:
            host, rewrites["HTTP_X_FORWARDED_HOST"] = _trusted_hops(
                raw, "X-Forwarded-Host", count, bracket=False
            )
        if "x-forwarded-proto" in trusted:
            proto = _single_value(environ, "HTTP_X_FORWARDED_PROTO", "X-Forwarded-Proto") or ""
        if "x-forwarded-port" in trusted:
            port = _single_value(environ, "HTTP_X_FORWARDED_PORT", "X-Forwarded-Port") or ""
        # X-Forwarded-By is trusted (kept) but carries nothing we use.

    scheme = proto.lower()
    if scheme and scheme not in _DEFAULT_PORTS:
        raise MalformedProxyHeader(proto_header, "unsupported proto value", proto)

    # Everything is valid: now change the environ.
    environ.update(rewrites)
    if scheme:
        environ["wsgi.url_scheme"] = scheme
        port = port or _DEFAULT_PORTS[scheme]
    if client:
        _apply_client(environ, client)
    if host:
        port = _apply_host(environ, host, port)
    if port:
        environ["SERVER_PORT"] = port
    return untrusted


def _apply_client(environ: WSGIEnvironment, client: str) -> None:
    addr = client
    if ":" in client and not client.endswith("]"):
        addr, _, remote_port = client.rpartition(":")
        environ["REMOTE_PORT"] = remote_port
    addr = strip_brackets(addr)
    environ["REMOTE_ADDR"] = addr
    environ["REMOTE_HOST"] = addr


def _apply_host(environ: WSGIEnvironment, host: str, port: str) -> str:
    """Set SERVER_NAME and HTTP_HOST; return the port, which a ``host:port`` overrides."""
    if ":" in host and not host.endswith("]"):
        name, _, port = host.rpartition(":")
        environ["SERVER_NAME"] = name
        environ["HTTP_HOST"] = host
        return port
    environ["SERVER_NAME"] = host
    environ["HTTP_HOST"] = host
    scheme = environ.get("wsgi.url_scheme", "http")
    if port and _DEFAULT_PORTS.get(scheme) != port:
        environ["HTTP_HOST"] = f"{host}:{port}"
    return port


def clear_untrusted_headers(
    environ: WSGIEnvironment,
    untrusted_headers: Iterable[str],
    log_warning: bool = False,
    logger: logging.Logger = logger,
) -> None:
    """Delete ``HTTP_<key>`` for each untrusted key; optionally log what was removed."""
    missing = object()
    removed = sorted(
        key for key in untrusted_headers if environ.pop("HTTP_" + key, missing) is not missing
    )
    if log_warning and removed:
        logger.warning(
            "Removed untrusted headers (%s). Waitress recommends these be removed upstream.",
            ", ".join(_display_name(key) for key in removed),
        )
