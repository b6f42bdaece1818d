"""Tests for waitress.adjustments, written from SPEC §2 (table, listen, validation, CLI)."""

from __future__ import annotations

import contextlib
import getopt
import re
import socket
import sys
from typing import Iterator

import pytest

from waitress import adjustments
from waitress.adjustments import (
    _OPTIONS,
    KNOWN_PROXY_HEADERS,
    Adjustments,
    _int_marker,
    _str_marker,
    as_socket_list,
    asbool,
    aslist,
    aslist_cronly,
    asoctal,
    asset,
    slash_fixed_str,
    str_iftruthy,
    truthy,
)
from waitress.compat import HAS_IPV6

TCP = (socket.SOCK_STREAM, socket.IPPROTO_TCP)
needs_ipv6 = pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 on this host")
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX behaviour")


def inet(host: str, port: int) -> tuple:
    return (socket.AF_INET, *TCP, (host, port))


def inet6(host: str, port: int) -> tuple:
    return (socket.AF_INET6, *TCP, (host, port, 0, 0))


def message(exc_info: pytest.ExceptionInfo[BaseException]) -> str:
    return str(exc_info.value)


# --- the option table ---------------------------------------------------------------------

DEFAULTS = {
    "host": "0.0.0.0",
    "port": 8080,
    "listen": ["0.0.0.0:8080"],
    "ipv4": True,
    "ipv6": True,
    "unix_socket": None,
    "unix_socket_perms": 0o600,
    "url_scheme": "http",
    "url_prefix": "",
    "ident": "waitress",
    "server_name": "waitress.invalid",
    "trusted_proxy": None,
    "trusted_proxy_count": None,
    "trusted_proxy_headers": set(),
    "log_untrusted_proxy_headers": False,
    "clear_untrusted_proxy_headers": True,
    "sockets": [],
    "threads": 4,
    "backlog": 1024,
    "recv_bytes": 8192,
    "send_bytes": 1,
    "outbuf_overflow": 1048576,
    "outbuf_high_watermark": 16777216,
    "inbuf_overflow": 524288,
    "connection_limit": 2048,  # SPEC D6 (waitress: 100)
    "cleanup_interval": 30,
    "channel_timeout": 120,
    "log_socket_errors": True,
    "max_request_header_size": 262144,
    "max_request_body_size": 1073741824,
    "expose_tracebacks": False,
    "asyncore_loop_timeout": 1,
    "asyncore_use_poll": False,
    "channel_request_lookahead": 0,
    # SPEC D7
    "header_timeout": 30,
    "max_request_line": 65536,
    "max_request_headers": 200,
    "shutdown_timeout": 30,
}


def test_defaults_cover_exactly_the_option_table() -> None:
    assert [opt.name for opt in _OPTIONS] == list(DEFAULTS)


def test_every_option_is_declared_for_type_checkers() -> None:
    declared = set(Adjustments.__annotations__) - {"socket_options"}
    assert declared == set(DEFAULTS)


@pytest.mark.parametrize(("name", "default"), DEFAULTS.items())
def test_class_default(name: str, default: object) -> None:
    value = getattr(Adjustments, name)
    assert value == default
    assert isinstance(value, type(default))


@pytest.mark.parametrize(("name", "default"), DEFAULTS.items())
def test_instance_default(name: str, default: object) -> None:
    adj = Adjustments()
    if name == "listen":
        assert adj.listen == [inet("0.0.0.0", 8080)]
    elif name == "trusted_proxy_count":
        assert adj.trusted_proxy_count == 1  # an unset count becomes 1
    else:
        assert getattr(adj, name) == default


def test_host_and_port_defaults_are_markers() -> None:
    assert type(Adjustments.host) is _str_marker
    assert type(Adjustments.port) is _int_marker
    adj = Adjustments(host="0.0.0.0", port=8080)
    assert type(adj.host) is str
    assert type(adj.port) is int


