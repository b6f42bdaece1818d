//! Every limit the HTTP engine enforces, in one place (STYLE.md convention 3).
//!
//! Rules:
//! - Each default is a named constant whose doc comment gives its unit, why that value, and
//!   the status a request gets when it goes past it.
//! - [`Limits`] is built once from the `Adjustments` option of the same name and passed by
//!   value into each connection. There is no global mutable configuration.
//! - Limits are enforced while bytes arrive, never after buffering past them.

/// Bytes of request line plus header fields, counted as received up to and including the
/// terminating CRLF CRLF. waitress's `max_request_header_size` default (256 KiB). A head whose
/// byte count reaches this value is answered with 431 (waitress compares with `>=`).
pub const MAX_REQUEST_HEADER_SIZE: usize = 262_144;

/// Bytes of request body, counted as decoded for chunked bodies and as declared for
/// Content-Length. waitress's `max_request_body_size` default (1 GiB). A declared length at or
/// above it, or a chunked body reaching it, is answered with 413.
pub const MAX_REQUEST_BODY_SIZE: u64 = 1_073_741_824;

/// Bytes of the request line including its CRLF (SPEC D7 `max_request_line`). RFC 9112 §3
/// recommends supporting at least 8,000 octets; 64 KiB leaves room for long query strings.
/// Past it: 414.
pub const MAX_REQUEST_LINE: usize = 65_536;

/// Number of header field lines (SPEC D7 `max_request_headers`). gunicorn and hyper cap at
/// 100; 200 leaves a compatibility margin. Past it: 431.
pub const MAX_REQUEST_HEADERS: usize = 200;

/// Bytes of chunk extensions over one message (SPEC D7; hyper's `CHUNKED_EXTENSIONS_LIMIT`).
/// Extensions carry nothing we use, so a client sending more is hostile. Past it: 400.
pub const MAX_CHUNK_EXTENSIONS: usize = 16_384;

/// Bytes of trailer section after the last chunk, including its final CRLF (SPEC D7). Trailers
/// are parsed and dropped, so they are only a cost to us. Past it: 431.
pub const MAX_TRAILER_SIZE: usize = 16_384;

/// Number of trailer field lines (hyper: 100). Past it: 431.
pub const MAX_TRAILER_FIELDS: usize = 100;

/// Hex digits in one chunk-size (SPEC D11). 16 hex digits fill a `u64`; more is an overflow
/// attempt (hyper CVE-2021-32714). Past it: 400.
pub const MAX_CHUNK_SIZE_DIGITS: usize = 16;

/// The limits one connection enforces. Field names are the `Adjustments` option names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`MAX_REQUEST_HEADER_SIZE`].
    pub max_request_header_size: usize,
    /// See [`MAX_REQUEST_BODY_SIZE`].
    pub max_request_body_size: u64,
    /// See [`MAX_REQUEST_LINE`].
    pub max_request_line: usize,
    /// See [`MAX_REQUEST_HEADERS`].
    pub max_request_headers: usize,
    /// See [`MAX_CHUNK_EXTENSIONS`]. A constant, not an option; a field so tests can lower it.
    pub max_chunk_extensions: usize,
    /// See [`MAX_TRAILER_SIZE`]. A constant, not an option; a field so tests can lower it.
    pub max_trailer_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_header_size: MAX_REQUEST_HEADER_SIZE,
            max_request_body_size: MAX_REQUEST_BODY_SIZE,
            max_request_line: MAX_REQUEST_LINE,
            max_request_headers: MAX_REQUEST_HEADERS,
            max_chunk_extensions: MAX_CHUNK_EXTENSIONS,
            max_trailer_size: MAX_TRAILER_SIZE,
        }
    }
}
