//! Strict request-head parsing (waitress `parser`, hyper `role::Server::parse`).
//!
//! [`HeadParser`] turns the bytes received for one request into a validated [`RequestHead`],
//! or a [`ProtoError`] naming the first rule broken. It is sans-I/O: the caller keeps the
//! receive buffer and hands the parser every byte received so far for the next request.
//!
//! Rules (each rejection is one [`ProtoError`] variant; the connection closes after it):
//! 1. Lines end in CRLF. Every LF must follow a CR and every CR must precede an LF, anywhere in
//!    the head (RFC 9112 §2.2, waitress CVE-2019-16785). This is checked byte by byte as data
//!    arrives: a bare CR or LF is reported at once, never after waiting for the terminator
//!    (SPEC D11). The head ends at the first empty line (CRLF CRLF); bytes after it are never
//!    looked at (RFC 9112 §2.1).
//! 2. At most one empty CRLF line before the request line is skipped (RFC 9112 §2.2 "SHOULD
//!    ignore at least one"); a second one, or SP/HTAB/VT/FF there, is `LeadingWhitespace`.
//! 3. Limits ([`Limits`]), checked on each byte as it is scanned (never after buffering past
//!    them), in this order for a given byte:
//!    - `max_request_header_size` = N: the head may be at most N−1 bytes, counted from the
//!      first byte received (an ignored leading CRLF included) up to and including the final
//!      CRLF CRLF. The N-th byte of a head is `HeadTooLarge` (431), whether or not it ends the
//!      head: waitress compares with `>=`.
//!    - `max_request_line` = M: the request line, CRLF included, may be at most M bytes. The
//!      M-th byte of a request line that is not its final LF is `RequestLineTooLong` (414),
//!      so a line of M+1 bytes, or M bytes with no end in sight, is refused (RFC 9112 §3).
//!    - `max_request_headers` = F: at most F field lines (dropped `_` names included); the first
//!      byte of field line F+1 is `TooManyHeaders` (431; RFC 6585 §5).
//! 4. Request line: `method SP request-target SP HTTP-version`, single spaces (RFC 9112 §3).
//!    The method is a token (RFC 9110 §9.1, §5.6.2) with no lower-case letter (waitress);
//!    the target is non-empty with no CTL, SP or DEL (obs-text and `#` pass, as waitress lets
//!    them); the version is `HTTP/` DIGIT `.` DIGIT (RFC 9112 §2.3). `HTTP/1.0` and `HTTP/1.1`
//!    are served, `HTTP/1.x` with x ≥ 2 as 1.1, another major version is 505 (RFC 9110
//!    §15.6.6), no version at all (HTTP/0.9) is 400 (SPEC D11).
//! 5. Field lines: `field-name ":" OWS field-value OWS` (RFC 9112 §5). The name is a token
//!    (RFC 9110 §5.1); whitespace before the colon is refused (RFC 9112 §5.1); a line starting
//!    with SP/HTAB is obs-fold and refused (RFC 9112 §5.2), also before the first field. Value
//!    bytes are VCHAR, obs-text, SP, HTAB (RFC 9110 §5.5); only SP and HTAB are trimmed (RFC
//!    9110 §5.6.3, waitress CVE-2019-16789), so `\x85` and `\xa0` reach the app unchanged.
//!    Names containing `_` are dropped (waitress; SPEC §3.4).
//! 6. Once the head is complete, field semantics are checked in this fixed order: a second
//!    Host (`DuplicateHost`), an invalid Host (`InvalidHost`, RFC 9112 §3.2), a Host that
//!    differs from an absolute-form target's authority (`HostMismatch`, RFC 9112 §3.2.2),
//!    a second Content-Type; then framing (RFC 9112 §6): Transfer-Encoding on HTTP/1.0,
//!    Transfer-Encoding with Content-Length, a second Transfer-Encoding line, its coding list
//!    (see `transfer_coding`), a second Content-Length line, an invalid Content-Length, and
//!    last a declared length at or over `max_request_body_size` (413).
//! 7. Leniencies, each a named flag in `LENIENCY` (STYLE.md convention 6): a missing Host is
//!    accepted even on HTTP/1.1 (SPEC D10); obs-text and `#` pass in the target (waitress).
//! 8. Without Content-Length or Transfer-Encoding the body is empty: what follows is the next
//!    request (RFC 9112 §6.3 rule 7, hyper RUSTSEC-2020-0008).
//!
//! Cost: every byte is scanned once over all calls, however the head is split (a `scanned`
//! offset, hyper's `is_complete_fast` idea), and every line is validated once, when its CRLF
//! arrives, by single-pass loops with no backtracking (waitress CVE-2020-5236). A head fed one
//! byte at a time costs O(n) overall.
//!
//! Two paths, one set of rules: each line is first offered, once, to a fast path that takes
//! a complete, valid line within the limits in a single pass (names and values many bytes at
//! a time) and leaves exactly the state the byte loop would leave. Anything else (a line not
//! all there yet, a byte the line may not hold, a limit reached) goes to the byte loop, which
//! alone decides errors and their order; the fast path may hand over part-way into a line,
//! only after bytes the byte loop passes unchanged. The tests feed every case whole, one byte
//! at a time and split at every offset, which runs the two paths against each other.
//!
//! Differences from waitress 3.0.2 are deliberate (SPEC Part B, D10, D11) and listed in
//! docs/compat.md: bare CR/LF, obs-fold, HTTP/0.9, duplicate Host/CL/TE/Content-Type, TE on
//! HTTP/1.0 and CL with TE are all refused here.

use std::mem;

use crate::error::ProtoError;
use crate::limits::Limits;

const CR: u8 = b'\r';
const LF: u8 = b'\n';

/// What we accept although an RFC forbids it, for waitress compatibility (STYLE.md
/// convention 6). Each flag names the rule it relaxes and the test that pins it; setting one
/// to `false` makes the parser RFC-strict on that point.
#[derive(Debug, Clone, Copy)]
struct Leniency {
    /// RFC 9112 §3.2: an HTTP/1.1 request without Host MUST get 400. SPEC D10 accepts it, as
    /// waitress and gunicorn do (test `row_20_host_rules`). Strict: `InvalidHost`.
    missing_host: bool,
    /// RFC 9112 §3.2 / RFC 3986 §2: a target has no raw bytes >= 0x80. waitress serves them
    /// (SPEC B1 row 15; test `methods_and_targets`). Strict: `BadUri`.
    obs_text_in_target: bool,
    /// RFC 9112 §3.2: a request-target has no fragment. waitress splits `#...` off (SPEC
    /// §3.3, B1 row 15; test `methods_and_targets`). Strict: `BadUri`.
    fragment_in_target: bool,
}

/// The leniencies in force (SPEC D10, B1 row 15).
const LENIENCY: Leniency = Leniency {
    missing_host: true,
    obs_text_in_target: true,
    fragment_in_target: true,
};

/// The HTTP version a request is served with (RFC 9112 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`, and `HTTP/1.x` for x ≥ 2 (RFC 9110 §2.5: a higher minor version is
    /// served with the highest one we speak).
    Http11,
}

impl Version {
    /// The version as written in a status line: `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No Content-Length and no Transfer-Encoding: no body; the next bytes are the next
    /// request (RFC 9112 §6.3 rule 7).
    Empty,
    /// `Content-Length`: exactly this many bytes (possibly 0).
    Length(u64),
    /// `Transfer-Encoding: chunked` (RFC 9112 §7.1).
    Chunked,
}

/// A byte range into a head's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The bytes of this span; empty if it does not fit (it always does: spans are made by
    /// the parser from the same bytes).
    fn of(self, bytes: &[u8]) -> &[u8] {
        bytes.get(self.start..self.end).unwrap_or_default()
    }

    const fn shifted(self, by: usize) -> Self {
        Self::new(self.start + by, self.end + by)
    }

    const fn is_empty(self) -> bool {
        self.start >= self.end
    }
}

/// One kept field line: its name as sent and its value with SP/HTAB trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    name: Span,
    value: Span,
}

impl Field {
    const fn shifted(self, by: usize) -> Self {
        Self {
            name: self.name.shifted(by),
            value: self.value.shifted(by),
        }
    }
}

/// The parts of a valid request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RequestLine {
    method: Span,
    target: Span,
    version: Version,
}

impl Field {
    /// Bytes of one field in [`RequestHead`]'s field records.
    const RECORD: usize = 32;

    /// This field as a record: the name's and the value's start and end, each a `u64`,
    /// little-endian.
    fn record(self) -> [u8; Self::RECORD] {
        let ends = [
            self.name.start,
            self.name.end,
            self.value.start,
            self.value.end,
        ];
        let mut record = [0; Self::RECORD];
        for (slot, end) in record.chunks_exact_mut(8).zip(ends) {
            slot.copy_from_slice(&(end as u64).to_le_bytes());
        }
        record
    }

    /// The field a record holds (a short record reads as zeros: records are made by
    /// [`Field::record`], whole).
    fn from_record(record: &[u8]) -> Self {
        let end = |at: usize| {
            record
                .get(at..)
                .and_then(<[u8]>::first_chunk::<8>)
                .map_or(0, |bytes| u64::from_le_bytes(*bytes) as usize)
        };
        Self {
            name: Span::new(end(0), end(8)),
            value: Span::new(end(16), end(24)),
        }
    }
}

/// A complete, validated request head. It owns the head's bytes; the method, target and
/// fields are ranges into them. The field ranges are kept as records after the head's bytes,
/// in the same allocation, so parsing allocates once per request, not once per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The head's bytes (`head_len` of them), then one [`Field::record`] a kept field.
    data: Box<[u8]>,
    head_len: usize,
    method: Span,
    target: Span,
    version: Version,
    body: BodyKind,
    /// Which of `Connection` and `Expect` are among the fields (`MENTIONS_*`): most heads
    /// have neither, and the questions about them are then answered without a look.
    mentions: u8,
}

const MENTIONS_CONNECTION: u8 = 1;
const MENTIONS_EXPECT: u8 = 2;

impl RequestHead {
    /// The method, as sent (a token with no lower-case letter).
    pub fn method(&self) -> &[u8] {
        self.method.of(self.as_bytes())
    }

    /// The request-target exactly as sent, fragment included (waitress's `REQUEST_URI`).
    pub fn target(&self) -> &[u8] {
        self.target.of(self.as_bytes())
    }

    /// The version the request is served with.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The kept field lines in arrival order: the name as sent, the value with SP/HTAB
    /// trimmed. Names containing `_` are not here (dropped, SPEC §3.4). Repeated fields all
    /// appear; the Python layer joins them with `", "` as waitress does.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        let head = self.as_bytes();
        let records = self.data.get(self.head_len..).unwrap_or_default();
        records.chunks_exact(Field::RECORD).map(move |record| {
            let field = Field::from_record(record);
            (field.name.of(head), field.value.of(head))
        })
    }

    /// The value of the first field named `name` (compared case-insensitively, RFC 9110 §5.1).
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// The value of the field `name` if exactly one line carries it. waitress joins repeated
    /// lines with `", "` before comparing, so a repeated field never equals a single token;
    /// this gives the same answer without building the joined string.
    fn single_header(&self, name: &[u8]) -> Option<&[u8]> {
        let mut values = self
            .headers()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value);
        let first = values.next()?;
        values.next().is_none().then_some(first)
    }

    /// True when a `Connection` field is among the kept fields.
    pub fn has_connection(&self) -> bool {
        self.mentions & MENTIONS_CONNECTION != 0
    }

    /// How the body is framed.
    pub fn body(&self) -> BodyKind {
        self.body
    }

    /// True for a `HEAD` request (RFC 9110 §9.3.2: the response has no body).
    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// True for an HTTP/1.1 request whose `Connection` value is exactly `close`, compared
    /// case-insensitively over the whole value (SPEC §3.7: `keep-alive, close` does not count).
    pub fn wants_close(&self) -> bool {
        self.version == Version::Http11
            && self.has_connection()
            && self
                .single_header(b"connection")
                .is_some_and(|value| value.eq_ignore_ascii_case(b"close"))
    }

    /// True for an HTTP/1.0 request whose `Connection` value is exactly `keep-alive`
    /// (case-insensitive, whole value; SPEC §3.7).
    pub fn wants_keep_alive(&self) -> bool {
        self.version == Version::Http10
            && self.has_connection()
            && self
                .single_header(b"connection")
                .is_some_and(|value| value.eq_ignore_ascii_case(b"keep-alive"))
    }

    /// True for an HTTP/1.1 request whose `Expect` value is exactly `100-continue`
    /// (case-insensitive; RFC 9110 §10.1.1, SPEC §3.6).
    pub fn wants_continue(&self) -> bool {
        self.version == Version::Http11
            && self.mentions & MENTIONS_EXPECT != 0
            && self
                .single_header(b"expect")
                .is_some_and(|value| value.eq_ignore_ascii_case(b"100-continue"))
    }

    /// Bytes of input this head consumed: an ignored leading CRLF, the request line, the
    /// field lines and the final empty line. The next request (or the body) starts here.
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// The raw bytes of the head, as received (including an ignored leading CRLF).
    pub fn as_bytes(&self) -> &[u8] {
        self.data.get(..self.head_len).unwrap_or_default()
    }
}

/// Where the scanner is in the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the first byte of the request line (rule 2: one empty line may come first).
    Start,
    /// Inside the request line.
    RequestLine,
    /// Inside the field section.
    Fields,
}

/// The first value of a field that may appear only once, and whether it came again.
#[derive(Debug, Clone, Copy, Default)]
struct Single {
    first: Option<Span>,
    repeated: bool,
}

impl Single {
    fn note(&mut self, value: Span) {
        if self.first.is_some() {
            self.repeated = true;
        } else {
            self.first = Some(value);
        }
    }
}

