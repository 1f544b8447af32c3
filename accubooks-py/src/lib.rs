//! # accubooks-py
//!
//! The Python bindings of AccuBooks: the native module `accubooks._accubooks`,
//! re-exported by the `accubooks` package (see `python/accubooks`).
//!
//! One [`Instance`](instance::Instance) (an `AccuBooks` handle of the core)
//! sits behind every Python handle. Every book method calls one use case of
//! the core ([`accubooks_core::usecases`], which the HTTP routes call too).
//! The methods are written once, in [`organization`], and expanded into the
//! blocking class ([`blocking`]), which runs them on the shared Tokio
//! runtime with the GIL released, and the asyncio class ([`aio`]), which
//! hands them to the event loop with `pyo3-async-runtimes`.
//! Values cross the boundary in [`convert`]; errors become the exception
//! classes of `accubooks._errors` in [`error`].

mod aio;
mod blocking;
mod convert;
mod error;
mod instance;
mod organization;
mod runtime;
mod schema;
mod server;

use pyo3::prelude::*;

/// The native module, `accubooks._accubooks`.
#[pymodule]
fn _accubooks(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<blocking::AccuBooks>()?;
    m.add_class::<blocking::Organization>()?;
    m.add_class::<server::Server>()?;
    m.add_class::<aio::AsyncAccuBooks>()?;
    m.add_class::<aio::AsyncOrganization>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
