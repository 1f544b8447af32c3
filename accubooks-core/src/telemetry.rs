//! Structured logging with `tracing`.

use tracing_subscriber::EnvFilter;

use crate::config::Environment;

/// Installs a global subscriber: JSON lines in production, compact text
/// otherwise, filtered by `RUST_LOG` (default `info`). Does nothing when a
/// subscriber is already installed (tests, embedding hosts).
pub fn init(environment: Environment) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if environment == Environment::Production {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