/// Incremental, strict parser of one request head at a time (see the module rules).
///
/// Feed it the growing receive buffer with [`HeadParser::parse`] until it returns a head or
/// an error. After a head it is ready for the next request at once; after an error it keeps
/// returning that error until [`HeadParser::reset`].
#[derive(Debug, Clone)]
pub struct HeadParser {
    limits: Limits,
    /// Bytes of the current buffer already scanned; scanning resumes here.
    scanned: usize,
    phase: Phase,
    /// Offset of the first byte of the line being scanned.
    line_start: usize,
    /// Field lines begun so far, dropped ones included.
    field_lines: usize,
    line: Option<RequestLine>,
    /// The kept fields so far, as [`Field::record`]s (what [`RequestHead`] stores).
    fields: Vec<u8>,
    host: Single,
    content_type: Single,
    content_length: Single,
    transfer_encoding: Single,
    /// Which of `Connection` and `Expect` the head has (`MENTIONS_*`).
    mentions: u8,
    error: Option<ProtoError>,
    /// Bytes examined, for the linear-time test (CVE-2020-5236).
    #[cfg(test)]
    work: usize,
}

impl HeadParser {
    /// A parser enforcing `limits`, ready for the first request of a connection.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            scanned: 0,
            phase: Phase::Start,
            line_start: 0,
            field_lines: 0,
            line: None,
            fields: Vec::new(),
            host: Single::default(),
            content_type: Single::default(),
            content_length: Single::default(),
            transfer_encoding: Single::default(),
            mentions: 0,
            error: None,
            #[cfg(test)]
            work: 0,
        }
    }

    /// Parse the head at the start of `buf`, which holds every byte received so far for the
    /// next request, starting at its first byte.
    ///
    /// - `Ok(None)`: the head is not complete yet; call again with `buf` extended. The limits
    ///   and the CR/LF rule were checked on every byte already there, so an oversized or
    ///   malformed prefix is an error now, not when more bytes come.
    /// - `Ok(Some(head))`: complete and valid. The caller drops `head.head_len()` bytes from
    ///   its buffer; bytes after the head were not looked at. The parser is reset, ready for
    ///   the next request.
    /// - `Err(err)`: the request is refused; the same error is returned until
    ///   [`HeadParser::reset`].
    ///
    /// Bytes scanned by an earlier call are not scanned again, so `buf` must extend the `buf`
    /// of the previous call. A `buf` shorter than what was scanned is taken as a new input
    /// and scanned from its start.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<RequestHead>, ProtoError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        if buf.len() < self.scanned {
            self.reset();
        }
        let result = match self.scan(buf) {
            Ok(Some(head_len)) => self.finish(buf, head_len).map(Some),
            Ok(None) => Ok(None),
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            self.error = Some(err);
        }
        result
    }

    /// The HTTP version the error response should carry, as waitress chooses it (SPEC §3.11):
    /// `HTTP/1.0` for request-line, field-syntax and 431 errors (waitress has not recorded the
    /// version yet when it finds those), the request's own version for Host, Content-Type,
    /// Content-Length, Transfer-Encoding and 413 errors. Without an error: the request's
    /// version once its request line was parsed, else `HTTP/1.0`.
    pub fn error_version(&self) -> Version {
        let version = self.line.map_or(Version::Http10, |line| line.version);
        match self.error {
            None => version,
            Some(err) if is_field_semantics_error(err) => version,
            Some(_) => Version::Http10,
        }
    }

    /// Forget the current request (and any error): ready for the next one.
    pub fn reset(&mut self) {
        #[cfg(test)]
        let work = self.work;
        // Keep the field list's allocation for the next request on the connection.
        let mut fields = mem::take(&mut self.fields);
        fields.clear();
        *self = Self::new(self.limits);
        self.fields = fields;
        #[cfg(test)]
        {
            self.work = work;
        }
    }

    /// Count `bytes` examined (test builds only).
    #[cfg_attr(
        not(test),
        expect(clippy::unused_self, reason = "counts only in tests")
    )]
    fn charge(&mut self, bytes: usize) {
        #[cfg(test)]
        {
            self.work += bytes;
        }
        #[cfg(not(test))]
        let _ = bytes;
    }

    /// Scan `buf` from `self.scanned`. Returns the head's length once its final LF is seen.
    ///
    /// Each line is first offered to the fast path ([`HeadParser::fast_lines`]) when its first
    /// byte is reached; the byte loop below takes over where the fast path stops.
    fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtoError> {
        if self.scanned == self.line_start {
            if let Some(head_len) = self.fast_lines(buf) {
                return Ok(Some(head_len));
            }
        }
        let mut at = self.scanned;
        while let Some(&byte) = buf.get(at) {
            if self.phase != Phase::Start && at != self.line_start && byte != CR && byte != LF {
                at = self.skip_line_bytes(buf, at)?;
                continue;
            }
            self.charge(1);
            // Rule 3: the N-th byte of a head is one too many (waitress: `>=`).
            if at + 1 >= self.limits.max_request_header_size {
                return Err(ProtoError::HeadTooLarge);
            }
            match byte {
                CR => {
                    if self.phase == Phase::RequestLine {
                        self.check_line_length(at)?;
                    }
                    // RFC 9112 §2.2: a CR must be followed by LF. Wait for the next byte if
                    // it has not arrived; this CR is scanned again then (no state changed).
                    match buf.get(at + 1) {
                        None => {
                            self.scanned = at;
                            return Ok(None);
                        }
                        Some(&LF) => {}
                        Some(_) => return Err(self.bare_cr_or_lf()),
                    }
                }
                LF => {
                    // RFC 9112 §2.2: an LF must follow a CR (waitress CVE-2019-16785).
                    let after_cr = at.checked_sub(1).and_then(|prev| buf.get(prev)) == Some(&CR);
                    if !after_cr {
                        return Err(self.bare_cr_or_lf());
                    }
                    let line = Span::new(self.line_start, at - 1);
                    self.line_start = at + 1;
                    self.scanned = at + 1;
                    if self.end_line(buf, line)? {
                        return Ok(Some(at + 1));
                    }
                    if let Some(head_len) = self.fast_lines(buf) {
                        return Ok(Some(head_len));
                    }
                    at = self.scanned;
                    continue;
                }
                _ => self.line_byte(at, byte)?,
            }
            at += 1;
        }
        self.scanned = at;
        Ok(None)
    }

    /// Fast path over whole lines, from `self.line_start` (= `self.scanned`: no byte of that
    /// line scanned yet). Each complete, valid line within the limits is taken in one pass
    /// and leaves exactly the state the byte loop would have left; returns the head's length
    /// if the final empty line was among them.
    ///
    /// Anything else (a line not complete yet, a byte the line may not hold, a limit reached)
    /// stops it, and the byte loop decides, so errors and their order are the byte loop's.
    /// It may stop part-way into a line ([`HeadParser::hand_off`]): only after bytes the byte
    /// loop would pass without a state change, so no byte is scanned twice. A line is offered
    /// to the fast path once at most (the byte loop does not go back to its start), which
    /// keeps the whole scan linear however the head is split.
    fn fast_lines(&mut self, buf: &[u8]) -> Option<usize> {
        // Rule 3: the fast path never looks at the byte that would reach
        // `max_request_header_size`, so every byte it takes is within that limit.
        let head_end = buf
            .len()
            .min(self.limits.max_request_header_size.saturating_sub(1));
        let window = buf.get(..head_end).unwrap_or_default();
        loop {
            let start = self.line_start;
            let taken = match self.phase {
                // Rule 2: one empty line before the request line is skipped.
                Phase::Start if start == 0 && window.starts_with(b"\r\n") => {
                    self.charge(2);
                    self.line_start = 2;
                    self.scanned = 2;
                    true
                }
                Phase::Start => self.fast_request_line(window),
                Phase::Fields => {
                    if window.get(start..start + 2) == Some(b"\r\n") {
                        self.charge(2);
                        self.line_start = start + 2;
                        self.scanned = start + 2;
                        return Some(start + 2);
                    }
                    self.fast_field_line(window)
                }
                Phase::RequestLine => false,
            };
            if !taken {
                return None;
            }
        }
    }

    /// The fast path on a request line at `self.line_start` (rule 4): true if it took the
    /// whole line.
    fn fast_request_line(&mut self, window: &[u8]) -> bool {
        let start = self.line_start;
        // Rule 3: every byte of the request line but its final LF must be within
        // `max_request_line`; the LF is looked for in `window`.
        let line_end = window
            .len()
            .min(start + self.limits.max_request_line.saturating_sub(1));
        let line = window.get(start..line_end).unwrap_or_default();
        let (method_len, seen) = token_prefix(line);
        if method_len == 0 {
            return false;
        }
        if seen & LOWER != 0 || line.get(method_len) != Some(&b' ') {
            self.hand_off(start + method_len);
            return false;
        }
        let target_start = method_len + 1;
        let rest = line.get(target_start..).unwrap_or_default();
        let target_end = target_start + find_byte(rest, ends_target, ends_target_bytes);
        let target = Span::new(target_start, target_end);
        let lenient = LENIENCY.obs_text_in_target && LENIENCY.fragment_in_target;
        if target.is_empty()
            || line.get(target_end) != Some(&b' ')
            || (!lenient && target.of(line).iter().any(|&byte| is_bad_target_byte(byte)))
        {
            self.hand_off(start + target_end);
            return false;
        }
        // `HTTP/` DIGIT `.` DIGIT CR, then the LF.
        let version_start = target_end + 1;
        let cr = version_start + 8;
        let version = line
            .get(version_start..cr)
            .and_then(|version| parse_version(version).ok());
        let Some(version) = version else {
            self.hand_off(start + version_start);
            return false;
        };
        if line.get(cr) != Some(&CR) || window.get(start + cr + 1) != Some(&LF) {
            self.hand_off(start + cr);
            return false;
        }
        self.line = Some(RequestLine {
            method: Span::new(0, method_len).shifted(start),
            target: target.shifted(start),
            version,
        });
        self.phase = Phase::Fields;
        self.charge(cr + 2);
        self.line_start = start + cr + 2;
        self.scanned = self.line_start;
        true
    }

    /// The fast path on a field line at `self.line_start` (rule 5): true if it took the whole
    /// line.
    fn fast_field_line(&mut self, window: &[u8]) -> bool {
        let start = self.line_start;
        // Rule 3: this line would be one too many.
        if self.field_lines >= self.limits.max_request_headers {
            return false;
        }
        let line = window.get(start..).unwrap_or_default();
        let (name_len, underscore) = short_name_prefix(line).unwrap_or_else(|| name_prefix(line));
        // An empty name (obs-fold or whitespace included) is the byte loop's to refuse.
        if name_len == 0 {
            return false;
        }
        if line.get(name_len) != Some(&b':') {
            self.hand_off(start + name_len);
            return false;
        }
        // The value runs to the first control byte that is not HTAB (RFC 9110 §5.5), which
        // must be the CR of a CRLF.
        let value_start = name_len + 1;
        let mut cr = value_start;
        loop {
            cr += find_byte(line.get(cr..).unwrap_or_default(), is_ctl, ctl_bytes);
            if line.get(cr) != Some(&b'\t') {
                break;
            }
            cr += 1;
        }
        if line.get(cr) != Some(&CR) || line.get(cr + 1) != Some(&LF) {
            self.hand_off(start + cr);
            return false;
        }
        self.field_lines += 1;
        let value = line.get(value_start..cr).unwrap_or_default();
        let field = Field {
            name: Span::new(0, name_len),
            value: trimmed_value(value).shifted(value_start),
        };
        self.charge(cr + 2);
        self.line_start = start + cr + 2;
        self.scanned = self.line_start;
        self.keep_field(window, field.shifted(start), underscore);
        true
    }

    /// The fast path stops at `at`, inside the line that starts at `self.line_start`, and the
    /// byte loop goes on from there. The bytes before `at` hold no CR or LF, their first is
    /// not whitespace, and they are within the limits (a field line's count was checked), so
    /// the byte loop would have passed them changing only what is set here.
    fn hand_off(&mut self, at: usize) {
        let start = self.line_start;
        if at <= start {
            return;
        }
        match self.phase {
            Phase::Start => self.phase = Phase::RequestLine,
            Phase::Fields => self.field_lines += 1,
            Phase::RequestLine => {}
        }
        self.charge(at - start);
        self.scanned = at;
    }

    /// Fast path: from `at`, inside a line and past its first byte, jump to the next CR or LF.
    /// The bytes jumped over are exactly those the byte loop would pass without a state
    /// change, so the only checks owed are the two limits, applied to the first byte that
    /// would trip one (head size first on a tie, as in the loop). Line contents are
    /// validated once, when the line ends.
    fn skip_line_bytes(&mut self, buf: &[u8], at: usize) -> Result<usize, ProtoError> {
        let rest = buf.get(at..).unwrap_or_default();
        let stop = at + find_cr_or_lf(rest).unwrap_or(rest.len());
        self.charge(stop - at);
        // Byte `i` trips the head limit when `i + 1 >= max_request_header_size`.
        let head_trip = self.limits.max_request_header_size.saturating_sub(1);
        // Byte `i` (not the final LF) trips the line limit when
        // `i - line_start + 1 >= max_request_line`.
        let line_trip = (self.phase == Phase::RequestLine)
            .then(|| self.line_start + self.limits.max_request_line.saturating_sub(1));
        if head_trip < stop && line_trip.is_none_or(|line| head_trip <= line) {
            return Err(ProtoError::HeadTooLarge);
        }
        if line_trip.is_some_and(|line| line < stop) {
            return Err(ProtoError::RequestLineTooLong);
        }
        self.scanned = stop;
        Ok(stop)
    }

    /// The bare CR/LF error for the current phase (waitress words the two differently).
    fn bare_cr_or_lf(&self) -> ProtoError {
        match self.phase {
            Phase::Start | Phase::RequestLine => ProtoError::BareCrOrLf,
            Phase::Fields => ProtoError::BareCrOrLfInHeader,
        }
    }

    /// Rule 3: byte `at` of the request line is not its final LF, so the line is at least
    /// `at - line_start + 2` bytes long.
    fn check_line_length(&self, at: usize) -> Result<(), ProtoError> {
        if at - self.line_start + 1 >= self.limits.max_request_line {
            return Err(ProtoError::RequestLineTooLong);
        }
        Ok(())
    }

    /// A byte other than CR or LF at offset `at`.
    fn line_byte(&mut self, at: usize, byte: u8) -> Result<(), ProtoError> {
        match self.phase {
            Phase::Start => {
                // RFC 9112 §2.2: only an empty line may precede the request line.
                if matches!(byte, b' ' | b'\t' | 0x0b | 0x0c) {
                    return Err(ProtoError::LeadingWhitespace);
                }
                self.phase = Phase::RequestLine;
                self.check_line_length(at)
            }
            Phase::RequestLine => self.check_line_length(at),
            Phase::Fields => {
                if at == self.line_start {
                    self.field_lines += 1;
                    if self.field_lines > self.limits.max_request_headers {
                        return Err(ProtoError::TooManyHeaders);
                    }
                    // RFC 9112 §5.2: obs-fold is refused, as is whitespace before the first
                    // field (RFC 9112 §2.2).
                    if matches!(byte, b' ' | b'\t') {
                        return Err(ProtoError::ObsFold);
                    }
                }
                Ok(())
            }
        }
    }

    /// A line (without its CRLF) has ended. Returns true when it was the head's final empty
    /// line.
    fn end_line(&mut self, buf: &[u8], line: Span) -> Result<bool, ProtoError> {
        self.charge(line.end - line.start);
        match self.phase {
            Phase::Start => {
                // Rule 2: in `Start` every line is empty; only the very first may be skipped.
                if line.start == 0 {
                    Ok(false)
                } else {
                    Err(ProtoError::LeadingWhitespace)
                }
            }
            Phase::RequestLine => {
                let parsed = parse_request_line(line.of(buf))?;
                self.line = Some(RequestLine {
                    method: parsed.method.shifted(line.start),
                    target: parsed.target.shifted(line.start),
                    version: parsed.version,
                });
                self.phase = Phase::Fields;
                Ok(false)
            }
            Phase::Fields => {
                if line.is_empty() {
                    return Ok(true);
                }
                let (field, underscore) = parse_field_line(line.of(buf))?;
                self.keep_field(buf, field.shifted(line.start), underscore);
                Ok(false)
            }
        }
    }

    /// Record a valid field line: drop it if its name has `_` (`underscore`, found by the
    /// name scan), note the fields that may come only once.
    #[expect(
        clippy::inline_always,
        reason = "measured: a call a field line costs ~200 instructions a browser head"
    )]
    #[inline(always)]
    fn keep_field(&mut self, buf: &[u8], field: Field, underscore: bool) {
        // SPEC §3.4 (waitress): `X_Auth` must not pass for `X-Auth` in the CGI mapping.
        if underscore {
            return;
        }
        let name = field.name.of(buf);
        // The length picks the one name worth comparing.
        let single = match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => Some(&mut self.host),
            14 if name.eq_ignore_ascii_case(b"content-length") => Some(&mut self.content_length),
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                Some(&mut self.transfer_encoding)
            }
            12 if name.eq_ignore_ascii_case(b"content-type") => Some(&mut self.content_type),
            10 if name.eq_ignore_ascii_case(b"connection") => {
                self.mentions |= MENTIONS_CONNECTION;
                None
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                self.mentions |= MENTIONS_EXPECT;
                None
            }
            _ => None,
        };
        if let Some(single) = single {
            single.note(field.value);
        }
        self.fields.extend_from_slice(&field.record());
    }

    /// Rule 6 on a complete head of `head_len` bytes, then build it and reset.
    fn finish(&mut self, buf: &[u8], head_len: usize) -> Result<RequestHead, ProtoError> {
        // The head can only end in `Fields`, which starts once the request line was parsed.
        let Some(line) = self.line else {
            return Err(ProtoError::InvalidStartLine);
        };
        self.charge(head_len);
        self.check_host(buf, line.target.of(buf), line.version)?;
        if self.content_type.repeated {
            return Err(ProtoError::DuplicateContentType);
        }
        let body = self.body_kind(buf, line.version)?;
        // One exact-size allocation for the bytes and the field records, two copies;
        // `self.fields` keeps its capacity for the next request (see `reset`).
        let bytes = buf.get(..head_len).unwrap_or_default();
        let mut data = Vec::with_capacity(bytes.len() + self.fields.len());
        data.extend_from_slice(bytes);
        data.extend_from_slice(&self.fields);
        let head = RequestHead {
            head_len: bytes.len(),
            data: data.into_boxed_slice(),
            method: line.method,
            target: line.target,
            version: line.version,
            body,
            mentions: self.mentions,
        };
        self.reset();
        Ok(head)
    }

    /// Host rules (RFC 9112 §3.2, SPEC D10/D11, Part B rows 19–20).
    fn check_host(&self, buf: &[u8], target: &[u8], version: Version) -> Result<(), ProtoError> {
        if self.host.repeated {
            return Err(ProtoError::DuplicateHost);
        }
        let Some(host) = self.host.first.map(|span| span.of(buf)) else {
            if version == Version::Http11 && !LENIENCY.missing_host {
                return Err(ProtoError::InvalidHost);
            }
            return Ok(());
        };
        if !is_valid_host(host) {
            return Err(ProtoError::InvalidHost);
        }
        // RFC 9112 §3.2.2 / §3.3: the target URI comes from an absolute-form target; a Host
        // that names another authority would route one place and reach the app as another.
        if let Some(authority) = absolute_form_authority(target) {
            if !authority.eq_ignore_ascii_case(host) {
                return Err(ProtoError::HostMismatch);
            }
        }
        Ok(())
    }

    /// Body framing (RFC 9112 §6.1, §6.3), in the order of rule 6.
    fn body_kind(&self, buf: &[u8], version: Version) -> Result<BodyKind, ProtoError> {
        if let Some(coding) = self.transfer_encoding.first {
            // RFC 9112 §6.1: a 1.0 message with TE has faulty framing (SPEC B1 row 22).
            if version == Version::Http10 {
                return Err(ProtoError::TransferEncodingHttp10);
            }
            // RFC 9112 §6.3 rule 3: TE with CL "ought to be handled as an error" (row 1).
            if self.content_length.first.is_some() {
                return Err(ProtoError::ContentLengthWithTransferEncoding);
            }
            // Two lines would be joined into one list; one hop may read only one of them
            // (hyper CVE-2021-21299, gunicorn CVE-2024-1135).
            if self.transfer_encoding.repeated {
                return Err(ProtoError::InvalidTransferEncoding);
            }
            return transfer_coding(coding.of(buf));
        }
        let Some(length) = self.content_length.first else {
            return Ok(BodyKind::Empty);
        };
        // RFC 9112 §6.3 rule 5; even identical copies are refused (SPEC B1 row 3).
        if self.content_length.repeated {
            return Err(ProtoError::DuplicateContentLength);
        }
        let length = parse_content_length(length.of(buf))?;
        // waitress compares with `>=` (SPEC §3.5): a length equal to the limit is refused.
        if length >= self.limits.max_request_body_size {
            return Err(ProtoError::BodyTooLarge);
        }
        Ok(BodyKind::Length(length))
    }
}

