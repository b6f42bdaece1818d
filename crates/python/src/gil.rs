//! [`GilCell`]: the state of a Python object that only a thread holding the GIL touches.
//!
//! pyo3 guards a mutable `#[pyclass]` with an atomic borrow flag: two locked instructions
//! for each borrow, and one WSGI call borrows its `Call` about ten times (docs/benchmarks.md,
//! Session 12). Under the GIL one thread runs at a time, so a plain `RefCell` flag does the
//! same job: a frozen class keeps its mutable state in a `GilCell`, and every borrow takes
//! the `Python` token that shows the GIL is held. The module refuses to load where the GIL
//! is off (`require_gil`), the one place this reasoning would not hold.

use std::cell::{Ref, RefCell, RefMut};

use pyo3::exceptions::{PyImportError, PyRuntimeError};
use pyo3::prelude::*;

/// A `RefCell` that threads share by taking turns under the GIL.
#[derive(Debug)]
pub(crate) struct GilCell<T>(RefCell<T>);

// SAFETY: every access to the cell (its flag and its value) goes through `borrow` or
// `borrow_mut`, which take a `Python` token: the calling thread holds the GIL, and only
// one thread holds it at a time (`require_gil` refuses a free-threaded interpreter). The
// guards they return are neither `Send` nor `Sync`, so they cannot be moved into, or used
// from, a closure that runs with the GIL released (`Python::detach` takes only `Ungil`
// closures); a guard is therefore dropped, and the flag written, only with the GIL held.
// Taking and releasing the GIL orders memory between threads, so each borrow sees the
// flag as the last holder left it. A `&mut T` taken from a guard may be used with the GIL
// released; the flag stays set meanwhile, so no other thread borrows the value. `T: Send`
// because the value is used by one thread after another.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(RefCell::new(value))
    }

    /// Read the value; an error (as pyo3 raises one) while it is borrowed to change.
    pub(crate) fn borrow<'a>(&'a self, _py: Python<'_>) -> PyResult<Ref<'a, T>> {
        self.0
            .try_borrow()
            .map_err(|_| PyRuntimeError::new_err("Already mutably borrowed"))
    }

    /// Change the value; an error (as pyo3 raises one) while it is borrowed at all.
    pub(crate) fn borrow_mut<'a>(&'a self, _py: Python<'_>) -> PyResult<RefMut<'a, T>> {
        self.0
            .try_borrow_mut()
            .map_err(|_| PyRuntimeError::new_err("Already borrowed"))
    }
}

/// Refuse to load in an interpreter running without the GIL (a free-threaded build with the
/// GIL kept off), where [`GilCell`] would not be sound.
pub(crate) fn require_gil(py: Python<'_>) -> PyResult<()> {
    let sys = py.import("sys")?;
    let enabled = match sys.getattr_opt("_is_gil_enabled")? {
        Some(check) => check.call0()?.is_truthy()?,
        None => true,
    };
    if enabled {
        Ok(())
    } else {
        Err(PyImportError::new_err(
            "waitress._core needs the GIL: run this interpreter with the GIL enabled",
        ))
    }
}
