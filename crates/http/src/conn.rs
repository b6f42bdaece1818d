//! The connection state machine, server role (waitress `channel`, h11 `_state`).
//!
//! Bytes in, events out; bytes to send are appended to a caller's `Vec<u8>`. No I/O here.
//!
//! Rules:
//! 1. One request at a time. The next request's head is not parsed until the response to
//!    the current one has ended (RFC 9112 §9.3.2: responses in order). Bytes that arrive in
//!    the meantime are only buffered; the server decides how many it reads ahead.
//! 2. After a [`ProtoError`], or after a response that closes the connection, nothing more is
//!    parsed: received bytes are dropped (RFC 9112 §9.6; waitress CVE-2024-49768).
//! 3. A response ends with keep-alive only if the plan said so, the body was not short of its
//!    Content-Length, and the whole request was read (RFC 9112 §6.3, §9.3).
//!
//! Reading side (the request), as a table:
//!
//! | state  | input                         | next state | events                     |
//! |--------|-------------------------------|------------|----------------------------|
//! | Init   | complete head, no body        | Done       | RequestHead, EndOfMessage  |
//! | Init   | complete head, with body      | Body       | RequestHead                |
//! | Init   | partial head                  | Init       | NeedData                   |
//! | Init   | EOF with no bytes buffered    | Closed     | ConnectionClosed           |
//! | Init   | EOF inside a head             | Error      | (error)                    |
//! | Body   | body bytes                    | Body       | Data                       |
//! | Body   | last body byte                | Done       | Data?, EndOfMessage        |
//! | Body   | EOF                           | Error      | (error)                    |
//! | Done   | anything                      | Done       | Paused                     |
//! | Done   | response ended, keep-alive    | Init       |                            |
//! | Done   | response ended, close         | Closed     |                            |
//! | any    | protocol error                | Error      | the error, every call      |
//!
//! Writing side (the response): `Idle --start_response--> Body --end_response--> Idle` (on
//! keep-alive) or `Closed`. An error response may be sent from `Idle` only.

use crate::decode::{ChunkedDecoder, LengthDecoder};
use crate::encode::{self, EncodeError, Framing, RequestFacts, ResponsePlan};
use crate::error::ProtoError;
use crate::limits::Limits;
use crate::request::{BodyKind, HeadParser, RequestHead, Version};

/// What [`Conn::next_event`] found in the bytes received so far.
#[derive(Debug)]
pub enum Event<'a> {
    /// A complete, validated request head.
    RequestHead(RequestHead),
    /// Decoded body bytes of the current request (borrowed from the receive buffer).
    Data(&'a [u8]),
    /// The current request has been received completely.
    EndOfMessage,
    /// More bytes are needed to make progress.
    NeedData,
    /// A request is complete and its response has not ended: nothing is parsed until it has.
    Paused,
    /// The peer closed the connection cleanly between requests.
    ConnectionClosed,
}

#[derive(Debug)]
enum Body {
    Length(LengthDecoder),
    Chunked(ChunkedDecoder),
}

#[derive(Debug)]
enum Reading {
    Init,
    Body(Body),
    /// The body's last bytes were just reported; `EndOfMessage` comes next.
    Ending,
    Done,
    Closed,
    Error(ProtoError),
}

#[derive(Debug, Clone, Copy)]
enum Writing {
    Idle,
    Body { plan: ResponsePlan, written: u64 },
    Closed,
}

/// How the body of a response went, reported by [`Conn::end_response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseEnd {
    /// The connection stays open for another request.
    pub keep_alive: bool,
    /// Bytes the body was short of its Content-Length (waitress logs a warning; we close).
    pub short_by: u64,
}

/// What happened to the bytes given to [`Conn::send_data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSent {
    /// Bytes that were not sent: past the Content-Length (waitress's "exceeded" warning), or
    /// a body on a response that may not have one (204, 304, 1xx) or to a HEAD request.
    pub dropped: usize,
}