/// Errors found from field values once the request line was recorded; waitress answers these
/// with the request's own version (SPEC §3.11).
const fn is_field_semantics_error(err: ProtoError) -> bool {
    matches!(
        err,
        ProtoError::DuplicateHost
            | ProtoError::InvalidHost
            | ProtoError::HostMismatch
            | ProtoError::DuplicateContentType
            | ProtoError::InvalidContentLength
            | ProtoError::DuplicateContentLength
            | ProtoError::TransferEncodingNotImplemented
            | ProtoError::InvalidTransferEncoding
            | ProtoError::TransferEncodingHttp10
            | ProtoError::ContentLengthWithTransferEncoding
            | ProtoError::BodyTooLarge
    )
}

/// [`TOKEN_CLASS`] bit: the byte is an RFC 9110 §5.6.2 `tchar`.
const TCHAR: u8 = 1;
/// [`TOKEN_CLASS`] bit: the byte is `_` (a name with one is dropped, SPEC §3.4).
const UNDERSCORE: u8 = 2;
/// [`TOKEN_CLASS`] bit: the byte is a lower-case letter (refused in a method, waitress).
const LOWER: u8 = 4;

/// What each byte is to a token scan, as a table: one load a byte on the hot path, and the
/// `_` and lower-case checks ride along in the same pass (OR of the bits seen).
const TOKEN_CLASS: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        let class = match byte as u8 {
            b'_' => TCHAR | UNDERSCORE,
            b'a'..=b'z' => TCHAR | LOWER,
            b'!'
            | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'`'
            | b'|'
            | b'~'
            | b'0'..=b'9'
            | b'A'..=b'Z' => TCHAR,
            _ => 0,
        };
        #[expect(
            clippy::indexing_slicing,
            reason = "const evaluation: `byte < 256` bounds it"
        )]
        let slot = &mut table[byte];
        *slot = class;
        byte += 1;
    }
    table
};

/// The [`TOKEN_CLASS`] bits of `byte`.
fn token_class(byte: u8) -> u8 {
    TOKEN_CLASS.get(usize::from(byte)).copied().unwrap_or(0)
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(byte: u8) -> bool {
    token_class(byte) & TCHAR != 0
}

/// The length of the run of `tchar`s that starts `bytes`, and the OR of their
/// [`TOKEN_CLASS`] bits (so `_` and lower case are known without another pass).
fn token_prefix(bytes: &[u8]) -> (usize, u8) {
    let mut seen = 0;
    for (len, &byte) in bytes.iter().enumerate() {
        let class = token_class(byte);
        if class & TCHAR == 0 {
            return (len, seen);
        }
        seen |= class;
    }
    (bytes.len(), seen)
}

/// The offset of the first byte of `bytes` for which `stop` holds, or `bytes.len()`.
/// `word_stops` is the same test on eight bytes at once (see [`ctl_bytes`]).
///
/// Sixteen bytes at a time while no byte stops: the block test is a branch-free OR over a
/// fixed-size array, which the compiler turns into SIMD compares (SSE2 on x86-64; plain code
/// elsewhere), with no `unsafe`. The block that stops, and the last bytes, go a word at a
/// time, then one by one.
#[inline]
fn find_byte(
    bytes: &[u8],
    stop: impl Fn(u8) -> bool + Copy,
    word_stops: impl Fn(u64) -> u64 + Copy,
) -> usize {
    let mut at = 0;
    while let Some(block) = bytes.get(at..).and_then(<[u8]>::first_chunk::<16>) {
        if block.iter().fold(false, |any, &byte| any | stop(byte)) {
            let flags = block.map(|byte| if stop(byte) { 0xff_u8 } else { 0 });
            return at + (u128::from_le_bytes(flags).trailing_zeros() / 8) as usize;
        }
        at += 16;
    }
    at + find_byte_in_words(bytes.get(at..).unwrap_or_default(), stop, word_stops)
}

/// [`find_byte`] for a short run: a word at a time, then the last (< 8) bytes one by one.
#[inline]
fn find_byte_in_words(
    bytes: &[u8],
    stop: impl Fn(u8) -> bool,
    word_stops: impl Fn(u64) -> u64,
) -> usize {
    let mut at = 0;
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let stops = word_stops(u64::from_le_bytes(*word));
        if stops != 0 {
            // Little-endian: the first byte of the word is the lowest.
            return at + (stops.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let rest = bytes.get(at..).unwrap_or_default();
    at + rest
        .iter()
        .position(|&byte| stop(byte))
        .unwrap_or(rest.len())
}

/// `0x01` in each byte of a word.
const ONES: u64 = u64::from_le_bytes([0x01; 8]);
/// `0x80` in each byte of a word.
const HIGHS: u64 = ONES * 0x80;

// Word-at-a-time byte classes. Each function below flags, with the byte's high bit, exactly
// the bytes of `word` (eight bytes, little-endian) that its byte-wise twin flags. They only
// add to the low seven bits of each byte, so no carry crosses into the next byte and every
// flag is exact (no false alarm next to a real one). A byte `b` is in `lo..=hi` (with
// `b < 0x80`) when `b + (0x80 - lo)` has its high bit set and `b + (0x7f - hi)` has not.

/// [`is_ctl`] on each byte of `word`.
const fn ctl_bytes(word: u64) -> u64 {
    let low = word & !HIGHS;
    // High bit set where `low < 0x20`, and where `low == 0x7f`.
    let below_space = !(low + ONES * 0x60);
    let del = low + ONES;
    (below_space | del) & !word & HIGHS
}

/// [`ends_target`] on each byte of `word`.
const fn ends_target_bytes(word: u64) -> u64 {
    let low = word & !HIGHS;
    // High bit set where `low < 0x21`, and where `low == 0x7f`.
    let below_bang = !(low + ONES * 0x5f);
    let del = low + ONES;
    (below_bang | del) & !word & HIGHS
}

/// [`ends_plain_name`] on each byte of `word`.
const fn ends_plain_name_bytes(word: u64) -> u64 {
    let low = word & !HIGHS;
    // Setting 0x20 maps `A..=Z` onto `a..=z` and no other byte into that range.
    let folded = low | (ONES * 0x20);
    let letter = (folded + ONES * (0x80 - 0x61)) & !(folded + ONES * (0x7f - 0x7a));
    let digit = (low + ONES * (0x80 - 0x30)) & !(low + ONES * (0x7f - 0x39));
    // High bit clear only where `low == b'-'`.
    let not_dash = (low ^ (ONES * 0x2d)) + ONES * 0x7f;
    !((letter | digit | !not_dash) & !word) & HIGHS
}

/// A byte that ends a run of field-value bytes: a control (HTAB, CR and LF included) or DEL
/// (RFC 9110 §5.5).
const fn is_ctl(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f
}

/// A byte that ends a request-target: a control, SP or DEL (RFC 9112 §3.2).
const fn ends_target(byte: u8) -> bool {
    byte <= 0x20 || byte == 0x7f
}

/// A byte that ends the common form of a field name (letters, digits and `-`); the rest of
/// `tchar`, if it follows, is taken by [`token_prefix`].
const fn ends_plain_name(byte: u8) -> bool {
    !(byte.is_ascii_alphanumeric() || byte == b'-')
}

/// A byte that ends the common form of a Host name (letters, digits, `-` and `.`).
const fn ends_plain_host(byte: u8) -> bool {
    ends_plain_name(byte) && byte != b'.'
}

/// [`ends_plain_host`] on each byte of `word`.
const fn ends_plain_host_bytes(word: u64) -> u64 {
    // High bit clear only where the byte is `.`.
    let not_dot = ((word & !HIGHS) ^ (ONES * 0x2e)) + ONES * 0x7f;
    ends_plain_name_bytes(word) & (not_dot | word)
}

/// [`name_prefix`] for the common case, a name of at most 15 letters, digits and `-` then
/// `:`, sixteen bytes at once (SIMD compares, as in [`find_byte`]); `None` for any other.
fn short_name_prefix(line: &[u8]) -> Option<(usize, bool)> {
    let block = line.first_chunk::<16>()?;
    let flags = block.map(|byte| if ends_plain_name(byte) { 0xff_u8 } else { 0 });
    let len = (u128::from_le_bytes(flags).trailing_zeros() / 8) as usize;
    (block.get(len) == Some(&b':')).then_some((len, false))
}

/// The length of the field name (a run of `tchar`s) that starts `line`, and whether it holds
/// a `_`. Letters, digits and `-` are taken eight at a time, the rest one by one.
fn name_prefix(line: &[u8]) -> (usize, bool) {
    let plain = find_byte_in_words(line, ends_plain_name, ends_plain_name_bytes);
    let (more, seen) = token_prefix(line.get(plain..).unwrap_or_default());
    (plain + more, seen & UNDERSCORE != 0)
}

/// RFC 9110 §5.5: a field value byte (VCHAR, obs-text, SP, HTAB).
const fn is_field_value_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' '..=0x7e | 0x80..=0xff)
}

/// The offset of the first CR or LF in `bytes`, eight bytes at a time. Inline, because head
/// lines are short: a library search's set-up costs more than the line.
fn find_cr_or_lf(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in words.by_ref() {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let x = u64::from_le_bytes(eight);
        let cr = x ^ (ONES * u64::from(CR));
        let lf = x ^ (ONES * u64::from(LF));
        // Has-zero-byte of each XOR: the lowest flagged byte is exact (a borrow can only
        // flag bytes above a real match), and little-endian puts the first byte lowest.
        let found = (cr.wrapping_sub(ONES) & !cr | lf.wrapping_sub(ONES) & !lf) & HIGHS;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&byte| byte == CR || byte == LF)
        .map(|at| offset + at)
}

/// `bytes` are all field-value bytes. Eight at a time: a word passes when none of its bytes
/// is below 0x20 or equal to DEL (HTAB, the one control allowed, sends its word to the
/// byte-wise check). Bytes of 0x80 and above are obs-text and pass (RFC 9110 §5.5).
fn all_field_value_bytes(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    for word in words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let x = u64::from_ne_bytes(eight);
        // A byte below 0x20 (Mycroft's has-less-than), or a byte equal to 0x7F (has-zero
        // of x XOR DEL): either may be a false alarm next to a real one, never a miss.
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        let del = x ^ (ONES * 0x7f);
        let is_del = del.wrapping_sub(ONES) & !del & HIGHS;
        if (below_space | is_del) != 0 && !word.iter().all(|&byte| is_field_value_byte(byte)) {
            return false;
        }
    }
    tail.iter().all(|&byte| is_field_value_byte(byte))
}

