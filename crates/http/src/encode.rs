//! Response encoding (waitress `task`, response side): the head, the body framing, the
//! cached Date header and server-generated error responses.
//!
//! Rules (SPEC §3.7, §3.10, §3.11 and D5; RFC 9112 §6, RFC 9110 §6.4.1):
//! 1. Header names are normalised as waitress does (each `-`-separated part capitalised,
//!    the rest lower-cased: `ETag` → `Etag`) and sorted by name, stably.
//! 2. `Server: <ident>` is added unless the application set one, in which case
//!    `Via: <ident or "waitress">` is added; `Date` is added unless set.
//! 3. Framing: 1xx/204/304 never carry a body (their Content-Length is dropped); an
//!    application Content-Length frames by length; otherwise HTTP/1.1 is chunked and the
//!    connection closes after it (waitress Q5), HTTP/1.0 is close-delimited.
//! 4. Keep-alive: HTTP/1.1 unless the request said `Connection: close`; HTTP/1.0 only when
//!    the request said `Connection: keep-alive` and the length is known (then
//!    `Connection: Keep-Alive`). Every response that closes says `Connection: close`.
//!    204/304 keep the connection when it otherwise would be kept (D5 Q4).
//! 5. HEAD: the head exactly as for GET, no body bytes (D5 Q3).

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::request::Version;

/// What the response head depends on from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFacts {
    /// The request's version (the response uses the same).
    pub version: Version,
    /// The request method is HEAD.
    pub is_head: bool,
    /// HTTP/1.1 `Connection: close`.
    pub wants_close: bool,
    /// HTTP/1.0 `Connection: keep-alive`.
    pub wants_keep_alive: bool,
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0 without a length).
    CloseDelimited,
    /// The status has no body (1xx, 204, 304).
    NoBody,
}

/// What [`encode_head`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePlan {
    /// How the body is delimited.
    pub framing: Framing,
    /// The connection is reused after this response (if the body is complete).
    pub keep_alive: bool,
    /// Body bytes go on the wire (false for HEAD and bodiless statuses).
    pub send_body: bool,
}

/// Why a response head could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The status does not start with three digits followed by a space or its end.
    InvalidStatus,
    /// The application's Content-Length is not `1*DIGIT`.
    InvalidContentLength,
    /// A response was already started for this request.
    AlreadyStarted,
}