def test_new_options_of_d7_and_d6() -> None:
    adj = Adjustments()
    assert (adj.header_timeout, adj.max_request_line) == (30, 65536)
    assert (adj.max_request_headers, adj.shutdown_timeout) == (200, 30)
    assert adj.connection_limit == 2048
    adj = Adjustments(
        header_timeout="5",
        max_request_line="8000",
        max_request_headers="50",
        shutdown_timeout="0",
        connection_limit="10",
    )
    assert (adj.header_timeout, adj.max_request_line) == (5, 8000)
    assert (adj.max_request_headers, adj.shutdown_timeout) == (50, 0)
    assert adj.connection_limit == 10


def test_socket_options_is_class_level_only() -> None:
    assert Adjustments.socket_options == [(socket.SOL_TCP, socket.TCP_NODELAY, 1)]
    assert Adjustments().socket_options == [(socket.SOL_TCP, socket.TCP_NODELAY, 1)]
    with pytest.raises(ValueError) as exc_info:
        Adjustments(socket_options=[])
    assert message(exc_info) == "Unknown adjustment 'socket_options'"

    class NoDelayOff(Adjustments):
        socket_options = []  # noqa: RUF012

    assert NoDelayOff().socket_options == []


# (option, string as PasteDeploy or the CLI passes it, converted value, other kwargs needed)
STRING_CASES = [
    ("host", "127.0.0.1", "127.0.0.1", {}),
    ("port", "9000", 9000, {}),
    ("listen", "127.0.0.1:9000", [inet("127.0.0.1", 9000)], {}),
    ("ipv4", "false", False, {"listen": "[::1]:8080"}),
    ("ipv6", "no", False, {}),
    ("unix_socket", "/tmp/app.sock", "/tmp/app.sock", {}),
    ("unix_socket_perms", "660", 0o660, {}),
    ("url_scheme", "https", "https", {}),
    ("url_prefix", "///foo/", "/foo", {}),
    ("ident", "", None, {}),
    ("server_name", "example.com", "example.com", {}),
    ("trusted_proxy", "10.0.0.1", "10.0.0.1", {"trusted_proxy_headers": "x-forwarded-for"}),
    (
        "trusted_proxy_count",
        "2",
        2,
        {"trusted_proxy": "*", "trusted_proxy_headers": "x-forwarded-for"},
    ),
    (
        "trusted_proxy_headers",
        "X-Forwarded-For\nx-forwarded-host",
        {"x-forwarded-for", "x-forwarded-host"},
        {"trusted_proxy": "*"},
    ),
    ("log_untrusted_proxy_headers", "yes", True, {}),
    ("clear_untrusted_proxy_headers", "off", False, {}),
    ("sockets", "abc", [], {}),  # a string iterates to no sockets
    ("threads", "8", 8, {}),
    ("backlog", "2048", 2048, {}),
    ("recv_bytes", "16384", 16384, {}),
    ("send_bytes", "9000", 9000, {}),
    ("outbuf_overflow", "100", 100, {}),
    ("outbuf_high_watermark", "200", 200, {}),
    ("inbuf_overflow", "300", 300, {}),
    ("connection_limit", "10", 10, {}),
    ("cleanup_interval", "1", 1, {}),
    ("channel_timeout", "2", 2, {}),
    ("log_socket_errors", "0", False, {}),
    ("max_request_header_size", "1000", 1000, {}),
    ("max_request_body_size", "2000", 2000, {}),
    ("expose_tracebacks", "1", True, {}),
    ("asyncore_loop_timeout", "5", 5, {}),
    ("asyncore_use_poll", "true", True, {}),
    ("channel_request_lookahead", "5", 5, {}),
    ("header_timeout", "10", 10, {}),
    ("max_request_line", "8192", 8192, {}),
    ("max_request_headers", "100", 100, {}),
    ("shutdown_timeout", "0", 0, {}),
]


