//! Configuration from the environment, as in section 1 of the contract.
//!
//! [`Config::from_env`] reads `.env` and the process environment;
//! [`Config::from_vars`] takes any map, which tests and the Python bindings use.
//! Validation collects every problem before failing, so an operator fixes a
//! deployment in one pass, and no message ever repeats a secret.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

mod parse;
mod vars;

pub(crate) use parse::*;
pub use vars::*;

/// The deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local work: defaults are filled in, logs are human-readable.
    Development,
    /// Automated tests: like development.
    Test,
    /// Production: required variables must be set, logs are JSON.
    Production,
}

impl Environment {
    /// The name used in health output.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }
}

/// Where the database lives.
#[derive(Clone)]
pub enum DatabaseUrl {
    /// `postgres://…` or `postgresql://…`.
    Postgres(SecretString),
    /// `sqlite://…` or `sqlite:…`.
    Sqlite(String),
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Postgres(_) => f.write_str("Postgres([REDACTED])"),
            DatabaseUrl::Sqlite(path) => write!(f, "Sqlite({path:?})"),
        }
    }
}

/// The Stripe API version every call to Stripe names in `Stripe-Version`
/// (the probe's too), so that an account's older default version never
/// changes what is sent or read. It is the version of the Stripe OpenAPI
/// spec the fake Stripe's answers are checked against
/// (`tests/integration/support/saas/schemas/stripe.json`).
pub const STRIPE_API_VERSION: &str = "2020-08-27";

/// Credentials of a third-party API. Present only when configured.
#[derive(Clone, Debug)]
pub struct ApiCredentials {
    /// Stripe's secret key, or Plaid's client id.
    pub key: SecretString,
    /// Stripe's webhook signing secret, or Plaid's secret.
    pub secret: SecretString,
    /// The API base URL (a fake server in tests).
    pub api_base: String,
    /// Where the provider sends its webhooks, when it is told per request
    /// (Plaid: `PLAID_WEBHOOK_URL`, given to each Link token, so each item
    /// sends its webhooks there); `None` for Stripe (set in its dashboard).
    pub webhook_url: Option<String>,
}

/// Pool settings of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// `DB_POOL_MIN`.
    pub min: u32,
    /// `DB_POOL_MAX`: the connections of requests and jobs together.
    pub max: u32,
    /// `DB_POOL_JOBS`: how many of `max` are the jobs' own (their engine's
    /// statements and their handlers'); 0 lets jobs share the requests'.
    pub jobs: u32,
    /// `DB_IDLE_TIMEOUT_MS`.
    pub idle_timeout: Duration,
    /// `DB_CONNECT_TIMEOUT_MS`: the longest wait for a connection.
    pub connect_timeout: Duration,
    /// `DB_INIT_TIMEOUT_MS`: the longest startup waits for the first probe.
    pub init_timeout: Duration,
    /// `DB_STATEMENT_TIMEOUT_MS`: the longest one database operation may take.
    pub statement_timeout: Duration,
}

impl PoolConfig {
    /// The connections of each share, `(min, max)`: the requests' and the
    /// jobs' (`None` when `jobs` is 0). Together they are at most
    /// `DB_POOL_MIN` and `DB_POOL_MAX`; the requests' idle minimum is kept
    /// first.
    pub fn shares(&self) -> ((u32, u32), Option<(u32, u32)>) {
        let jobs = self.jobs.min(self.max.saturating_sub(1));
        let requests = self.max - jobs;
        let requests_min = self.min.min(requests);
        let jobs_share = (jobs > 0).then(|| ((self.min - requests_min).min(jobs), jobs));
        ((requests_min, requests), jobs_share)
    }
}