/// RFC 9110 §5.6.3: OWS is SP and HTAB, nothing else (waitress CVE-2019-16789).
const fn is_ows(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t')
}

/// `bytes` without leading and trailing SP/HTAB.
fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !is_ows(*first) {
            break;
        }
        bytes = rest;
    }
    while let [rest @ .., last] = bytes {
        if !is_ows(*last) {
            break;
        }
        bytes = rest;
    }
    bytes
}

/// Split at the first SP: the bytes before it and the bytes after it.
fn split_at_space(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = bytes.iter().position(|&byte| byte == b' ')?;
    let (before, after) = bytes.split_at_checked(space)?;
    Some((before, after.get(1..)?))
}

/// RFC 9112 §3.2: a target has no CTL, SP or DEL (NUL included, SPEC B1 row 16). obs-text
/// and '#' pass only by leniency.
const fn is_bad_target_byte(byte: u8) -> bool {
    match byte {
        0x00..=0x20 | 0x7f => true,
        0x80..=0xff => !LENIENCY.obs_text_in_target,
        b'#' => !LENIENCY.fragment_in_target,
        _ => false,
    }
}

/// Rule 4: `method SP request-target SP HTTP-version` (RFC 9112 §3), spans relative to `line`.
fn parse_request_line(line: &[u8]) -> Result<RequestLine, ProtoError> {
    let (method, rest) = split_at_space(line).ok_or(ProtoError::InvalidStartLine)?;
    if method.is_empty() || !method.iter().all(|&byte| is_tchar(byte)) {
        return Err(ProtoError::InvalidStartLine);
    }
    // waitress refuses `get`; RFC 9110 §9.1 methods are case-sensitive and registered ones
    // are upper-case.
    if method.iter().any(u8::is_ascii_lowercase) {
        return Err(ProtoError::MalformedMethod);
    }
    let (target, version) = match split_at_space(rest) {
        Some((target, version)) => (target, Some(version)),
        None => (rest, None),
    };
    // An empty target means two spaces in a row, or a space with nothing after it.
    if target.is_empty() {
        return Err(ProtoError::InvalidStartLine);
    }
    if target.iter().any(|&byte| is_bad_target_byte(byte)) {
        return Err(ProtoError::BadUri);
    }
    let Some(version) = version else {
        return Err(ProtoError::MissingVersion); // HTTP/0.9, SPEC D11.
    };
    let method_end = method.len();
    let target_start = method_end + 1;
    Ok(RequestLine {
        method: Span::new(0, method_end),
        target: Span::new(target_start, target_start + target.len()),
        version: parse_version(version)?,
    })
}

/// RFC 9112 §2.3: `HTTP-version = "HTTP/" DIGIT "." DIGIT`, case-sensitive.
fn parse_version(version: &[u8]) -> Result<Version, ProtoError> {
    match *version {
        [b'H', b'T', b'T', b'P', b'/', major @ b'0'..=b'9', b'.', minor @ b'0'..=b'9'] => {
            match (major, minor) {
                (b'1', b'0') => Ok(Version::Http10),
                (b'1', _) => Ok(Version::Http11),
                // RFC 9110 §15.6.6: a major version we do not speak.
                _ => Err(ProtoError::UnsupportedVersion),
            }
        }
        _ => Err(ProtoError::InvalidStartLine),
    }
}

/// Rule 5: `field-name ":" OWS field-value OWS` (RFC 9112 §5), spans relative to `line`, and
/// whether the name holds a `_`.
fn parse_field_line(line: &[u8]) -> Result<(Field, bool), ProtoError> {
    let (name_len, underscore) = name_prefix(line);
    let rest = line.get(name_len..).unwrap_or_default();
    match rest.split_first() {
        Some((b':', _)) if name_len > 0 => {}
        Some((&byte, after)) if name_len > 0 && is_ows(byte) => {
            // RFC 9112 §5.1: whitespace between the name and the colon MUST be refused.
            let colon_follows = after
                .iter()
                .find(|&&byte| !is_ows(byte))
                .is_some_and(|&byte| byte == b':');
            return Err(if colon_follows {
                ProtoError::SpaceBeforeColon
            } else {
                ProtoError::InvalidHeader
            });
        }
        // No colon, an empty name, or a byte that is not a tchar in the name.
        _ => return Err(ProtoError::InvalidHeader),
    }
    let value_start = name_len + 1;
    let value = line.get(value_start..).unwrap_or_default();
    // RFC 9110 §5.5: CR, LF and NUL MUST be refused; other CTLs and DEL are not field bytes.
    if !all_field_value_bytes(value) {
        return Err(ProtoError::InvalidHeader);
    }
    let field = Field {
        name: Span::new(0, name_len),
        value: trimmed_value(value).shifted(value_start),
    };
    Ok((field, underscore))
}

/// Rule 5: the span of `value` without leading and trailing SP/HTAB (RFC 9110 §5.6.3); an
/// all-whitespace value gives an empty span at its end.
fn trimmed_value(value: &[u8]) -> Span {
    let leading = value.iter().take_while(|&&byte| is_ows(byte)).count();
    let trailing = value.iter().rev().take_while(|&&byte| is_ows(byte)).count();
    let end = (value.len() - trailing).max(leading);
    Span::new(leading, end)
}

/// RFC 9110 §8.6: `Content-Length = 1*DIGIT`, ASCII digits only (leading zeros allowed),
/// with checked overflow. Never `str::parse`, which takes a leading `+` (hyper
/// CVE-2021-32715, waitress CVE-2022-24761).
fn parse_content_length(value: &[u8]) -> Result<u64, ProtoError> {
    if value.is_empty() {
        return Err(ProtoError::InvalidContentLength);
    }
    value
        .iter()
        .try_fold(0_u64, |total, &byte| {
            if !byte.is_ascii_digit() {
                return None;
            }
            total.checked_mul(10)?.checked_add(u64::from(byte - b'0'))
        })
        .ok_or(ProtoError::InvalidContentLength)
}

/// The framing a `Transfer-Encoding` value asks for (RFC 9112 §6.1, §7; SPEC B1 row 2).
///
/// The value is split on `,`, each coding trimmed of SP/HTAB only and compared
/// case-insensitively. Checked in this order:
/// 1. `InvalidTransferEncoding` (400) when the list is malformed: an empty coding (stricter
///    than RFC 9110 §5.6.1, on purpose), `chunked` more than once (RFC 9112 §6.1 MUST NOT),
///    or `chunked` present but not last (RFC 9112 §6.3 rule 4 MUST 400).
/// 2. `TransferEncodingNotImplemented` (501) when any other coding is present (RFC 9112 §6.1
///    SHOULD 501): `gzip`, `identity`, `gzip, chunked`, `\x85chunked`, `chunked;a=b`.
/// 3. Otherwise the value is exactly `chunked`: [`BodyKind::Chunked`]. There is never a
///    fall-back to Content-Length (gunicorn CVE-2024-6827).
fn transfer_coding(value: &[u8]) -> Result<BodyKind, ProtoError> {
    let mut chunked = 0_usize;
    let mut last_is_chunked = false;
    let mut empty = false;
    let mut unknown = false;
    for coding in value.split(|&byte| byte == b',') {
        let coding = trim_ows(coding);
        last_is_chunked = coding.eq_ignore_ascii_case(b"chunked");
        if coding.is_empty() {
            empty = true;
        } else if last_is_chunked {
            chunked += 1;
        } else {
            unknown = true;
        }
    }
    if empty || chunked > 1 || (chunked == 1 && !last_is_chunked) {
        return Err(ProtoError::InvalidTransferEncoding);
    }
    if unknown {
        return Err(ProtoError::TransferEncodingNotImplemented);
    }
    Ok(BodyKind::Chunked)
}

