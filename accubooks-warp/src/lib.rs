//! # accubooks-warp
//!
//! Mounts an [`AccuBooks`](accubooks_core::AccuBooks) instance into a warp
//! application. [`filter`] gives a `Filter` to `or` with the host's own;
//! [`serve`] runs it standalone with graceful shutdown. Every decision is the
//! core's; this crate only converts requests and responses.

mod filter;

pub use filter::{filter, serve, standalone};
