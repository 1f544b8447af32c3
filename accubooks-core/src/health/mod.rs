//! Dependency health: the pure state machine and the `/health` report.

pub mod report;
mod state;

pub use report::{HealthReport, Overall};
pub use state::{DepState, Event, ProbePolicy, Status, Thresholds, Transition};
