//! The `/health` body, computed from kept state only.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{DepState, Status};
use crate::resources::ResourceSample;

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overall {
    /// Every configured dependency is connected.
    Healthy,
    /// Some configured dependency is not connected; the service still serves.
    Degraded,
    /// Shutting down, or a critical dependency is down: answered 503.
    Unhealthy,
}

impl Overall {
    /// The lowercase name used in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Healthy => "healthy",
            Overall::Degraded => "degraded",
            Overall::Unhealthy => "unhealthy",
        }
    }
}

/// One dependency as the report sees it.
#[derive(Debug, Clone)]
pub struct DependencyView {
    /// Its name.
    pub name: &'static str,
    /// Its kept state.
    pub state: DepState,
    /// Whether the host declared it critical.
    pub critical: bool,
    /// Routes that answer 503 while it is down.
    pub affected_routes: Vec<String>,
}

/// Everything the report is computed from.
#[derive(Debug, Clone)]
pub struct HealthInputs {
    /// Whether a graceful shutdown has begun.
    pub draining: bool,
    /// `development`, `test` or `production`.
    pub environment: &'static str,
    /// Time since startup.
    pub uptime: Duration,
    /// The report's timestamp.
    pub now: DateTime<Utc>,
    /// The latest resource sample.
    pub resources: ResourceSample,
    /// Every registered dependency.
    pub dependencies: Vec<DependencyView>,
    /// The status of what carries the job queues (the host decides which
    /// dependency that is; Redis in the standalone server).
    pub job_queues: Status,
}

/// The computed report.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// The verdict, which decides the status code.
    pub overall: Overall,
    /// The JSON body of section 2 of the contract.
    pub body: HealthBody,
}

/// The `/health` body. It serializes straight from the kept state (no
/// intermediate `serde_json::Value`: `/health` is polled all day).
#[derive(Debug, Clone, Serialize)]
pub struct HealthBody {
    status: &'static str,
    service: &'static str,
    version: &'static str,
    environment: &'static str,
    timestamp: String,
    uptime: u64,
    dependencies: Dependencies,
    resources: Resources,
}

/// Every dependency by name, then `jobQueues`.
#[derive(Debug, Clone)]
struct Dependencies(Vec<DependencyView>, Status);

#[derive(Debug, Clone, Serialize)]
struct Resources {
    memory: Memory,
    cpu: Cpu,
}

#[derive(Debug, Clone, Serialize)]
struct Memory {
    used: u64,
    total: u64,
    unit: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Cpu {
    usage_percent: f64,
}

/// The job queues, whose health follows what carries them.
const QUEUES: [&str; 3] = [
    "recurring-invoices",
    "payroll-processing",
    "report-generation",
];

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl HealthReport {
    /// Computes the report. Pure: no I/O, no clock.
    pub fn build(inputs: &HealthInputs) -> Self {
        let critical_down = inputs
            .dependencies
            .iter()
            .any(|d| d.critical && d.state.status != Status::Connected);
        let any_down = inputs
            .dependencies
            .iter()
            .any(|d| !matches!(d.state.status, Status::Connected | Status::Disabled));
        let overall = if inputs.draining || critical_down {
            Overall::Unhealthy
        } else if any_down {
            Overall::Degraded
        } else {
            Overall::Healthy
        };
        let mb = |bytes: u64| bytes / (1024 * 1024);
        let body = HealthBody {
            status: overall.as_str(),
            service: "accubooks",
            version: env!("CARGO_PKG_VERSION"),
            environment: inputs.environment,
            timestamp: timestamp(inputs.now),
            uptime: inputs.uptime.as_secs(),
            dependencies: Dependencies(inputs.dependencies.clone(), inputs.job_queues),
            resources: Resources {
                memory: Memory {
                    used: mb(inputs.resources.memory_used_bytes),
                    total: mb(inputs.resources.memory_total_bytes),
                    unit: "MB",
                },
                cpu: Cpu {
                    usage_percent: inputs.resources.cpu_usage_percent,
                },
            },
        };
        HealthReport { overall, body }
    }
}

impl Serialize for Dependencies {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for dep in &self.0 {
            map.serialize_entry(dep.name, dep)?;
        }
        map.serialize_entry("jobQueues", &JobQueues(self.1))?;
        map.end()
    }
}

