//! `waitress._core.RequestParser`: the server's own request parser, exposed to Python for
//! `waitress.parser.HTTPRequestParser` (SPEC §1.7).
//!
//! Rules: every verdict comes from `waitress_http` (the same code the server runs); this
//! file only moves bytes and results across the boundary. Errors are reported as
//! `(status, detail)` data, not raised, because waitress's parser records them on the
//! parser object and completes.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use waitress_http::decode::{ChunkedDecoder, LengthDecoder};
use waitress_http::request::{BodyKind, HeadParser, RequestHead, Version};
use waitress_http::{Limits, ProtoError};

fn version_text(version: Version) -> &'static str {
    match version {
        Version::Http10 => "1.0",
        Version::Http11 => "1.1",
    }
}

#[derive(Debug)]
enum Body {
    Length(LengthDecoder),
    Chunked(ChunkedDecoder),
}

/// Incremental parser for one request: head, then body.
#[pyclass(module = "waitress._core")]
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    head_parser: HeadParser,
    head_buf: Vec<u8>,
    head: Option<RequestHead>,
    body: Option<Body>,
    body_out: Vec<u8>,
    body_bytes: u64,
    complete: bool,
    error: Option<(u16, String)>,
}

impl RequestParser {
    fn fail(&mut self, err: ProtoError) {
        let detail = match err {
            ProtoError::HeadTooLarge => {
                format!(
                    "exceeds max_header of {}",
                    self.limits.max_request_header_size
                )
            }
            ProtoError::BodyTooLarge => {
                format!("exceeds max_body of {}", self.limits.max_request_body_size)
            }
            ProtoError::RequestLineTooLong => {
                format!(
                    "exceeds max_request_line of {}",
                    self.limits.max_request_line
                )
            }
            ProtoError::TooManyHeaders => {
                format!(
                    "exceeds max_request_headers of {}",
                    self.limits.max_request_headers
                )
            }
            other => other.message().to_owned(),
        };
        self.error = Some((err.status(), detail));
        self.complete = true;
    }

    /// Feed body bytes; returns how many were consumed.
    fn feed_body(&mut self, mut data: &[u8]) -> usize {
        let mut consumed = 0;
        while let Some(body) = self.body.as_mut() {
            let step = match body {
                Body::Length(dec) => Ok(dec.decode(data)),
                Body::Chunked(dec) => dec.decode(data),
            };
            let step = match step {
                Ok(step) => step,
                Err(err) => {
                    self.fail(err);
                    return consumed + data.len();
                }
            };
            self.body_out.extend_from_slice(step.data);
            self.body_bytes += step.data.len() as u64;
            consumed += step.consumed;
            data = data.get(step.consumed..).unwrap_or_default();
            if step.done {
                self.body = None;
                self.complete = true;
                break;
            }
            if step.consumed == 0 && step.data.is_empty() {
                break;
            }
        }
        consumed
    }

    fn head_ref(&self) -> PyResult<&RequestHead> {
        self.head.as_ref().ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err("the request head is not complete")
        })
    }
}

#[pymethods]
impl RequestParser {
    #[new]
    #[pyo3(signature = (*, max_request_header_size, max_request_body_size, max_request_line, max_request_headers))]
    fn new(
        max_request_header_size: usize,
        max_request_body_size: u64,
        max_request_line: usize,
        max_request_headers: usize,
    ) -> Self {
        let limits = Limits {
            max_request_header_size,
            max_request_body_size,
            max_request_line,
            max_request_headers,
            ..Limits::default()
        };
        Self {
            limits,
            head_parser: HeadParser::new(limits),
            head_buf: Vec::new(),
            head: None,
            body: None,
            body_out: Vec::new(),
            body_bytes: 0,
            complete: false,
            error: None,
        }
    }