def test_string_cases_cover_every_option() -> None:
    assert [case[0] for case in STRING_CASES] == list(DEFAULTS)


@pytest.mark.parametrize(("name", "text", "expected", "extra"), STRING_CASES)
def test_string_conversion(name: str, text: str, expected: object, extra: dict) -> None:
    warns = pytest.warns(DeprecationWarning) if name == "send_bytes" else contextlib.nullcontext()
    with warns:
        adj = Adjustments(**{name: text}, **extra)
    assert getattr(adj, name) == expected


@pytest.mark.parametrize(
    ("kw", "error", "text"),
    [
        ({"threads": "abc"}, ValueError, "invalid literal for int() with base 10: 'abc'"),
        ({"port": "x"}, ValueError, "invalid literal for int() with base 10: 'x'"),
        ({"unix_socket_perms": "8"}, ValueError, "invalid literal for int() with base 8: '8'"),
        # an int would be read as decimal digits, so asoctal refuses it like int(x, 8) does
        ({"unix_socket_perms": 600}, TypeError, "int() can't convert non-string"),
    ],
)
def test_converter_errors_propagate_unchanged(kw: dict, error: type, text: str) -> None:
    with pytest.raises(error) as exc_info:
        Adjustments(**kw)
    assert message(exc_info).startswith(text)


def test_non_string_values_pass_through_converters() -> None:
    adj = Adjustments(threads=2, ipv6=False, listen=["127.0.0.1:1", "127.0.0.1:2"])
    assert adj.threads == 2
    assert adj.ipv6 is False
    assert adj.listen == [inet("127.0.0.1", 1), inet("127.0.0.1", 2)]


# --- converter helpers --------------------------------------------------------------------


def test_truthy_and_known_proxy_headers() -> None:
    assert truthy == {"t", "true", "y", "yes", "on", "1"}
    assert KNOWN_PROXY_HEADERS == {
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-by",
        "forwarded",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (True, True),
        (False, False),
        *((word, True) for word in ["t", "true", "y", "yes", "on", "1", " TRUE ", "Yes"]),
        *((word, False) for word in ["f", "false", "n", "no", "off", "0", "", "2", "truthy"]),
        (1, True),
        (0, False),
    ],
)
def test_asbool(value: object, expected: bool) -> None:
    assert asbool(value) is expected


def test_asoctal() -> None:
    assert asoctal("600") == 0o600
    assert asoctal("0o660") == 0o660
    assert asoctal("777") == 0o777
    with pytest.raises(ValueError):
        asoctal("8")
    with pytest.raises(TypeError):
        asoctal(600)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a\n b \n\n c d\n", ["a", "b", "c d"]),
        ("", []),
        ("one", ["one"]),
        ("a\r\nb", ["a", "b"]),
        (["x y", "z"], ["x y", "z"]),
        (("a",), ["a"]),
    ],
)
def test_aslist_cronly(value: object, expected: list) -> None:
    assert aslist_cronly(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a b\n c\td\n", ["a", "b", "c", "d"]),
        ("", []),
        (" 127.0.0.1:1 [::1]:2", ["127.0.0.1:1", "[::1]:2"]),
        (["a b", "c"], ["a", "b", "c"]),
    ],
)
def test_aslist(value: object, expected: list) -> None:
    assert aslist(value) == expected  # type: ignore[arg-type]


def test_asset() -> None:
    assert asset("a b\na") == {"a", "b"}
    assert asset([]) == set()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("   ", ""),
        ("///foo/", "/foo"),
        ("foo", "/foo"),
        ("/foo", "/foo"),
        (" /foo/bar/ ", "/foo/bar"),
        ("foo//", "/foo"),
        ("/", "/"),
    ],
)
def test_slash_fixed_str(value: str, expected: str) -> None:
    assert slash_fixed_str(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", None), (None, None), (0, None), ("x", "x"), (5, "5"), ("waitress", "waitress")],
)
def test_str_iftruthy(value: object, expected: object) -> None:
    assert str_iftruthy(value) == expected


