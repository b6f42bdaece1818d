//! Parses one input in a loop with our parser, or with bare httparse (argument `httparse`):
//! the fixed workload for `make bench-instructions` (callgrind counts instructions, which are
//! stable on a noisy machine where wall time is not).
//!
//! `parse_loop ROUNDS [ours|httparse] [browser|hello|chunked|worst64|worst128|worst256]`; the
//! input defaults to the browser head. The inputs are the criterion bench's
//! (`benches/parse.rs`); `worstN` is an N KiB head of 100 long fields handed to our parser
//! in 512-byte steps of a growing buffer, as a connection does (issue 6: linear in N).
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs,
    reason = "benchmark driver"
)]

use std::hint::black_box;

use waitress_http::decode::ChunkedDecoder;
use waitress_http::request::HeadParser;
use waitress_http::Limits;

#[path = "../benches/inputs/mod.rs"]
mod inputs;
use inputs::{big_head, chunked_body, BROWSER_HEAD, HELLO_HEAD};

fn decode_ours(body: &[u8]) -> usize {
    let mut dec = ChunkedDecoder::new(&Limits::default());
    let mut input = body;
    let mut total = 0;
    loop {
        let step = dec.decode(input).unwrap();
        total += step.data.len();
        input = &input[step.consumed..];
        if step.done {
            return total;
        }
    }
}

fn decode_httparse(body: &[u8]) -> usize {
    let mut input = body;
    let mut total = 0;
    loop {
        let httparse::Status::Complete((at, size)) = httparse::parse_chunk_size(input).unwrap()
        else {
            panic!("incomplete chunk size");
        };
        let size = size as usize;
        if size == 0 {
            return total;
        }
        total += input[at..at + size].len();
        input = &input[at + size + 2..];
    }
}

fn worst_case(kib: usize, rounds: usize) -> usize {
    let head = big_head(kib * 1024);
    let limits = Limits {
        max_request_header_size: 1 << 20,
        ..Limits::default()
    };
    let mut parser = HeadParser::new(limits);
    let mut total = 0;
    for _ in 0..rounds {
        parser.reset();
        let mut end = 0;
        total += loop {
            end = (end + 512).min(head.len());
            if let Some(parsed) = parser.parse(black_box(&head[..end])).unwrap() {
                break parsed.head_len();
            }
        };
    }
    total
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let what = std::env::args().nth(2).unwrap_or_else(|| "ours".to_owned());
    let input = std::env::args()
        .nth(3)
        .unwrap_or_else(|| "browser".to_owned());
    let ours = what != "httparse";
    if let Some(kib) = input.strip_prefix("worst") {
        println!("{}", worst_case(kib.parse().unwrap(), rounds));
        return;
    }
    let mut total = 0;
    if input == "chunked" {
        let body = chunked_body();
        for _ in 0..rounds {
            total += if ours {
                decode_ours(black_box(&body))
            } else {
                decode_httparse(black_box(&body))
            };
        }
        println!("{total}");
        return;
    }
    let head = if input == "hello" {
        HELLO_HEAD
    } else {
        BROWSER_HEAD
    };
    // One parser for the whole run, as a connection keeps one for all its requests.
    let mut parser = HeadParser::new(Limits::default());
    for _ in 0..rounds {
        if ours {
            total += parser.parse(black_box(head)).unwrap().unwrap().head_len();
        } else {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            total += req.parse(black_box(head)).unwrap().unwrap();
        }
    }
    println!("{total}");
}