impl Serialize for DependencyView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct ErrorJson {
            code: &'static str,
            kind: &'static str,
        }
        let state = &self.state;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("status", state.status.as_str())?;
        map.serialize_entry("initialized", &state.initialized)?;
        if state.status != Status::Disabled {
            map.serialize_entry("since", &timestamp(state.since))?;
            map.serialize_entry("last_success", &state.last_success.map(timestamp))?;
            map.serialize_entry("last_failure", &state.last_failure.map(timestamp))?;
            map.serialize_entry("consecutive_failures", &state.consecutive_failures)?;
            map.serialize_entry("critical", &self.critical)?;
            let error = state.last_error.map(|fault| ErrorJson {
                code: fault.code,
                kind: fault.transience.as_str(),
            });
            map.serialize_entry("error", &error)?;
            if state.status != Status::Connected && !self.affected_routes.is_empty() {
                map.serialize_entry("affected_routes", &self.affected_routes)?;
            }
        }
        map.end()
    }
}

/// The job queues' health, which follows their carrier's status.
struct JobQueues(Status);

impl Serialize for JobQueues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Queues(bool);
        impl Serialize for Queues {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(QUEUES.iter().map(|queue| (queue, self.0)))
            }
        }
        let status = match self.0 {
            Status::Connected => "healthy",
            Status::Disabled => "disabled",
            Status::Initializing => "initializing",
            Status::Unavailable => "unavailable",
        };
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("status", status)?;
        map.serialize_entry("queues", &Queues(self.0 == Status::Connected))?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::error::Fault;
    use crate::health::{Event, Thresholds};

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_062_400, 0).unwrap()
    }

    fn view(name: &'static str, state: DepState) -> DependencyView {
        DependencyView {
            name,
            state,
            critical: false,
            affected_routes: vec!["GET /api/accounts".to_owned()],
        }
    }

    fn connected() -> DepState {
        DepState::initializing(now())
            .apply(Event::ProbeSucceeded, now(), Thresholds::default())
            .state
    }

    fn down() -> DepState {
        DepState::initializing(now())
            .apply(
                Event::ProbeFailed(Fault::temporary("CONNECTION_REFUSED")),
                now(),
                Thresholds::default(),
            )
            .state
    }

    fn inputs(deps: Vec<DependencyView>) -> HealthInputs {
        HealthInputs {
            draining: false,
            environment: "production",
            uptime: Duration::from_secs(3600),
            now: now(),
            resources: ResourceSample {
                memory_used_bytes: 256 << 20,
                memory_total_bytes: 512 << 20,
                cpu_usage_percent: 3.2,
            },
            job_queues: deps
                .iter()
                .find(|d| d.name == "redis")
                .map_or(Status::Disabled, |d| d.state.status),
            dependencies: deps,
        }
    }

    #[test]
    fn degraded_with_the_contract_shape() {
        let report = HealthReport::build(&inputs(vec![
            view("database", down()),
            view("redis", connected()),
            view("stripe", DepState::disabled(now())),
        ]));
        assert_eq!(report.overall, Overall::Degraded);
        let body = &serde_json::to_value(&report.body).unwrap();
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["service"], "accubooks");
        assert_eq!(body["timestamp"], "2026-02-02T20:00:00.000Z");
        assert_eq!(body["uptime"], 3600);
        assert_eq!(
            body["resources"]["memory"],
            json!({"used": 256, "total": 512, "unit": "MB"})
        );
        let db = &body["dependencies"]["database"];
        assert_eq!(db["status"], "unavailable");
        assert_eq!(db["initialized"], false);
        assert_eq!(
            db["error"],
            json!({"code": "CONNECTION_REFUSED", "kind": "temporary"})
        );
        assert_eq!(db["affected_routes"], json!(["GET /api/accounts"]));
        assert_eq!(
            body["dependencies"]["jobQueues"],
            json!({"status": "healthy", "queues": {"recurring-invoices": true, "payroll-processing": true, "report-generation": true}})
        );
        assert_eq!(
            body["dependencies"]["stripe"],
            json!({"status": "disabled", "initialized": false})
        );
    }

    #[test]
    fn healthy_when_every_configured_dependency_is_connected() {
        let report = HealthReport::build(&inputs(vec![
            view("database", connected()),
            view("plaid", DepState::disabled(now())),
        ]));
        assert_eq!(report.overall, Overall::Healthy);
        let body = serde_json::to_value(&report.body).unwrap();
        assert!(
            body["dependencies"]["database"]
                .get("affected_routes")
                .is_none()
        );
    }

    #[test]
    fn unhealthy_when_draining_or_a_critical_dependency_is_down() {
        let mut draining = inputs(vec![view("database", connected())]);
        draining.draining = true;
        assert_eq!(HealthReport::build(&draining).overall, Overall::Unhealthy);
        let mut critical = view("ledger-mirror", down());
        critical.critical = true;
        assert_eq!(
            HealthReport::build(&inputs(vec![critical])).overall,
            Overall::Unhealthy
        );
    }
}
