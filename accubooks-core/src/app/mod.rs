//! The application handle that hosts share and its lifecycle; its builder
//! (and the one place where features register their jobs) in `builder`.

mod builder;

pub use builder::Builder;

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::db::Database;
use crate::deps::Registry;
use crate::health::report::{DependencyView, HealthInputs};
use crate::health::{HealthReport, Overall};
use crate::http::RouteTable;
use crate::identity::{MemberCache, PasswordHashing, Tokens};
use crate::jobs::redis_client::RedisClient;
use crate::jobs::{JobEnv, Jobs};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::organization::OrganizationId;
use crate::resources::Resources;
use crate::throttle::{AuthLimits, RequestLimits};

/// Where the instance is in its life, as `/ready` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Startup has not finished: the first probes are still running.
    Starting,
    /// Serving.
    Ready,
    /// A graceful shutdown has begun.
    Draining,
}

impl Phase {
    /// The lowercase name used by `/ready`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Draining => "draining",
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::Draining,
        }
    }
}

/// A running AccuBooks instance. Cheap to clone: every clone is the same
/// instance.
#[derive(Clone)]
pub struct AccuBooks {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    registry: Arc<Registry>,
    database: Database,
    reports: Option<Database>,
    redis: RedisClient,
    metrics: Metrics,
    routes: RouteTable,
    tokens: Tokens,
    ledger: Ledger,
    jobs: Jobs,
    /// What the job handlers and periodic tasks get.
    job_env: JobEnv,
    auth_limits: AuthLimits,
    request_limits: RequestLimits,
    password_hashing: PasswordHashing,
    members: MemberCache,
    work_limits: crate::limits::WorkLimits,
    resources: Resources,
    sealer: crate::sealed::Sealer,
    stripe: Option<crate::saas::stripe::Stripe>,
    plaid: Option<Arc<crate::saas::plaid::Plaid>>,
    openapi: std::sync::OnceLock<serde_json::Value>,
    phase: AtomicU8,
    phase_changed: watch::Sender<Phase>,
    started: Instant,
    started_at: DateTime<Utc>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    health_json: Mutex<Option<RenderedHealth>>,
}

/// A rendered `/health` body and what it was rendered for.
struct RenderedHealth {
    millis: i64,
    phase: Phase,
    overall: Overall,
    body: Bytes,
}

/// Purges what expired after `days` and counts it (see
/// [`AccuBooks::purge_expired`]).
async fn purge(
    database: &Database,
    metrics: &Metrics,
    days: u32,
) -> crate::Result<crate::retention::Purged> {
    let purged = crate::retention::purge(database, days, crate::jobs::now_ms()).await?;
    metrics.count_purged(&purged.by_kind());
    if !purged.is_empty() {
        tracing::info!(
            retention_days = days,
            report_results = purged.report_results,
            report_jobs = purged.report_jobs,
            jobs = purged.jobs,
            idempotency_keys = purged.idempotency_keys,
            "expired stored answers purged"
        );
    }
    Ok(purged)
}

impl AccuBooks {
    /// Starts assembling an instance from `config`.
    pub fn builder(config: Config) -> Builder {
        Builder::new(config)
    }

