//! # accubooks-core
//!
//! The framework-agnostic core of AccuBooks, an accounting backend that stays
//! up when PostgreSQL, Redis, Stripe or Plaid do not.
//!
//! It owns the configuration, the dependency registry and its health state
//! machine, storage, metrics, the route table and the request pipeline. Hosts
//! (`accubooks-axum`, `accubooks-warp`, the Python bindings) build one
//! [`AccuBooks`] handle and pass it every request through
//! [`AccuBooks::handle`]; they translate, nothing more.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = accubooks_core::Config::from_env()?;
//! // Never waits on a dependency: pools connect lazily, probes run in the background.
//! let app = accubooks_core::AccuBooks::builder(config).build().await?;
//! assert_eq!(app.phase().as_str(), "starting");
//! # Ok(()) }
//! ```

pub mod app;
#[cfg(test)]
mod architecture;
pub mod banking;
mod clock;
pub mod config;
pub mod connections;
pub mod db;
pub mod deps;
pub mod error;
pub mod events;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod invoicing;
pub mod jobs;
pub mod ledger;
pub mod lifecycle;
pub mod limits;
pub mod metadata;
pub mod metrics;
pub mod money;
pub mod organization;
pub mod paging;
pub mod payroll;
pub mod reporting;
pub mod resources;
pub mod retention;
pub mod saas;
pub mod sealed;
pub mod telemetry;
pub mod throttle;
pub mod usecases;
pub mod webhooks;

pub use app::{AccuBooks, Builder, Phase};
pub use config::{Config, ConfigError, Environment};
pub use error::{Error, Fault, Result, Transience};
pub use organization::OrganizationId;
