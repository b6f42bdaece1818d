//! One WSGI call on a worker thread (SPEC §3.8–§3.12), with the GIL taken once per request.
//!
//! Rules:
//! 1. The environ is built here from the head the I/O side already parsed: keys interned,
//!    values decoded as latin-1, exactly the keys of SPEC §3.8. A request target that is not
//!    a plain origin-form path (absolute-form, `//…`, `*`) is split by Python's
//!    `waitress.parser.split_uri`, so the rare forms keep waitress's exact semantics. The
//!    dict starts as a copy of a template: the site's, or from a connection's second request
//!    on the connection's own (`ConnectionKept`), which holds what that connection's
//!    requests mostly repeat, so only what differs is set.
//! 2. `start_response` and `write` are one object, [`Call`], with the rules of §3.9 (`exc_info`,
//!    a second call, hop-by-hop names, CR/LF/NUL) and the framing of §3.10 (Content-Length
//!    truncation and shortfall, chunked on 1.1, close-delimited on 1.0, no body for HEAD,
//!    1xx/204/304). The response head is held back until body bytes come, and the bytes that
//!    complete a response (its last Content-Length bytes, the last chunk) are held for the
//!    ending, so a small response is one message to its connection and one write.
//! 3. Bytes go to the connection through `waitress_server::Responder` with the GIL released
//!    while the connection is behind. A `wsgi.file_wrapper` over a regular file goes out
//!    with sendfile (§3.12).
//! 4. Failures end as waitress ends them: `ClientDisconnected` is logged at INFO and the
//!    connection closed; any other exception is logged (`Exception while serving <path>`)
//!    and becomes a 500 if nothing was sent, else a close. The application iterable's
//!    `close()` is called exactly once.
//!
//! The Python class `waitress.task.WSGITask` implements the same rules for code that drives
//! waitress's task API directly; `tests/compat` and `tests/functional` hold both to SPEC.

use std::borrow::Cow;
use std::cell::{Ref, RefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::{PyAssertionError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use waitress_http::encode::{
    all_ascii, any_below, chunk_size_line, decimal, field_form, DateCache,
};
use waitress_http::request::{BodyKind, RequestHead, Version};
use waitress_server::{ClientGone, Peer, Request, RequestBody, Responder};

use crate::gil::GilCell;

/// Most bytes held back to leave with the end of a response (module rule 2); more are sent
/// as they come.
const HOLD_AT_END: usize = 64 * 1024;

/// The first `len` bytes of an application's bytes object, lent to the server without a
/// copy (`Responder::write_raw_lent`).
struct Window {
    bytes: PyBackedBytes,
    len: usize,
}

impl AsRef<[u8]> for Window {
    fn as_ref(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

thread_local! {
    /// Each worker's last formatted `Date` (one format a second, not one a response).
    static DATE: std::cell::RefCell<DateCache> = std::cell::RefCell::new(DateCache::new());
}

/// What the environ and the response need of the server a request came in on.
#[derive(Debug)]
pub(crate) struct Site {
    pub(crate) app: Py<PyAny>,
    /// Leave the six proxy headers (`waitress.proxy_headers.PROXY_HEADERS`) out of the
    /// environ: what the proxy-headers middleware does with no trusted proxy (SPEC §4).
    pub(crate) drop_proxy_headers: bool,
    pub(crate) server_name: Py<PyString>,
    pub(crate) server_port: Py<PyString>,
    pub(crate) url_scheme: Py<PyString>,
    pub(crate) url_prefix: String,
    /// `SERVER_SOFTWARE`: the `ident` option as given.
    pub(crate) software: Py<PyAny>,
    /// The `Server` header (`ident`, None when empty), shared with each request's [`Call`].
    pub(crate) ident: Option<Arc<str>>,
    pub(crate) expose_tracebacks: bool,
    /// The environ keys that are the same for every request, copied per request.
    pub(crate) template: OnceLock<Template>,
}

/// The environ every request starts from (`Site::template`): the keys that are the same for
/// every request, and every other key a request always sets, with its most likely value.
#[derive(Debug)]
pub(crate) struct Template {
    env: Py<PyDict>,
    /// `wsgi.errors` as the template holds it (`sys.stderr` when it was made).
    errors: Py<PyAny>,
}

impl Site {
    fn template(&self, py: Python<'_>, helpers: &Helpers) -> PyResult<&Template> {
        if let Some(template) = self.template.get() {
            return Ok(template);
        }
        let env = PyDict::new(py);
        env.set_item(intern!(py, "SCRIPT_NAME"), self.url_prefix.as_str())?;
        env.set_item(intern!(py, "SERVER_NAME"), self.server_name.bind(py))?;
        env.set_item(intern!(py, "SERVER_PORT"), self.server_port.bind(py))?;
        env.set_item(intern!(py, "SERVER_SOFTWARE"), self.software.bind(py))?;
        env.set_item(intern!(py, "wsgi.version"), helpers.wsgi_version.bind(py))?;
        env.set_item(intern!(py, "wsgi.url_scheme"), self.url_scheme.bind(py))?;
        env.set_item(intern!(py, "wsgi.multithread"), true)?;
        env.set_item(intern!(py, "wsgi.multiprocess"), false)?;
        env.set_item(intern!(py, "wsgi.run_once"), false)?;
        env.set_item(
            intern!(py, "wsgi.file_wrapper"),
            helpers.file_wrapper.bind(py),
        )?;
        env.set_item(intern!(py, "wsgi.input_terminated"), true)?;
        // The keys every request sets, in the order `build_environ` sets them: a copy of
        // the template then has room for all of them and the header keys, so building an
        // environ never resizes the dict, and the key order is the same. Four hold the
        // value most requests have (a GET of HTTP/1.1 without a query, logging to the
        // same stderr): a request that has it sets nothing there.
        let errors = stderr(py, helpers)?;
        let none = py.None().into_bound(py);
        for (key, value) in [
            (intern!(py, "REQUEST_METHOD"), intern!(py, "GET").as_any()),
            (intern!(py, "PATH_INFO"), &none),
            (intern!(py, "QUERY_STRING"), intern!(py, "").as_any()),
            (intern!(py, "REQUEST_URI"), &none),
            (
                intern!(py, "SERVER_PROTOCOL"),
                intern!(py, "HTTP/1.1").as_any(),
            ),
            (intern!(py, "REMOTE_ADDR"), &none),
            (intern!(py, "REMOTE_HOST"), &none),
            (intern!(py, "REMOTE_PORT"), &none),
            (intern!(py, "wsgi.input"), &none),
            (intern!(py, "wsgi.errors"), &errors),
            (intern!(py, "waitress.client_disconnected"), &none),
        ] {
            env.set_item(key, value)?;
        }
        let template = Template {
            env: env.unbind(),
            errors: errors.unbind(),
        };
        let _ = self.template.set(template);
        self.template
            .get()
            .ok_or_else(|| PyRuntimeError::new_err("environ template not set"))
    }
}

/// `sys.stderr`, for `wsgi.errors`.
fn stderr<'py>(py: Python<'py>, helpers: &Helpers) -> PyResult<Bound<'py, PyAny>> {
    match helpers.sys_dict.bind(py).get_item(intern!(py, "stderr"))? {
        Some(errors) => Ok(errors),
        // Deleted: the attribute lookup raises what Python would.
        None => helpers.sys.bind(py).getattr(intern!(py, "stderr")),
    }
}

/// A response head with a non-ASCII status or header (`Call::build_head`), built as the
/// UTF-8 of its str parts: each character one latin-1 byte, or the error Python's latin-1
/// encoder raises.
fn latin1_encoded(py: Python<'_>, head: Vec<u8>) -> PyResult<Vec<u8>> {
    let text =
        String::from_utf8(head).map_err(|_| PyValueError::new_err("response head is not text"))?;
    if text.chars().all(|c| u32::from(c) <= 0xFF) {
        return Ok(text.chars().map(|c| c as u8).collect());
    }
    PyString::new(py, &text).call_method1("encode", ("latin-1",))?;
    Err(PyValueError::new_err("response head is not latin-1"))
}

/// One `name: value` line of a response head.
fn header_line(head: &mut Vec<u8>, name: &str, value: &[u8]) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// An application's header name in waitress's form, `Header-Name` (each `-`-separated part
/// capitalised, SPEC Q10): the name itself when it already is (nearly always), else a new
/// str; a non-ASCII name goes through waitress's own `str.capitalize`.
pub(crate) fn field_name(
    py: Python<'_>,
    helpers: &Helpers,
    name: PyBackedStr,
) -> PyResult<PyBackedStr> {
    if !all_ascii(name.as_bytes()) {
        return helpers.normalise_name.bind(py).call1((&*name,))?.extract();
    }
    let form = match field_form(&name) {
        Cow::Borrowed(_) => None,
        Cow::Owned(form) => Some(form),
    };
    match form {
        None => Ok(name),
        Some(form) => PyBackedStr::try_from(PyString::new(py, &form)),
    }
}

/// Whether `sys.stderr` is `errors`: a look at the sys dict that takes no reference (the
/// check every request makes).
fn stderr_is(py: Python<'_>, helpers: &Helpers, errors: &Bound<'_, PyAny>) -> bool {
    let key = intern!(py, "stderr");
    // SAFETY: both are live objects (the Bounds hold them) and the GIL is held; the result
    // is a borrowed reference (or null), only compared, never dereferenced; a lookup error
    // (none for an exact str key) is cleared and reads as "not the same".
    unsafe {
        let found =
            pyo3::ffi::PyDict_GetItemWithError(helpers.sys_dict.bind(py).as_ptr(), key.as_ptr());
        if found.is_null() {
            pyo3::ffi::PyErr_Clear();
        }
        found == errors.as_ptr()
    }
}

/// How a response ends, decided inside the WSGI call and carried out by the worker after it
/// (never blocks).
#[derive(Debug)]
pub(crate) enum Ending {
    /// Complete: send `last`, then keep the connection if `keep_alive` and HTTP allows.
    Finish { keep_alive: bool, last: Vec<u8> },
    /// A 500 with this detail if nothing was sent, else a close.
    Abort(String),
}

/// Python objects looked up once per run.
#[derive(Debug)]
pub(crate) struct Helpers {
    bytes_io: Py<PyAny>,
    fdopen: Py<PyAny>,
    sys: Py<PyAny>,
    /// `sys.__dict__`: `sys.stderr` read per request as a dict lookup (what the attribute
    /// lookup finds, without its machinery).
    sys_dict: Py<PyDict>,
    split_uri: Py<PyAny>,
    file_wrapper: Py<PyAny>,
    regular_fd: Py<PyAny>,
    normalise_name: Py<PyAny>,
    client_disconnected: Py<PyAny>,
    format_exception: Py<PyAny>,
    logger: Py<PyAny>,
    wsgi_version: Py<PyTuple>,
    /// `waitress.task.hop_by_hop`: the names an application may not set (PEP 3333), read
    /// once so the Python module stays the one list.
    hop_by_hop: Vec<String>,
    /// Bit `n` set: a name of `hop_by_hop` is `n` bytes long (63: any longer), so most
    /// ASCII names are cleared by their length alone.
    hop_by_hop_lengths: u64,
}

/// `lengths`' bit for a name of `len` bytes (`Helpers::hop_by_hop_lengths`).
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

impl Helpers {
    pub(crate) fn load(py: Python<'_>) -> PyResult<Self> {
        let attr = |module: &str, name: &str| -> PyResult<Py<PyAny>> {
            Ok(py.import(module)?.getattr(name)?.unbind())
        };
        Ok(Self {
            bytes_io: attr("io", "BytesIO")?,
            fdopen: attr("os", "fdopen")?,
            sys: py.import("sys")?.into_any().unbind(),
            sys_dict: py.import("sys")?.dict().unbind(),
            split_uri: attr("waitress.parser", "split_uri")?,
            file_wrapper: attr("waitress.buffers", "ReadOnlyFileBasedBuffer")?,
            regular_fd: attr("waitress.server", "_regular_file_descriptor")?,
            normalise_name: attr("waitress.task", "_normalise_header_name")?,
            client_disconnected: attr("waitress.channel", "ClientDisconnected")?,
            format_exception: attr("traceback", "format_exception")?,
            logger: py
                .import("logging")?
                .call_method1("getLogger", ("waitress",))?
                .unbind(),
            wsgi_version: PyTuple::new(py, [1, 0])?.unbind(),
            hop_by_hop: Vec::new(),
            hop_by_hop_lengths: 0,
        }
        .with_hop_by_hop(
            py.import("waitress.task")?
                .getattr("hop_by_hop")?
                .try_iter()?
                .map(|name| name?.extract::<String>())
                .collect::<PyResult<_>>()?,
        ))
    }

    fn with_hop_by_hop(mut self, names: Vec<String>) -> Self {
        self.hop_by_hop_lengths = names
            .iter()
            .fold(0, |lengths, name| lengths | length_bit(name.len()));
        self.hop_by_hop = names;
        self
    }
}

const GENERIC_500: &str = "The server encountered an unexpected internal server error";

/// A str from bytes decoded as latin-1 (every byte is one code point).
/// The interpreter's own latin-1 decoder: one pass, no UTF-8 validation or re-encoding.
fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = pyo3::ffi::Py_ssize_t::try_from(bytes.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("header too long"))?;
    // SAFETY: `bytes` is valid for `len` bytes for the whole call, which copies them; the
    // GIL is held (`py`); a null errors argument means "strict" (latin-1 cannot fail).
    let text = unsafe {
        let ptr = pyo3::ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null());
        Bound::from_owned_ptr_or_err(py, ptr)?
    };
    Ok(text.cast_into::<PyString>()?)
}

