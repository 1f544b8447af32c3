//! Assembling an instance: the builder, and the one place where the
//! features register their jobs and periodic tasks.

use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;

use crate::config::Config;
use crate::db::Database;
use crate::deps::{self, DependencySpec, PlaidProbe, Registry, StripeProbe};
use crate::health::ProbePolicy;
use crate::http::{Route, RouteTable};
use crate::identity::{MemberCache, PasswordHashing, Tokens};
use crate::jobs::redis_client::RedisClient;
use crate::jobs::{JobEnv, JobHandler, JobRegistry, Jobs, Queue};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::resources::Resources;
use crate::throttle::{AuthLimits, RequestLimits};

use super::{AccuBooks, Inner, Phase, purge};

/// Assembles an instance. Obtain one with [`AccuBooks::builder`].
pub struct Builder {
    config: Config,
    checks: Vec<DependencySpec>,
    critical: Vec<&'static str>,
    routes: Vec<Route>,
    policy: ProbePolicy,
    job_handlers: JobHandlers,
}

/// A host's own kinds of job, in the order it registered them.
type JobHandlers = Vec<(&'static str, Queue, Arc<dyn JobHandler>)>;

/// How long after start the first purge runs: late enough not to compete
/// with start-up, early enough that a process restarted often still purges.
const PURGE_FIRST: Duration = Duration::from_secs(60);
/// How often expired stored answers are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// What the features need to register their jobs.
struct JobDeps<'a> {
    config: &'a Config,
    ledger: &'a Ledger,
    reports: Option<&'a Database>,
    sealer: &'a crate::sealed::Sealer,
    plaid: Option<Arc<crate::saas::plaid::Plaid>>,
}

/// The one place where every feature registers its jobs and periodic
/// tasks (their order is the order health lists the queues in), then the
/// instance its purge, then the host its own kinds (a host's kind replaces
/// a core one of the same name).
fn register_jobs(deps: JobDeps<'_>, host: JobHandlers) -> JobRegistry {
    let mut registry = JobRegistry::new();
    let jobs_config = &deps.config.jobs;
    crate::invoicing::recurring::register(&mut registry, deps.ledger, jobs_config.recurring_scan);
    crate::payroll::register(&mut registry, deps.ledger);
    crate::reporting::register(
        &mut registry,
        deps.reports.cloned(),
        crate::reporting::Storage {
            quota: jobs_config.report_storage_per_organization,
            retention_days: jobs_config.retention_days,
        },
    );
    crate::invoicing::payments::register(&mut registry, deps.ledger);
    crate::banking::register(&mut registry, deps.ledger, deps.sealer, deps.plaid);
    crate::webhooks::register(
        &mut registry,
        deps.ledger,
        deps.sealer,
        deps.config.webhook_allow_private,
    );
    // Every process purges: the statements are idempotent, so two at once
    // only share the work.
    let days = jobs_config.retention_days;
    registry.periodic("retention-purge", PURGE_FIRST, PURGE_EVERY, move |env| async move {
        if let Err(err) = purge(env.database(), env.metrics(), days).await {
            tracing::warn!(error = %err, "the purge of expired stored answers failed; it runs again within the hour");
        }
    });
    for (kind, queue, handler) in host {
        registry.kind_arc(kind, queue, handler);
    }
    registry
}

impl Builder {
    /// A builder of an instance from `config`, with nothing added.
    pub(super) fn new(config: Config) -> Self {
        Builder {
            config,
            checks: Vec::new(),
            critical: Vec::new(),
            routes: Vec::new(),
            policy: ProbePolicy::default(),
            job_handlers: JobHandlers::new(),
        }
    }

    /// Registers the handler of a host's own kind of job, run on `queue`
    /// like the core's (recorded with [`AccuBooks::enqueue`]).
    pub fn job_handler(
        mut self,
        kind: &'static str,
        queue: Queue,
        handler: impl JobHandler,
    ) -> Self {
        self.job_handlers.push((kind, queue, Arc::new(handler)));
        self
    }

    /// Registers a host dependency, probed and reported like the built-in ones.
    pub fn check(mut self, spec: DependencySpec) -> Self {
        self.checks.push(spec);
        self
    }

