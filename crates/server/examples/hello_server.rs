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

fn answer(mut responder: Responder) {
    let headers = vec![
        ("Content-Type".to_owned(), "text/plain".to_owned()),
        ("Content-Length".to_owned(), BODY.len().to_string()),
    ];
    // An error means the client is gone: nothing is left to do for this request.
    if responder.start("200 OK", headers).is_ok() && responder.write(BODY.to_vec()).is_ok() {
        let _ = responder.finish();
    }
}

fn work(crew: &Crew) {
    while let Some((_request, responder)) = crew.next() {
        answer(responder);
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