def test_as_socket_list_keeps_only_sockets() -> None:
    with socket.socket() as sock:
        assert as_socket_list([sock, "x", 1, None]) == [sock]
    assert as_socket_list("abc") == []
    assert as_socket_list([]) == []


# --- listen resolution (SPEC §2.2) --------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"port": 9000}, [inet("0.0.0.0", 9000)]),
        ({"port": "9000"}, [inet("0.0.0.0", 9000)]),
        ({"host": "127.0.0.1"}, [inet("127.0.0.1", 8080)]),
        ({"host": "127.0.0.1", "port": 0}, [inet("127.0.0.1", 0)]),
        ({"host": "0.0.0.0"}, [inet("0.0.0.0", 8080)]),  # given, even though it is the default
        ({"listen": "127.0.0.1:8080 127.0.0.1:8080"}, [inet("127.0.0.1", 8080)]),
        ({"listen": "127.0.0.1:0 127.0.0.1:0"}, [inet("127.0.0.1", 0), inet("127.0.0.1", 0)]),
        ({"listen": "127.0.0.1"}, [inet("127.0.0.1", 8080)]),  # no colon: adj.port
        ({"listen": "127.0.0.1:1\n127.0.0.1:2"}, [inet("127.0.0.1", 1), inet("127.0.0.1", 2)]),
        ({"listen": "localhost:8080", "ipv6": False}, [inet("127.0.0.1", 8080)]),
        ({"listen": "*:8080", "ipv6": False}, [inet("0.0.0.0", 8080)]),
    ],
)
def test_listen_ipv4(kw: dict, expected: list) -> None:
    assert Adjustments(**kw).listen == expected


@needs_ipv6
@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"listen": "*:8080"}, [inet("0.0.0.0", 8080), inet6("::", 8080)]),
        (
            {"listen": "*:8080", "ipv4": False, "ipv6": False},  # both off means either
            [inet("0.0.0.0", 8080), inet6("::", 8080)],
        ),
        ({"listen": "*:8080", "ipv4": False}, [inet6("::", 8080)]),
        ({"listen": "[::1]:8080"}, [inet6("::1", 8080)]),
        ({"listen": "[::1]"}, [inet6("::1", 8080)]),  # "]" in the port part: no port
        ({"listen": "[::1]:8080 [::1]:8080"}, [inet6("::1", 8080)]),
        ({"listen": "0.0.0.0:9000 [::]:9000"}, [inet("0.0.0.0", 9000), inet6("::", 9000)]),
        ({"host": "::1"}, [inet6("::1", 8080)]),
        ({"host": "[::1]", "port": 9000}, [inet6("::1", 9000)]),
        ({"listen": "[::1]:0 [::1]:0"}, [inet6("::1", 0), inet6("::1", 0)]),
    ],
)
def test_listen_ipv6(kw: dict, expected: list) -> None:
    assert Adjustments(**kw).listen == expected


@posix_only
def test_listen_service_name_resolves() -> None:
    assert Adjustments(listen="127.0.0.1:http").listen == [inet("127.0.0.1", 80)]


@posix_only
@needs_ipv6
def test_listen_port_out_of_range_wraps_as_glibc_does() -> None:
    # Resolution stays in Python so that quirks like this one match waitress (SPEC §2.2).
    assert Adjustments(listen="[::1]:99999").listen == [inet6("::1", 34463)]


def test_windows_rejects_service_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adjustments, "WIN", True)
    with pytest.raises(ValueError) as exc_info:
        Adjustments(listen="127.0.0.1:http")
    assert message(exc_info) == "Windows does not support service names instead of port numbers"
    assert Adjustments(listen="127.0.0.1:80").listen == [inet("127.0.0.1", 80)]


