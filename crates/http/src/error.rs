//! The one error type of the HTTP engine (STYLE.md convention 2).
//!
//! Each variant is one reason a request is rejected. It knows its status code and carries a
//! static message: the detail line of waitress's error body where waitress has one (SPEC §3.11),
//! our own words for the rejections that are ours (SPEC Part B). Nothing in this crate compares
//! messages; callers match on variants.

use std::fmt;

/// Why a request was rejected. After any of these, the connection answers once and closes:
/// no byte after the bad request is parsed (RFC 9112 §9.6, waitress CVE-2024-49768).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtoError {
    // ---- request line (RFC 9112 §3) ----
    /// The request line does not match `method SP target SP HTTP-version` with single spaces.
    InvalidStartLine,
    /// The method is a token but not all upper-case (waitress rejects `get`).
    MalformedMethod,
    /// The request line has no version (HTTP/0.9). SPEC D11: 400.
    MissingVersion,
    /// `HTTP/x.y` with a major version other than 1 (RFC 9110 §15.6.6). 505.
    UnsupportedVersion,
    /// The request target has bytes no target may have (CTL, NUL, SP, DEL), or non-ASCII
    /// where waitress's URI split fails.
    BadUri,
    /// The request line is longer than `max_request_line`. 414.
    RequestLineTooLong,
    /// Whitespace other than at most one empty CRLF line before the request line (RFC 9112 §2.2).
    LeadingWhitespace,

    /// The peer closed the connection in the middle of a request (RFC 9112 §8). No response
    /// can usefully reach it; the server closes without one.
    IncompleteMessage,

    // ---- header section (RFC 9112 §5, RFC 9110 §5) ----
    /// A CR not followed by LF, or an LF not preceded by CR, in a header line (CVE-2019-16785).
    BareCrOrLfInHeader,
    /// A CR not followed by LF, or an LF not preceded by CR, in the request line.
    BareCrOrLf,
    /// A field line that is not `token ":" OWS value OWS` with valid value bytes.
    InvalidHeader,
    /// A line starting with SP or HTAB (obs-fold, or whitespace before the first field).
    ObsFold,
    /// Whitespace between the field name and the colon (RFC 9112 §5.1).
    SpaceBeforeColon,
    /// The head reached `max_request_header_size` bytes. 431.
    HeadTooLarge,
    /// More than `max_request_headers` field lines. 431.
    TooManyHeaders,
    /// A second `Host` field line (SPEC D11).
    DuplicateHost,
    /// A `Host` value that is not a valid `uri-host [ ":" port ]` (RFC 9112 §3.2).
    InvalidHost,
    /// An absolute-form target whose authority differs from the `Host` field (SPEC B1 row 19).
    HostMismatch,
    /// A second `Content-Type` field line (SPEC D11).
    DuplicateContentType,

    // ---- body framing (RFC 9112 §6) ----
    /// A Content-Length that is not `1*DIGIT`, or that overflows (CVE-2022-24761, CVE-2021-32715).
    InvalidContentLength,
    /// A second `Content-Length` field line (CVE-2019-16792); a list value is
    /// [`ProtoError::InvalidContentLength`].
    DuplicateContentLength,
    /// A transfer coding other than `chunked` (CVE-2019-16786). 501.
    TransferEncodingNotImplemented,
    /// `chunked` repeated or not the last coding, an empty coding, or a second
    /// `Transfer-Encoding` field line (CVE-2024-1135, CVE-2021-21299).
    InvalidTransferEncoding,
    /// `Transfer-Encoding` on an HTTP/1.0 request (SPEC B1 row 22).
    TransferEncodingHttp10,
    /// Both `Transfer-Encoding` and `Content-Length` (SPEC B1 row 1).
    ContentLengthWithTransferEncoding,
    /// The declared or decoded body reached `max_request_body_size`. 413.
    BodyTooLarge,

    // ---- chunked body (RFC 9112 §7.1) ----
    /// A chunk-size that is empty, not hex, has whitespace, or more than 16 digits.
    InvalidChunkSize,
    /// A chunk extension that does not match the RFC 9112 §7.1.1 grammar.
    InvalidChunkExtension,
    /// Chunk extensions over the message passed [`crate::limits::MAX_CHUNK_EXTENSIONS`].
    ChunkExtensionsTooLarge,
    /// Chunk data not followed by exactly CRLF (h11 CVE-2025-43859).
    ChunkNotTerminated,
    /// A trailer field line that breaks the field grammar.
    InvalidTrailer,
    /// The trailer section passed [`crate::limits::MAX_TRAILER_SIZE`] bytes or
    /// [`crate::limits::MAX_TRAILER_FIELDS`] fields. 431.
    TrailersTooLarge,
}