fn parse_status(status: &str) -> Result<u16, EncodeError> {
    let bytes = status.as_bytes();
    match bytes {
        [a @ b'1'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9', rest @ ..]
            if rest.is_empty() || rest.first() == Some(&b' ') =>
        {
            Ok(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => Err(EncodeError::InvalidStatus),
    }
}

fn parse_length(value: &str) -> Result<u64, EncodeError> {
    let digits = value.trim_matches(|c| c == ' ' || c == '\t');
    if digits.is_empty() {
        return Err(EncodeError::InvalidContentLength);
    }
    digits.bytes().try_fold(0u64, |acc, b| {
        if !b.is_ascii_digit() {
            return Err(EncodeError::InvalidContentLength);
        }
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u64::from(b - b'0')))
            .ok_or(EncodeError::InvalidContentLength)
    })
}

fn status_line(out: &mut Vec<u8>, version: Version, status: &str) {
    out.extend_from_slice(version.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn header_lines(out: &mut Vec<u8>, headers: &mut [(String, &str)]) {
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in headers.iter() {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Append the response head to `out` and return the plan for its body. `headers` must
/// already be free of CR, LF and NUL (the caller validates them, SPEC B1 row 23).
pub fn encode_head(
    out: &mut Vec<u8>,
    facts: &RequestFacts,
    status: &str,
    headers: &[(&str, &str)],
    ident: Option<&str>,
    date: &[u8],
    force_close: bool,
) -> Result<ResponsePlan, EncodeError> {
    let code = parse_status(status)?;
    let bodiless = code < 200 || code == 204 || code == 304;
    let mut lines: Vec<(String, &str)> = Vec::with_capacity(headers.len() + 4);
    let mut length = None;
    let (mut has_server, mut has_date) = (false, false);
    for &(name, value) in headers {
        let name = field_form(name).into_owned();
        match name.as_str() {
            "Content-Length" => {
                if bodiless {
                    continue;
                }
                length = Some(parse_length(value)?);
            }
            "Server" => has_server = true,
            "Date" => has_date = true,
            _ => {}
        }
        lines.push((name, value));
    }
    let framing = match (bodiless, length, facts.version) {
        (true, _, _) => Framing::NoBody,
        (false, Some(len), _) => Framing::Length(len),
        (false, None, Version::Http11) => Framing::Chunked,
        (false, None, Version::Http10) => Framing::CloseDelimited,
    };
    let known_length = matches!(framing, Framing::Length(_) | Framing::NoBody);
    let keep_alive = !force_close
        && known_length
        && match facts.version {
            Version::Http11 => !facts.wants_close,
            Version::Http10 => facts.wants_keep_alive,
        };
    if framing == Framing::Chunked {
        lines.push(("Transfer-Encoding".to_owned(), "chunked"));
    }
    if !keep_alive {
        lines.push(("Connection".to_owned(), "close"));
    } else if facts.version == Version::Http10 {
        lines.push(("Connection".to_owned(), "Keep-Alive"));
    }
    let date = std::str::from_utf8(date).unwrap_or_default();
    if !has_date {
        lines.push(("Date".to_owned(), date));
    }
    if has_server {
        lines.push(("Via".to_owned(), ident.unwrap_or("waitress")));
    } else if let Some(ident) = ident {
        lines.push(("Server".to_owned(), ident));
    }
    status_line(out, facts.version, status);
    header_lines(out, &mut lines);
    Ok(ResponsePlan {
        framing,
        keep_alive,
        send_body: !facts.is_head && !bodiless,
    })
}

/// Append one chunk (`<HEX>\r\n<data>\r\n`); nothing for empty data, which would end the body.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut line = [0; 18];
    out.extend_from_slice(chunk_size_line(data.len(), &mut line));
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Append the last chunk with an empty trailer section.
pub fn encode_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

/// The reason phrase waitress uses for the statuses the server generates.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Append a server-generated error response in waitress's format (SPEC §3.11): the
/// connection closes after it.
pub fn error_response(
    out: &mut Vec<u8>,
    version: Version,
    status: u16,
    reason: &str,
    detail: &str,
    ident: Option<&str>,
    date: &[u8],
) {
    let tag = ident.unwrap_or("server");
    let body = format!("{reason}\r\n\r\n{detail}\r\n\r\n(generated by {tag})");
    let length = body.len().to_string();
    let status_text = format!("{status} {reason}");
    let date = std::str::from_utf8(date).unwrap_or_default();
    let mut lines = vec![
        ("Connection".to_owned(), "close"),
        ("Content-Length".to_owned(), length.as_str()),
        ("Content-Type".to_owned(), "text/plain; charset=utf-8"),
        ("Date".to_owned(), date),
    ];
    if let Some(ident) = ident {
        lines.push(("Server".to_owned(), ident));
    }
    status_line(out, version, &status_text);
    header_lines(out, &mut lines);
    out.extend_from_slice(body.as_bytes());
}

/// The `Date` header value (RFC 9110 §5.6.7 IMF-fixdate), formatted at most once a second.
#[derive(Debug, Clone)]
pub struct DateCache {
    secs: u64,
    text: [u8; 29],
}

impl Default for DateCache {
    fn default() -> Self {
        Self {
            secs: 0,
            text: Self::format(0),
        }
    }
}

impl DateCache {
    /// A cache that formats on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current date; reformatted only when the second has changed.
    pub fn now(&mut self) -> &[u8] {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.at(secs)
    }

    /// The date `secs` seconds after the Unix epoch; reformatted only when that is not the
    /// second formatted last.
    pub fn at(&mut self, secs: u64) -> &[u8; 29] {
        if secs != self.secs {
            self.secs = secs;
            self.text = Self::format(secs);
        }
        &self.text
    }

    /// Format seconds since the Unix epoch as `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn format(secs: u64) -> [u8; 29] {
        const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
        const MONTHS: [&[u8; 3]; 12] = [
            b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
            b"Dec",
        ];
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
        let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
        let weekday = DAYS.get((days % 7) as usize).copied().unwrap_or(b"Thu");
        let month_name = MONTHS
            .get(month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or(b"Jan");
        let fields: [(usize, &[u8]); 8] = [
            (0, weekday),
            (5, &two(day)),
            (8, month_name),
            (12, &two(year / 100)),
            (14, &two(year)),
            (17, &two(rem / 3600)),
            (20, &two(rem / 60 % 60)),
            (23, &two(rem % 60)),
        ];
        for (at, bytes) in fields {
            if let Some(slot) = out.get_mut(at..at + bytes.len()) {
                slot.copy_from_slice(bytes);
            }
        }
        out
    }
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), proleptic Gregorian calendar.
/// Eras of 400 years (146,097 days) repeat exactly; within one, years start in March so the
/// leap day is the era's last day.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A chunk's size line, `<HEX>\r\n`, written at the end of `line` (no allocation).
pub fn chunk_size_line(len: usize, line: &mut [u8; 18]) -> &[u8] {
    if let Some(end) = line.get_mut(16..) {
        end.copy_from_slice(b"\r\n");
    }
    let at = write_digits(len as u64, 16, line, 16);
    line.get(at..).unwrap_or_default()
}

/// `value` in decimal, written at the end of `digits` (no allocation).
pub fn decimal(value: i64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = write_digits(value.unsigned_abs(), 10, digits, 20);
    if value < 0 && at > 0 {
        at -= 1;
        if let Some(sign) = digits.get_mut(at) {
            *sign = b'-';
        }
    }
    digits.get(at..).unwrap_or_default()
}

/// `value` in base `radix` (10 or 16; upper-case hex digits), written to end just before
/// `digits[end]`; returns where it starts.
fn write_digits(value: u64, radix: u64, digits: &mut [u8], end: usize) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut rest = value;
    let mut at = end;
    while at > 0 {
        at -= 1;
        if let Some(slot) = digits.get_mut(at) {
            *slot = DIGITS.get((rest % radix) as usize).copied().unwrap_or(b'0');
        }
        rest /= radix;
        if rest == 0 {
            break;
        }
    }
    at
}

/// The high bit of each byte of a word.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether some byte of `bytes` passes `byte`, looked at eight bytes a step: `word` says
/// whether some byte of an 8-byte word passes (the short strings of a response head make
/// a byte loop's per-byte cost count).
fn any_byte(bytes: &[u8], word: impl Fn(u64) -> bool, byte: impl Fn(u8) -> bool) -> bool {
    let mut words = bytes.chunks_exact(8);
    words
        .by_ref()
        .any(|w| w.try_into().map_or(true, |w| word(u64::from_ne_bytes(w))))
        || words.remainder().iter().any(|&b| byte(b))
}

/// `bytes.is_ascii()`, eight bytes a step.
pub fn all_ascii(bytes: &[u8]) -> bool {
    !any_byte(bytes, |w| w & HIGH_BITS != 0, |b| b >= 0x80)
}

/// Whether some byte of `bytes` is below `limit` (at most 0x80), eight bytes a step (a
/// word has a byte below `limit` exactly when subtracting `limit` from each byte borrows
/// into a byte whose own high bit was clear).
pub fn any_below(bytes: &[u8], limit: u8) -> bool {
    let step = u64::from(limit) * 0x0101_0101_0101_0101;
    any_byte(
        bytes,
        |w| w.wrapping_sub(step) & !w & HIGH_BITS != 0,
        |b| b < limit,
    )
}

/// A header name in waitress's form, `Header-Name` (each `-`-separated part capitalised,
/// SPEC Q10): borrowed when it already is (nearly always).
pub fn field_form(name: &str) -> Cow<'_, str> {
    if !all_ascii(name.as_bytes()) {
        let mut out = String::with_capacity(name.len());
        for (i, part) in name.split('-').enumerate() {
            if i > 0 {
                out.push('-');
            }
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                for c in chars {
                    out.extend(c.to_lowercase());
                }
            }
        }
        return Cow::Owned(out);
    }
    if in_field_form(name.as_bytes()) {
        return Cow::Borrowed(name);
    }
    let mut start = true;
    Cow::Owned(
        name.bytes()
            .map(|b| {
                let c = if start {
                    b.to_ascii_uppercase()
                } else {
                    b.to_ascii_lowercase()
                };
                start = b == b'-';
                char::from(c)
            })
            .collect(),
    )
}

/// Whether an ASCII header name is in waitress's form: the names most responses carry by a
/// comparison, any other in one pass.
fn in_field_form(name: &[u8]) -> bool {
    if matches!(
        name,
        b"Content-Type" | b"Content-Length" | b"Set-Cookie" | b"Location" | b"Cache-Control"
    ) {
        return true;
    }
    let mut start = true;
    let mut wrong = false;
    for &b in name {
        wrong |= if start {
            b.is_ascii_lowercase()
        } else {
            b.is_ascii_uppercase()
        };
        start = b == b'-';
    }
    !wrong
}

#[cfg(test)]
#[allow(
    clippy::type_complexity,
    clippy::too_many_lines,
    clippy::trivially_copy_pass_by_ref,
    reason = "table-driven tests"
)]
mod tests {
    use super::*;