@pytest.mark.parametrize(
    "kw",
    [
        {"listen": "127.0.0.1:test"},
        {"listen": "127.0.0.1:8080", "ipv4": False},
        {"listen": "[::]:8080", "ipv6": False},
        {"listen": "::1"},  # bare IPv6 splits on its last colon into ":" and "1"
        {"listen": "no-such-host.invalid:80"},
        {"listen": "a" * 70 + ":80"},  # IDNA cannot encode the label: UnicodeError
        {"host": "127.0.0.1", "port": "99999999999999999999"},
    ],
)
def test_listen_invalid(kw: dict) -> None:
    with pytest.raises(ValueError) as exc_info:
        Adjustments(**kw)
    assert message(exc_info) == "Invalid host/port specified."


# --- validation rules, in order (SPEC §2.3) -----------------------------------------------

CONFLICTS = [
    # rule 1
    (
        {"listen": "127.0.0.1:1", "host": "127.0.0.1"},
        "host or port may not be set if listen is set.",
    ),
    ({"listen": "127.0.0.1:1", "port": 1}, "host or port may not be set if listen is set."),
    # presence, not value: the default host still conflicts
    ({"listen": "127.0.0.1:1", "host": "0.0.0.0"}, "host or port may not be set if listen is set."),
    # rule 2
    ({"listen": "127.0.0.1:1", "sockets": []}, "socket may not be set if listen is set."),
    # rule 3
    ({"sockets": [], "host": "127.0.0.1"}, "host or port may not be set if sockets is set."),
    ({"sockets": [], "port": 1}, "host or port may not be set if sockets is set."),
    # rule 4
    ({"sockets": [], "unix_socket": "/tmp/s"}, "unix_socket may not be set if sockets is set"),
    # rule 5
    ({"unix_socket": "/tmp/s", "host": "x"}, "unix_socket may not be set if host or port is set"),
    ({"unix_socket": "/tmp/s", "port": 1}, "unix_socket may not be set if host or port is set"),
    # rule 6
    ({"unix_socket": "/tmp/s", "listen": "x:1"}, "unix_socket may not be set if listen is set"),
    # order: the earliest rule wins
    (
        {"listen": "x:1", "host": "x", "sockets": [], "unix_socket": "/tmp/s"},
        "host or port may not be set if listen is set.",
    ),
    (
        {"listen": "x:1", "sockets": [], "unix_socket": "/tmp/s"},
        "socket may not be set if listen is set.",
    ),
    (
        {"sockets": [], "port": 1, "unix_socket": "/tmp/s"},
        "host or port may not be set if sockets is set.",
    ),
    (
        {"unix_socket": "/tmp/s", "port": 1, "listen": "x:1"},
        "host or port may not be set if listen is set.",
    ),
    # conflicts are checked before unknown keys and conversion
    ({"listen": "x:1", "port": "bad", "bogus": 1}, "host or port may not be set if listen is set."),
]


@pytest.mark.parametrize(("kw", "text"), CONFLICTS)
def test_conflicting_keys(kw: dict, text: str) -> None:
    with pytest.raises(ValueError) as exc_info:
        Adjustments(**kw)
    assert message(exc_info) == text


def test_send_bytes_warns() -> None:
    with pytest.warns(DeprecationWarning) as record:
        adj = Adjustments(send_bytes=1)
    assert [str(w.message) for w in record] == ["send_bytes will be removed in a future release"]
    assert record[0].filename == __file__  # points at the caller
    assert adj.send_bytes == 1


def test_send_bytes_warning_comes_before_unknown_keys() -> None:
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError) as exc_info:
        Adjustments(send_bytes=1, bogus=2)
    assert message(exc_info) == "Unknown adjustment 'bogus'"


def test_unknown_adjustment() -> None:
    with pytest.raises(ValueError) as exc_info:
        Adjustments(bogus=1)
    assert message(exc_info) == "Unknown adjustment 'bogus'"