    /// Feed `data`; return how many of its bytes belong to this request. After an error,
    /// all of `data` counts as consumed (nothing after a bad request is parsed).
    fn received(&mut self, data: &[u8]) -> usize {
        if self.complete {
            return 0;
        }
        if self.head.is_some() {
            return self.feed_body(data);
        }
        let before = self.head_buf.len();
        self.head_buf.extend_from_slice(data);
        match self.head_parser.parse(&self.head_buf) {
            Err(err) => {
                self.fail(err);
                data.len()
            }
            Ok(None) => data.len(),
            Ok(Some(head)) => {
                let head_len = head.head_len();
                self.head_buf.truncate(head_len);
                let used = head_len.saturating_sub(before);
                self.body = match head.body() {
                    BodyKind::Empty | BodyKind::Length(0) => None,
                    BodyKind::Length(len) => Some(Body::Length(LengthDecoder::new(len))),
                    BodyKind::Chunked => Some(Body::Chunked(ChunkedDecoder::new(&self.limits))),
                };
                self.head = Some(head);
                if self.body.is_none() {
                    self.complete = true;
                    return used;
                }
                used + self.feed_body(data.get(used..).unwrap_or_default())
            }
        }
    }

    /// Parse `head` as a complete head on its own (waitress's `parse_header`).
    fn parse_head_only(&mut self, head: &[u8]) {
        let mut whole = head.to_vec();
        if !whole.ends_with(b"\r\n\r\n") {
            whole.extend_from_slice(b"\r\n\r\n");
        }
        match self.head_parser.parse(&whole) {
            Err(err) => self.fail(err),
            Ok(None) => self.fail(ProtoError::IncompleteMessage),
            Ok(Some(parsed)) => {
                self.head_buf = whole;
                self.head = Some(parsed);
            }
        }
    }

    /// Decoded body bytes received since the last call.
    fn take_body<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = PyBytes::new(py, &self.body_out);
        self.body_out.clear();
        bytes
    }

    #[getter]
    fn head_complete(&self) -> bool {
        self.head.is_some()
    }

    #[getter]
    fn complete(&self) -> bool {
        self.complete
    }

    /// `(status, detail)` of the error the request gets, or None.
    #[getter]
    fn error(&self) -> Option<(u16, String)> {
        self.error.clone()
    }

    /// The HTTP version (`"1.0"`/`"1.1"`) the error response carries, as waitress picks it.
    #[getter]
    fn error_version(&self) -> &'static str {
        version_text(self.head_parser.error_version())
    }

    #[getter]
    fn header_bytes_received(&self) -> usize {
        self.head
            .as_ref()
            .map_or(self.head_buf.len(), RequestHead::head_len)
    }

    #[getter]
    fn body_bytes_received(&self) -> u64 {
        self.body_bytes
    }

    #[getter]
    fn head_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.head_buf)
    }

    #[getter]
    fn request_line<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let start = self
            .head_buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(0);
        let rest = self.head_buf.get(start..).unwrap_or_default();
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or(rest.len());
        PyBytes::new(py, rest.get(..end).unwrap_or_default())
    }

    #[getter]
    fn method<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, self.head_ref()?.method()))
    }

    #[getter]
    fn target<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, self.head_ref()?.target()))
    }

    /// `"1.0"` or `"1.1"`.
    #[getter]
    fn version(&self) -> PyResult<&'static str> {
        Ok(version_text(self.head_ref()?.version()))
    }

    /// The kept header fields as `(name, value)` bytes, in arrival order.
    #[getter]
    fn headers<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        Ok(self
            .head_ref()?
            .headers()
            .map(|(name, value)| (PyBytes::new(py, name), PyBytes::new(py, value)))
            .collect())
    }

    #[getter]
    fn chunked(&self) -> PyResult<bool> {
        Ok(matches!(self.head_ref()?.body(), BodyKind::Chunked))
    }

    #[getter]
    fn content_length(&self) -> PyResult<u64> {
        Ok(match self.head_ref()?.body() {
            BodyKind::Length(len) => len,
            BodyKind::Empty | BodyKind::Chunked => 0,
        })
    }

    #[getter]
    fn wants_continue(&self) -> PyResult<bool> {
        Ok(self.head_ref()?.wants_continue())
    }

    #[getter]
    fn wants_close(&self) -> PyResult<bool> {
        Ok(self.head_ref()?.wants_close())
    }
}
