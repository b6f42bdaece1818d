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

use waitress_http::request::HeadParser;
use waitress_http::Limits;

#[path = "../benches/inputs/mod.rs"]
mod inputs;
use inputs::{
    big_head, chunked_body, decode_httparse, decode_ours, parse_in_pieces, BROWSER_HEAD, HELLO_HEAD,
};

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
        total += parse_in_pieces(&mut parser, &head, 512);
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
