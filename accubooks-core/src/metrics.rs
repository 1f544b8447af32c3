//! Prometheus metrics of one AccuBooks instance.
//!
//! Each instance owns its own [`prometheus::Registry`], so several instances
//! (tests, embedded hosts) never collide, and any host serves the text of
//! [`Metrics::render`].

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::health::Status;
use crate::resources::ResourceSample;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The label of a request's method: one of the methods HTTP defines, or
/// `OTHER`. Label values must come from a closed set: a client inventing
/// methods must not be able to grow the exposition (or the logs).
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Handles to every series; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    up: IntGauge,
    /// `accubooks_<dependency>_available`, one per dependency.
    available: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<&'static str, IntGauge>>>,
    uptime_seconds: IntGauge,
    memory_used_bytes: IntGauge,
    memory_total_bytes: IntGauge,
    dependency_up: IntGaugeVec,
    dependency_state_changes: IntCounterVec,
    probe_duration: HistogramVec,
    http_duration: HistogramVec,
    slow_requests: IntCounterVec,
    operation_duration: HistogramVec,
    render_duration: Histogram,
    job_waiting: IntGaugeVec,
    job_running: IntGaugeVec,
    job_dead: IntGaugeVec,
    jobs: IntCounterVec,
    job_outbox: IntGauge,
    job_transport: IntGaugeVec,
    retention_purged: IntCounterVec,
    webhook_refused: IntCounterVec,
    webhook_deliveries: IntCounterVec,
    webhook_oldest_undelivered: IntGauge,
    db_pool_connections: IntGaugeVec,
    db_pool_max: IntGaugeVec,
}

/// Why a signed webhook's request was refused, as
/// `accubooks_webhook_refused_total` counts them: its signature was
/// `missing`, `malformed`, `forged` (no match) or `stale`; its client
/// address had sent too many bad ones (`rate_limited`); its body was over
/// the webhook's limit (`too_large`).
pub const WEBHOOK_REFUSALS: [&str; 6] = [
    "missing",
    "malformed",
    "forged",
    "stale",
    "rate_limited",
    "too_large",
];

/// The providers whose webhooks the core verifies (their dependency names).
pub const WEBHOOK_PROVIDERS: [&str; 2] = ["stripe", "plaid"];

/// What a retention purge removes, as `accubooks_retention_purged_rows_total`
/// counts it: report results, report jobs, finished jobs, idempotency
/// answers and events.
pub const PURGE_KINDS: [&str; 5] = [
    "report_results",
    "report_jobs",
    "jobs",
    "idempotency_keys",
    "events",
];

/// The outcomes of a webhook delivery attempt, as
/// `accubooks_webhook_deliveries_total` counts them: `delivered` (a 2xx),
/// `failed_attempt` (will be retried), `failed` (given up).
pub const WEBHOOK_DELIVERY_OUTCOMES: [&str; 3] = ["delivered", "failed_attempt", "failed"];

/// The outcomes of a job attempt, as `accubooks_jobs_total` counts them.
pub const JOB_OUTCOMES: [&str; 3] = ["succeeded", "failed", "dead"];

/// What may carry jobs, as `accubooks_job_transport` labels it.
pub const JOB_TRANSPORTS: [&str; 2] = ["redis", "database"];

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help).expect("metric names are valid");
    registry
        .register(Box::new(gauge.clone()))
        .expect("each metric is registered once");
    gauge
}

