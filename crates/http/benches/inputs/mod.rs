//! The inputs and workloads shared by the criterion bench (`benches/parse.rs`) and the
//! callgrind driver (`examples/parse_loop.rs`), so both measure the same work.

use waitress_http::decode::ChunkedDecoder;
use waitress_http::request::HeadParser;
use waitress_http::Limits;

/// A browser's request head: 540 bytes, 9 fields.
pub const BROWSER_HEAD: &[u8] = b"GET /static/app/main.css?v=1234 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n\
Accept: text/css,*/*;q=0.1\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://www.example.com/\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n\
Connection: keep-alive\r\n\
Cache-Control: max-age=0\r\n\r\n";

/// The smallest realistic head.
pub const HELLO_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n";

/// 64 chunks of 1024..1087 bytes, then the last chunk.
pub fn chunked_body() -> Vec<u8> {
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

/// A head of `size` bytes within the field-count limit: 100 long field lines.
pub fn big_head(size: usize) -> Vec<u8> {
    let mut head = b"GET /worst HTTP/1.1\r\nHost: example.com\r\n".to_vec();
    let fields = 100;
    let per_field = (size - head.len() - 2) / fields;
    for n in 0..fields {
        let name = format!("X-Fill-{n:03}: ");
        let value_len = per_field - name.len() - 2;
        head.extend_from_slice(name.as_bytes());
        head.extend(std::iter::repeat_n(b'v', value_len));
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Decode a whole chunked body with our decoder; the decoded length.
pub fn decode_ours(body: &[u8]) -> usize {
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

/// The same with bare httparse's chunk-size parser.
pub fn decode_httparse(body: &[u8]) -> usize {
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

/// Hand `head` to `parser` in `step`-byte increments of a growing buffer, as a connection
/// does; the parsed head's length.
pub fn parse_in_pieces(parser: &mut HeadParser, head: &[u8], step: usize) -> usize {
    let mut end = 0;
    loop {
        end = (end + step).min(head.len());
        if let Some(parsed) = parser.parse(std::hint::black_box(&head[..end])).unwrap() {
            return parsed.head_len();
        }
    }
}