    fn start_background_tasks(&self) {
        let stopped = self.inner.shutdown.subscribe();
        let mut tasks = self.inner.registry.spawn_monitors(&stopped);
        tasks.extend(crate::jobs::spawn(&self.inner.job_env, &stopped));

        let app = self.clone();
        tasks.push(tokio::spawn(async move {
            let init_timeout = app.config().pool.init_timeout;
            let first_round = app.registry().first_round();
            if tokio::time::timeout(init_timeout, first_round)
                .await
                .is_err()
            {
                tracing::warn!(
                    timeout_ms = u64::try_from(init_timeout.as_millis()).unwrap_or(u64::MAX),
                    "first dependency probes did not finish in DB_INIT_TIMEOUT_MS; ready anyway"
                );
            }
            app.set_phase_if(Phase::Starting, Phase::Ready);
        }));

        let app = self.clone();
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                app.inner.resources.sample();
                app.inner.auth_limits.forget_idle();
                app.inner.request_limits.forget_idle();
                app.inner.members.forget_expired();
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stopped.changed() => return,
                }
            }
        }));
        *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
    }

    fn set_phase_if(&self, from: Phase, to: Phase) -> bool {
        let changed = self
            .inner
            .phase
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if changed {
            self.inner.phase_changed.send_replace(to);
            tracing::info!(phase = to.as_str(), "lifecycle phase changed");
        }
        changed
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The dependency registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The database and its guard.
    pub fn database(&self) -> &Database {
        &self.inner.database
    }

    /// The database reports read from: the standby of
    /// `DATABASE_REPORTS_URL` while it is available and not lagging, else
    /// the primary.
    pub fn reports_database(&self) -> &Database {
        crate::reporting::source(&self.inner.database, self.inner.reports.as_ref())
    }

    /// The Redis connection.
    pub fn redis(&self) -> &RedisClient {
        &self.inner.redis
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The route table, which hosts mount.
    pub fn routes(&self) -> &RouteTable {
        &self.inner.routes
    }

    /// The token issuer and verifier.
    pub fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// The ledger: the database with the account cache and the committer.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The background jobs.
    pub fn jobs(&self) -> &Jobs {
        &self.inner.jobs
    }

    /// Records jobs of a host's own kinds (see [`Builder::job_handler`]) for
    /// `organization`, in one transaction, and wakes their queues. A job
    /// whose unique key the organization has already used is not recorded
    /// again: its existing id is answered.
    pub async fn enqueue(
        &self,
        organization: &OrganizationId,
        jobs: Vec<crate::jobs::NewJob>,
    ) -> crate::Result<Vec<i64>> {
        let ids = crate::jobs::record(self.database(), organization, &jobs).await?;
        for &queue in self.jobs().queues() {
            if jobs.iter().any(|job| job.queue == queue) {
                self.jobs().wake(queue);
            }
        }
        Ok(ids)
    }

    /// What bounds an organization's stored report results
    /// (`REPORT_STORAGE_PER_ORGANIZATION_BYTES`, `RETENTION_DAYS`).
    pub fn report_storage(&self) -> crate::reporting::Storage {
        let config = self.jobs().config();
        crate::reporting::Storage {
            quota: config.report_storage_per_organization,
            retention_days: config.retention_days,
        }
    }

    /// Purges the finished jobs, report results and idempotency answers
    /// older than `RETENTION_DAYS` (an idempotency key is kept at least a
    /// day), in batches (see [`crate::retention`]), and counts them in
    /// `accubooks_retention_purged_rows_total`. A background task calls it
    /// shortly after start and every hour; hosts and tests may call it too.
    pub async fn purge_expired(&self) -> crate::Result<crate::retention::Purged> {
        purge(
            self.database(),
            self.metrics(),
            self.jobs().config().retention_days,
        )
        .await
    }

    /// Runs the pass of every webhook endpoint with work as if the clock
    /// said `now_ms` (fan-out, due deliveries, backoff, giving up after 3
    /// days, disabling after 5), one endpoint after the other, without the
    /// `webhooks` queue: what its jobs do, for tests and benchmarks.
    pub async fn deliver_webhooks(&self, now_ms: i64) -> crate::Result<crate::webhooks::Pass> {
        let sender = crate::webhooks::Sender::new(self.config().webhook_allow_private);
        crate::webhooks::deliver_due(
            self.database(),
            self.metrics(),
            &self.inner.sealer,
            &sender,
            now_ms,
        )
        .await
    }

    /// Seals the provider tokens kept in the database.
    pub fn sealer(&self) -> &crate::sealed::Sealer {
        &self.inner.sealer
    }

    /// The Stripe client, when Stripe is configured.
    pub(crate) fn stripe(&self) -> Option<&crate::saas::stripe::Stripe> {
        self.inner.stripe.as_ref()
    }

    /// The Plaid client, when Plaid is configured.
    pub(crate) fn plaid(&self) -> Option<&crate::saas::plaid::Plaid> {
        self.inner.plaid.as_deref()
    }

    /// The attempt budgets of login and registration.
    pub fn auth_limits(&self) -> &AuthLimits {
        &self.inner.auth_limits
    }

    /// The request budgets per client address and per token's user.
    pub fn request_limits(&self) -> &RequestLimits {
        &self.inner.request_limits
    }

    /// The password-hashing pool every path that hashes or verifies uses.
    pub fn password_hashing(&self) -> &PasswordHashing {
        &self.inner.password_hashing
    }

    /// The current roles of recent callers.
    pub fn members(&self) -> &MemberCache {
        &self.inner.members
    }

    /// The bounds on concurrent heavy work (exports, large batches).
    pub fn work_limits(&self) -> &crate::limits::WorkLimits {
        &self.inner.work_limits
    }

    /// The use cases, which every door calls.
    pub fn books(&self) -> crate::usecases::Books<'_> {
        crate::usecases::Books::new(self)
    }

    /// The OpenAPI document of every route, built on first use.
    pub fn openapi(&self) -> &serde_json::Value {
        self.inner.openapi.get_or_init(|| {
            serde_json::to_value(crate::http::openapi_document(self.routes()))
                .expect("the OpenAPI document serializes")
        })
    }

    /// The lifecycle phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.inner.phase.load(Ordering::Acquire))
    }

    /// Time since the instance was built.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// When the instance was built.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.inner.started_at
    }

    /// The health report, from kept state only.
    pub fn health(&self) -> HealthReport {
        self.health_at(Utc::now())
    }

    /// The `/health` body as JSON with its verdict. Its timestamp has
    /// millisecond precision, so it is rendered at most once per millisecond
    /// (and lifecycle phase): pollers under load share a rendering, and a
    /// state change shows at most a millisecond later.
    pub fn health_json(&self) -> (Overall, Bytes) {
        let now = Utc::now();
        let (millis, phase) = (now.timestamp_millis(), self.phase());
        let mut rendered = self
            .inner
            .health_json
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = rendered.as_ref()
            && r.millis == millis
            && r.phase == phase
        {
            return (r.overall, r.body.clone());
        }
        let report = self.health_at(now);
        let body =
            Bytes::from(serde_json::to_vec(&report.body).expect("the health body serializes"));
        *rendered = Some(RenderedHealth {
            millis,
            phase,
            overall: report.overall,
            body: body.clone(),
        });
        (report.overall, body)
    }

    fn health_at(&self, now: DateTime<Utc>) -> HealthReport {
        let dependencies = self
            .registry()
            .iter()
            .map(|dep| DependencyView {
                name: dep.name(),
                state: dep.state(),
                critical: dep.is_critical(),
                affected_routes: if dep.is_available() {
                    Vec::new()
                } else {
                    self.routes().affected_by(dep.name())
                },
            })
            .collect();
        HealthReport::build(&HealthInputs {
            draining: self.phase() == Phase::Draining,
            environment: self.config().environment.as_str(),
            uptime: self.uptime(),
            now,
            resources: self.inner.resources.latest(),
            dependencies,
            job_queues: self.jobs().view(
                crate::jobs::carrier_up(&self.inner.job_env),
                self.phase() == Phase::Draining,
            ),
        })
    }

    /// The Prometheus text exposition.
    pub fn render_metrics(&self) -> String {
        let databases = [
            ("primary", Some(&self.inner.database)),
            ("reports", self.inner.reports.as_ref()),
        ];
        for (name, database) in databases {
            for size in database.map(Database::pool_sizes).unwrap_or_default() {
                self.metrics().set_db_pool(
                    name,
                    size.share.as_str(),
                    size.open,
                    size.idle,
                    size.max,
                );
            }
        }
        self.metrics()
            .render(self.uptime(), self.inner.resources.latest())
    }

    /// Begins a graceful shutdown: `/ready` answers `draining`, health turns
    /// `unhealthy`, and hosts stop accepting connections. Idempotent.
    pub fn begin_drain(&self) {
        if self.set_phase_if(Phase::Starting, Phase::Draining)
            || self.set_phase_if(Phase::Ready, Phase::Draining)
        {
            tracing::info!("graceful shutdown started: draining in-flight requests and jobs");
        }
        self.jobs().begin_drain();
    }

    /// Resolves when the host must stop accepting connections:
    /// `SHUTDOWN_DELAY_MS` after a graceful shutdown began. Meanwhile `/ready`
    /// answers `draining` and requests are served as before, so a load
    /// balancer that polls `/ready` stops sending before the listener closes
    /// (no client meets a refused connection).
    pub async fn draining(&self) {
        let mut rx = self.inner.phase_changed.subscribe();
        // The sender lives as long as self.
        let _ = rx.wait_for(|phase| *phase == Phase::Draining).await;
        let delay = self.config().shutdown_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// Stops the monitors and closes the pools. Call after the host has
    /// stopped serving.
    pub async fn close(&self) {
        self.begin_drain();
        // The workers take no more jobs; those running get the rest of the
        // drain budget, then are handed back (they run again elsewhere, and
        // their effects are idempotent).
        if !self.jobs().wait_idle(self.config().drain_timeout).await {
            match crate::jobs::hand_back(self.inner.job_env.database(), self.jobs().owner()).await {
                Ok(jobs) => tracing::warn!(
                    jobs,
                    "jobs still running at the drain timeout were handed back"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "running jobs could not be handed back; they run again when their lease passes")
                }
            }
        }
        self.inner.shutdown.send_replace(true);
        self.metrics().set_down();
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.abort();
        }
        self.database().close().await;
        tracing::info!("closed");
    }

    /// Runs a host's server future until it ends, applying the drain timeout
    /// once a graceful shutdown has begun, then closes the instance.
    ///
    /// The server must itself stop accepting when [`AccuBooks::draining`]
    /// resolves (every host adapter wires that up).
    pub async fn serve_until_drained<F>(&self, server: F) -> std::io::Result<()>
    where
        F: Future<Output = std::io::Result<()>>,
    {
        let mut server = std::pin::pin!(server);
        let result = tokio::select! {
            result = &mut server => result,
            () = self.draining() => {
                let limit = self.config().drain_timeout;
                match tokio::time::timeout(limit, &mut server).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(
                            timeout_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                            "drain timeout passed with requests still in flight; closing anyway"
                        );
                        Ok(())
                    }
                }
            }
        };
        self.close().await;
        result
    }

    /// Begins a graceful shutdown when the process receives SIGTERM or
    /// SIGINT (Ctrl-C). Spawns a task; returns at once.
    pub fn drain_on_signal(&self) {
        let app = self.clone();
        tokio::spawn(async move {
            crate::lifecycle::shutdown_signal().await;
            app.begin_drain();
        });
    }
}