/// The request method as a str: the common ones interned, so no str is made for them.
fn method<'py>(py: Python<'py>, name: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let interned = match name {
        b"GET" => intern!(py, "GET"),
        b"POST" => intern!(py, "POST"),
        b"HEAD" => intern!(py, "HEAD"),
        b"PUT" => intern!(py, "PUT"),
        b"DELETE" => intern!(py, "DELETE"),
        b"OPTIONS" => intern!(py, "OPTIONS"),
        b"PATCH" => intern!(py, "PATCH"),
        _ => return latin1(py, name),
    };
    Ok(interned.clone())
}

/// Percent-decode as Python's `urllib.parse.unquote_to_bytes` does: `%XX` with two hex
/// digits becomes a byte, anything else stays as it is.
fn unquote(raw: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            if let [h, l, after @ ..] = tail {
                if let (Some(h), Some(l)) = (hex(*h), hex(*l)) {
                    out.push(h << 4 | l);
                    rest = after;
                    continue;
                }
            }
        }
        out.push(b);
        rest = tail;
    }
    out
}

/// The request target as waitress splits it: (percent-decoded path, query), both latin-1.
fn split_target<'py>(
    py: Python<'py>,
    helpers: &Helpers,
    target: &[u8],
) -> PyResult<(Bound<'py, PyString>, Bound<'py, PyString>)> {
    if target.first() == Some(&b'/') && target.get(1) != Some(&b'/') {
        let before_fragment = target.split(|&b| b == b'#').next().unwrap_or_default();
        let mut parts = before_fragment.splitn(2, |&b| b == b'?');
        let path = parts.next().unwrap_or_default();
        let query = parts.next().unwrap_or_default();
        let decoded = if path.contains(&b'%') {
            latin1(py, &unquote(path))?
        } else {
            latin1(py, path)?
        };
        return Ok((decoded, latin1(py, query)?));
    }
    // Rule 1: the rare forms go through the Python function (urlsplit semantics).
    let parts = helpers
        .split_uri
        .bind(py)
        .call1((PyBytes::new(py, target),))?;
    Ok((
        parts.get_item(2)?.cast_into::<PyString>()?,
        parts.get_item(3)?.cast_into::<PyString>()?,
    ))
}

/// `PATH_INFO` from the decoded path: a leading run of slashes is one slash, and `url_prefix`
/// is removed when the path is it or starts with it and a slash.
fn path_info<'a>(path: &'a str, prefix: &str) -> std::borrow::Cow<'a, str> {
    let mut path = std::borrow::Cow::Borrowed(path);
    if path.starts_with("//") {
        path = std::borrow::Cow::Owned(format!("/{}", path.trim_start_matches('/')));
    }
    if !prefix.is_empty() {
        if path == prefix {
            return std::borrow::Cow::Borrowed("");
        }
        if let Some(rest) = path.strip_prefix(prefix) {
            if rest.starts_with('/') {
                return std::borrow::Cow::Owned(rest.to_owned());
            }
        }
    }
    path
}

/// The values of every `name` field joined with ", " and lower-cased (waitress compares the
/// joined value).
fn joined_lowercase(head: &RequestHead, name: &[u8]) -> String {
    let mut joined = Vec::new();
    for (field, value) in head.headers() {
        if field.eq_ignore_ascii_case(name) {
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(value);
        }
    }
    joined
        .iter()
        .map(|&b| char::from(b))
        .collect::<String>()
        .to_lowercase()
}

/// `waitress.client_disconnected` in the environ.
#[pyclass(module = "waitress._core", frozen)]
#[derive(Debug)]
pub struct ClientDisconnectedCheck {
    flag: Arc<AtomicBool>,
}

#[pymethods]
impl ClientDisconnectedCheck {
    fn __call__(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

/// Everything known about the request that shapes the response.
#[derive(Debug)]
struct RequestFacts {
    http11: bool,
    is_head: bool,
    /// The `Connection` header, lower-cased.
    connection: String,
    wants_close: bool,
}

impl RequestFacts {
    fn of(head: &RequestHead) -> Self {
        Self {
            http11: matches!(head.version(), Version::Http11),
            is_head: head.is_head(),
            connection: if head.has_connection() {
                joined_lowercase(head, b"connection")
            } else {
                String::new()
            },
            wants_close: head.wants_close(),
        }
    }
}

/// Seconds since the epoch (0 if the clock is before it): a response's Date second.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One request's `start_response` (the bound method handed to the application) and `write`
/// (calling the object, which `start_response` returns) (rule 2). Frozen: the response it
/// writes is in a [`GilCell`], borrowed without pyo3's atomic flag (gil.rs).
#[pyclass(module = "waitress._core", frozen)]
#[derive(Debug)]
pub struct Call {
    /// The worker's helpers, the same for every request this object serves (`serve`).
    helpers: Arc<Helpers>,
    response: GilCell<Response>,
}

impl Call {
    pub(crate) fn new(response: Response) -> Self {
        Self {
            helpers: Arc::clone(&response.helpers),
            response: GilCell::new(response),
        }
    }

    /// The response, to read.
    fn state(&self, py: Python<'_>) -> PyResult<Ref<'_, Response>> {
        self.response.borrow(py)
    }

    /// The response, to change.
    pub(crate) fn state_mut(&self, py: Python<'_>) -> PyResult<RefMut<'_, Response>> {
        self.response.borrow_mut(py)
    }
}

/// The response one [`Call`] writes, and what shapes it.
#[derive(Debug)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "the response flags of waitress's Task, each read on its own"
)]
pub(crate) struct Response {
    responder: Option<Responder>,
    facts: RequestFacts,
    ident: Option<Arc<str>>,
    helpers: Arc<Helpers>,
    start_secs: u64,
    /// The status and headers as the application gave them: its own str objects, so
    /// `start_response` copies nothing (None: `start_response` not called yet, "200 OK").
    status: Option<PyBackedStr>,
    headers: Vec<(PyBackedStr, PyBackedStr)>,
    content_length: Option<i64>,
    /// `start_response` was called.
    complete: bool,
    wrote_header: bool,
    /// Output not yet handed over: the head until body bytes come, and the bytes that
    /// complete the response until it ends (module rule 2).
    held: Vec<u8>,
    written: i64,
    logged_excess: bool,
    logged_no_body: bool,
    close_on_finish: bool,
    chunked: bool,
    /// The headers `start_response` last checked, by place (kept across `renew`).
    recall: Vec<Recalled>,
    /// The last head this object built (kept across `renew`; boxed, so a renewal moves a
    /// pointer).
    memo: Option<Box<HeadMemo>>,
}

/// The last response head a [`Call`] built and everything it was built from
/// (`Call::build_head`): a keep-alive client's next response, or the next client's, most
/// often has the same status, headers and framing, so the head is copied, not built.
#[derive(Debug, Default)]
struct HeadMemo {
    /// The status and each header name and value as the application gave them, in its
    /// order, each followed by a NUL (which none can hold, SPEC §3.9).
    lines: Vec<u8>,
    /// The same strs themselves (the status first), kept alive: the very same strs again
    /// (an application's constants) are the same lines, found without comparing bytes.
    strs: Vec<PyBackedStr>,
    /// What else the head was built from, and what building it decided; None before the
    /// first.
    made: Option<Made>,
    head: Vec<u8>,
}

/// `HeadMemo`'s inputs besides the lines, and what `build_head` decided from them.
#[derive(Debug)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "the flags build_head reads and decides, each compared on its own"
)]
struct Made {
    http11: bool,
    connection: String,
    wants_close: bool,
    content_length: Option<i64>,
    close_on_finish: bool,
    stopping: bool,
    ident: Option<Arc<str>>,
    start_secs: u64,
    /// Decided: the framing and persistence (`Call::persistence`), and the length kept.
    chunked: bool,
    closes: bool,
    length_after: Option<i64>,
}

