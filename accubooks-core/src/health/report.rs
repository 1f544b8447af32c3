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
    /// The job queues, as the job monitor last saw them.
    pub job_queues: JobQueuesView,
}

/// The verdict on the job queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueuesStatus {
    /// Every worker runs (on Redis, or from the table: the database
    /// transport, or Redis down) and no backlog is growing.
    Healthy,
    /// The database is down, a worker is not running, or the oldest due
    /// job has waited past `JOB_BACKLOG_SECONDS`.
    Degraded,
    /// The first count of the monitor has not come in yet.
    Initializing,
}

impl QueuesStatus {
    /// The lowercase name used in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            QueuesStatus::Healthy => "healthy",
            QueuesStatus::Degraded => "degraded",
            QueuesStatus::Initializing => "initializing",
        }
    }
}

/// The job queues, for the report.
#[derive(Debug, Clone)]
pub struct JobQueuesView {
    /// The verdict.
    pub status: QueuesStatus,
    /// What carries the jobs now: `redis` (the streams) or `database`
    /// (claimed from the table: `JOB_TRANSPORT=database`, or Redis down);
    /// the configured transport while no worker runs.
    pub transport: &'static str,
    /// Each queue.
    pub queues: Vec<QueueView>,
    /// Jobs recorded and not yet relayed to their queue.
    pub outbox: i64,
}

/// One queue, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueView {
    /// `recurring-invoices`, `payroll-processing` or `report-generation`.
    pub name: &'static str,
    /// Whether the queue accepts and runs work now.
    pub accepting: bool,
    /// Jobs waiting to run (in the outbox, queued, or waiting for a retry).
    pub waiting: i64,
    /// Jobs held by a worker.
    pub running: i64,
    /// Jobs that gave up.
    pub dead: i64,
    /// How long the oldest due job has waited.
    pub oldest_waiting_seconds: u64,
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
struct Dependencies(Vec<DependencyView>, JobQueuesView);

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
        } else if any_down || inputs.job_queues.status == QueuesStatus::Degraded {
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
            dependencies: Dependencies(inputs.dependencies.clone(), inputs.job_queues.clone()),
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
        map.serialize_entry("jobQueues", &self.1)?;
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

impl Serialize for JobQueuesView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Queues<'a>(&'a [QueueView]);
        impl Serialize for Queues<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|q| (q.name, q.accepting)))
            }
        }
        #[derive(Serialize)]
        struct Counts {
            waiting: i64,
            running: i64,
            dead: i64,
            oldest_waiting_seconds: u64,
        }
        struct Stats<'a>(&'a [QueueView]);
        impl Serialize for Stats<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|q| {
                    let counts = Counts {
                        waiting: q.waiting,
                        running: q.running,
                        dead: q.dead,
                        oldest_waiting_seconds: q.oldest_waiting_seconds,
                    };
                    (q.name, counts)
                }))
            }
        }
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("status", self.status.as_str())?;
        map.serialize_entry("queues", &Queues(&self.queues))?;
        map.serialize_entry("transport", self.transport)?;
        map.serialize_entry("stats", &Stats(&self.queues))?;
        map.serialize_entry("outbox", &self.outbox)?;
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
            job_queues: JobQueuesView {
                status: QueuesStatus::Healthy,
                transport: "redis",
                queues: [
                    "recurring-invoices",
                    "payroll-processing",
                    "report-generation",
                ]
                .into_iter()
                .map(|name| QueueView {
                    name,
                    accepting: true,
                    waiting: 0,
                    running: 0,
                    dead: 0,
                    oldest_waiting_seconds: 0,
                })
                .collect(),
                outbox: 0,
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
        let queues = &body["dependencies"]["jobQueues"];
        assert_eq!(queues["status"], "healthy");
        assert_eq!(
            queues["queues"],
            json!({"recurring-invoices": true, "payroll-processing": true, "report-generation": true})
        );
        assert_eq!(
            queues["stats"]["report-generation"],
            json!({"waiting": 0, "running": 0, "dead": 0, "oldest_waiting_seconds": 0})
        );
        assert_eq!(queues["outbox"], 0);
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
    fn a_job_backlog_degrades_the_service() {
        let mut backlog = inputs(vec![view("database", connected())]);
        backlog.job_queues.status = QueuesStatus::Degraded;
        backlog.job_queues.queues[0].accepting = false;
        let report = HealthReport::build(&backlog);
        assert_eq!(report.overall, Overall::Degraded);
        let body = serde_json::to_value(&report.body).unwrap();
        assert_eq!(body["dependencies"]["jobQueues"]["status"], "degraded");
        assert_eq!(
            body["dependencies"]["jobQueues"]["queues"]["recurring-invoices"],
            false
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
