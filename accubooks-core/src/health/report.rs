//! The `/health` body, computed from kept state only.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

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
}

/// The computed report.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// The verdict, which decides the status code.
    pub overall: Overall,
    /// The JSON body of section 2 of the contract.
    pub body: Value,
}

/// The job queues, whose health follows Redis.
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

        let mut dependencies = Map::new();
        for dep in &inputs.dependencies {
            dependencies.insert(dep.name.to_owned(), dependency_json(dep));
            if dep.name == crate::deps::REDIS {
                dependencies.insert("jobQueues".to_owned(), job_queues_json(dep.state.status));
            }
        }

        let mb = |bytes: u64| bytes / (1024 * 1024);
        let body = json!({
            "status": overall.as_str(),
            "service": "accubooks",
            "version": env!("CARGO_PKG_VERSION"),
            "environment": inputs.environment,
            "timestamp": timestamp(inputs.now),
            "uptime": inputs.uptime.as_secs(),
            "dependencies": dependencies,
            "resources": {
                "memory": {
                    "used": mb(inputs.resources.memory_used_bytes),
                    "total": mb(inputs.resources.memory_total_bytes),
                    "unit": "MB",
                },
                "cpu": {"usage_percent": inputs.resources.cpu_usage_percent},
            },
        });
        HealthReport { overall, body }
    }
}

fn dependency_json(dep: &DependencyView) -> Value {
    let state = &dep.state;
    let mut value = json!({
        "status": state.status.as_str(),
        "initialized": state.initialized,
    });
    if state.status == Status::Disabled {
        return value;
    }
    let extra = json!({
        "since": timestamp(state.since),
        "last_success": state.last_success.map(timestamp),
        "last_failure": state.last_failure.map(timestamp),
        "consecutive_failures": state.consecutive_failures,
        "critical": dep.critical,
        "error": state.last_error.map(|fault| json!({
            "code": fault.code,
            "kind": fault.transience.as_str(),
        })),
    });
    let (Value::Object(map), Value::Object(extra)) = (&mut value, extra) else {
        unreachable!("both are objects")
    };
    map.extend(extra);
    if state.status != Status::Connected && !dep.affected_routes.is_empty() {
        map.insert("affected_routes".to_owned(), json!(dep.affected_routes));
    }
    value
}

fn job_queues_json(redis: Status) -> Value {
    let up = redis == Status::Connected;
    let status = match redis {
        Status::Connected => "healthy",
        Status::Disabled => "disabled",
        Status::Initializing => "initializing",
        Status::Unavailable => "unavailable",
    };
    let queues: Map<String, Value> = QUEUES
        .iter()
        .map(|q| ((*q).to_owned(), Value::Bool(up)))
        .collect();
    json!({"status": status, "queues": queues})
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let body = &report.body;
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
        assert!(
            report.body["dependencies"]["database"]
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