/// `a == b`, without calling `memcmp` for two empty strings. An empty `String` points
/// nowhere (a dangling address), and glibc's AVX-512 `memcmp`, given length 0, still issues
/// its masked load there: the fault it suppresses costs a microcode assist. Comparing the
/// (mostly absent) `Connection` header this way was the hottest user-space instruction of a
/// hello request, ~1.2% of the server's CPU (docs/benchmarks.md, Session 12).
fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// Whether `kept` (`HeadMemo::strs`) are `status` and `headers`, str by str: both alive,
/// so the same address and length is the same text.
fn same_strs(
    kept: &[PyBackedStr],
    status: Option<&PyBackedStr>,
    headers: &[(PyBackedStr, PyBackedStr)],
) -> bool {
    let same = |a: &PyBackedStr, b: &PyBackedStr| a.as_ptr() == b.as_ptr() && a.len() == b.len();
    let (Some(status), Some((first, rest))) = (status, kept.split_first()) else {
        return false;
    };
    same(first, status)
        && rest.len() == 2 * headers.len()
        && rest
            .chunks_exact(2)
            .zip(headers)
            .all(|(pair, (name, value))| match pair {
                [kept_name, kept_value] => same(kept_name, name) && same(kept_value, value),
                _ => false,
            })
}

/// Whether `memo` holds `status` and `headers` (`HeadMemo::lines`).
fn same_lines(memo: &[u8], status: &str, headers: &[(PyBackedStr, PyBackedStr)]) -> bool {
    let mut at = 0;
    let mut next = |part: &str| {
        let start = at;
        let end = start + part.len();
        at = end + 1;
        memo.get(end) == Some(&0) && memo.get(start..end) == Some(part.as_bytes())
    };
    next(status)
        && headers
            .iter()
            .all(|(name, value)| next(name) && next(value))
        && at == memo.len()
}

/// Whether `text` holds CR or LF, and whether it holds NUL (PEP 3333 forbids them in the
/// status and headers). One pass over the bytes; the exact checks run only when a byte
/// at or below CR is there at all (a tab is the only common one).
fn forbidden(text: &str) -> (bool, bool) {
    let bytes = text.as_bytes();
    if !any_below(bytes, b'\r' + 1) {
        return (false, false);
    }
    (
        bytes.iter().any(|&b| b == b'\r' || b == b'\n'),
        bytes.contains(&0),
    )
}

/// `name.lower()`, borrowed for an ASCII name (all real ones): compare it with a lower-case
/// name by `eq_ignore_ascii_case`.
fn lowered(name: &str) -> Cow<'_, str> {
    if name.is_ascii() {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(name.to_lowercase())
    }
}

/// A Content-Length value as `int()` reads it, without calling `int` for a plain str of
/// ASCII digits (a str subclass may define `__int__`).
fn content_length_value(value: &str, object: &Bound<'_, PyAny>) -> PyResult<i64> {
    let plain = object.is_exact_instance_of::<PyString>();
    if plain && (1..=18).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) {
        // Up to 18 digits always fits an i64.
        if let Ok(n) = value.parse::<i64>() {
            return Ok(n);
        }
    }
    object
        .py()
        .get_type::<pyo3::types::PyInt>()
        .call1((object,))?
        .extract::<i64>()
}

impl Response {
    /// The response to one request, before `start_response`; `closing`: it must close the
    /// connection.
    pub(crate) fn new(
        responder: Option<Responder>,
        head: &RequestHead,
        site: &Site,
        helpers: &Arc<Helpers>,
        closing: bool,
    ) -> Self {
        Self {
            responder,
            facts: RequestFacts::of(head),
            ident: site.ident.as_ref().map(Arc::clone),
            helpers: Arc::clone(helpers),
            start_secs: now_secs(),
            status: None,
            headers: Vec::new(),
            content_length: None,
            complete: false,
            wrote_header: false,
            held: Vec::new(),
            written: 0,
            logged_excess: false,
            logged_no_body: false,
            close_on_finish: closing,
            chunked: false,
            recall: Vec::new(),
            memo: None,
        }
    }

    /// This response made new for another request on the same site, as `new` makes it,
    /// keeping the header list's allocation (emptied), the headers last checked
    /// (`Recalled`), the last head built (`HeadMemo`) and the shared helpers and ident
    /// (no reference count moved). Every field is named, so a new one cannot be missed.
    fn renew(
        &mut self,
        responder: Option<Responder>,
        head: &RequestHead,
        site: &Site,
        closing: bool,
    ) {
        let Response {
            responder: old_responder,
            facts,
            ident,
            helpers: _,
            start_secs,
            status,
            headers,
            content_length,
            complete,
            wrote_header,
            held,
            written,
            logged_excess,
            logged_no_body,
            close_on_finish,
            chunked,
            recall: _,
            memo: _,
        } = self;
        *old_responder = responder;
        *facts = RequestFacts::of(head);
        let same_ident = match (ident.as_ref(), site.ident.as_ref()) {
            (Some(kept), Some(given)) => Arc::ptr_eq(kept, given),
            (None, None) => true,
            _ => false,
        };
        if !same_ident {
            *ident = site.ident.as_ref().map(Arc::clone);
        }
        *start_secs = now_secs();
        *status = None;
        headers.clear();
        *content_length = None;
        *complete = false;
        *wrote_header = false;
        held.clear();
        *written = 0;
        *logged_excess = false;
        *logged_no_body = false;
        *close_on_finish = closing;
        *chunked = false;
    }

    /// What a valid `start_response` leaves: the status and headers as given (already
    /// checked) and the Content-Length they declare.
    pub(crate) fn start(
        &mut self,
        status: PyBackedStr,
        headers: Vec<(PyBackedStr, PyBackedStr)>,
        content_length: Option<i64>,
    ) {
        self.status = Some(status);
        self.headers = headers;
        self.content_length = content_length;
        self.complete = true;
    }

    fn status(&self) -> &str {
        self.status.as_deref().unwrap_or("200 OK")
    }

    fn has_body(&self) -> bool {
        let status = self.status().as_bytes();
        !(status.first() == Some(&b'1') || status.starts_with(b"204") || status.starts_with(b"304"))
    }

    fn sends_body(&self) -> bool {
        self.has_body() && !self.facts.is_head
    }

    fn disconnected(&self, py: Python<'_>) -> PyErr {
        match self
            .helpers
            .client_disconnected
            .bind(py)
            .call1(("Client disconnected",))
        {
            Ok(exc) => PyErr::from_value(exc),
            Err(err) => err,
        }
    }

    /// Send `data` after whatever is held (rule 3); bytes that complete the declared body
    /// are held for the ending instead (rule 2).
    fn send(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        self.send_parts(py, &[data])
    }

    /// `send` of the concatenation of `parts`. A piece the worker writes to the socket
    /// itself (large, `Responder::may_block`) goes from where it is, the application's
    /// bytes object included, with the GIL released; the rest is copied after what is held.
    fn send_parts(&mut self, py: Python<'_>, parts: &[&[u8]]) -> PyResult<()> {
        let total = self.held.len() + parts.iter().map(|p| p.len()).sum::<usize>();
        let complete = self.content_length.is_some_and(|cl| self.written >= cl);
        let held_for_end = complete && total <= HOLD_AT_END;
        if let Some(responder) = self.responder.as_mut() {
            if !held_for_end && total > 0 && responder.may_block(total) {
                let held = std::mem::take(&mut self.held);
                let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
                all.push(&held);
                all.extend_from_slice(parts);
                let sent = py.detach(|| responder.write_raw_parts(&all));
                return sent.map_err(|_| self.disconnected(py));
            }
        }
        let mut out = std::mem::take(&mut self.held);
        for part in parts {
            out.extend_from_slice(part);
        }
        self.hand_over(py, out)
    }

    /// Hand `out` (what was held, then new bytes) to the connection, or hold it (rule 2).
    fn hand_over(&mut self, py: Python<'_>, out: Vec<u8>) -> PyResult<()> {
        if out.is_empty() {
            return Ok(());
        }
        let complete = self.content_length.is_some_and(|cl| self.written >= cl);
        if complete && out.len() <= HOLD_AT_END {
            self.held = out;
            return Ok(());
        }
        let Some(responder) = self.responder.as_mut() else {
            return Err(self.disconnected(py));
        };
        // The GIL is released only when the write may take time (it waits for the
        // connection, or a large piece is written to the socket here): a small streamed
        // chunk is not a GIL hand-over.
        let sent = if responder.may_block(out.len()) {
            py.detach(|| responder.write_raw(out))
        } else {
            responder.write_raw(out)
        };
        sent.map_err(|_| self.disconnected(py))
    }

