#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "benchmark harness, not a request path"
)]

//! The per-request Python-facing work of a WSGI call, outside the server (issue 5 item 5):
//! building the environ from a parsed head (`split_target`, `wsgi.input`, `build_environ`:
//! what `wsgi::serve` runs before calling the application) and encoding the response head
//! (`Call::build_head`, alone and after the application's `start_response` call). The
//! code measured is the crate's own, through `_core::bench`; the interpreter is embedded
//! (feature `bench`) and imports `waitress` from this checkout's `python/`. Run with
//! `make bench-wsgi` (builds the extension first); docs/benchmarks.md records the times.

use std::hint::black_box;

use _core::bench::Fixture;
use criterion::{criterion_group, criterion_main, Criterion};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use waitress_http::request::{HeadParser, RequestHead};
use waitress_http::Limits;

/// What wrk sends for the hello benchmark.
const HELLO_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

/// A browser's page request: 10 fields, a query string, two fields without an interned
/// environ key (`Upgrade-Insecure-Requests`, `Sec-Fetch-Mode`).
const BROWSER_HEAD: &[u8] = b"GET /search?q=wsgi+server&page=2&sort=recent HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://www.example.com/\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark; consent=yes\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Mode: navigate\r\n\r\n";

/// `tests.apps.hello_app`'s response.
const HELLO_STATUS: &str = "200 OK";
const HELLO_HEADERS: &[(&str, &str)] = &[("Content-Type", "text/plain"), ("Content-Length", "13")];

/// A framework's page: 8 fields, two of them Set-Cookie.
const APP_STATUS: &str = "200 OK";
const APP_HEADERS: &[(&str, &str)] = &[
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Length", "5120"),
    ("Cache-Control", "private, max-age=0"),
    ("Vary", "Cookie, Accept-Encoding"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    (
        "Set-Cookie",
        "session=0123456789abcdef; Path=/; HttpOnly; Secure; SameSite=Lax",
    ),
    (
        "Set-Cookie",
        "csrftoken=fedcba9876543210; Path=/; SameSite=Strict",
    ),
];

fn parse(input: &[u8]) -> RequestHead {
    HeadParser::new(Limits::default())
        .parse(input)
        .unwrap()
        .expect("a complete head")
}

/// The interpreter, with this checkout's `python/` first on `sys.path` (the `waitress`
/// package and the `_core` extension `make build` put there).
fn fixture(py: Python<'_>) -> Fixture {
    let python_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../python");
    py.import("sys")
        .and_then(|sys| sys.getattr("path"))
        .and_then(|path| path.call_method1("insert", (0, python_dir)))
        .unwrap();
    Fixture::new(py).unwrap_or_else(|err| panic!("cannot load waitress helpers: {err}"))
}

fn environ(c: &mut Criterion) {
    Python::attach(|py| {
        let fixture = fixture(py);
        let mut group = c.benchmark_group("environ");
        for (name, input) in [("hello", HELLO_HEAD), ("browser", BROWSER_HEAD)] {
            let head = parse(input);
            group.bench_function(name, |b| {
                b.iter(|| black_box(fixture.environ(py, black_box(&head)).unwrap()));
            });
        }
        group.finish();
    });
}

fn response_head(c: &mut Criterion) {
    Python::attach(|py| {
        let fixture = fixture(py);
        let request = parse(HELLO_HEAD);
        let mut group = c.benchmark_group("response_head");
        for (name, status, headers) in [
            ("hello", HELLO_STATUS, HELLO_HEADERS),
            ("app", APP_STATUS, APP_HEADERS),
        ] {
            let length = headers
                .iter()
                .find(|(field, _)| *field == "Content-Length")
                .map(|(_, value)| value.parse::<i64>().unwrap());
            group.bench_function(format!("{name}/build_head"), |b| {
                b.iter(|| {
                    let head = fixture
                        .response_head(py, &request, black_box(status), black_box(headers), length)
                        .unwrap();
                    black_box(head)
                });
            });
            let py_status = PyString::new(py, status).into_any();
            let py_headers = PyList::new(py, headers).unwrap().into_any();
            group.bench_function(format!("{name}/start_response+build_head"), |b| {
                b.iter(|| {
                    let head = fixture
                        .start_response_head(
                            py,
                            &request,
                            black_box(&py_status),
                            black_box(&py_headers),
                        )
                        .unwrap();
                    black_box(head)
                });
            });
        }
        group.finish();
    });
}

criterion_group!(benches, environ, response_head);
criterion_main!(benches);
