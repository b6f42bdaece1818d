//! The server over real sockets on 127.0.0.1 with a Rust handler (its own worker threads,
//! as the Python pool has).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::io::{Read, Seek, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use waitress_server::{
    serve, Crew, Handler, Level, Listener, LogSink, Request, RequestBody, Responder, ServerConfig,
    StopHandle,
};

/// Writes `/big` has handed over so far (one test uses it).
static BIG_WRITES: AtomicUsize = AtomicUsize::new(0);
const BIG_PIECE: usize = 64 * 1024;
const BIG_PIECES: usize = 256;

fn big_piece(n: usize) -> Vec<u8> {
    vec![u8::try_from(n % 251).unwrap(); BIG_PIECE]
}

/// The bytes `/file` serves: a regular file sent with sendfile from offset 7.
fn file_bytes() -> Vec<u8> {
    (0..300_000u32).map(|n| (n * 7 % 256) as u8).collect()
}

struct Workers {
    crew: Arc<Crew>,
}

fn answer(request: Request, mut responder: Responder) {
    let target = String::from_utf8_lossy(request.head.target()).into_owned();
    let body = match request.body {
        RequestBody::Memory(bytes) => bytes,
        RequestBody::File(mut file) => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            bytes
        }
    };
    match target.as_str() {
        "/echo" => {
            responder
                .start(
                    "200 OK",
                    vec![("Content-Length".into(), body.len().to_string())],
                )
                .unwrap();
            responder.write(body).unwrap();
            responder.finish().unwrap();
        }
        "/sleep" => {
            thread::sleep(Duration::from_millis(500));
            responder
                .start("200 OK", vec![("Content-Length".into(), "5".into())])
                .unwrap();
            responder.write(b"slept".to_vec()).unwrap();
            responder.finish().unwrap();
        }
        "/stream" => {
            responder.start("200 OK", vec![]).unwrap();
            for _ in 0..3 {
                responder.write(b"part".to_vec()).unwrap();
            }
            responder.finish().unwrap();
        }
        "/fail" => responder.abort("boom"),
        "/big" => {
            let total = BIG_PIECE * BIG_PIECES;
            responder
                .start("200 OK", vec![("Content-Length".into(), total.to_string())])
                .unwrap();
            for n in 0..BIG_PIECES {
                responder.write(big_piece(n)).unwrap();
                BIG_WRITES.fetch_add(1, Ordering::SeqCst);
            }
            responder.finish().unwrap();
        }
        "/file" => {
            let mut file = tempfile();
            file.write_all(&file_bytes()).unwrap();
            file.rewind().unwrap();
            let len = file_bytes().len() - 7;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
            responder.write_raw(head.into_bytes()).unwrap();
            responder.send_file(file, 7, len as u64).unwrap();
            responder.finish_raw(Vec::new(), true).unwrap();
        }
        _ => {
            responder
                .start(
                    "200 OK",
                    vec![("Content-Length".into(), target.len().to_string())],
                )
                .unwrap();
            responder.write(target.into_bytes()).unwrap();
            responder.finish().unwrap();
        }
    }
}

fn tempfile() -> std::fs::File {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "waitress-serve-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file
}

/// Descriptors of this process open on a deleted output spill file.
fn open_spill_files() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("waitress-out-"))
        .count()
}

impl Handler for Workers {
    fn handle(&self, request: Request, responder: Responder) {
        self.crew.push((request, responder));
    }
}

struct Quiet;
impl LogSink for Quiet {
    fn log(&self, _level: Level, _message: String) {}
}

struct Running {
    port: u16,
    stop: StopHandle,
    done: mpsc::Receiver<()>,
}