    const DATE: &[u8] = b"Mon, 23 Nov 2026 21:07:10 GMT";

    #[test]
    fn any_below_and_all_ascii_are_exact_for_every_byte_in_every_lane() {
        for limit in [1, b'\r' + 1, 0x80] {
            for byte in 0..=255u8 {
                for at in 0..11 {
                    let mut bytes = [0xFF; 11];
                    if let Some(slot) = bytes.get_mut(at) {
                        *slot = byte;
                    }
                    assert_eq!(
                        any_below(&bytes, limit),
                        byte < limit,
                        "{limit} {byte} {at}"
                    );
                    assert!(!all_ascii(&bytes));
                    let mut text = [b'~'; 11];
                    if let Some(slot) = text.get_mut(at) {
                        *slot = byte;
                    }
                    assert_eq!(all_ascii(&text), byte < 0x80, "{byte} {at}");
                    let below = byte < limit || b'~' < limit;
                    assert_eq!(any_below(&text, limit), below, "{limit} {byte} {at}");
                }
            }
        }
        assert!(all_ascii(b"") && !any_below(b"", 0x80));
    }

    #[test]
    fn numbers_are_written_in_place() {
        let mut digits = [0; 20];
        for value in [0, 7, 13, 4096, 1_048_576, -5, i64::MAX, i64::MIN + 1] {
            assert_eq!(decimal(value, &mut digits), value.to_string().as_bytes());
        }
        let mut line = [0; 18];
        for len in [1, 9, 10, 255, 16384, usize::MAX] {
            assert_eq!(
                chunk_size_line(len, &mut line),
                format!("{len:X}\r\n").as_bytes()
            );
        }
    }

