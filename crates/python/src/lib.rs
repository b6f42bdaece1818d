//! waitress._core: the pyo3 extension module, the only Python-aware crate.
//!
//! One export list, here. Errors become Python exceptions once, at this boundary.

use pyo3::prelude::*;

#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;
mod gil;
mod parser;
mod server;
mod wsgi;

/// The extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    gil::require_gil(m.py())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<parser::RequestParser>()?;
    m.add_class::<server::Server>()?;
    m.add_class::<wsgi::Call>()?;
    m.add_class::<wsgi::ClientDisconnectedCheck>()?;
    Ok(())
}
