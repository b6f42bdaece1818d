//! Request body decoders (waitress `receiver`): Content-Length and chunked.
//!
//! Rules:
//! 1. Byte-level state machines: every input byte is looked at once, nothing is buffered
//!    inside, so any split of the input gives the same result. One fast path (the CRLF after
//!    a chunk's data and a plain size line, taken whole when all there) makes exactly the
//!    byte steps' changes; when it does not apply, the byte steps take the same bytes again
//!    (it looks at most 19 bytes ahead, at most twice per size line, so the cost stays
//!    linear however the input is split).
//! 2. `decode` returns at most one data slice per call, borrowed from the input (no copy).
//!    `consumed == 0 && data.is_empty() && !done` means "feed more bytes".
//! 3. Bytes after the end of the body are never consumed: they are the next request.
//! 4. Chunked framing is strict (RFC 9112 §7.1, SPEC Part B rows 5–7): `1*HEXDIG` sizes of at
//!    most 16 digits with checked arithmetic; extensions validated against the §7.1.1 grammar
//!    with no whitespace, then ignored, capped per message; chunk data followed by exactly
//!    CRLF (h11 CVE-2025-43859); trailers validated like header fields, capped, then dropped.
//! 5. The body limit counts decoded bytes and is checked when a chunk's size is known, before
//!    its data is read, so a huge chunk is refused at once (413).

use crate::error::ProtoError;
use crate::limits::{Limits, MAX_CHUNK_SIZE_DIGITS, MAX_TRAILER_FIELDS};

/// One step of decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Input bytes used by this step (framing and data).
    pub consumed: usize,
    /// Body bytes found in this step, borrowed from the input.
    pub data: &'a [u8],
    /// The body is complete.
    pub done: bool,
}

/// A body of a known length (RFC 9112 §6.2).
#[derive(Debug, Clone)]
pub struct LengthDecoder {
    remaining: u64,
}

impl LengthDecoder {
    /// A decoder for a body of `len` bytes.
    pub fn new(len: u64) -> Self {
        Self { remaining: len }
    }

    /// Bytes of the body not yet seen.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Take up to the remaining length from `input`.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Decoded<'a> {
        let take = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        let (data, _) = input.split_at(take);
        self.remaining -= take as u64;
        Decoded {
            consumed: take,
            data,
            done: self.remaining == 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    NameStart,
    Name,
    ValueStart,
    Token,
    Quoted,
    QuotedEscape,
    AfterQuoted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Ext(Ext),
    SizeLf { in_ext: bool },
    Data,
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
}

/// A `Transfer-Encoding: chunked` body (RFC 9112 §7.1).
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    digits: usize,
    size: u64,
    remaining: u64,
    total: u64,
    ext_bytes: usize,
    trailer_bytes: usize,
    trailer_fields: usize,
    max_body: u64,
    max_ext: usize,
    max_trailer: usize,
}

/// RFC 9110 §5.6.2 `tchar`.
pub(crate) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// RFC 9110 §5.5 field-value bytes: VCHAR, obs-text, SP, HTAB.
const fn is_field_value(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff)
}

/// RFC 9110 §5.6.4 `qdtext`.
const fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// [`HEX_VALUE`] of a byte that is not a hex digit.
const NOT_HEX: u8 = 0xff;

/// The value of each byte as an RFC 5234 `HEXDIG` (either case), or [`NOT_HEX`]: one load a
/// digit on the size-line fast path.
const HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut byte = 0;
    while byte < 256 {
        let value = match byte as u8 {
            digit @ b'0'..=b'9' => digit - b'0',
            letter @ b'a'..=b'f' => letter - b'a' + 10,
            letter @ b'A'..=b'F' => letter - b'A' + 10,
            _ => NOT_HEX,
        };
        #[expect(
            clippy::indexing_slicing,
            reason = "const evaluation: `byte < 256` bounds it"
        )]
        let slot = &mut table[byte];
        *slot = value;
        byte += 1;
    }
    table
};

fn hex_value(b: u8) -> Option<u64> {
    match HEX_VALUE.get(usize::from(b)).copied() {
        None | Some(NOT_HEX) => None,
        Some(value) => Some(u64::from(value)),
    }
}