/// RFC 9112 §3.2 / RFC 3986 §3.2.2–3.2.3: `Host = uri-host [ ":" port ]`, where uri-host is
/// an IP-literal in brackets or a reg-name (IPv4 addresses are reg-names), and port is
/// `*DIGIT`. An empty value is valid (RFC 9112 §3.2: a target without an authority).
fn is_valid_host(value: &[u8]) -> bool {
    // The common case first, a word at a time: a name of letters, digits, `-` and `.` (all
    // reg-name bytes), then nothing or a port.
    let plain = find_byte_in_words(value, ends_plain_host, ends_plain_host_bytes);
    match value.split_at_checked(plain) {
        Some((_, [])) => return true,
        Some((_, [b':', port @ ..])) => return port.iter().all(u8::is_ascii_digit),
        _ => {}
    }
    let port = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&byte| byte == b']') else {
            return false;
        };
        let Some((literal, after)) = rest.split_at_checked(close) else {
            return false;
        };
        if !is_ip_literal(literal) {
            return false;
        }
        after.strip_prefix(b"]").unwrap_or_default()
    } else {
        let name_end = value
            .iter()
            .position(|&byte| byte == b':')
            .unwrap_or(value.len());
        let Some((name, after)) = value.split_at_checked(name_end) else {
            return false;
        };
        if !is_reg_name(name) {
            return false;
        }
        after
    };
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// RFC 3986 §2.3, §2.1: unreserved characters and sub-delims (§2.2) or pct-encoded.
fn is_reg_name(name: &[u8]) -> bool {
    let mut bytes = name.iter();
    while let Some(&byte) = bytes.next() {
        let ok = match byte {
            b'%' => matches!(
                (bytes.next(), bytes.next()),
                (Some(high), Some(low)) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit()
            ),
            _ => is_unreserved_or_sub_delim(byte),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// RFC 3986 §2.3 unreserved / §2.2 sub-delims.
const fn is_unreserved_or_sub_delim(byte: u8) -> bool {
    matches!(
        byte,
        b'a'..=b'z'
            | b'A'..=b'Z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
    )
}

/// RFC 3986 §3.2.2: the inside of `[...]`, an IPv6 address or `v` HEXDIG "." (`IPvFuture`).
fn is_ip_literal(literal: &[u8]) -> bool {
    if let Some(future) = literal
        .strip_prefix(b"v")
        .or_else(|| literal.strip_prefix(b"V"))
    {
        let hex = future
            .iter()
            .take_while(|byte| byte.is_ascii_hexdigit())
            .count();
        return match future.get(hex..).and_then(|rest| rest.split_first()) {
            Some((b'.', tail)) if hex > 0 && !tail.is_empty() => tail
                .iter()
                .all(|&byte| byte == b':' || is_unreserved_or_sub_delim(byte)),
            _ => false,
        };
    }
    std::str::from_utf8(literal).is_ok_and(|text| text.parse::<std::net::Ipv6Addr>().is_ok())
}

/// The authority of an absolute-form target (`scheme "://" authority ...`, RFC 9112 §3.2.2,
/// RFC 3986 §3), without its userinfo (RFC 9112 §3.2: Host excludes it). `None` for the
/// other forms.
fn absolute_form_authority(target: &[u8]) -> Option<&[u8]> {
    // An origin-form target (`/...`, nearly all of them) fails the scheme's first byte test
    // below; looking at that byte first spares the search for a colon.
    if !target.first()?.is_ascii_alphabetic() {
        return None;
    }
    let colon = target.iter().position(|&byte| byte == b':')?;
    let (scheme, rest) = target.split_at_checked(colon)?;
    // RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    let (first, others) = scheme.split_first()?;
    let is_scheme = first.is_ascii_alphabetic()
        && others
            .iter()
            .all(|&byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'-' | b'.'));
    if !is_scheme {
        return None;
    }
    let after = rest.strip_prefix(b"://")?;
    let end = after
        .iter()
        .position(|&byte| matches!(byte, b'/' | b'?' | b'#'))
        .unwrap_or(after.len());
    let authority = after.get(..end)?;
    match authority.iter().rposition(|&byte| byte == b'@') {
        Some(at) => authority.get(at + 1..),
        None => Some(authority),
    }
}

#[cfg(test)]
mod tests {
    use super::{
        all_field_value_bytes, ctl_bytes, ends_plain_host, ends_plain_host_bytes, ends_plain_name,
        ends_plain_name_bytes, ends_target, ends_target_bytes, find_byte, find_cr_or_lf, is_ctl,
        is_field_value_byte, is_tchar, name_prefix, short_name_prefix, BodyKind, HeadParser,
        ProtoError, RequestHead, Version,
    };
    use crate::limits::Limits;
    use proptest::prelude::*;

    type Verdict = Result<Option<RequestHead>, ProtoError>;

    /// Appended after a head for the pipelined run: a bare CR and a NUL first, so any look
    /// past the head would turn into an error.
    const PIPELINED: &[u8] = b"\r\x00 GET / HTTP/1.1\n";

    fn limits() -> Limits {
        Limits::default()
    }

    fn run_whole(limits: Limits, input: &[u8]) -> Verdict {
        HeadParser::new(limits).parse(input)
    }

    fn run_split(limits: Limits, input: &[u8], at: usize) -> Verdict {
        let mut parser = HeadParser::new(limits);
        match parser.parse(&input[..at]) {
            Ok(None) => parser.parse(input),
            early => early,
        }
    }

    /// Feed one byte at a time: the first verdict that is not "need more", and how many bytes
    /// had been fed when it came.
    fn run_bytewise(limits: Limits, input: &[u8]) -> (Verdict, usize) {
        let mut parser = HeadParser::new(limits);
        for fed in 1..=input.len() {
            match parser.parse(&input[..fed]) {
                Ok(None) => {}
                verdict => return (verdict, fed),
            }
        }
        (Ok(None), input.len())
    }

    /// Runs `input` four ways (h11's `tr`, hyper's `all_async_cases`): whole, one byte at a
    /// time, split in two at every index, and followed by pipelined bytes. All four must
    /// agree. `input` is exactly one complete head, or a refused one.
    fn check_with(limits: Limits, input: &[u8]) -> Result<RequestHead, ProtoError> {
        let shown = String::from_utf8_lossy(input).into_owned();
        let whole = match run_whole(limits, input) {
            Ok(Some(head)) => {
                assert_eq!(
                    head.head_len(),
                    input.len(),
                    "{shown:?}: head shorter than input"
                );
                Ok(head)
            }
            Ok(None) => panic!("{shown:?}: incomplete"),
            Err(err) => Err(err),
        };
        let expected = whole.clone().map(Some);
        let (bytewise, fed) = run_bytewise(limits, input);
        assert_eq!(bytewise, expected, "{shown:?}: one byte at a time");
        if whole.is_ok() {
            assert_eq!(fed, input.len(), "{shown:?}: complete before its last byte");
        }
        for at in 0..=input.len() {
            assert_eq!(
                run_split(limits, input, at),
                expected,
                "{shown:?}: split at {at}"
            );
        }
        let mut pipelined = input.to_vec();
        pipelined.extend_from_slice(PIPELINED);
        assert_eq!(
            run_whole(limits, &pipelined),
            expected,
            "{shown:?}: pipelined"
        );
        whole
    }

    fn check(input: &[u8]) -> Result<RequestHead, ProtoError> {
        check_with(limits(), input)
    }

    fn ok(input: &[u8]) -> RequestHead {
        check(input).unwrap_or_else(|err| {
            panic!("{:?}: refused with {err:?}", String::from_utf8_lossy(input))
        })
    }

    fn err(input: &[u8]) -> ProtoError {
        check(input).expect_err(&format!("{:?}: accepted", String::from_utf8_lossy(input)))
    }

    /// Asserts that `input` and each of its prefixes, fed whole or byte by byte, need more.
    fn incomplete_with(limits: Limits, input: &[u8]) {
        assert_eq!(run_whole(limits, input), Ok(None));
        assert_eq!(run_bytewise(limits, input), (Ok(None), input.len()));
    }

    /// The error `input` gets when fed whole, which must come although the head is not
    /// complete (answered at once, SPEC D11), and come at the same byte when fed bytewise.
    fn early_err(input: &[u8]) -> ProtoError {
        let whole = run_whole(limits(), input).expect_err("expected an error");
        assert_eq!(run_bytewise(limits(), input), (Err(whole), input.len()));
        whole
    }

    /// A head: `start` line, then each field line, then the empty line.
    fn head_of(start: &[u8], fields: &[&[u8]]) -> Vec<u8> {
        let mut out = start.to_vec();
        out.extend_from_slice(b"\r\n");
        for field in fields {
            out.extend_from_slice(field);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn h11(fields: &[&[u8]]) -> Vec<u8> {
        head_of(b"POST /x HTTP/1.1", fields)
    }

    fn h10(fields: &[&[u8]]) -> Vec<u8> {
        head_of(b"POST /x HTTP/1.0", fields)
    }

    /// One case per line: the input, then the error it must get.
    macro_rules! rejects {
        ($($input:expr => $err:ident),* $(,)?) => {
            $(assert_eq!(
                err(&$input),
                ProtoError::$err,
                "{:?}",
                String::from_utf8_lossy(&$input)
            );)*
        };
    }

    /// One case per line: the input, then the body framing it must get.
    macro_rules! frames {
        ($($input:expr => $body:expr),* $(,)?) => {
            $(assert_eq!(ok(&$input).body(), $body, "{:?}", String::from_utf8_lossy(&$input));)*
        };
    }

    fn fields(head: &RequestHead) -> Vec<(Vec<u8>, Vec<u8>)> {
        head.headers()
            .map(|(name, value)| (name.to_vec(), value.to_vec()))
            .collect()
    }

    // ---- accepted heads ----

    #[test]
    fn parses_a_simple_get() {
        let head = ok(b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Y:  z z \t\r\n\r\n");
        assert_eq!(head.method(), b"GET");
        assert_eq!(head.target(), b"/a?b=c");
        assert_eq!(head.version(), Version::Http11);
        assert_eq!(head.version().as_str(), "HTTP/1.1");
        assert_eq!(
            fields(&head),
            vec![
                (b"Host".to_vec(), b"example.com".to_vec()),
                (b"X-Y".to_vec(), b"z z".to_vec())
            ]
        );
        assert_eq!(head.headers().len(), 2);
        assert_eq!(head.body(), BodyKind::Empty);
        assert!(!head.is_head());
        assert_eq!(head.as_bytes().len(), head.head_len());
    }

    #[test]
    fn header_lookup_is_case_insensitive_first_match() {
        let head = ok(&h11(&[b"x-a: 1", b"X-A: 2", b"Empty:", b"Blank: \t "]));
        assert_eq!(head.header(b"X-a"), Some(&b"1"[..]));
        assert_eq!(head.header(b"empty"), Some(&b""[..]));
        assert_eq!(head.header(b"blank"), Some(&b""[..]));
        assert_eq!(head.header(b"missing"), None);
        // Repeated fields all come back, in order, names as sent.
        assert_eq!(
            fields(&head)[..2],
            [
                (b"x-a".to_vec(), b"1".to_vec()),
                (b"X-A".to_vec(), b"2".to_vec())
            ]
        );
    }

    #[test]
    fn versions() {
        assert_eq!(ok(b"GET / HTTP/1.0\r\n\r\n").version(), Version::Http10);
        assert_eq!(ok(b"GET / HTTP/1.1\r\n\r\n").version(), Version::Http11);
        assert_eq!(ok(b"GET / HTTP/1.2\r\n\r\n").version(), Version::Http11);
        assert_eq!(ok(b"GET / HTTP/1.9\r\n\r\n").version(), Version::Http11);
        assert_eq!(Version::Http10.as_str(), "HTTP/1.0");
        rejects![
            *b"GET / HTTP/2.0\r\n\r\n" => UnsupportedVersion,
            *b"GET / HTTP/0.9\r\n\r\n" => UnsupportedVersion,
            *b"GET / HTTP/9.9\r\n\r\n" => UnsupportedVersion,
        ];
    }

    #[test]
    fn methods_and_targets() {
        for method in [
            &b"GET"[..],
            b"HEAD",
            b"M-SEARCH",
            b"PROPFIND",
            b"X!#$%&'*+.^_`|~9",
        ] {
            let mut input = method.to_vec();
            input.extend_from_slice(b" * HTTP/1.1\r\n\r\n");
            assert_eq!(ok(&input).method(), method);
        }
        assert!(ok(b"HEAD / HTTP/1.1\r\n\r\n").is_head());
        // obs-text and '#' pass (waitress); the fragment stays in the raw target.
        assert_eq!(
            ok(b"GET /\xe9t\xe9#frag HTTP/1.1\r\n\r\n").target(),
            b"/\xe9t\xe9#frag"
        );
        assert_eq!(ok(b"CONNECT h:443 HTTP/1.1\r\n\r\n").target(), b"h:443");
        assert_eq!(ok(b"OPTIONS * HTTP/1.1\r\n\r\n").target(), b"*");
    }

    #[test]
    fn one_leading_crlf_is_skipped_and_counted() {
        let head = ok(b"\r\nGET / HTTP/1.1\r\n\r\n");
        assert_eq!(head.method(), b"GET");
        assert_eq!(head.head_len(), 20);
    }

    #[test]
    fn body_framing() {
        frames![
            h11(&[]) => BodyKind::Empty,
            h11(&[b"Content-Length: 0"]) => BodyKind::Length(0),
            h11(&[b"Content-Length: 0005"]) => BodyKind::Length(5),
            h11(&[b"content-length:\t12 "]) => BodyKind::Length(12),
            h11(&[b"Transfer-Encoding: chunked"]) => BodyKind::Chunked,
            h11(&[b"transfer-encoding: \tCHUNKED\t"]) => BodyKind::Chunked,
            h10(&[b"Content-Length: 3"]) => BodyKind::Length(3),
            // A dropped `_` name is not a framing header.
            h11(&[b"Content_Length: 5", b"Transfer_Encoding: chunked"]) => BodyKind::Empty,
        ];
    }

    #[test]
    fn connection_and_expect_predicates() {
        let close = ok(&h11(&[b"Connection: CLOSE"]));
        assert!(close.wants_close() && !close.wants_keep_alive());
        assert!(!ok(&h11(&[b"Connection: keep-alive, close"])).wants_close());
        assert!(!ok(&h11(&[b"Connection: close", b"Connection: close"])).wants_close());
        assert!(!ok(&h10(&[b"Connection: close"])).wants_close());
        assert!(ok(&h10(&[b"Connection: Keep-Alive"])).wants_keep_alive());
        assert!(!ok(&h10(&[b"Connection: keep-alive, x"])).wants_keep_alive());
        assert!(!ok(&h11(&[b"Connection: keep-alive"])).wants_keep_alive());
        assert!(ok(&h11(&[b"Expect: 100-Continue"])).wants_continue());
        assert!(!ok(&h10(&[b"Expect: 100-continue"])).wants_continue());
        assert!(!ok(&h11(&[b"Expect: 100-continue, x"])).wants_continue());
        assert!(!ok(&h11(&[])).wants_continue());
        // Only the whole value counts, after SP/HTAB trimming.
        assert!(ok(&h11(&[b"Connection: \tclose "])).wants_close());
        // The names in any case, among other fields; a dropped `_` name is not one.
        let mixed = ok(&h11(&[
            b"X-A: 1",
            b"cOnNeCtIoN: close",
            b"EXPECT: 100-continue",
        ]));
        assert!(mixed.has_connection() && mixed.wants_close() && mixed.wants_continue());
        let dropped = ok(&h11(&[b"Connection_: close", b"Expect_: 100-continue"]));
        assert!(!dropped.has_connection() && !dropped.wants_close());
        assert!(!dropped.wants_continue());
        assert!(!ok(&h11(&[b"X-A: 1"])).has_connection());
    }

    #[test]
    fn parser_resets_after_a_head_and_parses_pipelined_requests() {
        let stream = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\nContent-Length: 1\r\n\r\nxGET /3 HTTP/1.1\r\n\r\n";
        let mut parser = HeadParser::new(limits());
        let first = parser.parse(stream).unwrap().unwrap();
        assert_eq!(first.target(), b"/1");
        let rest = &stream[first.head_len()..];
        let second = parser.parse(rest).unwrap().unwrap();
        assert_eq!(
            (second.target(), second.body()),
            (&b"/2"[..], BodyKind::Length(1))
        );
        let rest = &rest[second.head_len() + 1..];
        let third = parser.parse(rest).unwrap().unwrap();
        assert_eq!(third.head_len(), rest.len());
    }

    #[test]
    fn errors_are_sticky_until_reset() {
        let mut parser = HeadParser::new(limits());
        assert_eq!(
            parser.parse(b"get / HTTP/1.1\r\n"),
            Err(ProtoError::MalformedMethod)
        );
        assert_eq!(
            parser.parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(ProtoError::MalformedMethod)
        );
        parser.reset();
        assert!(parser.parse(b"GET / HTTP/1.1\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn a_shorter_buffer_is_scanned_afresh() {
        let mut parser = HeadParser::new(limits());
        assert_eq!(parser.parse(b"GET / HTTP/1.1\r\nX: y"), Ok(None));
        let head = parser.parse(b"GET /b HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.target(), b"/b");
    }

    #[test]
    fn error_version_follows_waitress() {
        let version_after = |input: &[u8]| {
            let mut parser = HeadParser::new(limits());
            assert!(parser.parse(input).is_err());
            parser.error_version()
        };
        // Request-line, field-syntax and 431 errors: HTTP/1.0.
        assert_eq!(version_after(b"GET / HTTP/1.1 \r\n\r\n"), Version::Http10);
        assert_eq!(
            version_after(b"GET / HTTP/1.1\r\nA : b\r\n\r\n"),
            Version::Http10
        );
        assert_eq!(version_after(b"GET / HTTP/1.1\r\nA: b\nc"), Version::Http10);
        let mut small = limits();
        small.max_request_header_size = 30;
        let mut parser = HeadParser::new(small);
        assert_eq!(
            parser.parse(b"GET / HTTP/1.1\r\nX: 0123456789\r\n\r\n"),
            Err(ProtoError::HeadTooLarge)
        );
        assert_eq!(parser.error_version(), Version::Http10);
        // Field-semantics and framing errors: the request's own version.
        assert_eq!(
            version_after(&h11(&[b"Content-Length: x"])),
            Version::Http11
        );
        assert_eq!(
            version_after(&h11(&[b"Host: a", b"Host: b"])),
            Version::Http11
        );
        assert_eq!(
            version_after(&h11(&[b"Transfer-Encoding: gzip"])),
            Version::Http11
        );
        assert_eq!(
            version_after(&h11(&[b"Content-Length: 9999999999999"])),
            Version::Http11
        );
        assert_eq!(
            version_after(&h10(&[b"Content-Length: -1"])),
            Version::Http10
        );
        // No error yet.
        let mut parser = HeadParser::new(limits());
        assert_eq!(parser.error_version(), Version::Http10);
        assert_eq!(parser.parse(b"GET / HTTP/1.1\r\n"), Ok(None));
        assert_eq!(parser.error_version(), Version::Http11);
    }

    // ---- limits at N-1, N, N+1 ----

    /// A complete head of exactly `len` bytes (len >= 24): a request line, one padded field.
    fn head_of_len(len: usize) -> Vec<u8> {
        let mut out = b"GET / HTTP/1.1\r\nX: ".to_vec();
        out.resize(len - 4, b'a');
        out.extend_from_slice(b"\r\n\r\n");
        assert_eq!(out.len(), len);
        out
    }

    #[test]
    fn limit_max_request_header_size() {
        const N: usize = 100;
        let small = Limits {
            max_request_header_size: N,
            ..limits()
        };
        assert!(check_with(small, &head_of_len(N - 1)).is_ok());
        assert_eq!(
            check_with(small, &head_of_len(N)),
            Err(ProtoError::HeadTooLarge)
        );
        assert_eq!(
            check_with(small, &head_of_len(N + 1)),
            Err(ProtoError::HeadTooLarge)
        );
        // Unterminated: N-1 bytes need more; the N-th byte is an error at once.
        let long = head_of_len(N + 10);
        incomplete_with(small, &long[..N - 1]);
        assert_eq!(run_whole(small, &long[..N]), Err(ProtoError::HeadTooLarge));
        assert_eq!(
            run_bytewise(small, &long[..=N]),
            (Err(ProtoError::HeadTooLarge), N)
        );
        // An ignored leading CRLF counts.
        let mut led = b"\r\n".to_vec();
        led.extend_from_slice(&head_of_len(N - 2));
        assert_eq!(check_with(small, &led), Err(ProtoError::HeadTooLarge));
        // Pipelined bytes after a head of N-1 bytes do not count.
        let mut piped = head_of_len(N - 1);
        piped.extend_from_slice(&[b'x'; 50]);
        assert!(run_whole(small, &piped).unwrap().is_some());
    }

    /// A request line of exactly `len` bytes including its CRLF (len >= 16).
    fn line_of_len(len: usize) -> Vec<u8> {
        let mut out = b"GET /".to_vec();
        out.resize(len - 11, b'a');
        out.extend_from_slice(b" HTTP/1.1\r\n");
        assert_eq!(out.len(), len);
        out
    }

    #[test]
    fn limit_max_request_line() {
        const M: usize = 64;
        let small = Limits {
            max_request_line: M,
            ..limits()
        };
        for (len, expected) in [
            (M - 1, None),
            (M, None),
            (M + 1, Some(ProtoError::RequestLineTooLong)),
        ] {
            let mut input = line_of_len(len);
            input.extend_from_slice(b"\r\n");
            assert_eq!(check_with(small, &input).err(), expected, "line of {len}");
        }
        // Without its CRLF: M-1 bytes need more, the M-th byte is an error at once.
        let long = [b'A'; M + 5];
        incomplete_with(small, &long[..M - 1]);
        assert_eq!(
            run_whole(small, &long[..M]),
            Err(ProtoError::RequestLineTooLong)
        );
        // The limit is on the request line only, and after a skipped CRLF it starts afresh.
        let mut input = b"\r\n".to_vec();
        input.extend_from_slice(&line_of_len(M));
        input.extend_from_slice(&[b'X'; M * 2]);
        input.extend_from_slice(b": y\r\n\r\n");
        assert!(check_with(small, &input).is_ok());
    }

    fn head_with_fields(count: usize, name: &[u8]) -> Vec<u8> {
        let lines: Vec<Vec<u8>> = (0..count)
            .map(|index| {
                let mut line = name.to_vec();
                line.extend_from_slice(format!(": {index}").as_bytes());
                line
            })
            .collect();
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        h11(&refs)
    }

    #[test]
    fn limit_max_request_headers() {
        const F: usize = 10;
        let small = Limits {
            max_request_headers: F,
            ..limits()
        };
        for name in [&b"X-A"[..], b"X_A"] {
            let kept = if name.contains(&b'_') { 0 } else { F };
            assert_eq!(
                check_with(small, &head_with_fields(F - 1, name))
                    .unwrap()
                    .headers()
                    .len(),
                kept.saturating_sub(1)
            );
            assert_eq!(
                check_with(small, &head_with_fields(F, name))
                    .unwrap()
                    .headers()
                    .len(),
                kept
            );
            assert_eq!(
                check_with(small, &head_with_fields(F + 1, name)),
                Err(ProtoError::TooManyHeaders)
            );
        }
        // Field F+1 is refused at its first byte.
        let input = head_with_fields(F + 1, b"X");
        let at = input.len() - b"X: 10\r\n\r\n".len();
        assert_eq!(run_whole(small, &input[..at]), Ok(None));
        assert_eq!(
            run_whole(small, &input[..=at]),
            Err(ProtoError::TooManyHeaders)
        );
        let zero = Limits {
            max_request_headers: 0,
            ..limits()
        };
        assert!(check_with(zero, b"GET / HTTP/1.1\r\n\r\n").is_ok());
        assert_eq!(
            check_with(zero, &h11(&[b"A: b"])),
            Err(ProtoError::TooManyHeaders)
        );
    }

    #[test]
    fn limit_max_request_body_size() {
        const B: u64 = 1000;
        let small = Limits {
            max_request_body_size: B,
            ..limits()
        };
        let cl = |n: u64| h11(&[format!("Content-Length: {n}").as_bytes()]);
        assert_eq!(
            check_with(small, &cl(B - 1)).unwrap().body(),
            BodyKind::Length(B - 1)
        );
        assert_eq!(check_with(small, &cl(B)), Err(ProtoError::BodyTooLarge));
        assert_eq!(check_with(small, &cl(B + 1)), Err(ProtoError::BodyTooLarge));
        assert_eq!(ProtoError::BodyTooLarge.status(), 413);
    }

    // ---- SPEC Part B rows (heads only; rows 5-7 are chunked bodies, decode.rs) ----

    #[test]
    fn row_1_cl_te_both() {
        rejects![
            h11(&[b"Content-Length: 5", b"Transfer-Encoding: chunked"]) => ContentLengthWithTransferEncoding,
            h11(&[b"Transfer-Encoding: chunked", b"Content-Length: 5"]) => ContentLengthWithTransferEncoding,
            h11(&[b"Transfer-Encoding: gzip", b"Content-Length: 0"]) => ContentLengthWithTransferEncoding,
        ];
    }

    #[test]
    fn row_2_te_te_obfuscation() {
        rejects![
            h11(&[b"Transfer-Encoding: xchunked"]) => TransferEncodingNotImplemented,
            h11(&[b"Transfer-Encoding: chunked\x0b"]) => InvalidHeader,
            h11(&[b"Transfer-Encoding: \xa0chunked"]) => TransferEncodingNotImplemented,
            h11(&[b"Transfer-Encoding: chunked\x85"]) => TransferEncodingNotImplemented,
            h11(&[b"Transfer-Encoding: \"chunked\""]) => TransferEncodingNotImplemented,
            h11(&[b"Transfer-Encoding : chunked"]) => SpaceBeforeColon,
            h11(&[b"Transfer-Encoding:", b" chunked"]) => ObsFold,
            h11(&[b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"]) => InvalidTransferEncoding,
            h11(&[b"Transfer-Encoding: chunked, chunked"]) => InvalidTransferEncoding,
            h11(&[b"Transfer-Encoding: chunked;a=b"]) => TransferEncodingNotImplemented,
            h11(&[b"Transfer-Encoding: identity"]) => TransferEncodingNotImplemented,
            h11(&[b"Transfer-Encoding: "]) => InvalidTransferEncoding,
            h11(&[b"Transfer-Encoding: ,chunked"]) => InvalidTransferEncoding,
            h11(&[b"Transfer-Encoding: chunked,"]) => InvalidTransferEncoding,
            h11(&[b"Transfer-Encoding: gzip,,chunked"]) => InvalidTransferEncoding,
            h11(&[b"Transfer-Encoding: gzip, gzip"]) => TransferEncodingNotImplemented,
        ];
    }

    #[test]
    fn row_3_duplicate_or_list_cl() {
        rejects![
            h11(&[b"Content-Length: 1", b"Content-Length: 0"]) => DuplicateContentLength,
            h11(&[b"Content-Length: 5", b"content-length: 5"]) => DuplicateContentLength,
            h11(&[b"Content-Length: 1, 2"]) => InvalidContentLength,
            h11(&[b"Content-Length: 5, 5"]) => InvalidContentLength,
        ];
    }

    #[test]
    fn row_4_lenient_cl_digits() {
        for value in [
            &b"+5"[..],
            b"-1",
            b"-0",
            b"0x5",
            b"1_0",
            b"1 0",
            b"5x",
            b"",
            b"\xd9\xa1",
            b"1.0",
            b"\xa05",
            b"5\x85",
            b"18446744073709551616",
            b"999999999999999999999999999999",
        ] {
            let mut line = b"Content-Length: ".to_vec();
            line.extend_from_slice(value);
            rejects![h11(&[&line]) => InvalidContentLength];
        }
        frames![
            h11(&[b"Content-Length: 005"]) => BodyKind::Length(5),
            h11(&[b"Content-Length: 000000000000000000000000000007"]) => BodyKind::Length(7),
        ];
        let unlimited = Limits {
            max_request_body_size: u64::MAX,
            ..limits()
        };
        let max = h11(&[b"Content-Length: 18446744073709551614"]);
        assert_eq!(
            check_with(unlimited, &max).unwrap().body(),
            BodyKind::Length(u64::MAX - 1)
        );
        rejects![h11(&[b"Content-Length: 18446744073709551615"]) => BodyTooLarge];
    }

    #[test]
    fn row_8_bare_lf_line_end() {
        rejects![
            *b"GET / HTTP/1.1\n\n" => BareCrOrLf,
            *b"GET / HTTP/1.1\r\nX: a\nContent-Length: 0\r\n\r\n" => BareCrOrLfInHeader,
            *b"GET / HTTP/1.1\r\nX: a\r\n\n" => BareCrOrLfInHeader,
            *b"\nGET / HTTP/1.1\r\n\r\n" => BareCrOrLf,
        ];
        // Answered at once, not after a terminator that may never come (SPEC D11).
        assert_eq!(
            early_err(b"GET / HTTP/1.1\r\nX: a\n"),
            ProtoError::BareCrOrLfInHeader
        );
        assert_eq!(early_err(b"GET / HTTP/1.1\n"), ProtoError::BareCrOrLf);
    }

    #[test]
    fn row_9_bare_cr() {
        rejects![
            *b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n" => BareCrOrLfInHeader,
            *b"GET / HTTP/1.1\r\n\rX\r\n\r\n" => BareCrOrLfInHeader,
            *b"GET /\r HTTP/1.1\r\n\r\n" => BareCrOrLf,
            *b"\rGET / HTTP/1.1\r\n\r\n" => BareCrOrLf,
            *b"\r\n\rGET / HTTP/1.1\r\n\r\n" => BareCrOrLf,
        ];
        // A CR at the end of what has arrived waits for its LF.
        incomplete_with(limits(), b"GET / HTTP/1.1\r\nX: a\r");
        assert_eq!(
            early_err(b"GET / HTTP/1.1\r\nX: a\rb"),
            ProtoError::BareCrOrLfInHeader
        );
    }

    #[test]
    fn row_10_field_value_characters() {
        for bad in [&b"\x00"[..], b"\x01", b"\x1f", b"\x7f", b"\x0b", b"\x0c"] {
            let mut line = b"X: a".to_vec();
            line.extend_from_slice(bad);
            line.extend_from_slice(b"b");
            rejects![h11(&[&line]) => InvalidHeader];
        }
        let head = ok(&h11(&[
            b"X: \x85admin\xa0",
            b"Y:\ta \t b\t",
            b"Z:",
            b"W: !~\x80\xff",
        ]));
        assert_eq!(head.header(b"x"), Some(&b"\x85admin\xa0"[..]));
        assert_eq!(head.header(b"y"), Some(&b"a \t b"[..]));
        assert_eq!(head.header(b"z"), Some(&b""[..]));
        assert_eq!(head.header(b"w"), Some(&b"!~\x80\xff"[..]));
    }

    #[test]
    fn row_11_space_before_colon() {
        rejects![
            h11(&[b"Transfer-Encoding : chunked"]) => SpaceBeforeColon,
            h11(&[b"Content-Length\t: 5"]) => SpaceBeforeColon,
            h11(&[b"X \t :"]) => SpaceBeforeColon,
            h11(&[b"X Y: z"]) => InvalidHeader,
            h11(&[b"X "]) => InvalidHeader,
        ];
    }

    #[test]
    fn row_12_invalid_name_characters() {
        for bad in b"\x01\"(),/;<=>?@[\\]{}\x7f\x80\xff".iter().chain(&[0_u8]) {
            let line = [b'X', *bad, b':', b' ', b'v'];
            rejects![h11(&[&line]) => InvalidHeader];
        }
        rejects![
            h11(&[b": empty name"]) => InvalidHeader,
            h11(&[b"no colon"]) => InvalidHeader,
            h11(&[b"nocolon"]) => InvalidHeader,
        ];
        // Names with `_` are dropped, never mapped onto their `-` twins (SPEC §3.4).
        let head = ok(&h11(&[
            b"X-Forwarded-For: a",
            b"X_Forwarded_For: b",
            b"_: c",
        ]));
        assert_eq!(
            fields(&head),
            vec![(b"X-Forwarded-For".to_vec(), b"a".to_vec())]
        );
    }

    #[test]
    fn row_13_obs_fold_rejected() {
        rejects![
            h11(&[b"X: a", b" b"]) => ObsFold,
            h11(&[b"X: a", b"\tb"]) => ObsFold,
            h11(&[b"Transfer-Encoding: gzip,", b" chunked"]) => ObsFold,
        ];
        assert_eq!(
            early_err(b"GET / HTTP/1.1\r\nX: a\r\n "),
            ProtoError::ObsFold
        );
    }

    #[test]
    fn row_14_leading_whitespace() {
        rejects![
            h11(&[b" Content-Length: 1"]) => ObsFold,
            *b"\r\n\r\nGET / HTTP/1.1\r\n\r\n" => LeadingWhitespace,
            *b" GET / HTTP/1.1\r\n\r\n" => LeadingWhitespace,
            *b"\tGET / HTTP/1.1\r\n\r\n" => LeadingWhitespace,
            *b"\x0bGET / HTTP/1.1\r\n\r\n" => LeadingWhitespace,
            *b"\x0cGET / HTTP/1.1\r\n\r\n" => LeadingWhitespace,
            *b"\r\n GET / HTTP/1.1\r\n\r\n" => LeadingWhitespace,
        ];
        assert_eq!(ok(b"\r\nGET / HTTP/1.1\r\n\r\n").target(), b"/");
        incomplete_with(limits(), b"\r\n");
        assert_eq!(early_err(b"\r\n\r\n"), ProtoError::LeadingWhitespace);
    }

    #[test]
    fn row_15_request_line_leniency() {
        rejects![
            *b"GET  / HTTP/1.1\r\n\r\n" => InvalidStartLine,
            *b"GET /  HTTP/1.1\r\n\r\n" => InvalidStartLine,
            *b"GET\t/ HTTP/1.1\r\n\r\n" => InvalidStartLine,
            *b"GET /\tHTTP/1.1\r\n\r\n" => BadUri,
            *b"GET / HTTP/1.1 \r\n\r\n" => InvalidStartLine,
            *b"GET /a b HTTP/1.1\r\n\r\n" => InvalidStartLine,
            *b"GET /\x00 HTTP/1.1\r\n\r\n" => BadUri,
            *b"GET /\x7f HTTP/1.1\r\n\r\n" => BadUri,
            *b"GET  HTTP/1.1\r\n\r\n" => InvalidStartLine,
            *b"G=T / HTTP/1.1\r\n\r\n" => InvalidStartLine,
            *b"G@T / HTTP/1.1\r\n\r\n" => InvalidStartLine,
            *b"get / HTTP/1.1\r\n\r\n" => MalformedMethod,
            *b"Get / HTTP/1.1\r\n\r\n" => MalformedMethod,
            *b"GET / HTTP/1.32\r\n\r\n" => InvalidStartLine,
            *b"GET / http/1.1\r\n\r\n" => InvalidStartLine,
            *b"GET / HTTP/4294967297.1\r\n\r\n" => InvalidStartLine,
            *b"GET / HTTP/.1\r\n\r\n" => InvalidStartLine,
            *b"GET / HTTP/1.\r\n\r\n" => InvalidStartLine,
            *b"GET / HTTP/1.1x\r\n\r\n" => InvalidStartLine,
            *b"GET / HTTP/2.0\r\n\r\n" => UnsupportedVersion,
            *b" / HTTP/1.1\r\n\r\n" => LeadingWhitespace,
            *b"GET\r\n\r\n" => InvalidStartLine,
            *b"\xc7ET / HTTP/1.1\r\n\r\n" => InvalidStartLine,
        ];
        assert_eq!(
            early_err(b"get / HTTP/1.1\r\n"),
            ProtoError::MalformedMethod
        );
    }

    #[test]
    fn row_16_nul_bytes() {
        rejects![
            *b"G\x00T / HTTP/1.1\r\n\r\n" => InvalidStartLine,
            *b"GET /\x00 HTTP/1.1\r\n\r\n" => BadUri,
            *b"GET / HTTP/1.1\x00\r\n\r\n" => InvalidStartLine,
            h11(&[b"X\x00: a"]) => InvalidHeader,
            h11(&[b"X: a\x00"]) => InvalidHeader,
        ];
    }

    #[test]
    fn row_17_long_lines_and_many_fields() {
        // 70 KB URI -> 414; 300 KB field -> 431; 3,000 fields -> 431 (defaults).
        let mut uri = b"GET /".to_vec();
        uri.resize(70_000, b'a');
        uri.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert_eq!(
            run_whole(limits(), &uri),
            Err(ProtoError::RequestLineTooLong)
        );
        let big = head_of_len(300_000);
        assert_eq!(run_whole(limits(), &big), Err(ProtoError::HeadTooLarge));
        let many = head_with_fields(3_000, b"X");
        assert_eq!(run_whole(limits(), &many), Err(ProtoError::TooManyHeaders));
        // A 10 MB line with no CRLF, in 64 KiB reads: refused once the line reaches the limit,
        // never buffered to the end.
        let endless = vec![b'A'; 10 * 1024 * 1024];
        let mut parser = HeadParser::new(limits());
        let refused_at = (1..=160)
            .map(|reads| reads * 65_536)
            .find(|&fed| parser.parse(&endless[..fed]).is_err());
        assert_eq!(refused_at, Some(65_536));
        assert_eq!(parser.parse(&endless), Err(ProtoError::RequestLineTooLong));
    }

    #[test]
    fn row_18_http09_rejected() {
        rejects![
            *b"GET /\r\n\r\n" => MissingVersion,
            *b"GET /\r\nHost: x\r\n\r\n" => MissingVersion,
        ];
        assert_eq!(early_err(b"GET /\r\n"), ProtoError::MissingVersion);
    }

    #[test]
    fn row_19_absolute_form() {
        let accepted: [&[u8]; 7] = [
            b"GET http://good/x HTTP/1.1\r\nHost: good\r\n\r\n",
            b"GET http://good/x HTTP/1.1\r\nHost: GOOD\r\n\r\n",
            b"GET http://good/x HTTP/1.1\r\n\r\n",
            b"GET http://h:8080/ HTTP/1.1\r\nHost: h:8080\r\n\r\n",
            b"GET http://user:pw@h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET https://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET //evil/x HTTP/1.1\r\nHost: good\r\n\r\n",
        ];
        for input in accepted {
            assert!(check(input).is_ok(), "{:?}", String::from_utf8_lossy(input));
        }
        assert_eq!(ok(accepted[0]).target(), b"http://good/x");
        rejects![
            *b"GET http://evil/x HTTP/1.1\r\nHost: good\r\n\r\n" => HostMismatch,
            *b"GET http://h:8080/ HTTP/1.1\r\nHost: h\r\n\r\n" => HostMismatch,
            *b"GET http://h/ HTTP/1.1\r\nHost: h:80\r\n\r\n" => HostMismatch,
            *b"GET http://good#@evil/ HTTP/1.1\r\nHost: evil\r\n\r\n" => HostMismatch,
        ];
    }

    #[test]
    fn row_20_host_rules() {
        rejects![
            h11(&[b"Host: a", b"Host: a"]) => DuplicateHost,
            h11(&[b"Host: a", b"host: b"]) => DuplicateHost,
        ];
        for bad in [
            &b"a b"[..],
            b"a@b",
            b"a/b",
            b"a:b:c",
            b"a:80x",
            b"%4",
            b"%zz",
            b"[::1",
            b"[zz]",
            b"[::1]x",
            b"[::1]:8a",
            b"a\\b",
            b"\x85",
            b"[v1.]",
            b"[v.x]",
            b"a?b",
            b"a#b",
        ] {
            let mut line = b"Host: ".to_vec();
            line.extend_from_slice(bad);
            rejects![h11(&[&line]) => InvalidHost];
        }
        for good in [
            &b""[..],
            b"a",
            b"example.com:8080",
            b"127.0.0.1",
            b"[::1]",
            b"[::1]:80",
            b"[::ffff:1.2.3.4]",
            b"[v1.x:y]",
            b"a%41b",
            b"xn--bcher-kva.example",
            b"a_b~!$&'()*+,;=",
            b"host:",
        ] {
            let mut line = b"Host: ".to_vec();
            line.extend_from_slice(good);
            assert!(
                check(&h11(&[&line])).is_ok(),
                "{:?}",
                String::from_utf8_lossy(good)
            );
        }
        // SPEC D10: no Host on HTTP/1.1 is accepted.
        assert!(ok(b"GET / HTTP/1.1\r\n\r\n").header(b"host").is_none());
    }

    #[test]
    fn row_21_get_without_framing_has_no_body() {
        let input = b"GET / HTTP/1.1\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n";
        let head = run_whole(limits(), input).unwrap().unwrap();
        assert_eq!((head.body(), head.head_len()), (BodyKind::Empty, 18));
        assert_eq!(
            ok(b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").body(),
            BodyKind::Length(5)
        );
    }

    #[test]
    fn row_22_te_http10() {
        rejects![
            h10(&[b"Transfer-Encoding: chunked", b"Content-Length: 5"]) => TransferEncodingHttp10,
            h10(&[b"Transfer-Encoding: chunked"]) => TransferEncodingHttp10,
            h10(&[b"Transfer-Encoding: gzip"]) => TransferEncodingHttp10,
        ];
    }

    // ---- SPEC B1.1: CVEs and short ids ----

    #[test]
    fn cve_2019_16785_bare_lf_in_header() {
        // hdr-lf-in-line: a bare LF hides a second Content-Length.
        rejects![*b"POST / HTTP/1.1\r\nX: x\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n" => BareCrOrLfInHeader];
    }

    #[test]
    fn cve_2019_16786_te_list() {
        rejects![
            h11(&[b"Transfer-Encoding: gzip, chunked"]) => TransferEncodingNotImplemented,
            h11(&[b"Transfer-Encoding: chunked, gzip"]) => InvalidTransferEncoding,
            h11(&[b"Transfer-Encoding: gzip"]) => TransferEncodingNotImplemented,
        ];
    }

    #[test]
    fn cve_2019_16792_dup_cl() {
        dup_cl_diff();
        cl_list_diff();
        cl0_then_extra();
    }

    #[test]
    fn dup_cl_diff() {
        rejects![h11(&[b"Content-Length: 1", b"Content-Length: 2"]) => DuplicateContentLength];
    }

    #[test]
    fn cl_list_diff() {
        rejects![h11(&[b"Content-Length: 1, 2"]) => InvalidContentLength];
    }

    #[test]
    fn cl0_then_extra() {
        // The head ends where it ends: the extra bytes are not part of it.
        let input = b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /x HTTP/1.1\r\n\r\n";
        let head = run_whole(limits(), input).unwrap().unwrap();
        assert_eq!((head.body(), head.head_len()), (BodyKind::Length(0), 38));
    }

    #[test]
    fn dup_cl_same() {
        rejects![h11(&[b"Content-Length: 5", b"Content-Length: 5"]) => DuplicateContentLength];
    }

    #[test]
    fn cve_2019_16789_whitespace_lookalikes() {
        te_x85();
        te_nbsp();
        te_vtab();
        te_ff();
        let head = ok(&h11(&[b"X-User: \x85admin\xa0"]));
        assert_eq!(head.header(b"x-user"), Some(&b"\x85admin\xa0"[..]));
    }

    #[test]
    fn te_x85() {
        rejects![h11(&[b"Transfer-Encoding: \x85chunked"]) => TransferEncodingNotImplemented];
    }

    #[test]
    fn te_nbsp() {
        rejects![h11(&[b"Transfer-Encoding: chunked\xa0"]) => TransferEncodingNotImplemented];
    }

    #[test]
    fn te_vtab() {
        rejects![h11(&[b"Transfer-Encoding: \x0bchunked"]) => InvalidHeader];
    }

    #[test]
    fn te_ff() {
        rejects![h11(&[b"Transfer-Encoding: chunked\x0c"]) => InvalidHeader];
    }

    /// Work done on `input` fed whole and fed one byte at a time.
    fn work_on(input: &[u8]) -> (usize, usize, Verdict) {
        let mut whole = HeadParser::new(limits());
        let verdict = whole.parse(input);
        let mut bytewise = HeadParser::new(limits());
        for fed in 1..=input.len() {
            if bytewise.parse(&input[..fed]) != Ok(None) {
                break;
            }
        }
        (whole.work, bytewise.work, verdict)
    }

    #[test]
    fn cve_2020_5236_linear_time() {
        // Long runs of SP/HTAB/obs-text in a value (what made waitress's regex backtrack),
        // valid or spoilt by one CTL at the very end of the line.
        let pathological = |len: usize, spoilt: bool| {
            let mut out = b"GET / HTTP/1.1\r\nX: a".to_vec();
            while out.len() < len {
                out.extend_from_slice(b" \t\x80\t ");
            }
            out.extend_from_slice(if spoilt {
                b"\x01\r\n\r\n"
            } else {
                b"b\r\n\r\n"
            });
            out
        };
        for spoilt in [false, true] {
            let mut previous = None;
            for len in [32 * 1024, 64 * 1024, 128 * 1024, 250 * 1024] {
                let input = pathological(len, spoilt);
                let (whole, bytewise, verdict) = work_on(&input);
                assert_eq!(verdict.is_err(), spoilt);
                // Each byte: scanned once, validated once, copied or checked once.
                assert!(
                    whole <= 3 * input.len(),
                    "whole: {whole} for {}",
                    input.len()
                );
                // Fed bytewise, a CR may be looked at twice; nothing else is rescanned.
                assert!(
                    bytewise <= 3 * input.len() + 4,
                    "bytewise: {bytewise} for {}",
                    input.len()
                );
                if let Some((previous_len, previous_work)) = previous {
                    // Twice the input, about twice the work: linear, not quadratic.
                    assert!(whole * previous_len <= previous_work * input.len() * 11 / 10);
                }
                previous = Some((input.len(), whole));
            }
        }
    }

    #[test]
    fn cve_2022_24761_lenient_numbers() {
        cl_plus();
        cl_hex();
        cl_underscore();
    }

    #[test]
    fn cl_plus() {
        rejects![h11(&[b"Content-Length: +10"]) => InvalidContentLength];
    }

    #[test]
    fn cl_hex() {
        rejects![h11(&[b"Content-Length: 0x01"]) => InvalidContentLength];
    }

    #[test]
    fn cl_underscore() {
        rejects![h11(&[b"Content-Length: 1_0"]) => InvalidContentLength];
    }

    #[test]
    fn waitress_main_duplicates() {
        te_dup_header();
        te_double_list();
        cl_te_both();
        te_cl_both();
        host_dup();
        dup_cl_same();
        rejects![h11(&[b"Content-Type: a/b", b"content-type: a/b"]) => DuplicateContentType];
    }

    #[test]
    fn te_dup_header() {
        rejects![
            h11(&[b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"]) => InvalidTransferEncoding,
            h11(&[b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"]) => InvalidTransferEncoding,
        ];
    }

    #[test]
    fn te_double_list() {
        rejects![h11(&[b"Transfer-Encoding: chunked, chunked"]) => InvalidTransferEncoding];
    }

    #[test]
    fn cl_te_both() {
        rejects![h11(&[b"Content-Length: 3", b"Transfer-Encoding: chunked"]) => ContentLengthWithTransferEncoding];
    }

    #[test]
    fn te_cl_both() {
        rejects![h11(&[b"Transfer-Encoding: chunked", b"Content-Length: 3"]) => ContentLengthWithTransferEncoding];
    }

    #[test]
    fn host_dup() {
        rejects![h11(&[b"Host: a", b"Host: b"]) => DuplicateHost];
    }

    #[test]
    fn waitress_2_1_2_split_reads_same_verdict() {
        // check() feeds each vector whole, bytewise, split at every index and pipelined.
        for input in [
            &b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"[..],
            b"\r\nPOST /p HTTP/1.0\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n\rX\r\n\r\n",
        ] {
            let _ = check(input);
        }
    }

    #[test]
    fn cve_2024_1135_te_conflicts() {
        te_not_final();
        te_gzip_chunked();
        rejects![
            h11(&[b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip"]) => InvalidTransferEncoding,
        ];
    }

    #[test]
    fn te_not_final() {
        rejects![h11(&[b"Transfer-Encoding: chunked, gzip"]) => InvalidTransferEncoding];
    }

    #[test]
    fn te_gzip_chunked() {
        rejects![h11(&[b"Transfer-Encoding: gzip, chunked"]) => TransferEncodingNotImplemented];
    }

    #[test]
    fn cve_2024_6827_te_obfuscation_with_cl_never_frames_by_cl() {
        for coding in [
            &b"xchunked"[..],
            b"\x85chunked",
            b"chunked;a=b",
            b"\"chunked\"",
            b"chunked, gzip",
            b"identity",
        ] {
            let mut line = b"Transfer-Encoding: ".to_vec();
            line.extend_from_slice(coding);
            let verdict = check(&h11(&[&line, b"Content-Length: 5"]));
            assert_eq!(verdict, Err(ProtoError::ContentLengthWithTransferEncoding));
        }
    }

    #[test]
    fn hdr_empty_name() {
        rejects![h11(&[b":x"]) => InvalidHeader];
    }

    #[test]
    fn hdr_space_before_colon() {
        rejects![h11(&[b"Content-Length : 5"]) => SpaceBeforeColon];
    }

    #[test]
    fn hdr_cr_in_value() {
        rejects![h11(&[b"X: a\rb"]) => BareCrOrLfInHeader];
    }

    #[test]
    fn te_http10() {
        rejects![h10(&[b"Transfer-Encoding: chunked"]) => TransferEncodingHttp10];
    }

    #[test]
    fn cve_2020_35863_get_cl_body() {
        // get-cl-body: a GET with Content-Length has a body; without framing it has none.
        assert_eq!(
            ok(b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\n").body(),
            BodyKind::Length(3)
        );
        assert_eq!(ok(b"GET / HTTP/1.1\r\n\r\n").body(), BodyKind::Empty);
    }

    #[test]
    fn cve_2021_21299_te_dup_header() {
        te_dup_header();
        te_not_final();
    }

    #[test]
    fn cve_2021_32715_cl_plus() {
        cl_plus();
    }

    // ---- property tests ----

    /// Pieces that reach deep parser states when strung together at random.
    fn soup() -> impl Strategy<Value = Vec<u8>> {
        let pieces: Vec<&'static [u8]> = vec![
            b"GET",
            b"get",
            b" ",
            b"/",
            b"/a?b#c",
            b"http://h/",
            b"HTTP/1.1",
            b"HTTP/1.0",
            b"HTTP/2.0",
            b"\r\n",
            b"\r",
            b"\n",
            b"Host",
            b"Host: h",
            b":",
            b"Content-Length",
            b"Transfer-Encoding",
            b"chunked",
            b"5",
            b"x",
            b"_",
            b"\t",
            b"\x00",
            b"\x85",
            b",",
            b"\r\n\r\n",
            b"Content-Length: 3\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Connection: close\r\n",
            b"X-A: b\r\n",
            b"Host: h\r\n",
        ];
        (
            any::<bool>(),
            proptest::collection::vec(proptest::sample::select(pieces), 0..30),
        )
            .prop_map(|(prefixed, pieces)| {
                let mut out = if prefixed {
                    b"GET / HTTP/1.1\r\n".to_vec()
                } else {
                    Vec::new()
                };
                out.extend(pieces.concat());
                out
            })
    }

    fn any_input() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![soup(), proptest::collection::vec(any::<u8>(), 0..200)]
    }

    fn reference_trim(value: &[u8]) -> &[u8] {
        let is_ows = |byte: &u8| *byte == b' ' || *byte == b'\t';
        let start = value
            .iter()
            .position(|byte| !is_ows(byte))
            .unwrap_or(value.len());
        let end = value
            .iter()
            .rposition(|byte| !is_ows(byte))
            .map_or(start, |last| last + 1);
        &value[start..end]
    }

    prop_compose! {
        fn valid_field()(
            name in "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}",
            value in proptest::collection::vec(
                prop_oneof![0x21_u8..=0x7e, 0x80_u8..=0xff, Just(b' '), Just(b'\t')], 0..24),
        ) -> (Vec<u8>, Vec<u8>) {
            (name.into_bytes(), value)
        }
    }

    fn is_special(name: &[u8]) -> bool {
        [
            &b"host"[..],
            b"content-length",
            b"transfer-encoding",
            b"content-type",
        ]
        .iter()
        .any(|special| name.eq_ignore_ascii_case(special))
    }

    #[test]
    fn tchar_table_is_the_rfc_9110_set() {
        let specials = b"!#$%&'*+-.^_`|~";
        for byte in 0..=255u8 {
            let expected = byte.is_ascii_alphanumeric() || specials.contains(&byte);
            assert_eq!(is_tchar(byte), expected, "{byte:#04x}");
        }
    }

    proptest! {
        /// The eight-at-a-time CR/LF search finds what a byte-wise search finds.
        #[test]
        fn cr_lf_words_agree_with_bytes(
            bytes in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(0x0c_u8), Just(0x0e_u8), Just(0x8d_u8), any::<u8>()], 0..40)
        ) {
            prop_assert_eq!(find_cr_or_lf(&bytes), bytes.iter().position(|&b| b == b'\r' || b == b'\n'));
        }

        /// Each word-at-a-time byte class flags exactly the bytes its byte-wise twin flags,
        /// and the block search finds the same first byte as a byte-wise search.
        #[test]
        fn byte_classes_agree_with_words(
            bytes in proptest::collection::vec(prop_oneof![
                Just(b'\t'), Just(b'\r'), Just(0x7f_u8), Just(0xff_u8), Just(b'-'), Just(b'.'),
                Just(b':'), Just(0xad_u8), Just(0xae_u8), any::<u8>(), b'A'..=b'z', b'0'..=b'9'
            ], 0..48)
        ) {
            type Class = (fn(u8) -> bool, fn(u64) -> u64);
            let classes: [Class; 4] = [
                (is_ctl, ctl_bytes),
                (ends_target, ends_target_bytes),
                (ends_plain_name, ends_plain_name_bytes),
                (ends_plain_host, ends_plain_host_bytes),
            ];
            for (stop, word_stops) in classes {
                for word in bytes.chunks_exact(8) {
                    let flags = word_stops(u64::from_le_bytes(word.try_into().unwrap()));
                    let expected = word
                        .iter()
                        .enumerate()
                        .fold(0_u64, |acc, (at, &byte)| acc | u64::from(stop(byte)) << (8 * at + 7));
                    prop_assert_eq!(flags, expected);
                }
                let found = find_byte(&bytes, stop, word_stops);
                prop_assert_eq!(found, bytes.iter().position(|&b| stop(b)).unwrap_or(bytes.len()));
            }
        }

        /// The sixteen-at-a-time name scan, when it answers, answers as the general one does.
        #[test]
        fn short_names_agree_with_names(
            line in proptest::collection::vec(prop_oneof![
                Just(b':'), Just(b'-'), Just(b'_'), Just(b' '), Just(0xc1_u8), Just(b'!'),
                b'A'..=b'z', b'0'..=b'9', any::<u8>()
            ], 0..24)
        ) {
            if let Some(short) = short_name_prefix(&line) {
                prop_assert_eq!(short, name_prefix(&line));
                prop_assert_eq!(line.get(short.0), Some(&b':'));
            }
        }

        /// The eight-at-a-time value check agrees with the byte-wise rule on any input.
        #[test]
        fn field_value_words_agree_with_bytes(
            bytes in proptest::collection::vec(prop_oneof![Just(b'\t'), Just(0x7f_u8), Just(0x1f_u8), any::<u8>(), 0x20_u8..0x7f], 0..40)
        ) {
            prop_assert_eq!(all_field_value_bytes(&bytes), bytes.iter().all(|&b| is_field_value_byte(b)));
        }

        #[test]
        fn never_panics_and_never_overreaches(input in any_input()) {
            if let Ok(Some(head)) = run_whole(limits(), &input) {
                prop_assert!(head.head_len() <= input.len());
                // The head alone parses to the same head.
                prop_assert_eq!(run_whole(limits(), &input[..head.head_len()]), Ok(Some(head)));
            }
        }

        #[test]
        fn whole_equals_any_split(input in any_input(), at in any::<prop::sample::Index>()) {
            let at = at.index(input.len() + 1);
            let whole = run_whole(limits(), &input);
            prop_assert_eq!(run_split(limits(), &input, at), whole.clone());
            let (bytewise, _) = run_bytewise(limits(), &input);
            prop_assert_eq!(bytewise, whole);
        }

        #[test]
        fn encode_then_parse_round_trip(
            method in "[A-Z0-9!#$%&'*+.^_`|~-]{1,10}",
            target in proptest::collection::vec(prop_oneof![19 => 0x21_u8..=0x7e, 1 => 0x80_u8..=0xff], 0..24),
            http11 in any::<bool>(),
            fields in proptest::collection::vec(valid_field(), 0..8),
        ) {
            let fields: Vec<_> = fields.into_iter().filter(|(name, _)| !is_special(name)).collect();
            let mut target_bytes = b"/".to_vec();
            target_bytes.extend_from_slice(&target);
            let mut input = format!("{method} ").into_bytes();
            input.extend_from_slice(&target_bytes);
            input.extend_from_slice(if http11 { b" HTTP/1.1\r\n" } else { b" HTTP/1.0\r\n" });
            for (name, value) in &fields {
                input.extend_from_slice(name);
                input.push(b':');
                input.extend_from_slice(value);
                input.extend_from_slice(b"\r\n");
            }
            input.extend_from_slice(b"\r\n");

            let head = check(&input).unwrap();
            prop_assert_eq!(head.method(), method.as_bytes());
            prop_assert_eq!(head.target(), &target_bytes[..]);
            prop_assert_eq!(head.version(), if http11 { Version::Http11 } else { Version::Http10 });
            prop_assert_eq!(head.body(), BodyKind::Empty);
            let expected: Vec<(Vec<u8>, Vec<u8>)> = fields
                .iter()
                .filter(|(name, _)| !name.contains(&b'_'))
                .map(|(name, value)| (name.clone(), reference_trim(value).to_vec()))
                .collect();
            prop_assert_eq!(self::fields(&head), expected.clone());

            // httparse, as an oracle, reads the same request (it takes UTF-8 targets only).
            if std::str::from_utf8(&target_bytes).is_err() {
                return Ok(());
            }
            let mut storage = [httparse::EMPTY_HEADER; 16];
            let mut oracle = httparse::Request::new(&mut storage);
            prop_assert_eq!(oracle.parse(&input), Ok(httparse::Status::Complete(input.len())));
            prop_assert_eq!(oracle.method.map(str::as_bytes), Some(method.as_bytes()));
            prop_assert_eq!(oracle.version, Some(u8::from(http11)));
            let seen: Vec<(Vec<u8>, Vec<u8>)> = oracle
                .headers
                .iter()
                .filter(|header| !header.name.contains('_'))
                .map(|header| (header.name.as_bytes().to_vec(), reference_trim(header.value).to_vec()))
                .collect();
            prop_assert_eq!(seen, expected);
        }
    }
}