    /// Framing and persistence (SPEC §3.10) of a response whose length is known or not: the
    /// `Transfer-Encoding` and `Connection` values the server adds to its head.
    fn persistence(
        &mut self,
        length_known: bool,
        has_connection: bool,
        stopping: bool,
    ) -> (Option<&'static [u8]>, Option<&'static [u8]>) {
        let mut chunked = None;
        let mut keep_alive = if self.facts.http11 {
            let keep = self.facts.connection != "close" && !self.facts.wants_close;
            if length_known {
                keep
            } else {
                // Chunked, then close (waitress Q5).
                chunked = Some(&b"chunked"[..]);
                self.chunked = true;
                false
            }
        } else {
            self.facts.connection == "keep-alive" && length_known
        };
        if stopping {
            self.close_on_finish = true;
        }
        if self.close_on_finish {
            keep_alive = false;
        }
        let mut connection = None;
        if !keep_alive {
            self.close_on_finish = true;
            if !has_connection {
                connection = Some(&b"close"[..]);
            }
        } else if !self.facts.http11 {
            connection = Some(&b"Keep-Alive"[..]);
        }
        (chunked, connection)
    }

    /// The response head (SPEC §3.7, §3.10); decides framing and persistence. A copy of
    /// the last one this object built when it is built from the same (`HeadMemo`).
    pub(crate) fn build_head(&mut self, py: Python<'_>) -> PyResult<Vec<u8>> {
        let stopping = self.responder.as_ref().is_some_and(Responder::is_stopping);
        let body = self.small_body();
        // Taken while the head is built: a head that fails leaves nothing remembered.
        let mut memo = self.memo.take().unwrap_or_default();
        if let Some(made) = memo
            .made
            .as_ref()
            .filter(|made| self.memo_holds(made, &memo, stopping))
        {
            self.chunked |= made.chunked;
            self.close_on_finish |= made.closes;
            self.content_length = made.length_after;
            let mut head = self.out_buffer(memo.head.len() + body);
            head.extend_from_slice(&memo.head);
            self.memo = Some(memo);
            return Ok(head);
        }
        memo.lines.clear();
        let parts = self
            .headers
            .iter()
            .flat_map(|(name, value)| [&**name, &**value]);
        for part in std::iter::once(self.status()).chain(parts) {
            memo.lines.extend_from_slice(part.as_bytes());
            memo.lines.push(0);
        }
        memo.strs.clear();
        if let Some(status) = &self.status {
            memo.strs.push(status.clone_ref(py));
            for (name, value) in &self.headers {
                memo.strs.push(name.clone_ref(py));
                memo.strs.push(value.clone_ref(py));
            }
        }
        let mut made = Made {
            http11: self.facts.http11,
            connection: self.facts.connection.clone(),
            wants_close: self.facts.wants_close,
            content_length: self.content_length,
            close_on_finish: self.close_on_finish,
            stopping,
            ident: self.ident.clone(),
            start_secs: self.start_secs,
            chunked: false,
            closes: false,
            length_after: None,
        };
        let head = self.compose_head(py, stopping, body)?;
        made.chunked = self.chunked;
        made.closes = self.close_on_finish;
        made.length_after = self.content_length;
        if head.len() <= REMEMBERED_HEAD {
            memo.made = Some(made);
            memo.head.clear();
            memo.head.extend_from_slice(&head);
            self.memo = Some(memo);
        }
        Ok(head)
    }

    /// Whether `made` and the lines of `memo` are what this response's head is built from.
    fn memo_holds(&self, made: &Made, memo: &HeadMemo, stopping: bool) -> bool {
        made.http11 == self.facts.http11
            && made.wants_close == self.facts.wants_close
            && made.content_length == self.content_length
            && made.close_on_finish == self.close_on_finish
            && made.stopping == stopping
            && made.start_secs == self.start_secs
            && same_text(&made.connection, &self.facts.connection)
            && made.ident == self.ident
            && (same_strs(&memo.strs, self.status.as_ref(), &self.headers)
                || same_lines(&memo.lines, self.status(), &self.headers))
    }

    /// An empty buffer for the head with room for `len` bytes: the one `held` has (the
    /// worker's, from its last response: `serve`), else a new one.
    fn out_buffer(&mut self, len: usize) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.held);
        out.clear();
        out.reserve(len);
        out
    }

    /// Room for a small body after the head: it is appended to the held head
    /// (`send_parts`).
    fn small_body(&self) -> usize {
        self.content_length
            .and_then(|length| usize::try_from(length).ok())
            .filter(|&length| length <= 4096)
            .unwrap_or(0)
    }

    /// `build_head`'s work. The lines are sorted by name, stably (Set-Cookie order is
    /// kept): the application's, sorted in place (nothing reads the list after), merged
    /// with the server's few, which are built in name order.
    fn compose_head(&mut self, py: Python<'_>, stopping: bool, body: usize) -> PyResult<Vec<u8>> {
        let mut head = self.out_buffer(0);
        let bodiless = !self.has_body();
        self.headers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut has_length = false;
        let mut has_connection = false;
        let mut has_server = false;
        let mut has_date = false;
        let mut size = 0;
        for (name, value) in &self.headers {
            match &**name {
                "Content-Length" if bodiless => continue,
                "Content-Length" => has_length = true,
                "Connection" => has_connection = true,
                "Server" => has_server = true,
                "Date" => has_date = true,
                _ => {}
            }
            size += name.len() + value.len() + 4;
        }
        let mut digits = [0; 20];
        let mut length = None;
        if bodiless {
            self.content_length = None;
        } else if let (Some(declared), false) = (self.content_length, has_length) {
            length = Some(decimal(declared, &mut digits));
            has_length = true;
        }
        let (chunked, connection) =
            self.persistence(has_length || bodiless, has_connection, stopping);
        let (mut server, mut via) = (None, None);
        if has_server {
            via = Some(self.ident.as_deref().unwrap_or("waitress").as_bytes());
        } else if let Some(ident) = &self.ident {
            server = Some(ident.as_bytes());
        }
        let date = DATE.with(|cache| *cache.borrow_mut().at(self.start_secs));
        let date = (!has_date).then_some(&date[..]);
        // In name order (they never share a name with each other).
        let extra = [
            ("Connection", connection),
            ("Content-Length", length),
            ("Date", date),
            ("Server", server),
            ("Transfer-Encoding", chunked),
            ("Via", via),
        ];
        let mut extra = extra
            .iter()
            .filter_map(|&(name, value)| Some((name, value?)))
            .peekable();
        size += extra
            .clone()
            .map(|(name, value)| name.len() + value.len() + 4)
            .sum::<usize>();
        let version: &[u8] = if self.facts.http11 { b"1.1" } else { b"1.0" };
        let status = self.status();
        head.reserve(16 + status.len() + size + body);
        head.extend_from_slice(b"HTTP/");
        head.extend_from_slice(version);
        head.push(b' ');
        head.extend_from_slice(status.as_bytes());
        head.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            if bodiless && &**name == "Content-Length" {
                continue;
            }
            // On equal names the application's line goes first (a stable sort).
            while let Some((extra_name, extra_value)) = extra.next_if(|&(n, _)| n < &**name) {
                header_line(&mut head, extra_name, extra_value);
            }
            header_line(&mut head, name, value.as_bytes());
        }
        for (name, value) in extra {
            header_line(&mut head, name, value);
        }
        head.extend_from_slice(b"\r\n");
        if all_ascii(&head) {
            Ok(head)
        } else {
            latin1_encoded(py, head)
        }
    }

    /// `Task.write` of waitress (SPEC §3.10): the first call sends the head.
    fn write_bytes(
        &mut self,
        py: Python<'_>,
        data: &[u8],
        owner: Option<&Bound<'_, PyBytes>>,
    ) -> PyResult<()> {
        if !self.wrote_header {
            self.held = self.build_head(py)?;
            self.wrote_header = true;
        }
        if data.is_empty() {
            return Ok(());
        }
        let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
        if !self.has_body() {
            self.written = self.written.saturating_add(len);
            if !self.logged_no_body {
                self.helpers.logger.bind(py).call_method1(
                    "warning",
                    (
                        "application-written content was ignored due to HTTP response that \
                         may not contain a message-body: (%s)",
                        self.status(),
                    ),
                )?;
                self.logged_no_body = true;
            }
            return Ok(());
        }
        let mut data = data;
        if let Some(limit) = self.content_length {
            let room = usize::try_from(limit.saturating_sub(self.written).max(0)).unwrap_or(0);
            if data.len() > room {
                data = data.get(..room).unwrap_or_default();
                if !self.logged_excess {
                    self.helpers.logger.bind(py).call_method1(
                        "warning",
                        (
                            "application-written content exceeded the number of bytes \
                             specified by Content-Length header (%s)",
                            limit,
                        ),
                    )?;
                    self.logged_excess = true;
                }
            }
        }
        self.written = self
            .written
            .saturating_add(i64::try_from(data.len()).unwrap_or(i64::MAX));
        if data.is_empty() || !self.sends_body() {
            return Ok(());
        }
        if self.chunked {
            let mut size = [0; 18];
            let size = chunk_size_line(data.len(), &mut size);
            return self.send_framed(py, size, data, owner, b"\r\n");
        }
        self.send_framed(py, b"", data, owner, b"")
    }

    /// `send_parts` of `before`, `data` and `after`, where `data` is the start of the
    /// application's bytes object `owner` (if given): a large piece is lent to the server
    /// as it is, so what the socket does not take at once is not copied.
    fn send_framed(
        &mut self,
        py: Python<'_>,
        before: &[u8],
        data: &[u8],
        owner: Option<&Bound<'_, PyBytes>>,
        after: &[u8],
    ) -> PyResult<()> {
        let total = self.held.len() + before.len() + data.len() + after.len();
        let complete = self.content_length.is_some_and(|cl| self.written >= cl);
        let held_for_end = complete && total <= HOLD_AT_END;
        if let (Some(owner), Some(responder)) = (owner, self.responder.as_mut()) {
            if !held_for_end && responder.may_block(total) {
                let mut head = std::mem::take(&mut self.held);
                head.extend_from_slice(before);
                let lent = Box::new(Window {
                    bytes: PyBackedBytes::from(owner.clone()),
                    len: data.len(),
                });
                // Whatever the server did not keep is dropped here, attached.
                let sent = py.detach(|| responder.write_raw_lent(&head, lent, after));
                return sent.map(drop).map_err(|_| self.disconnected(py));
            }
        }
        self.send_parts(py, &[before, data, after])
    }

    /// `Task.finish`: the head if nothing was written and the last chunk, held for the
    /// ending with anything else held.
    fn finish(&mut self, py: Python<'_>) -> PyResult<()> {
        if !self.wrote_header {
            self.write_bytes(py, b"", None)?;
        }
        if self.chunked && self.sends_body() {
            self.held.extend_from_slice(b"0\r\n\r\n");
        }
        Ok(())
    }

    /// The WSGI `write` (calling the object).
    fn write(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.complete {
            return Err(PyRuntimeError::new_err(
                "start_response was not called before body written",
            ));
        }
        let Ok(bytes) = data.cast::<PyBytes>() else {
            return Err(PyTypeError::new_err(format!(
                "WSGI response body must be bytes, not {}",
                data.get_type().name()?
            )));
        };
        self.write_bytes(py, bytes.as_bytes(), Some(bytes))
    }

    /// A body shorter than its Content-Length ends the connection (SPEC §3.10).
    fn check_length(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(declared) = self.content_length else {
            return Ok(());
        };
        if self.written >= declared || self.facts.is_head {
            return Ok(());
        }
        self.close_on_finish = true;
        self.helpers.logger.bind(py).call_method1(
            "warning",
            (
                "application returned too few bytes (%s) for specified Content-Length (%s) \
                 via app_iter",
                self.written,
                declared,
            ),
        )?;
        Ok(())
    }
}