@pytest.mark.parametrize("kw", [{"bogus": 1, "threads": "x"}, {"threads": "x", "bogus": 1}])
def test_unknown_keys_are_checked_before_any_conversion(kw: dict) -> None:
    with pytest.raises(ValueError) as exc_info:
        Adjustments(**kw)
    assert message(exc_info) == "Unknown adjustment 'bogus'"


def test_ipv4_disabled_without_ipv6(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adjustments, "HAS_IPV6", False)
    text = "IPv4 is disabled but IPv6 is not available. Cowardly refusing to start."
    with pytest.raises(ValueError) as exc_info:
        Adjustments(ipv4=False, listen="127.0.0.1:test")  # before listen resolution
    assert message(exc_info) == text
    with pytest.raises(ValueError) as exc_info:
        Adjustments(ipv4="false", threads="x")  # after conversion
    assert message(exc_info).startswith("invalid literal for int()")
    assert Adjustments(ipv6=False).listen == [inet("0.0.0.0", 8080)]


def test_listen_is_resolved_before_proxy_checks() -> None:
    with pytest.raises(ValueError) as exc_info:
        Adjustments(listen="127.0.0.1:test", trusted_proxy_count=2)
    assert message(exc_info) == "Invalid host/port specified."


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        # rule 11 (and before rule 12)
        ({"trusted_proxy_count": 2}, "trusted_proxy_count has no meaning without setting"),
        (
            {"trusted_proxy_count": "1", "trusted_proxy_headers": "x-forwarded-for"},
            "trusted_proxy_count has no meaning without setting trusted_proxy",
        ),
        ({"trusted_proxy": "", "trusted_proxy_count": 1}, "trusted_proxy_count has no meaning"),
        # rule 12
        (
            {"trusted_proxy_headers": "x-forwarded-for"},
            "trusted_proxy_headers has no meaning without setting trusted_proxy",
        ),
        # rule 13, names lower-cased first
        (
            {"trusted_proxy": "*", "trusted_proxy_headers": "X-Bad"},
            "Received unknown trusted_proxy_headers value (x-bad) expected one of ",
        ),
        (
            {"trusted_proxy": "*", "trusted_proxy_headers": "x-forwarded-for x-bad"},
            "Received unknown trusted_proxy_headers value (x-bad) expected one of ",
        ),
        # rule 14
        (
            {"trusted_proxy": "*", "trusted_proxy_headers": "forwarded x-forwarded-for"},
            "The Forwarded proxy header and the X-Forwarded-{By,Host,Proto,Port,For} headers "
            "are mutually exclusive. Can't trust both!",
        ),
    ],
)
def test_proxy_settings_errors(kw: dict, text: str) -> None:
    with pytest.raises(ValueError) as exc_info:
        Adjustments(**kw)
    assert message(exc_info).startswith(text)


def test_unknown_proxy_header_message_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as exc_info:
        Adjustments(trusted_proxy="*", trusted_proxy_headers="x-bad")
    for header in KNOWN_PROXY_HEADERS:
        assert header in message(exc_info)


def test_trusted_proxy_headers_are_lower_cased() -> None:
    adj = Adjustments(
        trusted_proxy="10.0.0.1",
        trusted_proxy_count="2",
        trusted_proxy_headers="X-Forwarded-For X-FORWARDED-PROTO",
    )
    assert adj.trusted_proxy_headers == {"x-forwarded-for", "x-forwarded-proto"}
    assert adj.trusted_proxy_count == 2
    adj = Adjustments(trusted_proxy="*", trusted_proxy_headers=["Forwarded"])
    assert adj.trusted_proxy_headers == {"forwarded"}


