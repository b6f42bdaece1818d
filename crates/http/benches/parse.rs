#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    missing_docs,
    reason = "benchmark harness, not a request path"
)]

//! Head parsing and chunked decoding against bare httparse on the same input (issue 2:
//! our strict parse should cost at most 1.3x bare httparse). Run with `make bench-parse`;
//! docs/benchmarks.md records the ratio.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use waitress_http::request::HeadParser;
use waitress_http::Limits;

mod inputs;
use inputs::{
    big_head, chunked_body, decode_httparse, decode_ours, parse_in_pieces, BROWSER_HEAD, HELLO_HEAD,
};

fn heads(c: &mut Criterion) {
    for (name, input) in [("hello", HELLO_HEAD), ("browser", BROWSER_HEAD)] {
        let mut group = c.benchmark_group(format!("head/{name}"));
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function("waitress_http", |b| {
            let mut parser = HeadParser::new(Limits::default());
            b.iter(|| {
                let head = parser.parse(black_box(input)).unwrap().unwrap();
                black_box(head.head_len())
            });
        });
        group.bench_function("httparse", |b| {
            b.iter(|| {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut req = httparse::Request::new(&mut headers);
                let status = req.parse(black_box(input)).unwrap();
                black_box(status.unwrap())
            });
        });
        group.finish();
    }
}

fn chunked(c: &mut Criterion) {
    let body = chunked_body();
    let mut group = c.benchmark_group("chunked/64x1KiB");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("waitress_http", |b| {
        b.iter(|| decode_ours(black_box(&body)));
    });
    group.bench_function("httparse", |b| {
        b.iter(|| decode_httparse(black_box(&body)));
    });
    group.finish();
}

/// Issue 6 item 9: parse time of a worst-case head up to 256 KiB grows linearly with its
/// size when it arrives in 512-byte pieces (the parser is handed the growing buffer each
/// time, as a connection does, and must not rescan it).
fn worst_case_heads(c: &mut Criterion) {
    let limits = Limits {
        max_request_header_size: 1 << 20,
        ..Limits::default()
    };
    let mut group = c.benchmark_group("head/worst-case-in-512-byte-pieces");
    for kib in [64, 128, 256] {
        let head = big_head(kib * 1024);
        group.throughput(Throughput::Bytes(head.len() as u64));
        group.bench_function(format!("{kib}KiB"), |b| {
            let mut parser = HeadParser::new(limits);
            b.iter(|| {
                parser.reset();
                parse_in_pieces(&mut parser, &head, 512)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, heads, chunked, worst_case_heads);
criterion_main!(benches);