#[pymethods]
impl Call {
    /// `start_response(status, headers, exc_info=None)` (SPEC §3.9); returns `write`, the
    /// object itself. Handed to the application as a bound method, which is called with
    /// its arguments as they are (vectorcall), where calling the object would pack them in
    /// a tuple; and returning the object makes no bound `write` method per request.
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn start_response<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let call = slf.get();
        {
            let this = call.state(py)?;
            let raising = match exc_info {
                Some(info) if info.is_truthy()? => {
                    let value = info.get_item(1)?;
                    if value.is_none() {
                        None
                    } else {
                        Some((value, info.get_item(2)?))
                    }
                }
                _ => None,
            };
            if let Some((value, traceback)) = raising {
                if this.wrote_header {
                    // Too late to change the response: the caller's error ends it.
                    let exc = value.call_method1("with_traceback", (traceback,))?;
                    return Err(PyErr::from_value(exc));
                }
            } else if this.complete {
                return Err(PyAssertionError::new_err(
                    "start_response called a second time without providing exc_info.",
                ));
            }
        }
        let Ok(status_text) = status.cast::<PyString>() else {
            return Err(PyAssertionError::new_err(format!(
                "status {} is not a string",
                status.repr()?
            )));
        };
        let status_text = PyBackedStr::try_from(status_text.clone())?;
        let (crlf, nul) = forbidden(&status_text);
        if crlf {
            return Err(PyValueError::new_err(
                "carriage return/line feed character present in status",
            ));
        }
        if nul {
            return Err(PyValueError::new_err("NUL character present in status"));
        }
        let helpers = &call.helpers;
        let mut content_length = None;
        // The list the last request on this `Call` used (`Call::renew`), for its allocation,
        // and the headers it checked, by place (`Recalled`).
        let (mut checked, mut recall) = {
            let mut this = call.state_mut(py)?;
            (
                std::mem::take(&mut this.headers),
                std::mem::take(&mut this.recall),
            )
        };
        checked.clear();
        let mut check = |header: Bound<'py, PyAny>| -> PyResult<()> {
            if recall.len() <= checked.len() && checked.len() < RECALLED_PLACES {
                recall.push(Recalled::default());
            }
            let recalled = recall.get_mut(checked.len());
            checked.push(checked_header(
                &header,
                helpers,
                &mut content_length,
                recalled,
            )?);
            Ok(())
        };
        if let Ok(list) = headers.cast_exact::<PyList>() {
            // By index, as for a list body (`execute`): no iterator object.
            let mut n = 0;
            while n < list.len() {
                check(list.get_item(n)?)?;
                n += 1;
            }
        } else {
            for header in headers.try_iter()? {
                check(header?)?;
            }
        }
        let mut this = call.state_mut(py)?;
        this.recall = recall;
        this.start(status_text, checked, content_length);
        drop(this);
        Ok(slf.clone().into_any())
    }

    /// The WSGI `write` callable.
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.state_mut(py)?.write(py, data)
    }
}

/// The most places in a header list a `Call` recalls (`Recalled`): further headers are
/// always checked, so what a worker keeps is bounded.
const RECALLED_PLACES: usize = 32;

/// The largest head a `Call` remembers (`HeadMemo`); a larger one is built every time.
const REMEMBERED_HEAD: usize = 4096;

/// A header `start_response` checked on this object before, at the same place in its list
/// (`Call::recall`): the same exact-str name and value pass the same checks, so they are
/// not checked again (a worker's `Call` mostly sees one application's few responses).
#[derive(Debug, Default)]
struct Recalled {
    /// The name (in waitress's form as given), a NUL, the value; empty: nothing recalled.
    text: Vec<u8>,
    /// The Content-Length it declared, if it is one.
    length: Option<i64>,
    /// The exact tuple the header came in and its two strs, kept alive: the same tuple
    /// again (an application's constant, as most headers are) is this header, taken
    /// without reading the tuple or its strs again. None when the header came otherwise.
    given: Option<(Py<PyAny>, PyBackedStr, PyBackedStr)>,
}

impl Recalled {
    fn holds(&self, name: &str, value: &str) -> bool {
        self.text.len() == name.len() + 1 + value.len()
            && self.text.get(..name.len()) == Some(name.as_bytes())
            && self.text.get(name.len()) == Some(&0)
            && self.text.get(name.len() + 1..) == Some(value.as_bytes())
    }

    fn keep(&mut self, name: &str, value: &str, length: Option<i64>) {
        self.text.clear();
        self.text.extend_from_slice(name.as_bytes());
        self.text.push(0);
        self.text.extend_from_slice(value.as_bytes());
        self.length = length;
    }

    /// Nothing recalled.
    fn forget(&mut self) {
        self.text.clear();
        self.given = None;
    }

    /// The header's name and value when `header` is the tuple kept in `given`: alive, so
    /// the same address is the same (immutable) tuple of the same strs.
    fn same_tuple(&self, header: &Bound<'_, PyAny>) -> Option<(PyBackedStr, PyBackedStr)> {
        let (tuple, name, value) = self.given.as_ref()?;
        (tuple.as_ptr() == header.as_ptr())
            .then(|| (name.clone_ref(header.py()), value.clone_ref(header.py())))
    }
}

/// One `(name, value)` of `start_response`'s headers, checked (SPEC §3.9): both str, no
/// CR/LF/NUL, not hop-by-hop; a Content-Length is read into `content_length`. The name is
/// returned in waitress's form (`field_name`). `recalled` is what this place in the list
/// held last time (None past `RECALLED_PLACES`): when it holds this header, its checks are
/// not made again; else it is made to hold it (exact str objects in waitress's form only).
fn checked_header<'py>(
    header: &Bound<'py, PyAny>,
    helpers: &Helpers,
    content_length: &mut Option<i64>,
    recalled: Option<&mut Recalled>,
) -> PyResult<(PyBackedStr, PyBackedStr)> {
    if let Some(recalled) = recalled.as_deref() {
        if let Some(pair) = recalled.same_tuple(header) {
            if let Some(length) = recalled.length {
                *content_length = Some(length);
            }
            return Ok(pair);
        }
    }
    let (name, value): (Bound<'py, PyAny>, Bound<'py, PyAny>) = header.extract()?;
    let exact = name.is_exact_instance_of::<PyString>() && value.is_exact_instance_of::<PyString>();
    let Ok(name_text) = name.cast::<PyString>() else {
        return Err(PyAssertionError::new_err(format!(
            "Header name {} is not a string in {}",
            name.repr()?,
            header.repr()?
        )));
    };
    let Ok(value_text) = value.cast::<PyString>() else {
        return Err(PyAssertionError::new_err(format!(
            "Header value {} is not a string in {}",
            value.repr()?,
            header.repr()?
        )));
    };
    let name_text = PyBackedStr::try_from(name_text.clone())?;
    let value_text = PyBackedStr::try_from(value_text.clone())?;
    let held = recalled
        .as_deref()
        .filter(|recalled| exact && recalled.holds(&name_text, &value_text));
    if let Some(held) = held {
        if let Some(length) = held.length {
            *content_length = Some(length);
        }
        return Ok((name_text, value_text));
    }
    let given = name_text.as_ptr();
    let (form, length) = checked_text(name_text, &value_text, &value, helpers, header.py())?;
    if let Some(length) = length {
        *content_length = Some(length);
    }
    if let Some(recalled) = recalled {
        // A name returned as given was in waitress's form.
        if exact && form.as_ptr() == given {
            recalled.keep(&form, &value_text, length);
            let py = header.py();
            recalled.given = header.is_exact_instance_of::<PyTuple>().then(|| {
                (
                    header.clone().unbind(),
                    form.clone_ref(py),
                    value_text.clone_ref(py),
                )
            });
        } else {
            recalled.forget();
        }
    }
    Ok((form, value_text))
}

/// `checked_header`'s checks of a name and value: the name in waitress's form, and the
/// Content-Length the header declares, if it is one.
fn checked_text(
    name_text: PyBackedStr,
    value_text: &PyBackedStr,
    value: &Bound<'_, PyAny>,
    helpers: &Helpers,
    py: Python<'_>,
) -> PyResult<(PyBackedStr, Option<i64>)> {
    let (value_crlf, value_nul) = forbidden(value_text);
    if value_crlf {
        return Err(PyValueError::new_err(
            "carriage return/line feed character present in header value",
        ));
    }
    let (name_crlf, name_nul) = forbidden(&name_text);
    if name_crlf {
        return Err(PyValueError::new_err(
            "carriage return/line feed character present in header name",
        ));
    }
    if name_nul || value_nul {
        return Err(PyValueError::new_err("NUL character present in header"));
    }
    let ascii = all_ascii(name_text.as_bytes());
    if ascii
        && name_text.len() != 14
        && helpers.hop_by_hop_lengths & length_bit(name_text.len()) == 0
    {
        // Neither Content-Length nor, by its length, hop-by-hop.
        return Ok((field_name(py, helpers, name_text)?, None));
    }
    let lower = lowered(&name_text);
    let mut length = None;
    if lower.eq_ignore_ascii_case("content-length") {
        length = Some(content_length_value(value_text, value)?);
    } else if helpers
        .hop_by_hop
        .iter()
        .any(|hop| lower.eq_ignore_ascii_case(hop))
    {
        return Err(PyAssertionError::new_err(format!(
            "{} is a \"hop-by-hop\" header; it cannot be used by a WSGI \
             application (see PEP 3333)",
            &*name_text
        )));
    }
    Ok((field_name(py, helpers, name_text)?, length))
}