def test_trusted_proxy_alone_implicitly_trusts_x_forwarded_proto() -> None:
    with pytest.warns(DeprecationWarning) as record:
        adj = Adjustments(trusted_proxy="*")
    assert len(record) == 1
    assert "Implicitly trusting X-Forwarded-Proto for backwards compatibility" in str(
        record[0].message
    )
    assert record[0].filename == __file__
    assert adj.trusted_proxy_headers == {"x-forwarded-proto"}
    assert adj.trusted_proxy_count == 1


def test_untrusted_header_options_do_not_need_trusted_proxy() -> None:
    # The docs say they do; the code never enforced it (SPEC §2.3).
    adj = Adjustments(clear_untrusted_proxy_headers=False, log_untrusted_proxy_headers=True)
    assert adj.clear_untrusted_proxy_headers is False
    assert adj.log_untrusted_proxy_headers is True


@pytest.fixture
def sockets() -> Iterator[dict]:
    made = {
        "inet": socket.socket(socket.AF_INET, socket.SOCK_STREAM),
        "inet_dgram": socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
    }
    if HAS_IPV6:
        made["inet6"] = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    if hasattr(socket, "AF_UNIX"):
        made["unix"] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        made["unix_dgram"] = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    yield made
    for sock in made.values():
        sock.close()


@posix_only
def test_check_sockets(sockets: dict) -> None:
    Adjustments.check_sockets([sockets["inet"]])
    Adjustments.check_sockets([sockets["unix"]])
    Adjustments.check_sockets([])
    if "inet6" in sockets:
        Adjustments.check_sockets([sockets["inet"], sockets["inet6"]])

    with pytest.raises(ValueError) as exc_info:
        Adjustments.check_sockets([sockets["inet"], sockets["unix"]])
    assert message(exc_info) == "Internet and UNIX sockets may not be mixed."
    for name in ("inet_dgram", "unix_dgram"):
        with pytest.raises(ValueError) as exc_info:
            Adjustments.check_sockets([sockets[name]])
        assert message(exc_info) == "Only Internet or UNIX stream sockets may be used."
    with pytest.raises(ValueError) as exc_info:
        Adjustments.check_sockets([sockets["inet"], sockets["unix"], sockets["inet_dgram"]])
    assert message(exc_info) == "Internet and UNIX sockets may not be mixed."


@posix_only
def test_sockets_are_checked_by_init(sockets: dict) -> None:
    adj = Adjustments(sockets=[sockets["inet"], "not a socket"])
    assert adj.sockets == [sockets["inet"]]
    with pytest.raises(ValueError) as exc_info:
        Adjustments(sockets=[sockets["inet"], sockets["unix"]])
    assert message(exc_info) == "Internet and UNIX sockets may not be mixed."
    with pytest.raises(ValueError) as exc_info:
        Adjustments(sockets=[sockets["inet_dgram"]])
    assert message(exc_info) == "Only Internet or UNIX stream sockets may be used."


# --- parse_args (SPEC §2.4) ---------------------------------------------------------------

BASE = {"help": False, "call": False}