/// Bounds that keep one client, or one organization, from exhausting the
/// server. Every value has a default sized for one modest machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `HEADER_READ_TIMEOUT_MS` (10 s): the longest a client may take to send
    /// a request's headers, and on HTTP/1 to begin the next request on a
    /// kept-alive connection.
    pub header_read_timeout: Duration,
    /// `IDLE_TIMEOUT_MS` (60 s): a connection on which no byte moves for this
    /// long is closed (after the request in progress, if any).
    pub idle_timeout: Duration,
    /// `MAX_CONNECTIONS` (1024): open connections per listener; a client
    /// beyond it is answered 503 and disconnected.
    pub max_connections: usize,
    /// `REGISTRATIONS_PER_HOUR` (20): registrations per client address.
    pub registrations_per_hour: u32,
    /// `RATE_LIMIT_PER_ADDRESS` (1200): requests per minute from one client
    /// address (an IPv6 client's /64), at once and then refilled evenly; 0
    /// turns the limit off. Monitoring and signed webhooks are never limited.
    pub requests_per_address: u32,
    /// `RATE_LIMIT_PER_TOKEN` (600): requests per minute with the tokens of
    /// one user, the same way; 0 turns the limit off.
    pub requests_per_token: u32,
    /// `PASSWORD_HASHING_WORKERS` (one per core): concurrent Argon2 hashes.
    pub password_hashing_workers: usize,
    /// `EXPORTS_PER_ORGANIZATION` (2): concurrent ledger exports of one
    /// organization.
    pub exports_per_organization: usize,
    /// `EXPORTS_MAX` (a quarter of `DB_POOL_MAX`, at least 1): concurrent
    /// exports in all.
    pub exports_total: usize,
    /// `LARGE_BATCH_ENTRIES` (1000): a batch of more entries counts as large.
    pub large_batch_entries: usize,
    /// `LARGE_BATCHES_PER_ORGANIZATION` (2): concurrent large batches of one
    /// organization.
    pub large_batches_per_organization: usize,
    /// `LARGE_BATCHES_MAX` (a quarter of `DB_POOL_MAX`, at least 1):
    /// concurrent large batches in all.
    pub large_batches_total: usize,
}

/// What carries the background jobs between the outbox and the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobTransport {
    /// Redis Streams with a consumer group: the work is shared by every
    /// process on the same Redis.
    Redis,
    /// Straight from the database's outbox, for a single process with no
    /// Redis (the embedded default).
    Database,
}

impl JobTransport {
    /// The lowercase name, as health reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobTransport::Redis => "redis",
            JobTransport::Database => "database",
        }
    }
}

/// A PostgreSQL standby that reports read from (`DATABASE_REPORTS_URL`).
#[derive(Clone, Debug)]
pub struct ReportsDatabase {
    /// `DATABASE_REPORTS_URL`: one host, or several in libpq's syntax (any
    /// of them will do: the reports only read).
    pub url: SecretString,
    /// `REPORTS_MAX_LAG_MS`: a standby further behind the primary than this
    /// is not read from (reports go to the primary until it catches up).
    pub max_lag: Duration,
}

/// Where the job queues live: one Redis, or a Redis Cluster.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `REDIS_URL`, or one built from `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`.
    /// On a cluster, one or more nodes' URLs, comma-separated: the client
    /// learns the rest of the cluster from them.
    pub url: SecretString,
    /// `REDIS_MODE=cluster`: the URL names nodes of a Redis Cluster
    /// (`standalone`, the default: one server, or a proxy in front of many).
    pub cluster: bool,
    /// `REDIS_WAIT_REPLICAS`: how many replicas must hold a job's message
    /// before it counts as sent (Redis `WAIT`), so a failover to one of them
    /// cannot lose it. 0 (the default) waits for none.
    pub wait_replicas: u32,
    /// Whether a Redis variable (`REDIS_URL`, `REDIS_HOST`, `REDIS_PORT`) is
    /// set; otherwise the URL is the default `redis://localhost:6379`.
    pub configured: bool,
}

impl Config {
    /// Whether this instance uses Redis: it carries the jobs
    /// (`JOB_TRANSPORT=redis`), or a Redis variable is set. Otherwise (the
    /// embedded default: SQLite and no Redis variable) Redis is `disabled`
    /// in health and never probed.
    pub fn uses_redis(&self) -> bool {
        self.redis.configured || self.jobs.transport == JobTransport::Redis
    }
}

impl RedisConfig {
    /// The node URLs in `url`.
    pub fn nodes(&self) -> Vec<&str> {
        split_nodes(self.url.expose_secret())
    }
}

fn split_nodes(urls: &str) -> Vec<&str> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