/// The `wsgi.input` stream and the decoded body length.
fn body_stream<'py>(
    py: Python<'py>,
    helpers: &Helpers,
    body: RequestBody,
) -> PyResult<(Bound<'py, PyAny>, u64)> {
    match body {
        RequestBody::Memory(bytes) if bytes.is_empty() => {
            Ok((helpers.bytes_io.bind(py).call0()?, 0))
        }
        RequestBody::Memory(bytes) => {
            let len = bytes.len() as u64;
            let stream = helpers
                .bytes_io
                .bind(py)
                .call1((PyBytes::new(py, &bytes),))?;
            Ok((stream, len))
        }
        RequestBody::File(file) => {
            use std::os::fd::IntoRawFd;
            let len = file.metadata()?.len();
            let fd = file.into_raw_fd();
            let stream = helpers.fdopen.bind(py).call1((fd, "rb"))?;
            Ok((stream, len))
        }
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "the environ's inputs, each used once"
)]
fn build_environ<'py>(
    py: Python<'py>,
    site: &Site,
    helpers: &Helpers,
    request: &Facts<'_>,
    path: &mut Option<Bound<'py, PyString>>,
    input: &Bound<'py, PyAny>,
    body_len: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let head = request.head;
    // Header fields: CGI names, repeated fields joined with ", ", Transfer-Encoding
    // dropped (the body is already decoded). Names are compared as their CGI form without
    // building it; only a field without an interned key gets its key built.
    let mut fields: Vec<(&[u8], Cow<'_, [u8]>)> = Vec::with_capacity(head.headers().len());
    for (name, value) in head.headers() {
        if is_cgi(name, b"TRANSFER_ENCODING")
            || (site.drop_proxy_headers && PROXY_HEADERS.iter().any(|key| is_cgi(name, key)))
        {
            continue;
        }
        if let Some((_, joined)) = fields.iter_mut().find(|(seen, _)| is_cgi(seen, name)) {
            let joined = joined.to_mut();
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(value);
        } else {
            fields.push((name, Cow::Borrowed(value)));
        }
    }
    if matches!(head.body(), BodyKind::Chunked) {
        let length = Cow::Owned(body_len.to_string().into_bytes());
        match fields
            .iter_mut()
            .find(|(name, _)| is_cgi(name, b"CONTENT_LENGTH"))
        {
            Some((_, value)) => *value = length,
            None => fields.push((b"Content-Length", length)),
        }
    }
    let template = site.template(py, helpers)?;
    let start = environ_start(py, site, helpers, template, request, &fields)?;
    let env = start.env;
    // The template holds GET, "" and HTTP/1.1 (`Site::template`): only others are set.
    if head.method() != b"GET" {
        put(
            &env,
            intern!(py, "REQUEST_METHOD"),
            &method(py, head.method())?,
        )?;
    }
    *path = Some(match start.path {
        Some(decoded) => decoded,
        None => put_target(py, site, helpers, &env, head.target(), start.query_set)?,
    });
    if head.version() != Version::Http11 {
        put(
            &env,
            intern!(py, "SERVER_PROTOCOL"),
            intern!(py, "HTTP/1.0"),
        )?;
    }
    put(&env, intern!(py, "wsgi.input"), input)?;
    if !stderr_is(py, helpers, template.errors.bind(py)) {
        put(&env, intern!(py, "wsgi.errors"), &stderr(py, helpers)?)?;
    }
    put_fields(py, &env, &fields, start.known)?;
    Ok(env)
}

/// Set `PATH_INFO`, `QUERY_STRING` (when not empty, or when `query_set`: the template holds
/// another) and `REQUEST_URI` from `target`; returns the decoded path.
fn put_target<'py>(
    py: Python<'py>,
    site: &Site,
    helpers: &Helpers,
    env: &Bound<'py, PyDict>,
    target: &[u8],
    query_set: bool,
) -> PyResult<Bound<'py, PyString>> {
    let (path, query) = split_target(py, helpers, target)?;
    let decoded = path.to_str()?;
    match path_info(decoded, &site.url_prefix) {
        // The decoded path as it is (no prefix, no leading `//`): its str again.
        Cow::Borrowed(info) if info.len() == decoded.len() => {
            put(env, intern!(py, "PATH_INFO"), &path)?;
        }
        info => put(env, intern!(py, "PATH_INFO"), &PyString::new(py, &info))?,
    }
    if query_set || query.len()? > 0 {
        put(env, intern!(py, "QUERY_STRING"), &query)?;
    }
    // An origin-form target that is a plain path (nothing escaped, no query) is its
    // decoded path's str (`split_target`).
    let plain = target.first() == Some(&b'/')
        && target.get(1) != Some(&b'/')
        && !target.iter().any(|&b| matches!(b, b'%' | b'?' | b'#'));
    let uri = if plain {
        path.clone()
    } else {
        latin1(py, target)?
    };
    put(env, intern!(py, "REQUEST_URI"), &uri)?;
    Ok(path)
}

/// What a connection keeps for its requests (`ClientGone::keep`; it reads only the flag, so
/// the two do not keep each other alive).
struct ConnectionKept {
    /// The connection's `waitress.client_disconnected`, made for its first request.
    check: Py<ClientDisconnectedCheck>,
    /// Made at its second request (a connection that serves one request would pay a dict
    /// copy for nothing).
    template: OnceLock<OwnTemplate>,
}

/// A connection's environ template: the site's with the connection's peer (`REMOTE_ADDR`,
/// `REMOTE_HOST`, `REMOTE_PORT`), its check, and the header fields of the request it was
/// made for. A client sends mostly the same fields on every request of a connection (Host,
/// User-Agent, Accept…), so a later request sets only the fields that differ and removes
/// those it lacks.
struct OwnTemplate {
    env: Py<PyDict>,
    /// The header fields in `env`, in the order they came: at most `KNOWN_FIELDS`, of at
    /// most `KNOWN_FIELD_BYTES` in all.
    fields: Vec<KnownField>,
    /// The request target whose `PATH_INFO`, `QUERY_STRING` and `REQUEST_URI` are in `env`
    /// (a client that asks for the same one again, as a poller does, sets none of them),
    /// and its decoded path; None for a target longer than `KNOWN_TARGET_BYTES`.
    target: Option<(Vec<u8>, Py<PyString>)>,
}

/// Where an environ starts (`environ_start`).
struct Start<'py, 'a> {
    env: Bound<'py, PyDict>,
    /// The header fields `env` holds already.
    known: &'a [KnownField],
    /// The decoded path when `env` holds this request's target keys already.
    path: Option<Bound<'py, PyString>>,
    /// `env` holds a `QUERY_STRING` of another request (`put_target`).
    query_set: bool,
}

/// A header field as a connection's template holds it.
struct KnownField {
    /// The name as sent (compared by its CGI form) and the value.
    name: Vec<u8>,
    value: Vec<u8>,
    key: Py<PyString>,
}

/// The most header fields a connection's template holds (a `u64` marks those a request
/// has); a request's further fields are set one by one.
const KNOWN_FIELDS: usize = 64;

/// The most bytes of field names and values, and of target, a connection's template holds:
/// what an idle kept-alive connection keeps stays small whatever its requests carried (a
/// browser's fields are well under this; larger ones are set per request).
const KNOWN_FIELD_BYTES: usize = 2048;
const KNOWN_TARGET_BYTES: usize = 512;

/// Header fields as the environ takes them: the name as sent, the value (repeated fields
/// joined).
type Fields<'a> = [(&'a [u8], Cow<'a, [u8]>)];

/// The environ's starting point for `request`: a copy of its connection's template when
/// it has one (made at its second request), else of the site's with the peer and the check
/// set; and what the copy already holds of this request.
fn environ_start<'py, 'a>(
    py: Python<'py>,
    site: &Site,
    helpers: &Helpers,
    template: &Template,
    request: &Facts<'a>,
    fields: &Fields<'_>,
) -> PyResult<Start<'py, 'a>> {
    let gone: &'a ClientGone = request.gone;
    let Some(kept) = gone.kept::<ConnectionKept>() else {
        // The connection's first request.
        let check = Bound::new(
            py,
            ClientDisconnectedCheck {
                flag: Arc::clone(gone.flag()),
            },
        )?;
        gone.keep(ConnectionKept {
            check: check.clone().unbind(),
            template: OnceLock::new(),
        });
        let env = template.env.bind(py).copy()?;
        put_connection(py, &env, request.peer, &check)?;
        return Ok(Start {
            env,
            known: &[],
            path: None,
            query_set: false,
        });
    };
    if kept.template.get().is_none() {
        let env = template.env.bind(py).copy()?;
        put_connection(py, &env, request.peer, kept.check.bind(py))?;
        let mut known = Vec::with_capacity(fields.len().min(KNOWN_FIELDS));
        let mut room = KNOWN_FIELD_BYTES;
        for (name, value) in fields.iter().take(KNOWN_FIELDS) {
            let Some(left) = room.checked_sub(name.len() + value.len()) else {
                break;
            };
            room = left;
            let key = field_key(py, name);
            put(&env, &key, &latin1(py, value)?)?;
            known.push(KnownField {
                name: name.to_vec(),
                value: value.to_vec(),
                key: key.unbind(),
            });
        }
        let target = request.head.target();
        let target = if target.len() <= KNOWN_TARGET_BYTES {
            let path = put_target(py, site, helpers, &env, target, false)?;
            Some((target.to_vec(), path.unbind()))
        } else {
            None
        };
        let _ = kept.template.set(OwnTemplate {
            env: env.unbind(),
            fields: known,
            target,
        });
    }
    let Some(own) = kept.template.get() else {
        return Err(PyRuntimeError::new_err("connection template not set"));
    };
    let same = own
        .target
        .as_ref()
        .filter(|(target, _)| target == request.head.target());
    Ok(Start {
        env: own.env.bind(py).copy()?,
        known: &own.fields,
        path: same.map(|(_, path)| path.bind(py).clone()),
        // A template without a target, or made for one without `?`, holds the site's
        // empty query.
        query_set: same.is_none()
            && own
                .target
                .as_ref()
                .is_some_and(|(target, _)| target.contains(&b'?')),
    })
}

