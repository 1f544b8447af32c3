//! # accubooks-axum
//!
//! Mounts an [`AccuBooks`](accubooks_core::AccuBooks) instance into an axum
//! application. [`router`] gives a `Router` to `merge` or `nest` beside the
//! host's own routes; [`serve`] runs it standalone with graceful shutdown.
//! Every decision (routing, status codes, errors, metrics) is the core's;
//! this crate only converts requests and responses.

mod router;

pub use router::{router, serve, standalone};