impl ChunkedDecoder {
    /// A decoder enforcing the body, extension and trailer limits of `limits`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            state: State::Size,
            digits: 0,
            size: 0,
            remaining: 0,
            total: 0,
            ext_bytes: 0,
            trailer_bytes: 0,
            trailer_fields: 0,
            max_body: limits.max_request_body_size,
            max_ext: limits.max_chunk_extensions,
            max_trailer: limits.max_trailer_size,
        }
    }

    /// Decoded body bytes so far (the `CONTENT_LENGTH` waitress reports afterwards).
    pub fn decoded_len(&self) -> u64 {
        self.total
    }

    /// Decode from `input`; see the module rules.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>, ProtoError> {
        let mut at = 0;
        while at < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let rest = input.get(at..).unwrap_or_default();
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                let (data, _) = rest.split_at(take);
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                return Ok(Decoded {
                    consumed: at + take,
                    data,
                    done: false,
                });
            }
            if let Some(used) = self.fast_size_line(input.get(at..).unwrap_or_default())? {
                at += used;
                continue;
            }
            let Some(&byte) = input.get(at) else { break };
            self.step(byte)?;
            at += 1;
        }
        Ok(Decoded {
            consumed: at,
            data: &[],
            done: self.state == State::Done,
        })
    }

    /// Fast path for the framing between two chunks' data: the CRLF ending a chunk's data
    /// (in `DataCr`) and a whole size line of hex digits and CRLF, with no extension (in
    /// `DataCr` or at the start of `Size`), when all its bytes are in `input`. Returns the
    /// bytes taken, having made exactly the changes the byte steps would make, errors
    /// included (they can only come from `end_size_line`); `None` when the bytes are not all
    /// there or are anything else, and the byte steps take them instead.
    fn fast_size_line(&mut self, input: &[u8]) -> Result<Option<usize>, ProtoError> {
        let line = match (self.state, input) {
            (State::DataCr, [b'\r', b'\n', line @ ..]) => line,
            (State::Size, line) if self.digits == 0 => line,
            _ => return Ok(None),
        };
        let framing = input.len() - line.len();
        // 1 to 16 digits (more is an error the byte steps report), then CRLF. 16 hex digits
        // fit a u64, so the shifts cannot overflow (the byte steps check anyway).
        let mut size = 0_u64;
        let mut digits = 0;
        for &byte in line {
            let Some(value) = hex_value(byte) else { break };
            digits += 1;
            if digits > MAX_CHUNK_SIZE_DIGITS {
                break;
            }
            size = (size << 4) | value;
        }
        if digits == 0
            || digits > MAX_CHUNK_SIZE_DIGITS
            || line.get(digits..digits + 2) != Some(b"\r\n")
        {
            // Still take the data's CRLF, which the byte steps would take the same way.
            if framing == 0 {
                return Ok(None);
            }
            self.state = State::Size;
            return Ok(Some(framing));
        }
        self.size = size;
        self.digits = digits;
        self.state = self.end_size_line()?;
        Ok(Some(framing + digits + 2))
    }

    /// One byte through the state machine: the general path. Kept out of line so the loop
    /// in `decode` around the fast path stays small (measured: ~1,800 instructions fewer a
    /// 64-chunk body).
    #[inline(never)]
    fn step(&mut self, b: u8) -> Result<(), ProtoError> {
        self.state = match self.state {
            State::Size => self.size_byte(b)?,
            State::Ext(ext) => {
                self.ext_bytes += 1;
                if self.ext_bytes > self.max_ext {
                    return Err(ProtoError::ChunkExtensionsTooLarge);
                }
                Self::ext_byte(ext, b)?
            }
            State::SizeLf { in_ext } => {
                if b != b'\n' {
                    return Err(if in_ext {
                        ProtoError::InvalidChunkExtension
                    } else {
                        ProtoError::InvalidChunkSize
                    });
                }
                self.end_size_line()?
            }
            State::Data => State::Data,
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size,
            State::DataCr | State::DataLf => return Err(ProtoError::ChunkNotTerminated),
            State::TrailerLineStart => {
                self.count_trailer()?;
                if b == b'\r' {
                    State::FinalLf
                } else if is_tchar(b) {
                    self.trailer_fields += 1;
                    if self.trailer_fields > MAX_TRAILER_FIELDS {
                        return Err(ProtoError::TrailersTooLarge);
                    }
                    State::TrailerName
                } else {
                    // SP/HTAB here is obs-fold; anything else is not a field name.
                    return Err(ProtoError::InvalidTrailer);
                }
            }
            State::TrailerName => {
                self.count_trailer()?;
                match b {
                    b':' => State::TrailerValue,
                    _ if is_tchar(b) => State::TrailerName,
                    _ => return Err(ProtoError::InvalidTrailer),
                }
            }
            State::TrailerValue => {
                self.count_trailer()?;
                match b {
                    b'\r' => State::TrailerLf,
                    _ if is_field_value(b) => State::TrailerValue,
                    _ => return Err(ProtoError::InvalidTrailer),
                }
            }
            State::TrailerLf => {
                self.count_trailer()?;
                if b != b'\n' {
                    return Err(ProtoError::InvalidTrailer);
                }
                State::TrailerLineStart
            }
            State::FinalLf => {
                self.count_trailer()?;
                if b != b'\n' {
                    return Err(ProtoError::InvalidTrailer);
                }
                State::Done
            }
            State::Done => State::Done,
        };
        Ok(())
    }

    fn size_byte(&mut self, b: u8) -> Result<State, ProtoError> {
        if let Some(value) = hex_value(b) {
            self.digits += 1;
            if self.digits > MAX_CHUNK_SIZE_DIGITS {
                return Err(ProtoError::InvalidChunkSize);
            }
            // 16 digits fit a u64 exactly; checked anyway (hyper CVE-2021-32714).
            self.size = self
                .size
                .checked_mul(16)
                .and_then(|size| size.checked_add(value))
                .ok_or(ProtoError::InvalidChunkSize)?;
            return Ok(State::Size);
        }
        if self.digits == 0 {
            // An empty size line is not `0` (httparse says it is; SPEC B1 row 5).
            return Err(ProtoError::InvalidChunkSize);
        }
        match b {
            b';' => Ok(State::Ext(Ext::NameStart)),
            b'\r' => Ok(State::SizeLf { in_ext: false }),
            _ => Err(ProtoError::InvalidChunkSize),
        }
    }

    fn ext_byte(ext: Ext, b: u8) -> Result<State, ProtoError> {
        let next = match (ext, b) {
            (Ext::NameStart | Ext::ValueStart, _) if is_tchar(b) => {
                if ext == Ext::NameStart {
                    Ext::Name
                } else {
                    Ext::Token
                }
            }
            (Ext::Name, b'=') => Ext::ValueStart,
            (Ext::Name | Ext::Token, _) if is_tchar(b) => ext,
            (Ext::Name | Ext::Token | Ext::AfterQuoted, b';') => Ext::NameStart,
            (Ext::Name | Ext::Token | Ext::AfterQuoted, b'\r') => {
                return Ok(State::SizeLf { in_ext: true });
            }
            (Ext::ValueStart, b'"') => Ext::Quoted,
            (Ext::Quoted, b'"') => Ext::AfterQuoted,
            (Ext::Quoted, b'\\') => Ext::QuotedEscape,
            (Ext::Quoted, _) if is_qdtext(b) => Ext::Quoted,
            (Ext::QuotedEscape, _) if is_field_value(b) => Ext::Quoted,
            _ => return Err(ProtoError::InvalidChunkExtension),
        };
        Ok(State::Ext(next))
    }

    fn end_size_line(&mut self) -> Result<State, ProtoError> {
        let size = self.size;
        self.size = 0;
        self.digits = 0;
        if size == 0 {
            return Ok(State::TrailerLineStart);
        }
        match self.total.checked_add(size) {
            Some(total) if total < self.max_body => {
                self.total = total;
                self.remaining = size;
                Ok(State::Data)
            }
            _ => Err(ProtoError::BodyTooLarge),
        }
    }

    fn count_trailer(&mut self) -> Result<(), ProtoError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.max_trailer {
            return Err(ProtoError::TrailersTooLarge);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Outcome = (Vec<u8>, Result<usize, ProtoError>);

    /// Feed `pieces` in order; the decoded bytes and either the bytes consumed in total when
    /// done, or the error. Incomplete input reports `Ok(usize::MAX)`.
    fn feed(limits: &Limits, pieces: &[&[u8]]) -> Outcome {
        let mut dec = ChunkedDecoder::new(limits);
        let mut out = Vec::new();
        let mut used = 0;
        for piece in pieces {
            let mut input = *piece;
            loop {
                match dec.decode(input) {
                    Err(err) => return (out, Err(err)),
                    Ok(step) => {
                        assert!(step.consumed <= input.len());
                        out.extend_from_slice(step.data);
                        used += step.consumed;
                        input = &input[step.consumed..];
                        if step.done {
                            assert_eq!(dec.decoded_len(), out.len() as u64);
                            return (out, Ok(used));
                        }
                        if step.consumed == 0 {
                            break;
                        }
                    }
                }
            }
        }
        (out, Ok(usize::MAX))
    }

    /// Run a case four ways (whole, byte by byte, every split, trailing pipelined bytes) and
    /// check every way agrees. Returns the whole-input outcome.
    fn four_ways(limits: &Limits, input: &[u8]) -> Outcome {
        let whole = feed(limits, &[input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let bytewise = feed(limits, &bytes);
        assert_eq!(whole.1.is_err(), bytewise.1.is_err(), "bytewise verdict");
        if whole.1.is_ok() {
            assert_eq!(whole, bytewise);
        }
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            let split = feed(limits, &[a, b]);
            assert_eq!(whole.1, split.1, "split at {at}");
            if whole.1.is_ok() {
                assert_eq!(whole.0, split.0);
            }
        }
        let mut piped = input.to_vec();
        piped.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
        let trailing = feed(limits, &[&piped]);
        match whole.1 {
            Ok(usize::MAX) => {}
            Ok(used) => assert_eq!(
                trailing,
                (whole.0.clone(), Ok(used)),
                "pipelined bytes untouched"
            ),
            Err(err) => assert_eq!(trailing.1, Err(err)),
        }
        whole
    }

    fn ok(input: &[u8]) -> Vec<u8> {
        let (data, verdict) = four_ways(&Limits::default(), input);
        assert_eq!(verdict, Ok(input.len()), "complete and fully consumed");
        data
    }

    fn err(input: &[u8]) -> ProtoError {
        four_ways(&Limits::default(), input).1.unwrap_err()
    }

    #[test]
    fn hex_table_is_hexdig() {
        for byte in 0..=255_u8 {
            let expected = char::from(byte).to_digit(16).map(u64::from);
            assert_eq!(hex_value(byte), expected, "{byte:#04x}");
        }
    }

    #[test]
    fn simple_body() {
        assert_eq!(
            ok(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
        assert_eq!(ok(b"0\r\n\r\n"), b"");
        assert_eq!(ok(b"A\r\n0123456789\r\n0\r\n\r\n"), b"0123456789");
        assert_eq!(ok(b"a\r\n0123456789\r\n0000\r\n\r\n"), b"0123456789");
    }

    #[test]
    fn incomplete_needs_more() {
        assert_eq!(
            feed(&Limits::default(), &[b"5\r\nhel"]),
            (b"hel".to_vec(), Ok(usize::MAX))
        );
        assert_eq!(feed(&Limits::default(), &[b"0\r\n"]).1, Ok(usize::MAX));
    }

    #[test]
    fn row_5_invalid_chunk_sizes() {
        for bad in [
            &b"0x5\r\n"[..],
            b"+5\r\n",
            b"-5\r\n",
            b"0_5\r\n",
            b" 5\r\n",
            b"5 \r\n",
            b"\r\n",
            b"5g\r\n",
        ] {
            assert_eq!(err(bad), ProtoError::InvalidChunkSize, "{bad:?}");
        }
        assert_eq!(err(b"12345678901234567\r\n"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn row_6_chunk_extensions() {
        assert_eq!(ok(b"1;a=b;c=\"d\"\r\nx\r\n0\r\n\r\n"), b"x");
        for bad in [&b"5;\r\n"[..], b"5;a\nhello", b"5;a\rb\r\n", b"5;a\x00\r\n"] {
            assert_eq!(err(bad), ProtoError::InvalidChunkExtension, "{bad:?}");
        }
        let limits = Limits {
            max_chunk_extensions: 4,
            ..Limits::default()
        };
        assert_eq!(
            four_ways(&limits, b"1;abcdef\r\nx\r\n0\r\n\r\n").1,
            Err(ProtoError::ChunkExtensionsTooLarge)
        );
    }

    #[test]
    fn chunk_size_empty() {
        assert_eq!(err(b"\r\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn chunk_size_plus() {
        assert_eq!(
            err(b"+5\r\nhello\r\n0\r\n\r\n"),
            ProtoError::InvalidChunkSize
        );
    }

    #[test]
    fn chunk_size_minus_hex_prefix_and_junk() {
        for bad in [
            &b"-5\r\n"[..],
            b"0x5\r\n",
            b" 5\r\n",
            b"5 \r\n",
            b"5g\r\n",
            b"x5\r\n",
        ] {
            assert_eq!(err(bad), ProtoError::InvalidChunkSize, "{bad:?}");
        }
    }

    #[test]
    fn chunk_size_underscore() {
        assert_eq!(
            err(b"0_5\r\nhello\r\n0\r\n\r\n"),
            ProtoError::InvalidChunkSize
        );
    }

    #[test]
    fn cve_2021_32714_chunk_size_overflow() {
        // 16 digits are accepted by the parser (then refused by the body limit), 17 never.
        assert_eq!(err(b"FFFFFFFFFFFFFFFF\r\n"), ProtoError::BodyTooLarge);
        assert_eq!(err(b"10000000000000000\r\n"), ProtoError::InvalidChunkSize);
        assert_eq!(
            err(b"00000000000000001\r\nx\r\n"),
            ProtoError::InvalidChunkSize
        );
    }

    #[test]
    fn cve_2022_24761_chunk_ext_validated() {
        assert_eq!(
            ok(b"5;name=value;flag;q=\"a b\\\"c\"\r\nhello\r\n0;last\r\n\r\n"),
            b"hello"
        );
        for bad in [
            &b"5;\r\nhello\r\n0\r\n\r\n"[..],
            b"5;invalid=\r\nhello\r\n0\r\n\r\n",
            b"5;a = b\r\nhello\r\n0\r\n\r\n",
            b"5; a\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"unterminated\r\nhello\r\n0\r\n\r\n",
            b"5;a\x00\r\nhello\r\n0\r\n\r\n",
        ] {
            assert_eq!(err(bad), ProtoError::InvalidChunkExtension, "{bad:?}");
        }
    }

    #[test]
    fn chunk_ext_bare_lf_term_ext() {
        // "TERM.EXT": a bare LF inside an extension must not end the size line.
        assert_eq!(
            err(b"5;a\nhello\r\n0\r\n\r\n"),
            ProtoError::InvalidChunkExtension
        );
        assert_eq!(
            err(b"5;a\rb\r\nhello\r\n0\r\n\r\n"),
            ProtoError::InvalidChunkExtension
        );
    }

    #[test]
    fn chunk_line_lf() {
        assert_eq!(err(b"5\nhello\r\n0\r\n\r\n"), ProtoError::InvalidChunkSize);
    }

    #[test]
    fn cve_2025_43859_chunk_data_no_crlf() {
        assert_eq!(
            err(b"5\r\nhelloXX0\r\n\r\n"),
            ProtoError::ChunkNotTerminated
        );
    }

    #[test]
    fn chunk_data_lf() {
        assert_eq!(
            err(b"5\r\nhello\n0\r\n\r\n"),
            ProtoError::ChunkNotTerminated
        );
        assert_eq!(
            err(b"5\r\nhello\r0\r\n\r\n"),
            ProtoError::ChunkNotTerminated
        );
    }

    #[test]
    fn last_chunk_lf() {
        assert_eq!(err(b"5\r\nhello\r\n0\n\r\n"), ProtoError::InvalidChunkSize);
        assert_eq!(err(b"5\r\nhello\r\n0\r\n\n"), ProtoError::InvalidTrailer);
    }

    #[test]
    fn trailers_are_parsed_and_dropped() {
        assert_eq!(ok(b"5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\n\r\n"), b"hello");
    }

    #[test]
    fn row_7_invalid_trailers() {
        for bad in [
            &b"0\r\nX-Sum : abc\r\n\r\n"[..],
            b"0\r\nX-Sum: a\nb\r\n\r\n",
            b"0\r\nX-Sum: a\x00\r\n\r\n",
            b"0\r\n folded\r\n\r\n",
            b"0\r\n: empty\r\n\r\n",
            b"0\r\nno-colon\r\n\r\n",
        ] {
            assert_eq!(err(bad), ProtoError::InvalidTrailer, "{bad:?}");
        }
    }

    #[test]
    fn limit_body_size() {
        let limits = Limits {
            max_request_body_size: 10,
            ..Limits::default()
        };
        let body = |n: usize| {
            let mut v = format!("{n:X}\r\n").into_bytes();
            v.extend(std::iter::repeat_n(b'x', n));
            v.extend_from_slice(b"\r\n0\r\n\r\n");
            v
        };
        assert!(four_ways(&limits, &body(9)).1.is_ok());
        assert_eq!(
            four_ways(&limits, &body(10)).1,
            Err(ProtoError::BodyTooLarge)
        );
        assert_eq!(
            four_ways(&limits, &body(11)).1,
            Err(ProtoError::BodyTooLarge)
        );
        // Counted across chunks, as decoded.
        assert_eq!(
            four_ways(&limits, b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n").1,
            Err(ProtoError::BodyTooLarge)
        );
    }

    #[test]
    fn limit_chunk_extensions() {
        let limits = Limits {
            max_chunk_extensions: 8,
            ..Limits::default()
        };
        // The extension bytes are everything after `;` up to the CR (the CR counts too).
        let with_ext = |n: usize| {
            let mut v = b"1;".to_vec();
            v.extend(std::iter::repeat_n(b'a', n));
            v.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
            v
        };
        assert!(four_ways(&limits, &with_ext(6)).1.is_ok());
        assert!(four_ways(&limits, &with_ext(7)).1.is_ok());
        assert_eq!(
            four_ways(&limits, &with_ext(8)).1,
            Err(ProtoError::ChunkExtensionsTooLarge)
        );
    }

    #[test]
    fn limit_trailer_size() {
        let limits = Limits {
            max_trailer_size: 10,
            ..Limits::default()
        };
        // "X: abc\r\n" (8) + final "\r\n" (2) = 10 bytes of trailer section.
        let with_value = |n: usize| {
            let mut v = b"0\r\nX: ".to_vec();
            v.extend(std::iter::repeat_n(b'a', n));
            v.extend_from_slice(b"\r\n\r\n");
            v
        };
        assert!(four_ways(&limits, &with_value(2)).1.is_ok());
        assert!(four_ways(&limits, &with_value(3)).1.is_ok());
        assert_eq!(
            four_ways(&limits, &with_value(4)).1,
            Err(ProtoError::TrailersTooLarge)
        );
    }

    #[test]
    fn limit_trailer_fields() {
        let fields = |n: usize| {
            let mut v = b"0\r\n".to_vec();
            for _ in 0..n {
                v.extend_from_slice(b"X:1\r\n");
            }
            v.extend_from_slice(b"\r\n");
            v
        };
        let limits = Limits::default();
        assert!(feed(&limits, &[&fields(MAX_TRAILER_FIELDS - 1)]).1.is_ok());
        assert!(feed(&limits, &[&fields(MAX_TRAILER_FIELDS)]).1.is_ok());
        assert_eq!(
            feed(&limits, &[&fields(MAX_TRAILER_FIELDS + 1)]).1,
            Err(ProtoError::TrailersTooLarge)
        );
    }

    #[test]
    fn length_decoder_leaves_the_next_request() {
        let mut dec = LengthDecoder::new(5);
        let step = dec.decode(b"hel");
        assert_eq!(
            step,
            Decoded {
                consumed: 3,
                data: b"hel",
                done: false
            }
        );
        let step = dec.decode(b"loGET /");
        assert_eq!(
            step,
            Decoded {
                consumed: 2,
                data: b"lo",
                done: true
            }
        );
        assert_eq!(dec.remaining(), 0);
    }

    fn encode(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks.iter().filter(|chunk| !chunk.is_empty()) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    proptest! {
        #[test]
        fn round_trip_any_split(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            at in any::<prop::sample::Index>(),
        ) {
            let wire = encode(&chunks);
            let expected: Vec<u8> = chunks.concat();
            let at = at.index(wire.len() + 1);
            let (a, b) = wire.split_at(at);
            let (data, verdict) = feed(&Limits::default(), &[a, b]);
            prop_assert_eq!(data, expected);
            prop_assert_eq!(verdict, Ok(wire.len()));
        }

        #[test]
        fn never_panics_never_overconsumes(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut dec = ChunkedDecoder::new(&Limits::default());
            let mut rest = &input[..];
            let mut total = 0u64;
            while let Ok(step) = dec.decode(rest) {
                prop_assert!(step.consumed <= rest.len());
                total += step.data.len() as u64;
                rest = &rest[step.consumed..];
                if step.done || step.consumed == 0 {
                    break;
                }
            }
            prop_assert!(total <= input.len() as u64);
        }
    }
}
