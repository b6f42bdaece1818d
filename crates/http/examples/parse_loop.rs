//! Parses one input in a loop with our parser, or with bare httparse (argument `httparse`):
//! the fixed workload for `make bench-instructions` (callgrind counts instructions, which are
//! stable on a noisy machine where wall time is not).
//!
//! `parse_loop ROUNDS [ours|httparse] [browser|hello|chunked]`; the input defaults to the
//! browser head. The inputs are the criterion bench's (`benches/parse.rs`).
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

const BROWSER_HEAD: &[u8] = b"GET /static/app/main.css?v=1234 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n\
Accept: text/css,*/*;q=0.1\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://www.example.com/\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n\
Connection: keep-alive\r\n\
Cache-Control: max-age=0\r\n\r\n";

const HELLO_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n";

/// 64 chunks of 1024..1087 bytes, then the last chunk (the criterion bench's body).
fn chunked_body() -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..64 {
        let data = vec![b'x'; 1024 + i];
        body.extend_from_slice(format!("{:X}\r\n", data.len()).as_bytes());
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

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
