#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test harness, not a request path"
)]

//! Replays every minimised fuzz input in `fuzz/regressions/<target>/` on stable, so a fixed
//! crash stays fixed (STYLE.md convention 9). Each input goes through the same entry point
//! as its fuzz target; the invariant is h11's: events or a `ProtoError`, never a panic.

use std::fs;
use std::path::PathBuf;

use waitress_http::conn::{Conn, Event};
use waitress_http::decode::ChunkedDecoder;
use waitress_http::request::HeadParser;
use waitress_http::Limits;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut found = Vec::new();
    for entry in fs::read_dir(&dir).expect("regressions folder exists") {
        let path = entry.expect("readable entry").path();
        if path.file_name().is_some_and(|name| name == "README") {
            continue;
        }
        let bytes = fs::read(&path).expect("readable input");
        found.push((path, bytes));
    }
    found
}

fn corpus_and_regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = inputs(target);
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    if let Ok(entries) = fs::read_dir(corpus) {
        for entry in entries.flatten() {
            all.push((entry.path(), fs::read(entry.path()).expect("readable seed")));
        }
    }
    all
}

#[test]
fn replay_request_head() {
    for (path, data) in corpus_and_regressions("request_head") {
        let mut parser = HeadParser::new(Limits::default());
        if let Ok(Some(head)) = parser.parse(&data) {
            assert!(head.head_len() <= data.len(), "{}", path.display());
        }
    }
}

#[test]
fn replay_chunked_decode() {
    for (path, data) in corpus_and_regressions("chunked_decode") {
        let mut dec = ChunkedDecoder::new(&Limits::default());
        let mut input = &data[..];
        while let Ok(step) = dec.decode(input) {
            assert!(step.consumed <= input.len(), "{}", path.display());
            input = &input[step.consumed..];
            if step.done || (step.consumed == 0 && step.data.is_empty()) {
                break;
            }
        }
    }
}

#[test]
fn replay_conn_stream() {
    const DATE: &[u8] = b"Thu, 01 Jan 1970 00:00:00 GMT";
    for (_path, data) in corpus_and_regressions("conn_stream") {
        let Some((&step, stream)) = data.split_first() else {
            continue;
        };
        let mut conn = Conn::new(Limits::default());
        let mut out = Vec::new();
        'pieces: for piece in stream.chunks(usize::from(step).max(1)) {
            conn.receive_data(piece);
            loop {
                match conn.next_event() {
                    Err(err) => {
                        conn.send_error(&mut out, err, Some("waitress"), DATE);
                        break 'pieces;
                    }
                    Ok(Event::Paused) => {
                        conn.start_response(
                            &mut out,
                            "200 OK",
                            &[("Content-Length", "2")],
                            None,
                            DATE,
                            false,
                        )
                        .expect("valid head");
                        conn.send_data(&mut out, b"ok");
                        if !conn.end_response(&mut out).keep_alive {
                            break 'pieces;
                        }
                    }
                    Ok(Event::NeedData | Event::ConnectionClosed) => break,
                    Ok(_) => {}
                }
            }
        }
    }
}