    /// Declares a dependency critical: while it is down, health is
    /// `unhealthy` and answered 503. Works for built-in names too.
    pub fn critical(mut self, name: &'static str) -> Self {
        self.critical.push(name);
        self
    }

    /// Adds a host route; it gets the same pipeline, guard and metrics.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Sets how the built-in dependencies are probed.
    pub fn probe_policy(mut self, policy: ProbePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Builds and starts the instance without waiting on any dependency:
    /// pools and connections are created lazily, the monitors run in the
    /// background, and `/ready` turns ready once the first probes finish or
    /// `DB_INIT_TIMEOUT_MS` passes. Must be called within a Tokio runtime.
    pub async fn build(self) -> crate::Result<AccuBooks> {
        let Builder {
            config,
            checks,
            critical,
            routes: host_routes,
            policy,
            job_handlers,
        } = self;
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        let metrics = Metrics::new();
        let database = Database::new(&config.database_url, config.pool)?;
        let reports = config
            .reports
            .as_ref()
            .map(|standby| Database::reports(standby, config.pool))
            .transpose()?;
        let redis = RedisClient::new(&config.redis, policy.timeout)?;

        let mut specs = vec![
            DependencySpec::new(deps::DATABASE, Arc::new(database.clone()))
                .unavailable(
                    "DATABASE_UNAVAILABLE",
                    "Database unavailable. Server running in degraded mode.",
                )
                .policy(ProbePolicy {
                    // A first probe may also apply migrations.
                    timeout: policy.timeout.max(config.pool.connect_timeout),
                    ..policy
                }),
            if config.uses_redis() {
                DependencySpec::new(deps::REDIS, Arc::new(redis.clone()))
                    .unavailable(
                        "JOBS_UNAVAILABLE",
                        "Background jobs are unavailable. Please retry shortly.",
                    )
                    .policy(policy)
            } else {
                DependencySpec::disabled(deps::REDIS).policy(policy)
            },
            match &reports {
                Some(standby) => {
                    DependencySpec::new(deps::REPORTS_DATABASE, Arc::new(standby.clone()))
                }
                None => DependencySpec::disabled(deps::REPORTS_DATABASE),
            }
            .policy(policy),
        ];
        // Providers limit calls per client (Plaid: 50 `/institutions/get` a
        // minute, all instances together): probed slowly while idle, not at
        // all while traffic succeeds, and while down backing off from a
        // thirtieth of that interval to a fifth (1 s to 6 s: with jitter,
        // three instances make at most 45 probes in an outage's first
        // minute, 38 a minute after, even when every answer is a 5xx),
        // however fast the policy is.
        let provider_policy = ProbePolicy {
            interval_up: config.provider_probe_interval,
            retry_min: policy.retry_min.max(config.provider_probe_interval / 30),
            retry_max: policy.retry_max.max(config.provider_probe_interval / 5),
            ..policy
        };
        specs.push(
            match &config.stripe {
                Some(credentials) => DependencySpec::new(
                    deps::STRIPE,
                    Arc::new(StripeProbe::new(credentials.clone(), policy.timeout)),
                ),
                None => DependencySpec::disabled(deps::STRIPE),
            }
            .unavailable(
                "PAYMENTS_UNAVAILABLE",
                "Payments are unavailable right now. Please retry shortly.",
            )
            .not_configured(
                "PAYMENTS_NOT_CONFIGURED",
                "Payments are not configured on this server: its operator sets \
                 STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET and restarts it.",
            )
            .policy(provider_policy)
            .learns_from_traffic(),
        );
        specs.push(
            match &config.plaid {
                Some(credentials) => DependencySpec::new(
                    deps::PLAID,
                    Arc::new(PlaidProbe::new(credentials.clone(), policy.timeout)),
                ),
                None => DependencySpec::disabled(deps::PLAID),
            }
            .unavailable(
                "BANK_INTEGRATION_UNAVAILABLE",
                "Bank integration is unavailable right now. Please retry shortly.",
            )
            .not_configured(
                "BANK_INTEGRATION_NOT_CONFIGURED",
                "Bank integration is not configured on this server: its operator sets \
                 PLAID_CLIENT_ID and PLAID_SECRET and restarts it.",
            )
            .policy(provider_policy)
            .learns_from_traffic(),
        );
        specs.extend(checks);
        for name in &critical {
            if !specs.iter().any(|s| s.name() == *name) {
                return Err(crate::Error::Setup(format!(
                    "the critical dependency {name:?} is not registered"
                )));
            }
        }
        let specs = specs
            .into_iter()
            .map(|s| {
                let is_critical = critical.contains(&s.name());
                s.critical(is_critical)
            })
            .collect();
        let registry = Arc::new(Registry::new(specs, &metrics)?);
        if let Some(db) = registry.get(deps::DATABASE) {
            database.attach(Arc::clone(db));
        }
        if let (Some(standby), Some(dependency)) = (&reports, registry.get(deps::REPORTS_DATABASE))
        {
            standby.attach(Arc::clone(dependency));
        }

        let mut routes = crate::http::core_routes();
        routes.extend(host_routes);
        for route in &routes {
            if let Some(unknown) = route
                .dependencies()
                .iter()
                .find(|d| registry.get(d).is_none())
            {
                return Err(crate::Error::Setup(format!(
                    "route {} {} needs the unregistered dependency {unknown:?}",
                    route.method(),
                    route.path()
                )));
            }
        }
        let routes = RouteTable::new(routes)?;
        let tokens = Tokens::new(&config.jwt_secret)?;

        let auth_limits = AuthLimits::new(config.limits.registrations_per_hour);
        let request_limits = RequestLimits::new(
            config.limits.requests_per_address,
            config.limits.requests_per_token,
        );
        let password_hashing = PasswordHashing::new(config.limits.password_hashing_workers);
        let work_limits = crate::limits::WorkLimits::new(&config.limits);

        let sealer = crate::sealed::Sealer::new(&config.session_secret);
        let provider = |name, credentials: &Option<crate::config::ApiCredentials>| {
            let dependency = registry.get(name).expect("built in").clone();
            credentials
                .clone()
                .map(|c| (c, config.provider_timeout, Arc::clone(&dependency)))
        };
        let stripe = provider(deps::STRIPE, &config.stripe)
            .map(|(c, t, d)| crate::saas::stripe::Stripe::new(c, t, d));
        let plaid = provider(deps::PLAID, &config.plaid)
            .map(|(c, t, d)| Arc::new(crate::saas::plaid::Plaid::new(c, t, d)));

        let ledger = Ledger::start(database.clone());
        // Jobs read and write through their own share of the connections
        // (DB_POOL_JOBS), so however many run they never make a request wait
        // for one; the entries they post still go through the committer.
        let jobs_database = database.jobs();
        let jobs_reports = reports.as_ref().map(Database::jobs);
        let jobs_ledger = ledger.with_database(jobs_database.clone());
        let job_registry = register_jobs(
            JobDeps {
                config: &config,
                ledger: &jobs_ledger,
                reports: jobs_reports.as_ref(),
                sealer: &sealer,
                plaid: plaid.clone(),
            },
            job_handlers,
        );
        let jobs = Jobs::new(config.jobs.clone(), job_registry);
        redis.check_queues(jobs.queues());
        let job_env = JobEnv::new(
            jobs_database,
            jobs.clone(),
            metrics.clone(),
            Arc::clone(&registry),
            redis.clone(),
        );

        let (shutdown, _) = watch::channel(false);
        let app = AccuBooks {
            inner: Arc::new(Inner {
                config,
                registry,
                database: database.clone(),
                reports,
                redis,
                metrics,
                routes,
                tokens,
                ledger,
                jobs,
                job_env,
                auth_limits,
                request_limits,
                password_hashing,
                members: MemberCache::default(),
                work_limits,
                resources: Resources::default(),
                sealer,
                stripe,
                plaid,
                openapi: std::sync::OnceLock::new(),
                phase: AtomicU8::new(Phase::Starting as u8),
                phase_changed: watch::Sender::new(Phase::Starting),
                started: Instant::now(),
                started_at: Utc::now(),
                shutdown,
                tasks: Mutex::new(Vec::new()),
                health_json: Mutex::new(None),
            }),
        };
        app.start_background_tasks();
        Ok(app)
    }
}