    #[test]
    fn q10_a_name_is_in_waitress_form_only_when_each_part_is_capitalised() {
        for name in [
            "Content-Type",
            "Set-Cookie",
            "X-Lower",
            "Etag",
            "A",
            "-",
            "X--Y",
            "1a",
        ] {
            assert!(in_field_form(name.as_bytes()), "{name}");
        }
        for name in [
            "content-type",
            "ETag",
            "x-lower",
            "X-lower",
            "CONTENT-LENGTH",
            "a",
        ] {
            assert!(!in_field_form(name.as_bytes()), "{name}");
        }
        assert!(matches!(field_form("Content-Type"), Cow::Borrowed(_)));
        assert_eq!(field_form("x-lower"), "X-Lower");
        assert_eq!(field_form("ETAG"), "Etag");
        assert_eq!(field_form("x--y"), "X--Y");
        assert_eq!(field_form("éclair-ÉTÉ"), "Éclair-Été");
    }

    fn facts(version: Version) -> RequestFacts {
        RequestFacts {
            version,
            is_head: false,
            wants_close: false,
            wants_keep_alive: false,
        }
    }

    fn head(
        facts: &RequestFacts,
        status: &str,
        headers: &[(&str, &str)],
        force_close: bool,
    ) -> (String, ResponsePlan) {
        let mut out = Vec::new();
        let plan = encode_head(
            &mut out,
            facts,
            status,
            headers,
            Some("waitress"),
            DATE,
            force_close,
        )
        .unwrap();
        (String::from_utf8(out).unwrap(), plan)
    }

