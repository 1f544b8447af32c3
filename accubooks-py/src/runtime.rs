//! The one Tokio runtime every handle shares.
//!
//! It is the runtime of `pyo3-async-runtimes`, so the blocking and the asyncio
//! classes drive the same instance's pools and background tasks from the same
//! threads: an `AccuBooks` built for one can serve the other.

use std::future::Future;

use pyo3::Python;
use tokio::runtime::Runtime;

/// The shared multi-threaded runtime, built on first use.
pub(crate) fn runtime() -> &'static Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Runs `future` to completion on the shared runtime with the GIL released,
/// so other Python threads (and the runtime's own callbacks into Python)
/// keep running meanwhile.
pub(crate) fn block_on<F>(py: Python<'_>, future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    py.detach(|| runtime().block_on(future))
}