@pytest.mark.parametrize(
    ("argv", "kw", "args"),
    [
        ([], {}, []),
        (["--help"], {"help": True}, []),
        (["--help", "app:app", "extra"], {"help": True}, ["app:app", "extra"]),
        (["--call", "pkg.mod:factory"], {"call": True}, ["pkg.mod:factory"]),
        (
            ["--host=127.0.0.1", "--port", "8080", "app:app"],
            {"host": "127.0.0.1", "port": "8080"},
            ["app:app"],
        ),
        (["--ipv4", "--no-ipv6"], {"ipv4": "true", "ipv6": "false"}, []),
        (["--no-expose-tracebacks", "--expose-tracebacks"], {"expose_tracebacks": "true"}, []),
        (["--threads=2", "--threads=3"], {"threads": "3"}, []),
        (["--listen=a:1", "--listen", "b:2"], {"listen": " a:1 b:2"}, []),
        (["--thr=8"], {"threads": "8"}, []),  # unique prefix
        (["--no-exp"], {"expose_tracebacks": "false"}, []),
        (["--threads=8", "app", "--port=1"], {"threads": "8"}, ["app", "--port=1"]),
        (["--", "--port=1"], {}, ["--port=1"]),
        (["--ident="], {"ident": ""}, []),
        (["--sockets=abc"], {"sockets": "abc"}, []),
        (["--unix-socket-perms=660"], {"unix_socket_perms": "660"}, []),
        (
            [
                "--trusted-proxy=*",
                "--trusted-proxy-count=2",
                "--trusted-proxy-headers=x-forwarded-for forwarded",
                "--log-untrusted-proxy-headers",
                "--no-clear-untrusted-proxy-headers",
                "--server-name=example.com",
            ],
            {
                "trusted_proxy": "*",
                "trusted_proxy_count": "2",
                "trusted_proxy_headers": "x-forwarded-for forwarded",
                "log_untrusted_proxy_headers": "true",
                "clear_untrusted_proxy_headers": "false",
                "server_name": "example.com",
            },
            [],
        ),
        (
            [
                "--header-timeout=5",
                "--max-request-line=100",
                "--max-request-headers=10",
                "--shutdown-timeout=0",
                "--connection-limit=10",
            ],
            {
                "header_timeout": "5",
                "max_request_line": "100",
                "max_request_headers": "10",
                "shutdown_timeout": "0",
                "connection_limit": "10",
            },
            [],
        ),
    ],
)
def test_parse_args(argv: list, kw: dict, args: list) -> None:
    assert Adjustments.parse_args(argv) == ({**BASE, **kw}, args)


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["--bad-opt"], "option --bad-opt not recognized"),
        (["--threads"], "option --threads requires argument"),
        (["--help=1"], "option --help must not have an argument"),
        (["--ipv4=yes"], "option --ipv4 must not have an argument"),
        (["--max-request"], "option --max-request not a unique prefix"),
        (["--ipv"], "option --ipv not a unique prefix"),
        (["--no-host"], "option --no-host not recognized"),  # only booleans have no- forms
        (["--socket-options=x"], "option --socket-options not recognized"),
    ],
)
def test_parse_args_errors(argv: list, text: str) -> None:
    with pytest.raises(getopt.GetoptError) as exc_info:
        Adjustments.parse_args(argv)
    assert message(exc_info) == text


@pytest.mark.parametrize("option", _OPTIONS, ids=lambda opt: opt.name)
def test_every_option_is_a_cli_flag(option: adjustments._Option) -> None:
    flag = option.name.replace("_", "-")
    if option.converter is asbool:
        kw, _ = Adjustments.parse_args([f"--{flag}", f"--no-{flag}"])
        assert kw[option.name] == "false"
        with pytest.raises(getopt.GetoptError, match=re.escape("must not have an argument")):
            Adjustments.parse_args([f"--{flag}=1"])
    else:
        kw, _ = Adjustments.parse_args([f"--{flag}=value"])
        assert kw[option.name] == "value" if option.name != "listen" else " value"
        with pytest.raises(getopt.GetoptError, match=re.escape("requires argument")):
            Adjustments.parse_args([f"--{flag}"])


def test_parse_args_result_feeds_adjustments() -> None:
    kw, args = Adjustments.parse_args(
        [
            "--listen=127.0.0.1:0",
            "--listen=127.0.0.1:0",
            "--no-ipv6",
            "--threads=2",
            "--url-prefix=/app/",
            "--ident=",
            "app:app",
        ]
    )
    del kw["help"], kw["call"]
    adj = Adjustments(**kw)
    assert adj.listen == [inet("127.0.0.1", 0), inet("127.0.0.1", 0)]
    assert (adj.ipv6, adj.threads, adj.url_prefix, adj.ident) == (False, 2, "/app", None)
    assert args == ["app:app"]