/// Set the header fields `known` (what the environ's template holds) does not: those it
/// lacks or holds with another value; and remove those of `known` the request lacks.
fn put_fields(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    fields: &Fields<'_>,
    known: &[KnownField],
) -> PyResult<()> {
    let mut present: u64 = 0;
    for (at, (name, value)) in fields.iter().enumerate() {
        // Fields mostly come in the same order on a connection: the same place first.
        let found = match known.get(at) {
            Some(field) if is_cgi(&field.name, name) => Some(at),
            _ => known.iter().position(|field| is_cgi(&field.name, name)),
        };
        match found.and_then(|index| Some((index, known.get(index)?))) {
            Some((index, field)) => {
                present |= 1 << index;
                if field.value != **value {
                    put(env, field.key.bind(py), &latin1(py, value)?)?;
                }
            }
            None => put(env, &field_key(py, name), &latin1(py, value)?)?,
        }
    }
    for (index, field) in known.iter().enumerate() {
        if present & (1 << index) == 0 {
            env.del_item(field.key.bind(py))?;
        }
    }
    Ok(())
}

/// The environ key of a header field: interned for the common ones, else built
/// (`HTTP_` and the CGI form; field names are tokens, checked by the parser, so ASCII).
fn field_key<'py>(py: Python<'py>, name: &[u8]) -> Bound<'py, PyString> {
    if let Some(interned) = environ_key(py, name) {
        return interned.clone();
    }
    let mut key = String::with_capacity(5 + name.len());
    key.push_str("HTTP_");
    key.extend(name.iter().map(|&b| char::from(cgi_byte(b))));
    PyString::new(py, &key)
}

/// The values of a connection's environ keys: its peer and its check.
fn put_connection(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    peer: &Peer,
    check: &Bound<'_, ClientDisconnectedCheck>,
) -> PyResult<()> {
    let (addr, port) = match peer {
        Peer::Tcp(addr) => (peer_ip(py, addr.ip()), peer_port(py, addr.port())),
        Peer::Unix => (
            intern!(py, "localhost").clone(),
            intern!(py, "None").clone(),
        ),
    };
    put(env, intern!(py, "REMOTE_ADDR"), &addr)?;
    put(env, intern!(py, "REMOTE_HOST"), &addr)?;
    put(env, intern!(py, "REMOTE_PORT"), &port)?;
    put(env, intern!(py, "waitress.client_disconnected"), check)
}

/// `env[key] = value`, both borrowed, without pyo3's conversions of a `set_item` (the
/// environ's fourteen-odd stores per request).
fn put<T>(
    env: &Bound<'_, PyDict>,
    key: &Bound<'_, PyString>,
    value: &Bound<'_, T>,
) -> PyResult<()> {
    // SAFETY: the three are live objects, borrowed for the call with the GIL held (a Bound
    // proves both); PyDict_SetItem takes its own references and steals none.
    let status = unsafe { pyo3::ffi::PyDict_SetItem(env.as_ptr(), key.as_ptr(), value.as_ptr()) };
    if status < 0 {
        return Err(PyErr::fetch(env.py()));
    }
    Ok(())
}

/// A field name's byte in its CGI form: upper case, `-` as `_`.
fn cgi_byte(b: u8) -> u8 {
    match b {
        b'-' => b'_',
        _ => b.to_ascii_uppercase(),
    }
}

/// Whether two field names have the same CGI form (a CGI key, such as `CONTENT_LENGTH`,
/// is its own CGI form).
fn is_cgi(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| cgi_byte(x) == cgi_byte(y))
}

/// `waitress.proxy_headers.PROXY_HEADERS`, as CGI names without `HTTP_`.
const PROXY_HEADERS: [&[u8]; 6] = [
    b"FORWARDED",
    b"X_FORWARDED_FOR",
    b"X_FORWARDED_HOST",
    b"X_FORWARDED_PROTO",
    b"X_FORWARDED_PORT",
    b"X_FORWARDED_BY",
];

/// The environ key of a common header field, interned (no allocation, hash cached).
fn environ_key<'py>(py: Python<'py>, name: &[u8]) -> Option<&'py Bound<'py, PyString>> {
    let key = |cgi: &[u8], key: &'py Bound<'py, PyString>| is_cgi(name, cgi).then_some(key);
    // By length first: one comparison for most names.
    match name.len() {
        4 => key(b"HOST", intern!(py, "HTTP_HOST")),
        6 => key(b"ACCEPT", intern!(py, "HTTP_ACCEPT"))
            .or_else(|| key(b"COOKIE", intern!(py, "HTTP_COOKIE")))
            .or_else(|| key(b"ORIGIN", intern!(py, "HTTP_ORIGIN"))),
        7 => key(b"REFERER", intern!(py, "HTTP_REFERER")),
        10 => key(b"USER_AGENT", intern!(py, "HTTP_USER_AGENT"))
            .or_else(|| key(b"CONNECTION", intern!(py, "HTTP_CONNECTION"))),
        12 => key(b"CONTENT_TYPE", intern!(py, "CONTENT_TYPE")),
        13 => key(b"CACHE_CONTROL", intern!(py, "HTTP_CACHE_CONTROL")),
        14 => key(b"CONTENT_LENGTH", intern!(py, "CONTENT_LENGTH")),
        15 => key(b"ACCEPT_ENCODING", intern!(py, "HTTP_ACCEPT_ENCODING"))
            .or_else(|| key(b"ACCEPT_LANGUAGE", intern!(py, "HTTP_ACCEPT_LANGUAGE")))
            .or_else(|| key(b"X_FORWARDED_FOR", intern!(py, "HTTP_X_FORWARDED_FOR"))),
        17 => key(b"X_FORWARDED_PROTO", intern!(py, "HTTP_X_FORWARDED_PROTO")),
        _ => None,
    }
}

/// Hand a seekable `wsgi.file_wrapper` to the connection (SPEC §3.12). False: the caller
/// iterates it instead.
fn send_file_wrapper(
    py: Python<'_>,
    helpers: &Helpers,
    call: &Bound<'_, Call>,
    wrapper: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let declared = call.get().state(py)?.content_length;
    let size: i64 = wrapper
        .call_method1(intern!(py, "prepare"), (declared,))?
        .extract()?;
    if size == 0 {
        return Ok(false);
    }
    {
        let mut this = call.get().state_mut(py)?;
        if declared != Some(size) {
            if declared.is_some() {
                this.headers
                    .retain(|(name, _)| !name.eq_ignore_ascii_case("content-length"));
            }
            this.content_length = Some(size);
        }
        this.write_bytes(py, b"", None)?;
        if !this.sends_body() {
            return Ok(false);
        }
    }
    let sent = send_wrapper_bytes(py, helpers, call, wrapper, size);
    let closed = wrapper.call_method0(intern!(py, "close"));
    sent?;
    closed?;
    let mut this = call.get().state_mut(py)?;
    this.written = this.written.saturating_add(size);
    Ok(true)
}

fn send_wrapper_bytes(
    py: Python<'_>,
    helpers: &Helpers,
    call: &Bound<'_, Call>,
    wrapper: &Bound<'_, PyAny>,
    size: i64,
) -> PyResult<()> {
    let file = wrapper.getattr(intern!(py, "file"))?;
    let fd = helpers.regular_fd.bind(py).call1((&file,))?;
    let size_u = u64::try_from(size).unwrap_or(0);
    if !fd.is_none() {
        let fd: i32 = fd.extract()?;
        let offset: u64 = file.call_method0(intern!(py, "tell"))?.extract()?;
        // SAFETY: `fd` belongs to `file`, which the wrapper keeps open until it is closed
        // after this call; the descriptor is only borrowed to duplicate it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let owned = std::fs::File::from(borrowed.try_clone_to_owned()?);
        let mut this = call.get().state_mut(py)?;
        this.send(py, b"")?;
        let Some(responder) = this.responder.as_mut() else {
            return Err(this.disconnected(py));
        };
        if responder.send_file(owned, offset, size_u).is_err() {
            return Err(this.disconnected(py));
        }
        return Ok(());
    }
    let block: i64 = wrapper.getattr(intern!(py, "block_size"))?.extract()?;
    let mut left = size;
    while left > 0 {
        let piece = wrapper.call_method1(intern!(py, "get"), (left.min(block.max(1)), true))?;
        let piece = piece.cast::<PyBytes>()?;
        if piece.as_bytes().is_empty() {
            break;
        }
        left -= i64::try_from(piece.as_bytes().len()).unwrap_or(i64::MAX);
        call.get().state_mut(py)?.send(py, piece.as_bytes())?;
    }
    Ok(())
}

