//! Keep-alive, pipelining and `Expect: 100-continue` as the head parser reports them
//! (SPEC §3.6, §3.7; STYLE.md convention 7c). The connection layer turns these predicates
//! into responses; here we check the facts it reads.

use waitress_http::request::{BodyKind, HeadParser, RequestHead, Version};
use waitress_http::Limits;

fn head(stream: &[u8]) -> RequestHead {
    let mut parser = HeadParser::new(Limits::default());
    match parser.parse(stream) {
        Ok(Some(head)) => head,
        other => unreachable!("{:?}: {other:?}", String::from_utf8_lossy(stream)),
    }
}

#[test]
fn http11_is_persistent_unless_connection_close() {
    let plain = head(b"GET / HTTP/1.1\r\n\r\n");
    assert!(!plain.wants_close() && !plain.wants_keep_alive());
    assert!(head(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").wants_close());
    // Whole value only (waitress): a list does not count.
    assert!(!head(b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n").wants_close());
    assert!(!head(b"GET / HTTP/1.1\r\nConnection: close, TE\r\n\r\n").wants_close());
}

#[test]
fn http10_closes_unless_keep_alive() {
    let plain = head(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(plain.version(), Version::Http10);
    assert!(!plain.wants_keep_alive() && !plain.wants_close());
    assert!(head(b"GET / HTTP/1.0\r\nConnection: KEEP-ALIVE\r\n\r\n").wants_keep_alive());
    assert!(!head(b"GET / HTTP/1.0\r\nConnection: keep-alive, x\r\n\r\n").wants_keep_alive());
}

#[test]
fn higher_minor_versions_are_served_as_http11() {
    let future = head(b"GET / HTTP/1.7\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(future.version(), Version::Http11);
    assert!(future.wants_close() && future.wants_continue());
}

#[test]
fn expect_continue_only_on_http11_exact_value() {
    let asks = head(b"POST / HTTP/1.1\r\nExpect: 100-CONTINUE\r\nContent-Length: 3\r\n\r\n");
    assert!(asks.wants_continue());
    assert_eq!(asks.body(), BodyKind::Length(3));
    assert!(!head(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").wants_continue());
    assert!(!head(b"POST / HTTP/1.1\r\nExpect: 100-continue-ish\r\n\r\n").wants_continue());
}

#[test]
fn twenty_five_pipelined_keep_alive_requests_parse_in_order() {
    let mut stream = Vec::new();
    for index in 0..25 {
        stream.extend_from_slice(
            format!("GET /{index} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
        );
    }
    let mut parser = HeadParser::new(Limits::default());
    let mut rest: &[u8] = &stream;
    for index in 0..25 {
        // Fed in two reads each, the second completing the head: the parser never reads past it.
        let half = rest.len().min(10);
        assert!(matches!(
            parser.parse(rest.get(..half).unwrap_or_default()),
            Ok(None)
        ));
        let Ok(Some(head)) = parser.parse(rest) else {
            unreachable!("request {index} is complete")
        };
        assert_eq!(head.target(), format!("/{index}").as_bytes());
        assert!(head.wants_keep_alive());
        rest = rest.get(head.head_len()..).unwrap_or_default();
        // The connection resets the parser between requests; a reset after a head is harmless.
        parser.reset();
    }
    assert!(rest.is_empty());
}