    #[test]
    fn spec_3_10_example_is_byte_exact() {
        let (text, plan) = head(
            &facts(Version::Http11),
            "200 OK",
            &[("Content-Type", "text/plain"), ("Content-Length", "2")],
            false,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\
             Date: Mon, 23 Nov 2026 21:07:10 GMT\r\nServer: waitress\r\n\r\n"
        );
        assert_eq!(
            plan,
            ResponsePlan {
                framing: Framing::Length(2),
                keep_alive: true,
                send_body: true
            }
        );
    }

    #[test]
    fn names_are_capitalised_like_waitress_and_sorted_stably() {
        let (text, _) = head(
            &facts(Version::Http11),
            "200 OK",
            &[
                ("x-lower", "1"),
                ("ETag", "e"),
                ("Set-Cookie", "a=1"),
                ("WWW-Authenticate", "w"),
                ("set-cookie", "b=2"),
                ("Content-Length", "0"),
            ],
            false,
        );
        let names: Vec<&str> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split(':').next())
            .filter(|n| !n.is_empty())
            .collect();
        assert_eq!(
            names,
            [
                "Content-Length",
                "Date",
                "Etag",
                "Server",
                "Set-Cookie",
                "Set-Cookie",
                "Www-Authenticate",
                "X-Lower"
            ]
        );
        assert!(text.find("a=1").unwrap() < text.find("b=2").unwrap());
    }

    #[test]
    fn app_server_header_gets_via() {
        let (text, _) = head(
            &facts(Version::Http11),
            "200 OK",
            &[("Server", "myserver"), ("Content-Length", "0")],
            false,
        );
        assert!(text.contains("Server: myserver\r\n"));
        assert!(text.contains("Via: waitress\r\n"));
        let mut out = Vec::new();
        encode_head(
            &mut out,
            &facts(Version::Http11),
            "200 OK",
            &[],
            None,
            DATE,
            false,
        )
        .unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("Server:"));
    }

    #[test]
    fn app_date_is_kept() {
        let (text, _) = head(
            &facts(Version::Http11),
            "200 OK",
            &[("Date", "yesterday"), ("Content-Length", "0")],
            false,
        );
        assert!(text.contains("Date: yesterday\r\n"));
        assert_eq!(text.matches("Date:").count(), 1);
    }

    #[test]
    fn framing_matrix() {
        use Framing::{Chunked, CloseDelimited, Length, NoBody};
        let v10 = facts(Version::Http10);
        let v10_ka = RequestFacts {
            wants_keep_alive: true,
            ..v10
        };
        let v11 = facts(Version::Http11);
        let v11_close = RequestFacts {
            wants_close: true,
            ..v11
        };
        let v11_head = RequestFacts {
            is_head: true,
            ..v11
        };
        let cl: &[(&str, &str)] = &[("Content-Length", "5")];
        let none: &[(&str, &str)] = &[];
        // (facts, status, headers, force_close) -> (framing, keep_alive, send_body, connection header)
        let cases: [(
            RequestFacts,
            &str,
            &[(&str, &str)],
            bool,
            Framing,
            bool,
            bool,
            Option<&str>,
        ); 12] = [
            (v11, "200 OK", cl, false, Length(5), true, true, None),
            (
                v11,
                "200 OK",
                none,
                false,
                Chunked,
                false,
                true,
                Some("close"),
            ),
            (
                v11_close,
                "200 OK",
                cl,
                false,
                Length(5),
                false,
                true,
                Some("close"),
            ),
            (
                v11,
                "200 OK",
                cl,
                true,
                Length(5),
                false,
                true,
                Some("close"),
            ),
            (v11_head, "200 OK", cl, false, Length(5), true, false, None),
            (v11, "204 No Content", cl, false, NoBody, true, false, None),
            (
                v11,
                "304 Not Modified",
                none,
                false,
                NoBody,
                true,
                false,
                None,
            ),
            (v11, "101 Switching", none, false, NoBody, true, false, None),
            (
                v10,
                "200 OK",
                cl,
                false,
                Length(5),
                false,
                true,
                Some("close"),
            ),
            (
                v10_ka,
                "200 OK",
                cl,
                false,
                Length(5),
                true,
                true,
                Some("Keep-Alive"),
            ),
            (
                v10_ka,
                "200 OK",
                none,
                false,
                CloseDelimited,
                false,
                true,
                Some("close"),
            ),
            (
                v10,
                "200 OK",
                none,
                false,
                CloseDelimited,
                false,
                true,
                Some("close"),
            ),
        ];
        for (facts, status, headers, force, framing, keep_alive, send_body, connection) in cases {
            let (text, plan) = head(&facts, status, headers, force);
            assert_eq!(
                plan,
                ResponsePlan {
                    framing,
                    keep_alive,
                    send_body
                },
                "{facts:?} {status} {headers:?}"
            );
            match connection {
                Some(value) => {
                    assert!(text.contains(&format!("Connection: {value}\r\n")), "{text}");
                }
                None => assert!(!text.contains("Connection:"), "{text}"),
            }
            assert_eq!(
                text.contains("Transfer-Encoding: chunked\r\n"),
                framing == Chunked
            );
            if framing == NoBody {
                assert!(
                    !text.contains("Content-Length"),
                    "bodiless statuses drop Content-Length"
                );
            }
        }
    }

    #[test]
    fn invalid_heads_are_refused() {
        let mut out = Vec::new();
        let f = facts(Version::Http11);
        assert_eq!(
            encode_head(&mut out, &f, "OK", &[], None, DATE, false),
            Err(EncodeError::InvalidStatus)
        );
        assert_eq!(
            encode_head(&mut out, &f, "2000 OK", &[], None, DATE, false),
            Err(EncodeError::InvalidStatus)
        );
        assert_eq!(
            encode_head(
                &mut out,
                &f,
                "200 OK",
                &[("Content-Length", "+5")],
                None,
                DATE,
                false
            ),
            Err(EncodeError::InvalidContentLength)
        );
        assert!(encode_head(
            &mut out,
            &f,
            "200",
            &[("Content-Length", " 5 ")],
            None,
            DATE,
            false
        )
        .is_ok());
    }

    #[test]
    fn chunks() {
        let mut out = Vec::new();
        encode_chunk(&mut out, b"hello");
        encode_chunk(&mut out, b"");
        encode_chunk(&mut out, &[b'x'; 255]);
        encode_last_chunk(&mut out);
        let mut expected = b"5\r\nhello\r\nFF\r\n".to_vec();
        expected.extend_from_slice(&[b'x'; 255]);
        expected.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, expected);
    }

    #[test]
    fn error_response_format_spec_3_11() {
        let mut out = Vec::new();
        error_response(
            &mut out,
            Version::Http10,
            400,
            "Bad Request",
            "Invalid header",
            Some("waitress"),
            DATE,
        );
        let body = "Bad Request\r\n\r\nInvalid header\r\n\r\n(generated by waitress)";
        assert_eq!(body.len(), 56, "SPEC Appendix B: a 56-byte body");
        let expected = format!(
            "HTTP/1.0 400 Bad Request\r\nConnection: close\r\nContent-Length: 56\r\n\
             Content-Type: text/plain; charset=utf-8\r\nDate: Mon, 23 Nov 2026 21:07:10 GMT\r\n\
             Server: waitress\r\n\r\n{body}"
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        let mut out = Vec::new();
        error_response(
            &mut out,
            Version::Http11,
            413,
            "Request Entity Too Large",
            "exceeds max_body of 10",
            None,
            DATE,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 413 Request Entity Too Large\r\n"));
        assert!(!text.contains("Server:"));
        assert!(text.ends_with("(generated by server)"));
    }

    #[test]
    fn a_date_cache_gives_each_second_its_own_date() {
        let mut cache = DateCache::new();
        assert_eq!(cache.at(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(cache.at(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(cache.at(784_111_778), b"Sun, 06 Nov 1994 08:49:38 GMT");
        assert_eq!(cache.at(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn dates() {
        assert_eq!(&DateCache::format(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            &DateCache::format(784_111_777),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            &DateCache::format(951_782_400),
            b"Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            &DateCache::format(4_107_542_400),
            b"Mon, 01 Mar 2100 00:00:00 GMT"
        );
        assert_eq!(
            &DateCache::format(1_798_061_230),
            b"Wed, 23 Dec 2026 21:27:10 GMT"
        );
        let mut cache = DateCache::new();
        assert_eq!(cache.now().len(), 29);
        assert!(cache.now().ends_with(b" GMT"));
    }
}