impl Metrics {
    /// Creates and registers every series.
    pub fn new() -> Self {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            registry
                .register(c)
                .expect("each metric is registered once");
        };
        let dependency_up = IntGaugeVec::new(
            Opts::new(
                "accubooks_dependency_up",
                "1 when the dependency is connected, 0 otherwise (disabled ones are absent).",
            ),
            &["dependency"],
        )
        .expect("valid metric");
        reg(Box::new(dependency_up.clone()));
        let dependency_state_changes = IntCounterVec::new(
            Opts::new(
                "accubooks_dependency_state_changes_total",
                "Transitions of a dependency's status, by the status entered.",
            ),
            &["dependency", "to"],
        )
        .expect("valid metric");
        reg(Box::new(dependency_state_changes.clone()));
        let probe_duration = HistogramVec::new(
            HistogramOpts::new(
                "accubooks_dependency_probe_duration_seconds",
                "Duration of background health probes.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["dependency"],
        )
        .expect("valid metric");
        reg(Box::new(probe_duration.clone()));
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "accubooks_http_request_duration_seconds",
                "Duration of HTTP requests, by route template and status.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        reg(Box::new(http_duration.clone()));
        let slow_requests = IntCounterVec::new(
            Opts::new(
                "accubooks_http_slow_requests_total",
                "Requests slower than SLOW_REQUEST_MS, by route template.",
            ),
            &["method", "route"],
        )
        .expect("valid metric");
        reg(Box::new(slow_requests.clone()));
        let operation_duration = HistogramVec::new(
            HistogramOpts::new(
                "accubooks_operation_duration_seconds",
                "Duration of use cases, whichever door called them (HTTP or in-process), \
                 by operation and outcome (ok, refused, failed).",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["operation", "outcome"],
        )
        .expect("valid metric");
        reg(Box::new(operation_duration.clone()));
        let render_duration = Histogram::with_opts(HistogramOpts::new(
            "accubooks_metrics_render_duration_seconds",
            "Time spent rendering this exposition.",
        ))
        .expect("valid metric");
        reg(Box::new(render_duration.clone()));
        let queue_gauge = |name: &str, help: &str| {
            let gauge = IntGaugeVec::new(Opts::new(name, help), &["queue"]).expect("valid metric");
            reg(Box::new(gauge.clone()));
            gauge
        };
        let job_waiting = queue_gauge(
            "accubooks_job_queue_waiting",
            "Jobs waiting to run (in the outbox, queued, or waiting for a retry), by queue.",
        );
        let job_running = queue_gauge(
            "accubooks_job_queue_running",
            "Jobs held by a worker now, by queue.",
        );
        let job_dead = queue_gauge(
            "accubooks_job_dead",
            "Jobs that gave up after their last attempt, by queue (POST /api/jobs/{id}/retry).",
        );
        let jobs = IntCounterVec::new(
            Opts::new(
                "accubooks_jobs_total",
                "Finished job attempts of this process, by queue and outcome \
                 (succeeded, failed: will be retried, dead: gave up).",
            ),
            &["queue", "outcome"],
        )
        .expect("valid metric");
        reg(Box::new(jobs.clone()));
        let webhook_refused = IntCounterVec::new(
            Opts::new(
                "accubooks_webhook_refused_total",
                "Requests to a signed webhook refused before any work, by provider and reason \
                 (missing, malformed, forged, stale, rate_limited, too_large); they are \
                 logged at debug only.",
            ),
            &["provider", "reason"],
        )
        .expect("valid metric");
        reg(Box::new(webhook_refused.clone()));
        // Every series exists from start-up, so an alert on a rate sees 0.
        for provider in WEBHOOK_PROVIDERS {
            for reason in WEBHOOK_REFUSALS {
                webhook_refused.with_label_values(&[provider, reason]);
            }
        }
        let retention_purged = IntCounterVec::new(
            Opts::new(
                "accubooks_retention_purged_rows_total",
                "Rows purged after RETENTION_DAYS, by kind (report_results: results dropped, \
                 report_jobs, jobs, idempotency_keys).",
            ),
            &["kind"],
        )
        .expect("valid metric");
        reg(Box::new(retention_purged.clone()));
        for kind in PURGE_KINDS {
            retention_purged.with_label_values(&[kind]);
        }
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "accubooks_webhook_deliveries_total",
                "Outgoing webhook delivery attempts, by outcome (delivered: a 2xx; \
                 failed_attempt: will be retried; failed: given up after 3 days).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        reg(Box::new(webhook_deliveries.clone()));
        for outcome in WEBHOOK_DELIVERY_OUTCOMES {
            webhook_deliveries.with_label_values(&[outcome]);
        }
        let webhook_oldest_undelivered = gauge(
            &registry,
            "accubooks_webhook_oldest_undelivered_seconds",
            "Age of the oldest pending outgoing webhook delivery (0 when none).",
        );
        let db_pool_connections = IntGaugeVec::new(
            Opts::new(
                "accubooks_db_pool_connections",
                "Open database connections, by database (primary, reports), pool (requests: \
                 requests, the committer and the probe; jobs: the jobs' own, DB_POOL_JOBS) and \
                 state (in_use, idle).",
            ),
            &["database", "pool", "state"],
        )
        .expect("valid metric");
        reg(Box::new(db_pool_connections.clone()));
        let db_pool_max = IntGaugeVec::new(
            Opts::new(
                "accubooks_db_pool_max_connections",
                "The most connections a pool opens, by database and pool; together they are \
                 DB_POOL_MAX per database.",
            ),
            &["database", "pool"],
        )
        .expect("valid metric");
        reg(Box::new(db_pool_max.clone()));
        let job_outbox = gauge(
            &registry,
            "accubooks_job_outbox",
            "Jobs recorded in the database and not yet relayed to their queue.",
        );
        let job_transport = IntGaugeVec::new(
            Opts::new(
                "accubooks_job_transport",
                "1 for what carries the jobs now (redis: the streams; database: claimed \
                 straight from the table, the database transport or Redis down), 0 for the other.",
            ),
            &["transport"],
        )
        .expect("valid metric");
        reg(Box::new(job_transport.clone()));
        for transport in JOB_TRANSPORTS {
            job_transport.with_label_values(&[transport]);
        }

        let metrics = Metrics {
            up: gauge(
                &registry,
                "accubooks_up",
                "1 while the process serves requests.",
            ),
            available: std::sync::Arc::default(),
            uptime_seconds: gauge(
                &registry,
                "accubooks_uptime_seconds",
                "Seconds since the instance started.",
            ),
            memory_used_bytes: gauge(
                &registry,
                "accubooks_memory_used_bytes",
                "Resident memory of the process.",
            ),
            memory_total_bytes: gauge(
                &registry,
                "accubooks_memory_total_bytes",
                "Total memory of the machine.",
            ),
            registry,
            dependency_up,
            dependency_state_changes,
            probe_duration,
            http_duration,
            slow_requests,
            operation_duration,
            render_duration,
            job_waiting,
            job_running,
            job_dead,
            jobs,
            job_outbox,
            job_transport,
            retention_purged,
            webhook_refused,
            webhook_deliveries,
            webhook_oldest_undelivered,
            db_pool_connections,
            db_pool_max,
        };
        metrics.up.set(1);
        metrics
    }

    /// Records a dependency's status (at registration and on every change),
    /// also as `accubooks_<dependency>_available` (the contract's
    /// `accubooks_database_available` and `accubooks_redis_available`).
    pub fn set_dependency_status(&self, dependency: &'static str, status: Status, changed: bool) {
        let up = i64::from(status == Status::Connected);
        if status != Status::Disabled {
            self.dependency_up.with_label_values(&[dependency]).set(up);
        }
        self.available(dependency).set(up);
        if changed {
            self.dependency_state_changes
                .with_label_values(&[dependency, status.as_str()])
                .inc();
        }
    }

    /// The availability gauge of a dependency, registered on first use.
    fn available(&self, dependency: &'static str) -> IntGauge {
        let mut gauges = self
            .available
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        gauges
            .entry(dependency)
            .or_insert_with(|| {
                // A host may name its own dependencies freely; a metric name
                // is snake_case: letters, digits and underscores
                // (`reportsDatabase` is `reports_database`).
                let mut name = String::new();
                for c in dependency.chars() {
                    if c.is_ascii_uppercase() {
                        if !name.is_empty() {
                            name.push('_');
                        }
                        name.push(c.to_ascii_lowercase());
                    } else if c.is_ascii_alphanumeric() {
                        name.push(c);
                    } else {
                        name.push('_');
                    }
                }
                gauge(
                    &self.registry,
                    &format!("accubooks_{name}_available"),
                    &format!("1 when the dependency {dependency} is connected."),
                )
            })
            .clone()
    }

    /// Records how long a probe took.
    pub fn observe_probe(&self, dependency: &str, elapsed: Duration) {
        self.probe_duration
            .with_label_values(&[dependency])
            .observe(elapsed.as_secs_f64());
    }

    /// Records a finished HTTP request. `method` is a [`method_label`] and
    /// `route` a route template (or `unmatched`): both from closed sets.
    pub fn observe_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: http::StatusCode,
        elapsed: Duration,
    ) {
        self.http_duration
            .with_label_values(&[method, route, status.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a refused request to a signed webhook. `provider` is one of
    /// [`WEBHOOK_PROVIDERS`] and `reason` one of [`WEBHOOK_REFUSALS`]: both
    /// from closed sets.
    pub fn count_webhook_refused(&self, provider: &'static str, reason: &'static str) {
        self.webhook_refused
            .with_label_values(&[provider, reason])
            .inc();
    }

    /// Counts a request slower than `SLOW_REQUEST_MS`.
    pub fn count_slow_request(&self, method: &'static str, route: &'static str) {
        self.slow_requests.with_label_values(&[method, route]).inc();
    }

    /// Records a finished use case. `operation` is a use case's name and
    /// `outcome` one of `ok`, `refused`, `failed`: both from closed sets.
    pub fn observe_operation(
        &self,
        operation: &'static str,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        self.operation_duration
            .with_label_values(&[operation, outcome])
            .observe(elapsed.as_secs_f64());
    }

    /// Starts the job series of `queues` at zero, so alerts on them watch a
    /// series that exists from start-up.
    pub fn init_job_queues(&self, queues: &[&str]) {
        for queue in queues {
            self.set_job_queue(queue, 0, 0, 0);
            for outcome in JOB_OUTCOMES {
                self.jobs.with_label_values(&[queue, outcome]);
            }
        }
        self.job_outbox.set(0);
    }

    /// Records a queue's counts, as the job monitor last read them.
    pub fn set_job_queue(&self, queue: &str, waiting: i64, running: i64, dead: i64) {
        self.job_waiting.with_label_values(&[queue]).set(waiting);
        self.job_running.with_label_values(&[queue]).set(running);
        self.job_dead.with_label_values(&[queue]).set(dead);
    }

    /// Records how many jobs wait in the outbox.
    pub fn set_job_outbox(&self, jobs: i64) {
        self.job_outbox.set(jobs);
    }

    /// Records what carries the jobs now (one of [`JOB_TRANSPORTS`]): its
    /// series 1, the other's 0.
    pub fn set_job_transport(&self, transport: &str) {
        for t in JOB_TRANSPORTS {
            self.job_transport
                .with_label_values(&[t])
                .set(i64::from(t == transport));
        }
    }

    /// Counts a finished job attempt; `outcome` is one of [`JOB_OUTCOMES`].
    pub fn count_job(&self, queue: &str, outcome: &'static str) {
        self.jobs.with_label_values(&[queue, outcome]).inc();
    }

    /// Counts the rows one purge removed, per kind (one of [`PURGE_KINDS`]).
    pub fn count_purged(&self, by_kind: &[(&'static str, u64)]) {
        for &(kind, rows) in by_kind {
            self.retention_purged
                .with_label_values(&[kind])
                .inc_by(rows);
        }
    }

    /// Counts a batch of webhook delivery attempts by outcome.
    pub fn count_webhook_deliveries(
        &self,
        delivered: usize,
        failed_attempts: usize,
        failed: usize,
    ) {
        for (outcome, n) in
            WEBHOOK_DELIVERY_OUTCOMES
                .iter()
                .zip([delivered, failed_attempts, failed])
        {
            if n > 0 {
                self.webhook_deliveries
                    .with_label_values(&[outcome])
                    .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
            }
        }
    }

    /// Records the age of the oldest pending webhook delivery.
    pub fn set_webhook_oldest_undelivered(&self, seconds: i64) {
        self.webhook_oldest_undelivered.set(seconds);
    }

    /// Records a database pool's connections (sampled when the metrics
    /// are rendered). `database` and `pool` come from closed sets
    /// (`primary`/`reports`, `requests`/`jobs`).
    pub fn set_db_pool(
        &self,
        database: &'static str,
        pool: &'static str,
        open: u32,
        idle: u32,
        max: u32,
    ) {
        let gauge = |state| {
            self.db_pool_connections
                .with_label_values(&[database, pool, state])
        };
        gauge("in_use").set(i64::from(open.saturating_sub(idle)));
        gauge("idle").set(i64::from(idle));
        self.db_pool_max
            .with_label_values(&[database, pool])
            .set(i64::from(max));
    }

    /// Marks the instance as no longer serving (shutdown).
    pub fn set_down(&self) {
        self.up.set(0);
    }

    /// Renders the text exposition, refreshing the sampled gauges first.
    pub fn render(&self, uptime: Duration, resources: ResourceSample) -> String {
        let timer = self.render_duration.start_timer();
        self.uptime_seconds
            .set(i64::try_from(uptime.as_secs()).unwrap_or(i64::MAX));
        self.memory_used_bytes
            .set(i64::try_from(resources.memory_used_bytes).unwrap_or(i64::MAX));
        self.memory_total_bytes
            .set(i64::try_from(resources.memory_total_bytes).unwrap_or(i64::MAX));
        let mut buffer = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding gathered metrics into a Vec cannot fail");
        timer.observe_duration();
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        let invented = http::Method::from_bytes(&[b'X'; 2048]).unwrap();
        assert_eq!(method_label(&invented), "OTHER");
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
    }

    #[test]
    fn renders_the_contract_series() {
        let metrics = Metrics::new();
        metrics.set_dependency_status("database", Status::Unavailable, true);
        metrics.set_dependency_status("redis", Status::Connected, true);
        metrics.set_dependency_status("reportsDatabase", Status::Disabled, false);
        metrics.observe_request(
            "GET",
            "/api/monitoring/live",
            http::StatusCode::OK,
            Duration::from_millis(1),
        );
        let text = metrics.render(
            Duration::from_secs(42),
            ResourceSample {
                memory_used_bytes: 1000,
                memory_total_bytes: 2000,
                cpu_usage_percent: 0.0,
            },
        );
        for line in [
            "accubooks_up 1",
            "accubooks_database_available 0",
            "accubooks_redis_available 1",
            "accubooks_reports_database_available 0",
            "accubooks_uptime_seconds 42",
            "accubooks_memory_used_bytes 1000",
            "accubooks_memory_total_bytes 2000",
            "accubooks_dependency_up{dependency=\"database\"} 0",
            "accubooks_dependency_state_changes_total{dependency=\"redis\",to=\"connected\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.contains(
            "accubooks_http_request_duration_seconds_count{method=\"GET\",route=\"/api/monitoring/live\",status=\"200\"} 1"
        ));
    }
}
