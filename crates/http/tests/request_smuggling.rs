//! Request-smuggling scenarios against the head parser (SPEC Part B rows 1, 2, 3, 8, 13, 21;
//! STYLE.md convention 7c). Each scenario is a byte stream a front-end might forward as one
//! request while a lenient back-end sees two: the parser must refuse it, or frame it exactly
//! so the next request starts where a strict front-end thinks it does.

use waitress_http::request::{BodyKind, HeadParser, RequestHead};
use waitress_http::{Limits, ProtoError};

/// Parse the head at the start of `stream`, fed in `piece`-byte reads.
fn parse_in_reads(stream: &[u8], piece: usize) -> Result<Option<RequestHead>, ProtoError> {
    let mut parser = HeadParser::new(Limits::default());
    let mut fed = 0;
    loop {
        fed = stream.len().min(fed + piece);
        let prefix = stream.get(..fed).unwrap_or_default();
        match parser.parse(prefix) {
            Ok(None) if fed < stream.len() => {}
            verdict => return verdict,
        }
    }
}

/// The verdict on `stream`, checked to be the same for reads of 1, 2, 3, 7 and all bytes.
fn verdict(stream: &[u8]) -> Result<Option<RequestHead>, ProtoError> {
    let whole = parse_in_reads(stream, stream.len().max(1));
    for piece in [1, 2, 3, 7] {
        assert_eq!(parse_in_reads(stream, piece), whole, "reads of {piece}");
    }
    whole
}

#[test]
fn cl_te_is_refused_whatever_the_order() {
    let smuggle =
        b"POST / HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG";
    assert_eq!(
        verdict(smuggle),
        Err(ProtoError::ContentLengthWithTransferEncoding)
    );
    let smuggle =
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST";
    assert_eq!(
        verdict(smuggle),
        Err(ProtoError::ContentLengthWithTransferEncoding)
    );
}

#[test]
fn te_te_obfuscations_never_fall_back_to_content_length() {
    let vectors: [(&[u8], ProtoError); 8] = [
        (
            b"Transfer-Encoding: xchunked",
            ProtoError::TransferEncodingNotImplemented,
        ),
        (
            b"Transfer-Encoding: chunked, identity",
            ProtoError::InvalidTransferEncoding,
        ),
        (
            b"Transfer-Encoding:\x85chunked",
            ProtoError::TransferEncodingNotImplemented,
        ),
        (b"Transfer-Encoding : chunked", ProtoError::SpaceBeforeColon),
        (b"Transfer-Encoding:\r\n chunked", ProtoError::ObsFold),
        (
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x",
            ProtoError::InvalidTransferEncoding,
        ),
        (b"Transfer-Encoding: chunked\x0b", ProtoError::InvalidHeader),
        (
            b"X: y\nTransfer-Encoding: chunked",
            ProtoError::BareCrOrLfInHeader,
        ),
    ];
    for (field, expected) in vectors {
        let mut stream = b"POST / HTTP/1.1\r\n".to_vec();
        stream.extend_from_slice(field);
        stream.extend_from_slice(b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        assert_eq!(
            verdict(&stream),
            Err(expected),
            "{:?}",
            String::from_utf8_lossy(field)
        );
    }
}

#[test]
fn duplicate_content_length_is_refused_even_when_equal() {
    for second in [
        &b"Content-Length: 0"[..],
        b"Content-Length: 5",
        b"content-length:5",
    ] {
        let mut stream = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n".to_vec();
        stream.extend_from_slice(second);
        stream.extend_from_slice(b"\r\n\r\nGET /admin HTTP/1.1\r\n\r\n");
        assert_eq!(
            verdict(&stream).err(),
            Some(ProtoError::DuplicateContentLength)
        );
    }
}

#[test]
fn an_underscore_twin_is_dropped_not_used_for_framing() {
    let stream = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent_Length: 0\r\n\r\nhello";
    let Ok(Some(head)) = verdict(stream) else {
        unreachable!("the head is valid")
    };
    assert_eq!(head.body(), BodyKind::Length(5));
    assert_eq!(head.headers().count(), 1);
}

#[test]
fn bare_lf_cannot_hide_a_field() {
    let stream = b"POST / HTTP/1.1\r\nX: a\nContent-Length: 5\r\nContent-Length: 0\r\n\r\nhello";
    assert_eq!(verdict(stream), Err(ProtoError::BareCrOrLfInHeader));
}

#[test]
fn obs_fold_cannot_continue_a_framing_field() {
    let stream = b"POST / HTTP/1.1\r\nContent-Length: 0\r\n 5\r\n\r\nhello";
    assert_eq!(verdict(stream), Err(ProtoError::ObsFold));
}

#[test]
fn nothing_after_a_refused_head_is_ever_parsed() {
    let stream = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n";
    let mut parser = HeadParser::new(Limits::default());
    assert_eq!(parser.parse(stream).err(), Some(ProtoError::DuplicateHost));
    // The parser keeps refusing until the connection resets it (it closes instead), however
    // much more arrives.
    let mut longer = stream.to_vec();
    longer.extend_from_slice(b"GET /more HTTP/1.1\r\n\r\n");
    assert_eq!(parser.parse(&longer).err(), Some(ProtoError::DuplicateHost));
}

#[test]
fn body_framing_splits_a_pipelined_stream_exactly() {
    // A GET with Content-Length has a body (RUSTSEC-2020-0008); a GET without framing
    // headers has none, and the next bytes are the next request.
    let stream = b"GET /a HTTP/1.1\r\nContent-Length: 20\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n";
    let mut parser = HeadParser::new(Limits::default());
    let mut rest: &[u8] = stream;
    let mut seen = Vec::new();
    while !rest.is_empty() {
        let Ok(Some(head)) = parser.parse(rest) else {
            unreachable!("every request in the stream is complete")
        };
        let body = match head.body() {
            BodyKind::Length(length) => usize::try_from(length).unwrap_or(usize::MAX),
            BodyKind::Empty => 0,
            BodyKind::Chunked => unreachable!("no chunked request here"),
        };
        seen.push((head.target().to_vec(), body));
        rest = rest.get(head.head_len() + body..).unwrap_or_default();
    }
    // `/b` was swallowed as the body of `/a`: no front-end sees it as a request either.
    assert_eq!(seen, vec![(b"/a".to_vec(), 20), (b"/c".to_vec(), 0)]);
}

#[test]
fn absolute_form_host_mismatch_is_refused() {
    let stream = b"GET http://internal.example/admin HTTP/1.1\r\nHost: public.example\r\n\r\n";
    assert_eq!(verdict(stream), Err(ProtoError::HostMismatch));
}