/// One HTTP/1.x connection, server side.
#[derive(Debug)]
pub struct Conn {
    limits: Limits,
    buf: Vec<u8>,
    start: usize,
    peer_closed: bool,
    head_parser: HeadParser,
    reading: Reading,
    writing: Writing,
    facts: Option<RequestFacts>,
    wants_continue: bool,
    continue_sent: bool,
}

/// When the consumed prefix of the receive buffer is at least this many bytes and at least
/// half the buffer, it is dropped: amortised O(1) per byte, no unbounded growth.
const COMPACT_AT: usize = 4096;

impl Conn {
    /// A new connection enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            start: 0,
            peer_closed: false,
            head_parser: HeadParser::new(limits),
            reading: Reading::Init,
            writing: Writing::Idle,
            facts: None,
            wants_continue: false,
            continue_sent: false,
        }
    }

    /// The limits this connection enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Hand over bytes received from the peer. Dropped once the connection is closing
    /// (rule 2): they can never become a request.
    pub fn receive_data(&mut self, data: &[u8]) {
        if self.is_closing() {
            return;
        }
        if self.start >= COMPACT_AT && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The peer sent EOF (or its half-close). A request already received is still answered
    /// (SPEC D5 Q12).
    pub fn receive_eof(&mut self) {
        self.peer_closed = true;
    }

    /// True once the peer has closed its sending side.
    pub fn is_peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Unparsed bytes held in the receive buffer (the server's read-ahead measure).
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// True when a request is in progress or its response is being written: the reading side
    /// is past `Init`.
    pub fn is_busy(&self) -> bool {
        !matches!(self.reading, Reading::Init) || !matches!(self.writing, Writing::Idle)
    }

    /// True when nothing more will be read: an error happened or a closing response ended.
    pub fn is_closing(&self) -> bool {
        matches!(self.reading, Reading::Closed | Reading::Error(_))
            || matches!(self.writing, Writing::Closed)
    }

    /// The facts of the current request (version, HEAD, Connection header), once its head
    /// has been parsed.
    pub fn request_facts(&self) -> Option<&RequestFacts> {
        self.facts.as_ref()
    }

    /// Parse what has been received into the next event. After an error, the same error is
    /// returned on every call.
    pub fn next_event(&mut self) -> Result<Event<'_>, ProtoError> {
        match &mut self.reading {
            Reading::Error(err) => {
                let err = *err;
                // Rule 2: whatever was buffered after the bad request is never parsed.
                self.buf = Vec::new();
                self.start = 0;
                Err(err)
            }
            Reading::Closed => Ok(Event::ConnectionClosed),
            Reading::Ending => {
                self.reading = Reading::Done;
                Ok(Event::EndOfMessage)
            }
            Reading::Done => Ok(Event::Paused),
            Reading::Init => self.next_head(),
            Reading::Body(_) => self.next_body(),
        }
    }

    fn fail(&mut self, err: ProtoError) -> ProtoError {
        self.reading = Reading::Error(err);
        err
    }

    fn next_head(&mut self) -> Result<Event<'_>, ProtoError> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let parsed = match self.head_parser.parse(pending) {
            Ok(parsed) => parsed,
            Err(err) => return Err(self.fail(err)),
        };
        let Some(head) = parsed else {
            if self.peer_closed {
                if pending.is_empty() {
                    self.reading = Reading::Closed;
                    return Ok(Event::ConnectionClosed);
                }
                // EOF inside a head: the request can never be completed.
                return Err(self.fail(ProtoError::IncompleteMessage));
            }
            return Ok(Event::NeedData);
        };
        self.start += head.head_len();
        self.facts = Some(RequestFacts {
            version: head.version(),
            is_head: head.is_head(),
            wants_close: head.wants_close(),
            wants_keep_alive: head.wants_keep_alive(),
        });
        self.continue_sent = false;
        self.reading = match head.body() {
            BodyKind::Empty | BodyKind::Length(0) => Reading::Ending,
            BodyKind::Length(len) => Reading::Body(Body::Length(LengthDecoder::new(len))),
            BodyKind::Chunked => Reading::Body(Body::Chunked(ChunkedDecoder::new(&self.limits))),
        };
        // SPEC D5 Q1: no 100 Continue when there is no body to wait for.
        self.wants_continue = head.wants_continue() && matches!(self.reading, Reading::Body(_));
        Ok(Event::RequestHead(head))
    }

    fn next_body(&mut self) -> Result<Event<'_>, ProtoError> {
        let Reading::Body(body) = &mut self.reading else {
            return Ok(Event::NeedData);
        };
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let step = match body {
            Body::Length(dec) => Ok(dec.decode(pending)),
            Body::Chunked(dec) => dec.decode(pending),
        };
        // No `self.fail` below: `step.data` borrows `self.buf`, so only other fields change.
        let step = match step {
            Ok(step) => step,
            Err(err) => {
                self.reading = Reading::Error(err);
                return Err(err);
            }
        };
        self.start += step.consumed;
        if step.done {
            self.wants_continue = false;
            if step.data.is_empty() {
                self.reading = Reading::Done;
                return Ok(Event::EndOfMessage);
            }
            // Data and end in one step: the data now, the end on the next call.
            self.reading = Reading::Ending;
            return Ok(Event::Data(step.data));
        }
        if !step.data.is_empty() {
            return Ok(Event::Data(step.data));
        }
        if self.peer_closed {
            // RFC 9112 §8: a message whose body ends early is incomplete.
            let err = ProtoError::IncompleteMessage;
            self.reading = Reading::Error(err);
            return Err(err);
        }
        Ok(Event::NeedData)
    }

    /// True when the server should send `100 Continue` now: the request asked for it, its
    /// body has not all arrived, and none was sent (RFC 9110 §10.1.1; SPEC §3.6, D5 Q1/Q2).
    pub fn wants_continue(&self) -> bool {
        self.wants_continue && !self.continue_sent
    }

    /// Append the interim `100 Continue` response to `out`, once per request.
    pub fn send_continue(&mut self, out: &mut Vec<u8>) {
        if self.wants_continue() {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.continue_sent = true;
        }
    }

    /// Start the response to the current request: append its head to `out`. `headers` are
    /// the application's, already checked for CR/LF/NUL. `force_close` closes the connection
    /// after this response whatever the request asked for (server shutdown, app error).
    pub fn start_response(
        &mut self,
        out: &mut Vec<u8>,
        status: &str,
        headers: &[(&str, &str)],
        ident: Option<&str>,
        date: &[u8],
        force_close: bool,
    ) -> Result<ResponsePlan, EncodeError> {
        if !matches!(self.writing, Writing::Idle) {
            return Err(EncodeError::AlreadyStarted);
        }
        let facts = self.facts.unwrap_or(RequestFacts {
            version: Version::Http10,
            is_head: false,
            wants_close: true,
            wants_keep_alive: false,
        });
        let plan = encode::encode_head(out, &facts, status, headers, ident, date, force_close)?;
        self.writing = Writing::Body { plan, written: 0 };
        Ok(plan)
    }

    /// Append one piece of the response body to `out`, framed as the plan says.
    pub fn send_data(&mut self, out: &mut Vec<u8>, data: &[u8]) -> DataSent {
        let Writing::Body { plan, written } = &mut self.writing else {
            return DataSent {
                dropped: data.len(),
            };
        };
        if !plan.send_body {
            return DataSent {
                dropped: data.len(),
            };
        }
        match plan.framing {
            Framing::NoBody => DataSent {
                dropped: data.len(),
            },
            Framing::Length(len) => {
                let room = len.saturating_sub(*written);
                let take = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
                out.extend_from_slice(data.get(..take).unwrap_or_default());
                *written += take as u64;
                DataSent {
                    dropped: data.len() - take,
                }
            }
            Framing::Chunked => {
                encode::encode_chunk(out, data);
                *written += data.len() as u64;
                DataSent { dropped: 0 }
            }
            Framing::CloseDelimited => {
                out.extend_from_slice(data);
                *written += data.len() as u64;
                DataSent { dropped: 0 }
            }
        }
    }

    /// End the response: append the last chunk if chunked, and decide whether the connection
    /// is reused (rule 3). On keep-alive the connection is ready for the next request.
    pub fn end_response(&mut self, out: &mut Vec<u8>) -> ResponseEnd {
        let Writing::Body { plan, written } = self.writing else {
            return ResponseEnd {
                keep_alive: false,
                short_by: 0,
            };
        };
        let mut short_by = 0;
        match plan.framing {
            Framing::Chunked if plan.send_body => encode::encode_last_chunk(out),
            // RFC 9112 §6.3: a body short of its length leaves the framing broken, except
            // for HEAD, whose body is never sent (waitress 3.0).
            Framing::Length(len) if plan.send_body => short_by = len.saturating_sub(written),
            _ => {}
        }
        let keep_alive = plan.keep_alive
            && short_by == 0
            && matches!(self.reading, Reading::Done)
            && !self.peer_closed;
        if keep_alive {
            self.reading = Reading::Init;
            self.writing = Writing::Idle;
            self.head_parser.reset();
            self.facts = None;
        } else {
            self.writing = Writing::Closed;
            self.reading = Reading::Closed;
            // Rule 2: pipelined bytes after a closing response are never parsed.
            self.buf = Vec::new();
            self.start = 0;
        }
        ResponseEnd {
            keep_alive,
            short_by,
        }
    }

    /// End a response whose bytes were framed outside this machine (the Python task layer
    /// frames its own responses today; see docs/design.md). `keep_alive` is that layer's
    /// decision; it holds only if the whole request was read and the peer is still there.
    /// Returns whether the connection stays open.
    pub fn end_raw_response(&mut self, keep_alive: bool) -> bool {
        let keep_alive = keep_alive
            && matches!(self.writing, Writing::Idle)
            && matches!(self.reading, Reading::Done)
            && !self.peer_closed;
        if keep_alive {
            self.reading = Reading::Init;
            self.head_parser.reset();
            self.facts = None;
        } else {
            self.writing = Writing::Closed;
            self.reading = Reading::Closed;
            self.buf = Vec::new();
            self.start = 0;
        }
        keep_alive
    }

    /// Append the error response for `err` (SPEC §3.11) and close the connection. The detail
    /// of 413/414/431 names the configured limit as waitress does.
    pub fn send_error(
        &mut self,
        out: &mut Vec<u8>,
        err: ProtoError,
        ident: Option<&str>,
        date: &[u8],
    ) {
        let version = match self.facts {
            Some(facts) if !matches!(err, ProtoError::HeadTooLarge) => facts.version,
            _ => self.head_parser.error_version(),
        };
        let detail = self.error_detail(err);
        self.write_error(out, version, err.status(), &detail, ident, date);
    }

    /// Append a server-generated error response with `status` and `detail` (408 on a head
    /// timeout, 500 when the application failed before its head was sent) and close.
    pub fn send_status_error(
        &mut self,
        out: &mut Vec<u8>,
        status: u16,
        detail: &str,
        ident: Option<&str>,
        date: &[u8],
    ) {
        let version = self.facts.map_or(Version::Http10, |facts| facts.version);
        self.write_error(out, version, status, detail, ident, date);
    }

    fn write_error(
        &mut self,
        out: &mut Vec<u8>,
        version: Version,
        status: u16,
        detail: &str,
        ident: Option<&str>,
        date: &[u8],
    ) {
        if matches!(self.writing, Writing::Idle) {
            let reason = encode::reason_phrase(status);
            encode::error_response(out, version, status, reason, detail, ident, date);
        }
        self.writing = Writing::Closed;
        if !matches!(self.reading, Reading::Error(_)) {
            self.reading = Reading::Closed;
        }
        self.buf = Vec::new();
        self.start = 0;
    }

    fn error_detail(&self, err: ProtoError) -> String {
        let limit = match err {
            ProtoError::HeadTooLarge => {
                Some(("max_header", self.limits.max_request_header_size as u64))
            }
            ProtoError::BodyTooLarge => Some(("max_body", self.limits.max_request_body_size)),
            ProtoError::RequestLineTooLong => {
                Some(("max_request_line", self.limits.max_request_line as u64))
            }
            ProtoError::TooManyHeaders => Some((
                "max_request_headers",
                self.limits.max_request_headers as u64,
            )),
            _ => None,
        };
        match limit {
            Some((name, value)) => format!("exceeds {name} of {value}"),
            None => err.message().to_owned(),
        }
    }
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

    /// What a compact event looks like in the tables below.
    #[derive(Debug, PartialEq, Eq)]
    enum E {
        Head(Vec<u8>),
        Data(Vec<u8>),
        End,
        Need,
        Paused,
        Closed,
        Err(ProtoError),
    }

    fn next(conn: &mut Conn) -> E {
        match conn.next_event() {
            Ok(Event::RequestHead(head)) => E::Head(head.target().to_vec()),
            Ok(Event::Data(data)) => E::Data(data.to_vec()),
            Ok(Event::EndOfMessage) => E::End,
            Ok(Event::NeedData) => E::Need,
            Ok(Event::Paused) => E::Paused,
            Ok(Event::ConnectionClosed) => E::Closed,
            Err(err) => E::Err(err),
        }
    }

    /// Events until the machine asks for data, pauses, closes or fails.
    fn drain(conn: &mut Conn) -> Vec<E> {
        let mut events = Vec::new();
        loop {
            let event = next(conn);
            let stop = matches!(event, E::Need | E::Paused | E::Closed | E::Err(_));
            events.push(event);
            if stop {
                return events;
            }
        }
    }

    fn respond(conn: &mut Conn, headers: &[(&str, &str)], body: &[u8]) -> (Vec<u8>, ResponseEnd) {
        let mut out = Vec::new();
        conn.start_response(&mut out, "200 OK", headers, Some("waitress"), DATE, false)
            .unwrap();
        conn.send_data(&mut out, body);
        let end = conn.end_response(&mut out);
        (out, end)
    }

    #[test]
    fn transition_table() {
        // (input, expected events) from a fresh connection.
        let cases: &[(&[u8], &[E])] = &[
            (
                b"GET /a HTTP/1.1\r\n\r\n",
                &[E::Head(b"/a".to_vec()), E::End, E::Paused],
            ),
            (b"GET /a HTTP/1.1\r\n", &[E::Need]),
            (
                b"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nab",
                &[E::Head(b"/p".to_vec()), E::Data(b"ab".to_vec()), E::Need],
            ),
            (
                b"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /",
                &[
                    E::Head(b"/p".to_vec()),
                    E::Data(b"abc".to_vec()),
                    E::End,
                    E::Paused,
                ],
            ),
            (
                b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                &[
                    E::Head(b"/c".to_vec()),
                    E::Data(b"abc".to_vec()),
                    E::End,
                    E::Paused,
                ],
            ),
            (
                b"GET /a HTTP/1.1\nHost: x\r\n\r\n",
                &[E::Err(ProtoError::BareCrOrLf)],
            ),
            (b"", &[E::Need]),
        ];
        for (input, expected) in cases {
            let mut conn = Conn::new(Limits::default());
            conn.receive_data(input);
            assert_eq!(
                &drain(&mut conn),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn row_21_cve_2024_49768_pipe_after_error() {
        // CVE-2024-49768: a bad request followed by a good one: one error, never a request.
        let mut conn = Conn::new(Limits::default());
        conn.receive_data(
            b"GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        );
        assert_eq!(drain(&mut conn), [E::Err(ProtoError::InvalidContentLength)]);
        conn.receive_data(b"GET /later HTTP/1.1\r\n\r\n");
        assert_eq!(next(&mut conn), E::Err(ProtoError::InvalidContentLength));
        assert_eq!(conn.buffered(), 0);
        let mut out = Vec::new();
        conn.send_error(
            &mut out,
            ProtoError::InvalidContentLength,
            Some("waitress"),
            DATE,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.ends_with("Content-Length is invalid\r\n\r\n(generated by waitress)"));
        assert!(conn.is_closing());
    }

    #[test]
    fn pipelined_requests_are_served_one_at_a_time_in_order() {
        let mut conn = Conn::new(Limits::default());
        let mut wire = Vec::new();
        for i in 0..25 {
            wire.extend_from_slice(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
        }
        conn.receive_data(&wire);
        for i in 0..25 {
            assert_eq!(
                drain(&mut conn),
                [E::Head(format!("/{i}").into_bytes()), E::End, E::Paused]
            );
            let (out, end) = respond(&mut conn, &[("Content-Length", "2")], b"ok");
            assert!(end.keep_alive);
            assert!(out.ends_with(b"\r\n\r\nok"));
        }
        assert_eq!(drain(&mut conn), [E::Need]);
        conn.receive_eof();
        assert_eq!(next(&mut conn), E::Closed);
    }

    #[test]
    fn keep_alive_matrix() {
        // (request, response headers, keep-alive?)
        let cases: &[(&[u8], &[(&str, &str)], bool)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", &[("Content-Length", "2")], true),
            (
                b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
                &[("Content-Length", "2")],
                false,
            ),
            (b"GET / HTTP/1.1\r\n\r\n", &[], false),
            (b"GET / HTTP/1.0\r\n\r\n", &[("Content-Length", "2")], false),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                &[("Content-Length", "2")],
                true,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                &[],
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
                &[("Content-Length", "2")],
                true,
            ),
        ];
        for (request, headers, keep_alive) in cases {
            let mut conn = Conn::new(Limits::default());
            conn.receive_data(request);
            drain(&mut conn);
            let (_, end) = respond(&mut conn, headers, b"ok");
            assert_eq!(
                end.keep_alive,
                *keep_alive,
                "{:?} {headers:?}",
                String::from_utf8_lossy(request)
            );
            assert_eq!(conn.is_closing(), !keep_alive);
        }
    }

    #[test]
    fn short_body_closes_and_overflow_is_dropped() {
        let mut conn = Conn::new(Limits::default());
        conn.receive_data(b"GET / HTTP/1.1\r\n\r\n");
        drain(&mut conn);
        let (_, end) = respond(&mut conn, &[("Content-Length", "10")], b"ok");
        assert_eq!(
            end,
            ResponseEnd {
                keep_alive: false,
                short_by: 8
            }
        );

        let mut conn = Conn::new(Limits::default());
        conn.receive_data(b"GET / HTTP/1.1\r\n\r\n");
        drain(&mut conn);
        let mut out = Vec::new();
        conn.start_response(
            &mut out,
            "200 OK",
            &[("Content-Length", "2")],
            None,
            DATE,
            false,
        )
        .unwrap();
        assert_eq!(conn.send_data(&mut out, b"okay"), DataSent { dropped: 2 });
        assert!(out.ends_with(b"\r\n\r\nok"));
        assert!(conn.end_response(&mut out).keep_alive);
    }

    #[test]
    fn head_request_gets_no_body_and_keeps_alive() {
        let mut conn = Conn::new(Limits::default());
        conn.receive_data(b"HEAD / HTTP/1.1\r\n\r\n");
        drain(&mut conn);
        let (out, end) = respond(&mut conn, &[("Content-Length", "5")], b"hello");
        assert!(end.keep_alive);
        assert!(out.ends_with(b"\r\n\r\n"), "no body bytes for HEAD (D5 Q3)");
    }

    #[test]
    fn chunked_response_then_close() {
        let mut conn = Conn::new(Limits::default());
        conn.receive_data(b"GET / HTTP/1.1\r\n\r\n");
        drain(&mut conn);
        let (out, end) = respond(&mut conn, &[], b"hello");
        assert!(!end.keep_alive);
        assert!(out.ends_with(b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    }

    #[test]
    fn expect_continue_only_when_a_body_is_pending() {
        let mut conn = Conn::new(Limits::default());
        conn.receive_data(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(drain(&mut conn), [E::Head(b"/".to_vec()), E::Need]);
        assert!(conn.wants_continue());
        let mut out = Vec::new();
        conn.send_continue(&mut out);
        conn.send_continue(&mut out);
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
        // D5 Q1: CL 0 → no 100.
        let mut conn = Conn::new(Limits::default());
        conn.receive_data(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
        drain(&mut conn);
        assert!(!conn.wants_continue());
        // D5 Q2: over the limit → 413 at once, no 100.
        let limits = Limits {
            max_request_body_size: 10,
            ..Limits::default()
        };
        let mut conn = Conn::new(limits);
        conn.receive_data(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n");
        assert_eq!(drain(&mut conn), [E::Err(ProtoError::BodyTooLarge)]);
        assert!(!conn.wants_continue());
        let mut out = Vec::new();
        conn.send_error(&mut out, ProtoError::BodyTooLarge, None, DATE);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 413 Request Entity Too Large\r\n"),
            "{text}"
        );
        assert!(text.contains("exceeds max_body of 10"));
    }

    #[test]
    fn head_too_large_error_is_http_1_0() {
        let limits = Limits {
            max_request_header_size: 32,
            ..Limits::default()
        };
        let mut conn = Conn::new(limits);
        conn.receive_data(b"GET / HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n");
        assert_eq!(drain(&mut conn), [E::Err(ProtoError::HeadTooLarge)]);
        let mut out = Vec::new();
        conn.send_error(&mut out, ProtoError::HeadTooLarge, None, DATE);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.0 431 Request Header Fields Too Large\r\n"),
            "{text}"
        );
        assert!(text.contains("exceeds max_header of 32"));
    }

    #[test]
    fn eof_mid_request_is_incomplete_and_half_close_after_a_request_is_answered() {
        let mut conn = Conn::new(Limits::default());
        conn.receive_data(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab");
        conn.receive_eof();
        assert_eq!(
            drain(&mut conn),
            [
                E::Head(b"/".to_vec()),
                E::Data(b"ab".to_vec()),
                E::Err(ProtoError::IncompleteMessage)
            ]
        );

        let mut conn = Conn::new(Limits::default());
        conn.receive_data(b"GET / HTTP/1.1\r\n\r\n");
        conn.receive_eof();
        assert_eq!(
            drain(&mut conn),
            [E::Head(b"/".to_vec()), E::End, E::Paused]
        );
        let (_, end) = respond(&mut conn, &[("Content-Length", "2")], b"ok");
        assert!(!end.keep_alive, "answered (D5 Q12), then closed");
    }

    #[test]
    fn pipe_after_close() {
        // CVE-2024-49768 with `Connection: close`: the second request is never parsed.
        let mut conn = Conn::new(Limits::default());
        conn.receive_data(b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
        assert_eq!(
            drain(&mut conn),
            [E::Head(b"/a".to_vec()), E::End, E::Paused]
        );
        let (_, end) = respond(&mut conn, &[("Content-Length", "2")], b"ok");
        assert!(!end.keep_alive);
        assert_eq!(next(&mut conn), E::Closed);
        assert_eq!(conn.buffered(), 0);
    }

    #[test]
    fn raw_responses_keep_alive_only_when_the_request_was_read() {
        let mut conn = Conn::new(Limits::default());
        conn.receive_data(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
        drain(&mut conn);
        assert!(conn.end_raw_response(true));
        assert_eq!(
            drain(&mut conn),
            [E::Head(b"/b".to_vec()), E::End, E::Paused]
        );
        assert!(!conn.end_raw_response(false));
        assert_eq!(next(&mut conn), E::Closed);
        let mut conn = Conn::new(Limits::default());
        conn.receive_data(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab");
        drain(&mut conn);
        assert!(!conn.end_raw_response(true), "body not read: never reuse");
    }

    #[test]
    fn illegal_response_calls_are_refused() {
        let mut conn = Conn::new(Limits::default());
        let mut out = Vec::new();
        conn.receive_data(b"GET / HTTP/1.1\r\n\r\n");
        drain(&mut conn);
        conn.start_response(&mut out, "200 OK", &[], None, DATE, false)
            .unwrap();
        assert_eq!(
            conn.start_response(&mut out, "200 OK", &[], None, DATE, false),
            Err(EncodeError::AlreadyStarted)
        );
        conn.end_response(&mut out);
        // After a closing response: data is dropped, no request is ever parsed.
        conn.receive_data(b"GET /again HTTP/1.1\r\n\r\n");
        assert_eq!(next(&mut conn), E::Closed);
        assert_eq!(conn.send_data(&mut out, b"x"), DataSent { dropped: 1 });
    }
}