impl ProtoError {
    /// The status code of the error response (waitress's error classes, h11's
    /// `error_status_hint`).
    pub const fn status(self) -> u16 {
        match self {
            Self::RequestLineTooLong => 414,
            Self::HeadTooLarge | Self::TooManyHeaders | Self::TrailersTooLarge => 431,
            Self::BodyTooLarge => 413,
            Self::TransferEncodingNotImplemented => 501,
            Self::UnsupportedVersion => 505,
            _ => 400,
        }
    }

    /// The detail line of the error body (SPEC §3.11). For 413 and 431 the server appends the
    /// limit as waitress does (`exceeds max_body of N`), see [`ProtoError::has_limit_detail`].
    pub const fn message(self) -> &'static str {
        match self {
            Self::InvalidStartLine => "Start line is invalid",
            Self::MalformedMethod => "Malformed HTTP method",
            Self::MissingVersion => "Start line is invalid: no HTTP version",
            Self::UnsupportedVersion => "HTTP version is not supported",
            Self::BadUri => "Bad URI",
            Self::RequestLineTooLong => "exceeds max_request_line",
            Self::LeadingWhitespace => "Whitespace before the request line",
            Self::IncompleteMessage => "The connection closed before the request was complete",
            Self::BareCrOrLfInHeader => "Bare CR or LF found in header line",
            Self::BareCrOrLf => "Bare CR or LF found in HTTP message",
            Self::InvalidHeader => "Invalid header",
            Self::ObsFold => "Malformed header line: obsolete line folding",
            Self::SpaceBeforeColon => "Invalid header: whitespace before colon",
            Self::HeadTooLarge => "exceeds max_header",
            Self::TooManyHeaders => "exceeds max_request_headers",
            Self::DuplicateHost => "Duplicate header: Host",
            Self::InvalidHost => "Invalid Host header",
            Self::HostMismatch => "Host header does not match the request target",
            Self::DuplicateContentType => "Duplicate header: Content-Type",
            Self::InvalidContentLength => "Content-Length is invalid",
            Self::DuplicateContentLength => "Duplicate header: Content-Length",
            Self::TransferEncodingNotImplemented => "Transfer-Encoding requested is not supported.",
            Self::InvalidTransferEncoding => "Transfer-Encoding is invalid",
            Self::TransferEncodingHttp10 => "Transfer-Encoding is not allowed in HTTP/1.0",
            Self::ContentLengthWithTransferEncoding => {
                "Content-Length and Transfer-Encoding may not both be sent"
            }
            Self::BodyTooLarge => "exceeds max_body",
            Self::InvalidChunkSize => "Invalid chunk size",
            Self::InvalidChunkExtension => "Invalid chunk extension",
            Self::ChunkExtensionsTooLarge => "Chunk extensions are too large",
            Self::ChunkNotTerminated => "Chunk not properly terminated",
            Self::InvalidTrailer => "Invalid trailer",
            Self::TrailersTooLarge => "Trailers are too large",
        }
    }

    /// True when the error body's detail names a configured limit (`exceeds max_body of N`).
    pub const fn has_limit_detail(self) -> bool {
        matches!(
            self,
            Self::HeadTooLarge
                | Self::BodyTooLarge
                | Self::RequestLineTooLong
                | Self::TooManyHeaders
        )
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ProtoError {}

#[cfg(test)]
mod tests {
    use super::ProtoError;

    #[test]
    fn statuses_follow_waitress_error_classes() {
        assert_eq!(ProtoError::HeadTooLarge.status(), 431);
        assert_eq!(ProtoError::BodyTooLarge.status(), 413);
        assert_eq!(ProtoError::RequestLineTooLong.status(), 414);
        assert_eq!(ProtoError::TransferEncodingNotImplemented.status(), 501);
        assert_eq!(ProtoError::UnsupportedVersion.status(), 505);
        assert_eq!(ProtoError::InvalidChunkSize.status(), 400);
        assert_eq!(ProtoError::TrailersTooLarge.status(), 431);
    }
}
