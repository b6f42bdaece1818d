//! Parses a browser-like head in a loop (ours, or bare httparse with argument `httparse`): the fixed workload for
//! `make bench-instructions` (callgrind counts instructions, which are stable on a noisy
//! machine where wall time is not).
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark driver"
)]

use std::hint::black_box;

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

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let what = std::env::args().nth(2).unwrap_or_else(|| "ours".to_owned());
    let mut total = 0;
    // One parser for the whole run, as a connection keeps one for all its requests.
    let mut parser = HeadParser::new(Limits::default());
    for _ in 0..rounds {
        if what == "httparse" {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            total += req.parse(black_box(BROWSER_HEAD)).unwrap().unwrap();
        } else {
            total += parser
                .parse(black_box(BROWSER_HEAD))
                .unwrap()
                .unwrap()
                .head_len();
        }
    }
    println!("{total}");
}