/// How background jobs run.
#[derive(Clone, Debug)]
pub struct JobsConfig {
    /// `JOB_TRANSPORT`: `redis`, `database`, or `auto` (the default:
    /// Redis, except on SQLite when no Redis is configured).
    pub transport: JobTransport,
    /// `JOB_CONCURRENCY`: jobs each process runs at once, per queue.
    pub concurrency: usize,
    /// `JOB_LEASE_MS`: how long a worker holds a job before another may
    /// take it over (renewed while the job runs).
    pub lease: Duration,
    /// `JOB_RESEND_AFTER_MS`: a job `queued` on Redis this long without a
    /// worker taking it is sent again (its message may be lost).
    pub resend_after: Duration,
    /// `JOB_MAX_ATTEMPTS`: attempts before a job is `dead`.
    pub max_attempts: u32,
    /// `JOB_RETRY_BASE_MS`: the first retry's delay, doubled per attempt.
    pub retry_base: Duration,
    /// `JOB_RETRY_MAX_MS`: the longest delay between attempts.
    pub retry_max: Duration,
    /// `JOB_BACKLOG_SECONDS`: the job queues are `degraded` once the oldest
    /// due job has waited longer than this.
    pub backlog: Duration,
    /// `RECURRING_SCAN_MS`: how often due recurring invoices are looked for.
    pub recurring_scan: Duration,
    /// `RETENTION_DAYS` (30, at least 1): finished jobs, report results and
    /// idempotency answers older than this are purged (an idempotency key
    /// is kept at least a day whatever this says).
    pub retention_days: u32,
    /// `REPORT_STORAGE_PER_ORGANIZATION_BYTES` (100 MiB): the most bytes of
    /// report results one organization keeps stored; a new report job is
    /// refused (`422 REPORT_QUOTA_EXCEEDED`) once they reach it.
    pub report_storage_per_organization: u64,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `ACCUBOOKS_ENV` or `NODE_ENV`.
    pub environment: Environment,
    /// `PORT`.
    pub port: u16,
    /// `HOSTNAME`.
    pub hostname: String,
    /// `DATABASE_URL`.
    pub database_url: DatabaseUrl,
    /// Where reports read from, when not the primary.
    pub reports: Option<ReportsDatabase>,
    /// `JWT_SECRET`.
    pub jwt_secret: SecretString,
    /// `SESSION_SECRET`.
    pub session_secret: SecretString,
    /// `FRONTEND_URL`, the allowed CORS origin.
    pub frontend_url: String,
    /// Where the job queues live.
    pub redis: RedisConfig,
    /// `SLOW_REQUEST_MS`.
    pub slow_request: Duration,
    /// Database pool settings.
    pub pool: PoolConfig,
    /// `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET`, `STRIPE_API_BASE`.
    pub stripe: Option<ApiCredentials>,
    /// `PLAID_CLIENT_ID`, `PLAID_SECRET`, `PLAID_API_BASE`,
    /// `PLAID_WEBHOOK_URL`.
    pub plaid: Option<ApiCredentials>,
    /// `METRICS_TOKEN`.
    pub metrics_token: Option<SecretString>,
    /// `REQUEST_TIMEOUT_MS`: the longest a request may run before a 503.
    pub request_timeout: Duration,
    /// `PROVIDER_TIMEOUT_MS`: the longest one call to Stripe or Plaid may take.
    pub provider_timeout: Duration,
    /// `PROVIDER_PROBE_INTERVAL_MS` (30000): how often Stripe and Plaid are
    /// probed while connected and idle (a successful call of real traffic
    /// counts as a probe). Providers limit calls per client: Plaid allows
    /// 50 `/institutions/get` a minute, for all instances together.
    pub provider_probe_interval: Duration,
    /// `BODY_LIMIT_BYTES`: larger bodies are refused with 413.
    pub body_limit: usize,
    /// `DRAIN_TIMEOUT_MS`: how long a graceful shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// `SHUTDOWN_DELAY_MS` (0): how long a graceful shutdown keeps accepting
    /// requests after `/ready` turned `draining`, so that a load balancer
    /// polling `/ready` stops sending before the listener closes.
    pub shutdown_delay: Duration,
    /// Connection, authentication and heavy-work bounds.
    pub limits: Limits,
    /// `TRUSTED_PROXIES`: addresses and CIDR blocks of the proxies in front
    /// (HAProxy, a load balancer). A request from one of them is from the
    /// client its `X-Forwarded-For` names, for rate limits and login
    /// budgets; from anyone else, that header is ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Background jobs.
    pub jobs: JobsConfig,
    /// `WEBHOOK_ALLOW_PRIVATE` (`0`): `1` lets webhook endpoints use
    /// `http://` and reach loopback, private, link-local and other
    /// non-public addresses (tests, internal deployments).
    pub webhook_allow_private: bool,
    /// Warnings found while loading (generated secrets, defaults); logged at startup.
    pub warnings: Vec<String>,
}

/// One invalid or missing variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable's name.
    pub variable: &'static str,
    /// What is wrong and how to fix it. Never contains the value of a secret.
    pub message: String,
}

/// Every problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order of the contract's table.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            writeln!(f, "  - {}: {}", problem.variable, problem.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
