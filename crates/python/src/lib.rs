//! waitress._core: the pyo3 extension module (the only Python-aware crate).

use pyo3::prelude::*;

/// The extension module. One export list, here.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
