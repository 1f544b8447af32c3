//! Cross-crate tests against real PostgreSQL and Redis: the contract suite
//! run on every host, fault tests that kill, pause and restart the
//! dependencies, and process-level tests of the standalone server.

pub mod support;

mod books;
mod contract;
mod export;
mod faults;
mod invoices;
mod process;
mod properties;