fn start(config: ServerConfig) -> Running {
    let crew = Crew::new();
    for _ in 0..4 {
        let crew = Arc::clone(&crew);
        thread::spawn(move || {
            while let Some((request, responder)) = crew.next() {
                answer(request, responder);
            }
        });
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = StopHandle::new();
    let (done_tx, done) = mpsc::channel();
    let handle = stop.clone();
    thread::spawn(move || {
        let handler = Arc::new(Workers {
            crew: Arc::clone(&crew),
        });
        serve(
            vec![Listener::Tcp(listener)],
            config,
            handler,
            Arc::new(Quiet),
            handle,
            &crew,
        )
        .unwrap();
        done_tx.send(()).unwrap();
    });
    Running { port, stop, done }
}

fn exchange(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn keep_alive_then_close_and_pipelining_in_order() {
    let server = start(ServerConfig::default());
    let mut wire = Vec::new();
    for i in 0..25 {
        wire.extend_from_slice(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
    }
    wire.extend_from_slice(b"GET /last HTTP/1.1\r\nConnection: close\r\n\r\n");
    let text = exchange(server.port, &wire);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 26);
    let mut at = 0;
    for i in 0..25 {
        let body = format!("\r\n\r\n/{i}");
        at += text[at..].find(&body).expect("in order");
    }
    assert!(text.ends_with("/last"));
    assert!(text.contains("Connection: close"));
    server.stop.stop_now();
}

#[test]
fn http10_closes_and_body_is_echoed_from_memory_and_temp_file() {
    let config = ServerConfig {
        inbuf_overflow: 16,
        ..ServerConfig::default()
    };
    let server = start(config);
    let text = exchange(
        server.port,
        b"POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert!(
        text.starts_with("HTTP/1.0 200 OK\r\n") && text.ends_with("\r\n\r\nhello"),
        "{text}"
    );
    let body = "x".repeat(100_000);
    let request = format!("POST /echo HTTP/1.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let text = exchange(server.port, request.as_bytes());
    assert!(text.ends_with(&body), "spilled body arrives intact");
    server.stop.stop_now();
}

#[test]
fn cve_2024_49768_error_then_nothing() {
    let server = start(ServerConfig::default());
    let text = exchange(server.port, b"GET /a HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nContent-Length: +1\r\n\r\nxGET /smuggled HTTP/1.1\r\n\r\n");
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 1, "{text}");
    assert!(text.contains("400 Bad Request"));
    assert!(!text.contains("smuggled"));
    server.stop.stop_now();
}

#[test]
fn expect_continue_is_sent_while_the_body_is_pending() {
    let server = start(ServerConfig::default());
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"POST /echo HTTP/1.1\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n").unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"ok").unwrap();
    let mut rest = String::new();
    stream.read_to_string(&mut rest).unwrap();
    assert!(rest.ends_with("\r\n\r\nok"));
    server.stop.stop_now();
}

#[test]
fn header_timeout_answers_408() {
    let config = ServerConfig {
        header_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let server = start(config);
    let started = Instant::now();
    let text = exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n");
    assert!(
        text.starts_with("HTTP/1.0 408 Request Timeout\r\n"),
        "{text}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    server.stop.stop_now();
}

#[test]
fn application_failure_is_500_and_streaming_is_chunked() {
    let server = start(ServerConfig::default());
    let text = exchange(server.port, b"GET /fail HTTP/1.1\r\n\r\n");
    assert!(
        text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
        "{text}"
    );
    let text = exchange(server.port, b"GET /stream HTTP/1.1\r\n\r\n");
    assert!(
        text.contains("Transfer-Encoding: chunked")
            && text.ends_with("4\r\npart\r\n4\r\npart\r\n4\r\npart\r\n0\r\n\r\n"),
        "{text}"
    );
    server.stop.stop_now();
}

#[test]
fn graceful_stop_finishes_in_flight_requests_with_connection_close() {
    let server = start(ServerConfig::default());
    let port = server.port;
    let client = thread::spawn(move || exchange(port, b"GET /sleep HTTP/1.1\r\n\r\n"));
    thread::sleep(Duration::from_millis(150));
    server.stop.stop_graceful();
    let text = client.join().unwrap();
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n")
            && text.contains("Connection: close")
            && text.ends_with("slept"),
        "{text}"
    );
    server
        .done
        .recv_timeout(Duration::from_secs(5))
        .expect("serve returned");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "listener closed"
    );
}

#[test]
fn outbuf_high_watermark_parks_the_worker_and_output_past_outbuf_overflow_spills() {
    let config = ServerConfig {
        outbuf_overflow: 128 * 1024,
        outbuf_high_watermark: 512 * 1024,
        ..ServerConfig::default()
    };
    let server = start(config);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    // The client reads nothing: the worker runs until the watermark (plus what the kernel's
    // socket buffers took), then waits.
    thread::sleep(Duration::from_millis(700));
    let parked_at = BIG_WRITES.load(Ordering::SeqCst);
    assert!(
        parked_at < BIG_PIECES,
        "the worker must wait for the client (wrote {parked_at})"
    );
    assert!(
        open_spill_files() > 0,
        "pending output past outbuf_overflow waits in a temp file"
    );
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &out[at..];
    assert_eq!(body.len(), BIG_PIECE * BIG_PIECES);
    for (n, piece) in body.chunks(BIG_PIECE).enumerate() {
        assert!(
            piece == big_piece(n).as_slice(),
            "piece {n} intact and in order"
        );
    }
    server.stop.stop_now();
}

#[test]
fn send_file_writes_the_file_stretch_and_keeps_the_connection() {
    let server = start(ServerConfig::default());
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /file HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    let expected = &file_bytes()[7..];
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        expected.len()
    );
    assert!(out.starts_with(head.as_bytes()));
    let body = &out[head.len()..head.len() + expected.len()];
    assert!(body == expected, "file bytes on the wire unchanged");
    let rest = String::from_utf8_lossy(&out[head.len() + expected.len()..]).into_owned();
    assert!(
        rest.starts_with("HTTP/1.1 200 OK") && rest.ends_with("/after"),
        "{rest}"
    );
    server.stop.stop_now();
}
