//! waitress-http: a sans-I/O, strict HTTP/1.x engine for waitress-rs.
//!
//! Bytes in, events out: nothing here touches a socket, a thread or Python. The server crate
//! feeds received bytes in and writes the bytes this crate encodes.
//!
//! Modules, mapped to waitress's (docs/design.md keeps the table):
//! - [`limits`] (adjustments): every limit, with its default and reason.
//! - [`error`] (utilities' error classes): the one error enum, each variant with its status.
//! - [`request`] (parser): strict request-head parsing on httparse, and body framing.
//! - [`decode`] (receiver): the Content-Length and chunked body decoders.
//! - [`encode`] (task): response head and body framing, the cached Date header.
//! - [`conn`] (channel): the connection state machine that ties them together.

pub mod conn;
pub mod decode;
pub mod encode;
pub mod error;
pub mod limits;
pub mod request;

pub use error::ProtoError;
pub use limits::Limits;
