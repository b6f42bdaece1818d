//! The "no Python" ceiling of the server benchmarks (`make bench`): [`waitress_server::serve`]
//! with a Rust handler that answers every request with the same 13-byte `Hello, world!` the
//! benchmark's WSGI app sends, from a crew of worker threads as the Python crate has.
//!
//! Usage: `hello_server [ADDR [THREADS [CONNECTION_LIMIT]]]`, default `127.0.0.1:8080 4 2048`.
//! Runs until killed.

use std::error::Error;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;

use std::time::{SystemTime, UNIX_EPOCH};

use waitress_http::encode::DateCache;
use waitress_http::request::{RequestHead, Version};
use waitress_server::{
    serve, Crew, Handler, Level, Listener, LogSink, Request, Responder, ServerConfig, StopHandle,
};

const BODY: &[u8] = b"Hello, world!";

/// Queues each request for the worker threads (`Handler::handle` must not block).
struct Workers {
    crew: Arc<Crew>,
}

impl Handler for Workers {
    fn handle(&self, request: Request, responder: Responder) {
        // Refused (a 500) only once the crew is closed.
        self.crew.push((request, responder));
    }
}

struct Quiet;

impl LogSink for Quiet {
    fn log(&self, _level: Level, _message: String) {}
}

/// The whole response, framed here as the Python crate frames its own (head and body in
/// one piece), sent by `Responder::finish_raw`.
fn response(http11: bool, close: bool) -> Vec<u8> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let date = DateCache::format(secs);
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(if http11 { b"HTTP/1.1" } else { b"HTTP/1.0" });
    out.extend_from_slice(b" 200 OK\r\n");
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"Content-Length: 13\r\n");
    out.extend_from_slice(b"Content-Type: text/plain\r\nDate: ");
    out.extend_from_slice(&date);
    out.extend_from_slice(b"\r\nServer: waitress\r\n\r\n");
    out.extend_from_slice(BODY);
    out
}

/// Whether the request lets the connection stay open (SPEC §3.7, as the Python crate
/// decides it for a response with a Content-Length).
fn keeps_alive(head: &RequestHead) -> bool {
    match head.version() {
        Version::Http11 => !head.wants_close(),
        Version::Http10 => head.wants_keep_alive(),
    }
}

fn work(crew: &Crew) {
    // Each response ends as the next request is awaited (`Crew::next_after`): inside the
    // runtime when this worker leads, as the Python crate's workers end theirs.
    let mut ending: Option<(Responder, bool, bool)> = None;
    while let Some((request, responder)) = crew.next_after(|| {
        let (responder, http11, close) = ending.take()?;
        // An error means the client is gone: nothing is left to do for this request.
        responder
            .finish_raw_ended(response(http11, close), !close)
            .ok()
    }) {
        let close = request.closing || !keeps_alive(&request.head);
        let http11 = request.head.version() == Version::Http11;
        ending = Some((responder, http11, close));
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let threads: usize = args.next().map_or(Ok(4), |n| n.parse())?;
    let connection_limit: usize = args.next().map_or(Ok(2048), |n| n.parse())?;

    let crew = Crew::new();
    for _ in 0..threads.max(1) {
        let crew = Arc::clone(&crew);
        thread::spawn(move || work(&crew));
    }
    let listener = TcpListener::bind(&addr)?;
    let config = ServerConfig {
        connection_limit,
        ..ServerConfig::default()
    };
    serve(
        vec![Listener::Tcp(listener)],
        config,
        Arc::new(Workers {
            crew: Arc::clone(&crew),
        }),
        Arc::new(Quiet),
        StopHandle::new(),
        &crew,
    )?;
    Ok(())
}
