//! Thin wrappers over the WSGI code paths for `benches/wsgi.rs` (feature `bench`, `make
//! bench-wsgi`). Not an API: each wrapper runs the functions `wsgi::serve` runs, on inputs
//! the bench makes instead of a connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyString};
use waitress_http::request::RequestHead;
use waitress_server::{ClientGone, Peer, RequestBody};

use crate::wsgi::{self, field_name, Call, Facts, Helpers, Response, Site};

/// One listener as `waitress.serve(app, listen="127.0.0.1:8080")` sets it up (no trusted
/// proxy, so the proxy headers are dropped; ident `waitress`), the helpers `Server.run`
/// loads, and a TCP peer.
#[derive(Debug)]
pub struct Fixture {
    site: Site,
    helpers: Arc<Helpers>,
    peer: Peer,
    gone: Arc<ClientGone>,
}

impl Fixture {
    /// Needs `waitress` (with its `_core` extension) importable.
    pub fn new(py: Python<'_>) -> PyResult<Self> {
        let site = Site::from_args(
            py,
            (
                py.None(),
                true,
                "localhost".to_owned(),
                "8080".to_owned(),
                "http".to_owned(),
                String::new(),
                PyString::new(py, "waitress").into_any().unbind(),
                false,
            ),
        );
        Ok(Self {
            site,
            helpers: Arc::new(Helpers::load(py)?),
            peer: Peer::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 54_321))),
            gone: Arc::default(),
        })
    }

    /// The environ `serve` builds for `head` with an empty body (`wsgi::request_environ`:
    /// target split, `wsgi.input` a `BytesIO`, the dict).
    pub fn environ<'py>(
        &self,
        py: Python<'py>,
        head: &RequestHead,
    ) -> PyResult<Bound<'py, PyDict>> {
        let facts = Facts {
            head,
            peer: &self.peer,
            gone: &self.gone,
        };
        let mut path = None;
        let mut input = None;
        wsgi::request_environ(
            py,
            &self.site,
            &self.helpers,
            &facts,
            RequestBody::Memory(Vec::new()),
            &mut path,
            &mut input,
        )
    }

    /// The response head sent for `request` after a valid `start_response(status,
    /// headers)` that declared `content_length`: a [`Response`] without a connection, as
    /// `serve` makes it, then `Response::build_head`.
    pub fn response_head(
        &self,
        py: Python<'_>,
        request: &RequestHead,
        status: &str,
        headers: &[(&str, &str)],
        content_length: Option<i64>,
    ) -> PyResult<Vec<u8>> {
        let mut call = Response::new(None, request, &self.site, &self.helpers, false);
        let text = |text: &str| PyBackedStr::try_from(PyString::new(py, text));
        let headers = headers
            .iter()
            .map(|&(name, value)| Ok((field_name(py, &self.helpers, text(name)?)?, text(value)?)))
            .collect::<PyResult<_>>()?;
        call.start(text(status)?, headers, content_length);
        call.build_head(py)
    }

    /// The same from Python objects: the application's `start_response(status, headers)`
    /// call (through the Python call protocol, checks included), then `Call::build_head`.
    pub fn start_response_head(
        &self,
        py: Python<'_>,
        request: &RequestHead,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<u8>> {
        let response = Response::new(None, request, &self.site, &self.helpers, false);
        let call = Bound::new(py, Call::new(response))?;
        call.call_method1(pyo3::intern!(py, "start_response"), (status, headers))?;
        let mut response = call.get().state_mut(py)?;
        response.build_head(py)
    }
}