/// `len(app_iter)`, None when it has no length (a `TypeError`); other errors propagate.
fn known_length(py: Python<'_>, app_iter: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
    match app_iter.len() {
        Ok(n) => Ok(Some(n)),
        Err(err) if err.is_instance_of::<PyTypeError>(py) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Write one item of the application iterable; the first may fix the Content-Length.
fn write_item(
    py: Python<'_>,
    call: &Bound<'_, Call>,
    app_iter: &Bound<'_, PyAny>,
    chunk: &Bound<'_, PyAny>,
    first: bool,
) -> PyResult<()> {
    if first {
        let this = call.get().state(py)?;
        let unknown = this.content_length.is_none() && !this.wrote_header;
        drop(this);
        // A one-item iterable gives its length (PEP 3333), unless write() already sent
        // the head (waitress Q9).
        if unknown && known_length(py, app_iter)? == Some(1) {
            let length = i64::try_from(chunk.len()?).unwrap_or(i64::MAX);
            call.get().state_mut(py)?.content_length = Some(length);
        }
    }
    if let Ok(bytes) = chunk.cast::<PyBytes>() {
        if bytes.as_bytes().is_empty() {
            return Ok(());
        }
        return call
            .get()
            .state_mut(py)?
            .write_bytes(py, bytes.as_bytes(), Some(bytes));
    }
    if chunk.is_truthy()? {
        call.get().state_mut(py)?.write(py, chunk)?;
    }
    Ok(())
}

/// `WSGITask.execute`: call the application and send what it returns.
fn execute(
    py: Python<'_>,
    site: &Site,
    helpers: &Helpers,
    environ: &Bound<'_, PyDict>,
    call: &Bound<'_, Call>,
    start_response: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let app_iter = site.app.bind(py).call1((environ, start_response))?;
    // A list or tuple is neither a file wrapper nor has it a close(): two type reads skip
    // the isinstance call and the failing attribute lookup.
    let plain =
        app_iter.is_exact_instance_of::<PyList>() || app_iter.is_exact_instance_of::<PyTuple>();
    let mut handed_over = false;
    let result = (|| -> PyResult<()> {
        if !plain
            && app_iter.is_instance(helpers.file_wrapper.bind(py))?
            && call.get().state(py)?.complete
        {
            handed_over = send_file_wrapper(py, helpers, call, &app_iter)?;
            if call.get().state(py)?.wrote_header {
                return Ok(());
            }
        }
        if app_iter.is_exact_instance_of::<PyList>() {
            // By index, the length read each time (as a list iterator does): no iterator
            // object, and no IndexError raised and dropped at the end.
            let list = app_iter.cast::<PyList>()?;
            let mut n = 0;
            while n < list.len() {
                let chunk = list.get_item(n)?;
                write_item(py, call, &app_iter, &chunk, n == 0)?;
                n += 1;
            }
        } else {
            let mut first = true;
            for chunk in app_iter.try_iter()? {
                write_item(py, call, &app_iter, &chunk?, first)?;
                first = false;
            }
        }
        call.get().state_mut(py)?.check_length(py)
    })();
    if !handed_over && !plain {
        match app_iter.getattr_opt(intern!(py, "close"))? {
            Some(close) if !close.is_none() => {
                close.call0()?;
            }
            _ => {}
        }
    }
    result
}

thread_local! {
    /// The last peer address this worker formatted: requests come from few addresses (one,
    /// behind a proxy), so most reuse it instead of formatting and allocating it again.
    static LAST_PEER_IP: std::cell::RefCell<Option<(std::net::IpAddr, Py<PyString>)>> =
        const { std::cell::RefCell::new(None) };
}

/// `ip` as the environ's `REMOTE_ADDR` string.
fn peer_ip(py: Python<'_>, ip: std::net::IpAddr) -> Bound<'_, PyString> {
    LAST_PEER_IP.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((cached, text)) = last.as_ref() {
            if *cached == ip {
                return text.bind(py).clone();
            }
        }
        let text = PyString::new(py, &ip.to_string());
        *last = Some((ip, text.clone().unbind()));
        text
    })
}

/// Slots of a worker's `REMOTE_PORT` strings, by the port's low bits.
const PORT_SLOTS: usize = 64;

/// A port and its `REMOTE_PORT` string.
type PortSlot = Option<(u16, Py<PyString>)>;

thread_local! {
    /// The `REMOTE_PORT` strings this worker made lately, one per slot: a connection's
    /// requests reuse their port's string instead of formatting and allocating it each time
    /// (ephemeral ports are handed out in sequence, so a burst of connections mostly lands
    /// in different slots).
    static PORT_STRINGS: std::cell::RefCell<[PortSlot; PORT_SLOTS]> =
        const { std::cell::RefCell::new([const { None }; PORT_SLOTS]) };
}

/// `port` as the environ's `REMOTE_PORT` string.
fn peer_port(py: Python<'_>, port: u16) -> Bound<'_, PyString> {
    PORT_STRINGS.with(|slots| {
        let mut slots = slots.borrow_mut();
        let Some(slot) = slots.get_mut(usize::from(port) % PORT_SLOTS) else {
            return port_string(py, port);
        };
        if let Some((cached, text)) = slot.as_ref() {
            if *cached == port {
                return text.bind(py).clone();
            }
        }
        let text = port_string(py, port);
        *slot = Some((port, text.clone().unbind()));
        text
    })
}

/// `port` in decimal, without an intermediate `String`.
fn port_string(py: Python<'_>, port: u16) -> Bound<'_, PyString> {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    let mut rest = port;
    loop {
        start -= 1;
        if let Some(digit) = digits.get_mut(start) {
            *digit = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 || start == 0 {
            break;
        }
    }
    let text = std::str::from_utf8(digits.get(start..).unwrap_or_default()).unwrap_or("0");
    PyString::new(py, text)
}

/// A worker's `Call` and its bound `start_response`, kept from one request for the next
/// while nothing else holds them (`serve`).
pub(crate) type Spare = Option<(Py<Call>, Py<PyAny>)>;

/// Serve one request on the calling worker thread (module rules). Returns the responder and
/// how to end the response, for the caller to carry out after its busy count drops; None when
/// the response already ended.
pub(crate) fn serve(
    py: Python<'_>,
    site: &Site,
    helpers: &Arc<Helpers>,
    request: Request,
    responder: Responder,
    spare: &mut Spare,
    out: &mut Vec<u8>,
) -> PyResult<Option<(Responder, Ending)>> {
    let Request {
        head,
        body,
        peer,
        gone,
        closing,
        ..
    } = request;
    let head = &head;
    // The worker's `Call` object from its last request, when nothing kept it, is this
    // request's, its response renewed: no object made and freed per request.
    let kept = spare
        .take()
        .filter(|(kept, _)| Arc::ptr_eq(&kept.get().helpers, helpers));
    let (call, start_response) = if let Some((kept, method)) = kept {
        let kept = kept.into_bound(py);
        let mut this = kept.get().state_mut(py)?;
        this.renew(Some(responder), head, site, closing);
        // The worker's output buffer from its last response (`server::end`): the head is
        // built in it, so a response costs no allocation for it.
        this.held = std::mem::take(out);
        drop(this);
        (kept, method.into_bound(py))
    } else {
        let mut fresh = Response::new(Some(responder), head, site, helpers, closing);
        fresh.held = std::mem::take(out);
        let call = Bound::new(py, Call::new(fresh))?;
        let method = call.getattr(intern!(py, "start_response"))?;
        (call, method)
    };
    let mut path: Option<Bound<'_, PyString>> = None;
    let mut input: Option<Bound<'_, PyAny>> = None;
    let outcome = (|| -> PyResult<()> {
        let facts = Facts {
            head,
            peer: &peer,
            gone: &gone,
        };
        let environ = request_environ(py, site, helpers, &facts, body, &mut path, &mut input)?;
        execute(py, site, helpers, &environ, &call, &start_response)?;
        call.get().state_mut(py)?.finish(py)
    })();
    let (responder, pending) = {
        let mut this = call.get().state_mut(py)?;
        (this.responder.take(), std::mem::take(&mut this.held))
    };
    let close_on_finish = call.get().state(py)?.close_on_finish;
    if let Some(stream) = input {
        // A BytesIO nothing else holds is freed here: closing it first would change nothing
        // anyone can see (an application that kept the environ or the stream sees it closed).
        // SAFETY: a refcount read of a live object (the Bound holds it), with the GIL held.
        let held_elsewhere = unsafe { pyo3::ffi::Py_REFCNT(stream.as_ptr()) } > 1;
        let unseen = stream.get_type().is(helpers.bytes_io.bind(py)) && !held_elsewhere;
        if !unseen {
            stream.call_method0(intern!(py, "close"))?;
        }
    }
    // Held here and by the method only (no `start_response` or `write` kept by the
    // application): the next request may use both.
    // SAFETY: refcount reads of live objects (the Bounds hold them), with the GIL held.
    let alone = unsafe {
        pyo3::ffi::Py_REFCNT(call.as_ptr()) == 2
            && pyo3::ffi::Py_REFCNT(start_response.as_ptr()) == 1
    };
    if alone {
        *spare = Some((call.clone().unbind(), start_response.clone().unbind()));
    }
    let Some(mut responder) = responder else {
        return Ok(None);
    };
    let logger = helpers.logger.bind(py);
    let ending = match outcome {
        Ok(()) => Ending::Finish {
            keep_alive: !close_on_finish,
            last: pending,
        },
        Err(err) if err.is_instance(py, helpers.client_disconnected.bind(py)) => {
            let path = path.unwrap_or_else(|| PyString::new(py, ""));
            logger.call_method1("info", ("Client disconnected while serving %s", path))?;
            Ending::Finish {
                keep_alive: false,
                last: Vec::new(),
            }
        }
        Err(err) => {
            // A response whose head was written is never replaced by a 500: what is held
            // goes out, then the connection closes (waitress's `wrote_header`).
            if call.get().state(py)?.wrote_header && !pending.is_empty() {
                let _ = py.detach(|| responder.write_raw(pending));
            }
            let kwargs = PyDict::new(py);
            kwargs.set_item("exc_info", err.value(py))?;
            logger.call_method(
                "error",
                (
                    "Exception while serving %s",
                    path.unwrap_or_else(|| PyString::new(py, "")),
                ),
                Some(&kwargs),
            )?;
            Ending::Abort(if site.expose_tracebacks {
                let lines = helpers.format_exception.bind(py).call1((err.value(py),))?;
                PyString::new(py, "")
                    .call_method1("join", (lines,))?
                    .extract::<String>()?
            } else {
                GENERIC_500.to_owned()
            })
        }
    };
    Ok(Some((responder, ending)))
}

/// The parts of a request the environ reads (the body is consumed separately).
pub(crate) struct Facts<'a> {
    pub(crate) head: &'a RequestHead,
    pub(crate) peer: &'a Peer,
    pub(crate) gone: &'a ClientGone,
}

/// The environ of one request, as `serve` builds it: the target split (into `path`, kept
/// for the log lines), the body opened as `wsgi.input` (into `input`, for the caller to
/// close whatever happens), then the dict.
pub(crate) fn request_environ<'py>(
    py: Python<'py>,
    site: &Site,
    helpers: &Helpers,
    request: &Facts<'_>,
    body: RequestBody,
    path: &mut Option<Bound<'py, PyString>>,
    input: &mut Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (stream, body_len) = body_stream(py, helpers, body)?;
    *input = Some(stream.clone());
    build_environ(py, site, helpers, request, path, &stream, body_len)
}
