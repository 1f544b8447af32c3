//! Configuration from the environment, as in section 1 of the contract.
//!
//! [`Config::from_env`] reads `.env` and the process environment;
//! [`Config::from_vars`] takes any map, which tests and the Python bindings use.
//! Validation collects every problem before failing, so an operator fixes a
//! deployment in one pass, and no message ever repeats a secret.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};

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

/// Credentials of a third-party API. Present only when configured.
#[derive(Clone, Debug)]
pub struct ApiCredentials {
    /// Stripe's secret key, or Plaid's client id.
    pub key: SecretString,
    /// Stripe's webhook signing secret, or Plaid's secret.
    pub secret: SecretString,
    /// The API base URL (a fake server in tests).
    pub api_base: String,
}

/// Pool settings of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// `DB_POOL_MIN`.
    pub min: u32,
    /// `DB_POOL_MAX`.
    pub max: u32,
    /// `DB_IDLE_TIMEOUT_MS`.
    pub idle_timeout: Duration,
    /// `DB_CONNECT_TIMEOUT_MS`: the longest wait for a connection.
    pub connect_timeout: Duration,
    /// `DB_INIT_TIMEOUT_MS`: the longest startup waits for the first probe.
    pub init_timeout: Duration,
    /// `DB_STATEMENT_TIMEOUT_MS`: the longest one database operation may take.
    pub statement_timeout: Duration,
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
    /// `PLAID_CLIENT_ID`, `PLAID_SECRET`, `PLAID_API_BASE`.
    pub plaid: Option<ApiCredentials>,
    /// `METRICS_TOKEN`.
    pub metrics_token: Option<SecretString>,
    /// `REQUEST_TIMEOUT_MS`: the longest a request may run before a 503.
    pub request_timeout: Duration,
    /// `PROVIDER_TIMEOUT_MS`: the longest one call to Stripe or Plaid may take.
    pub provider_timeout: Duration,
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

/// The fewest different characters a production secret may have: a random
/// string of 32 has about 25; `aaaa…` or `abcabc…` has a handful.
const MIN_DISTINCT_SECRET_CHARS: usize = 12;

/// The exit code for a configuration error, as in the contract.
pub const CONFIG_EXIT_CODE: i32 = 2;

/// Every variable [`Config::from_vars`] reads (besides the `<NAME>_FILE`
/// forms of [`FILE_VARIABLES`]): the one list a door that takes the
/// configuration another way (the Python `AccuBooks(**config)`) checks names
/// against. The reader refuses, in debug builds, a name missing here, and a
/// unit test proves every name here is read.
pub const VARIABLES: [&str; 59] = [
    "ACCUBOOKS_ENV",
    "NODE_ENV",
    "PORT",
    "HOSTNAME",
    "DATABASE_URL",
    "DATABASE_REPORTS_URL",
    "REPORTS_MAX_LAG_MS",
    "JWT_SECRET",
    "SESSION_SECRET",
    "FRONTEND_URL",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_MODE",
    "REDIS_WAIT_REPLICAS",
    "SLOW_REQUEST_MS",
    "DB_POOL_MIN",
    "DB_POOL_MAX",
    "DB_IDLE_TIMEOUT_MS",
    "DB_CONNECT_TIMEOUT_MS",
    "DB_INIT_TIMEOUT_MS",
    "DB_STATEMENT_TIMEOUT_MS",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "PLAID_CLIENT_ID",
    "PLAID_SECRET",
    "PLAID_API_BASE",
    "METRICS_TOKEN",
    "REQUEST_TIMEOUT_MS",
    "PROVIDER_TIMEOUT_MS",
    "BODY_LIMIT_BYTES",
    "DRAIN_TIMEOUT_MS",
    "SHUTDOWN_DELAY_MS",
    "TRUSTED_PROXIES",
    "HEADER_READ_TIMEOUT_MS",
    "IDLE_TIMEOUT_MS",
    "MAX_CONNECTIONS",
    "REGISTRATIONS_PER_HOUR",
    "RATE_LIMIT_PER_ADDRESS",
    "RATE_LIMIT_PER_TOKEN",
    "PASSWORD_HASHING_WORKERS",
    "EXPORTS_PER_ORGANIZATION",
    "EXPORTS_MAX",
    "LARGE_BATCH_ENTRIES",
    "LARGE_BATCHES_PER_ORGANIZATION",
    "LARGE_BATCHES_MAX",
    "JOB_TRANSPORT",
    "JOB_CONCURRENCY",
    "JOB_LEASE_MS",
    "JOB_RESEND_AFTER_MS",
    "JOB_MAX_ATTEMPTS",
    "JOB_RETRY_BASE_MS",
    "JOB_RETRY_MAX_MS",
    "JOB_BACKLOG_SECONDS",
    "RECURRING_SCAN_MS",
    "RETENTION_DAYS",
    "REPORT_STORAGE_PER_ORGANIZATION_BYTES",
];

/// Every name [`Config::from_vars`] reads: [`VARIABLES`] and the
/// `<NAME>_FILE` forms of [`FILE_VARIABLES`].
pub fn variables() -> impl Iterator<Item = &'static str> {
    VARIABLES
        .iter()
        .copied()
        .chain(FILE_VARIABLES.iter().map(|(_, file_name)| *file_name))
}

/// The variables that may also come from a file, as `<NAME>_FILE` (the
/// convention of Docker and Kubernetes secrets): the secrets, and the URLs
/// that may carry a password.
pub const FILE_VARIABLES: [(&str, &str); 11] = [
    ("DATABASE_URL", "DATABASE_URL_FILE"),
    ("DATABASE_REPORTS_URL", "DATABASE_REPORTS_URL_FILE"),
    ("JWT_SECRET", "JWT_SECRET_FILE"),
    ("SESSION_SECRET", "SESSION_SECRET_FILE"),
    ("REDIS_URL", "REDIS_URL_FILE"),
    ("REDIS_PASSWORD", "REDIS_PASSWORD_FILE"),
    ("STRIPE_SECRET_KEY", "STRIPE_SECRET_KEY_FILE"),
    ("STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET_FILE"),
    ("PLAID_CLIENT_ID", "PLAID_CLIENT_ID_FILE"),
    ("PLAID_SECRET", "PLAID_SECRET_FILE"),
    ("METRICS_TOKEN", "METRICS_TOKEN_FILE"),
];

/// Replaces each `<NAME>_FILE` of [`FILE_VARIABLES`] by `<NAME>` with the
/// file's contents (without the trailing newline). Answers the problems:
/// both forms given, or a file that cannot be read (named by its path,
/// never by what it holds).
fn read_secret_files(vars: &mut HashMap<String, String>) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    for (name, file_name) in FILE_VARIABLES {
        let Some(path) = vars.remove(file_name).filter(|p| !p.trim().is_empty()) else {
            continue;
        };
        if vars.get(name).is_some_and(|v| !v.trim().is_empty()) {
            problems.push(ConfigProblem {
                variable: file_name,
                message: format!("set {name} or {file_name}, not both"),
            });
            continue;
        }
        match std::fs::read_to_string(path.trim()) {
            Ok(contents) => {
                vars.insert(
                    name.to_owned(),
                    contents.trim_end_matches(['\n', '\r']).to_owned(),
                );
            }
            Err(err) => problems.push(ConfigProblem {
                variable: file_name,
                message: format!("cannot read {}: {err}", path.trim()),
            }),
        }
    }
    problems
}

/// Reads variables and records problems as it goes.
struct Reader<'a> {
    vars: &'a HashMap<String, String>,
    problems: Vec<ConfigProblem>,
    warnings: Vec<String>,
    production: bool,
}

impl<'a> Reader<'a> {
    fn get(&self, name: &'static str) -> Option<&'a str> {
        debug_assert!(
            VARIABLES.contains(&name),
            "{name} is read but missing from config::VARIABLES"
        );
        #[cfg(test)]
        tests::LOOKED_UP.with(|names| names.borrow_mut().insert(name));
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn problem(&mut self, variable: &'static str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            variable,
            message: message.into(),
        });
    }

    fn number<T>(&mut self, name: &'static str, default: T, min: T, max: T) -> T
    where
        T: std::str::FromStr + PartialOrd + Copy + fmt::Display,
    {
        let Some(raw) = self.get(name) else {
            return default;
        };
        match raw.parse::<T>() {
            Ok(value) if value >= min && value <= max => value,
            _ => {
                // Numbers are not secrets, so echoing the value helps.
                let message = format!("must be a whole number from {min} to {max}, got {raw:?}");
                self.problem(name, message);
                default
            }
        }
    }

    /// A comma-separated list of addresses and CIDR blocks.
    fn networks(&mut self, name: &'static str) -> Vec<ipnet::IpNet> {
        let Some(raw) = self.get(name) else {
            return Vec::new();
        };
        let mut networks = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.parse::<ipnet::IpNet>() {
                Ok(network) => networks.push(network),
                Err(_) => match item.parse::<std::net::IpAddr>() {
                    Ok(address) => networks.push(address.into()),
                    Err(_) => self.problem(
                        name,
                        format!(
                            "must list addresses or CIDR blocks (e.g. 10.0.0.0/8,127.0.0.1), \
                             got {item:?}"
                        ),
                    ),
                },
            }
        }
        networks
    }

    fn millis(&mut self, name: &'static str, default: u64) -> Duration {
        Duration::from_millis(self.number(name, default, 1, 86_400_000))
    }

    fn secret(&mut self, name: &'static str) -> SecretString {
        match self.get(name) {
            Some(value) if value.chars().count() >= 32 => {
                let distinct = value
                    .chars()
                    .collect::<std::collections::HashSet<_>>()
                    .len();
                if self.production && distinct < MIN_DISTINCT_SECRET_CHARS {
                    self.problem(
                        name,
                        format!(
                            "is too easy to guess (fewer than {MIN_DISTINCT_SECRET_CHARS} different \
                             characters); use a random one, e.g. `openssl rand -base64 48`"
                        ),
                    );
                }
                SecretString::from(value.to_owned())
            }
            Some(_) => {
                self.problem(name, "must be at least 32 characters long");
                generated_secret()
            }
            None if self.production => {
                self.problem(
                    name,
                    "is required in production (at least 32 random characters)",
                );
                generated_secret()
            }
            None => {
                self.warnings.push(format!(
                    "{name} is not set: using a random secret for this process only \
                     (tokens will not survive a restart)"
                ));
                generated_secret()
            }
        }
    }

    fn credentials(
        &mut self,
        id_var: &'static str,
        secret_var: &'static str,
        base_var: &'static str,
        default_base: &str,
    ) -> Option<ApiCredentials> {
        let id = self.get(id_var).map(str::to_owned);
        let secret = self.get(secret_var).map(str::to_owned);
        let api_base = self
            .get(base_var)
            .unwrap_or(default_base)
            .trim_end_matches('/')
            .to_owned();
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            self.problem(base_var, "must be an http:// or https:// URL");
        }
        match (id, secret) {
            (Some(key), Some(secret)) => Some(ApiCredentials {
                key: key.into(),
                secret: secret.into(),
                api_base,
            }),
            _ => None,
        }
    }
}

fn generated_secret() -> SecretString {
    let secret: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    SecretString::from(secret)
}

impl Config {
    /// Loads `.env` (when present; existing variables win) and reads the
    /// process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        // A missing .env is normal; a malformed one is reported by the
        // variables it fails to provide.
        let _ = dotenvy::dotenv();
        Config::from_vars(std::env::vars())
    }

    /// [`Config::from_env`] for a standalone process: on a configuration
    /// error, prints every problem to standard error and exits with code 2.
    pub fn from_env_or_exit() -> Config {
        Config::from_env().unwrap_or_else(|err| {
            eprintln!("accubooks: {err}");
            std::process::exit(CONFIG_EXIT_CODE)
        })
    }

    /// Reads the configuration from name/value pairs.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut vars: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let file_problems = read_secret_files(&mut vars);
        let mut r = Reader {
            vars: &vars,
            problems: file_problems,
            warnings: Vec::new(),
            production: false,
        };

        let environment = match r.get("ACCUBOOKS_ENV").or_else(|| r.get("NODE_ENV")) {
            None => Environment::Development,
            Some(name) => match name.to_ascii_lowercase().as_str() {
                "development" | "dev" => Environment::Development,
                "test" => Environment::Test,
                "production" | "prod" => Environment::Production,
                other => {
                    let message = format!("must be development, test or production, got {other:?}");
                    r.problem("ACCUBOOKS_ENV", message);
                    Environment::Development
                }
            },
        };
        r.production = environment == Environment::Production;

        let port = r.number("PORT", 5000u16, 0, u16::MAX);
        let hostname = r.get("HOSTNAME").unwrap_or("0.0.0.0").to_owned();

        let database_url = match r.get("DATABASE_URL") {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                if postgres_hosts(url).is_none() {
                    r.problem(
                        "DATABASE_URL",
                        "is not a valid PostgreSQL URL (postgres://user:password@host[:port][,host2[:port]]/db)",
                    );
                }
                DatabaseUrl::Postgres(SecretString::from(url.to_owned()))
            }
            Some(url) if url.starts_with("sqlite:") => DatabaseUrl::Sqlite(url.to_owned()),
            Some(_) => {
                // The URL may hold a password: describe it, never repeat it.
                r.problem(
                    "DATABASE_URL",
                    "must start with postgres://, postgresql:// or sqlite:",
                );
                DatabaseUrl::Sqlite(String::new())
            }
            None if r.production => {
                r.problem(
                    "DATABASE_URL",
                    "is required in production (postgres://user:password@host/db)",
                );
                DatabaseUrl::Sqlite(String::new())
            }
            None => DatabaseUrl::Sqlite("sqlite://accubooks.db".to_owned()),
        };
        let max_lag = r.millis("REPORTS_MAX_LAG_MS", 10_000);
        let reports = match r.get("DATABASE_REPORTS_URL") {
            None => None,
            Some(_) if !matches!(database_url, DatabaseUrl::Postgres(_)) => {
                r.problem(
                    "DATABASE_REPORTS_URL",
                    "needs a PostgreSQL DATABASE_URL (it names the primary's standby)",
                );
                None
            }
            Some(url) if postgres_hosts(url).is_some() => Some(ReportsDatabase {
                url: SecretString::from(url.to_owned()),
                max_lag,
            }),
            Some(_) => {
                r.problem(
                    "DATABASE_REPORTS_URL",
                    "is not a valid PostgreSQL URL (postgres://user:password@standby[:port]/db)",
                );
                None
            }
        };

        let jwt_secret = r.secret("JWT_SECRET");
        let session_secret = r.secret("SESSION_SECRET");
        if r.production && jwt_secret.expose_secret() == session_secret.expose_secret() {
            r.problem(
                "SESSION_SECRET",
                "must differ from JWT_SECRET (one leaking must not give away the other)",
            );
        }

        let frontend_url = match r.get("FRONTEND_URL") {
            Some(url) if r.production && !url.starts_with("https://") => {
                r.problem("FRONTEND_URL", "must be an https:// URL in production");
                url.to_owned()
            }
            Some(url) => url.to_owned(),
            None if r.production => {
                r.problem(
                    "FRONTEND_URL",
                    "is required in production (the https:// origin of the web app)",
                );
                String::new()
            }
            None => "http://localhost:3000".to_owned(),
        };

        let redis_configured = ["REDIS_URL", "REDIS_HOST", "REDIS_PORT"]
            .iter()
            .any(|name| r.get(name).is_some());
        let cluster = match r.get("REDIS_MODE").unwrap_or("standalone") {
            "standalone" => false,
            "cluster" => true,
            _ => {
                r.problem("REDIS_MODE", "must be standalone or cluster");
                false
            }
        };
        let redis_url = match r.get("REDIS_URL") {
            Some(urls) => {
                let nodes = split_nodes(urls);
                if nodes.is_empty()
                    || !nodes
                        .iter()
                        .all(|url| url.starts_with("redis://") || url.starts_with("rediss://"))
                {
                    r.problem("REDIS_URL", "must start with redis:// or rediss://");
                } else if nodes.len() > 1 && !cluster {
                    r.problem(
                        "REDIS_URL",
                        "lists several servers, which only a Redis Cluster takes: \
                         set REDIS_MODE=cluster, or give one URL",
                    );
                }
                SecretString::from(urls.to_owned())
            }
            None => {
                let host = r.get("REDIS_HOST").unwrap_or("localhost").to_owned();
                let port = r.number("REDIS_PORT", 6379u16, 1, u16::MAX);
                let auth = match r.get("REDIS_PASSWORD") {
                    Some(password) => format!(":{password}@"),
                    None => String::new(),
                };
                SecretString::from(format!("redis://{auth}{host}:{port}"))
            }
        };
        let redis = RedisConfig {
            url: redis_url,
            cluster,
            wait_replicas: r.number("REDIS_WAIT_REPLICAS", 0u32, 0, 16),
        };

        let slow_request = r.millis("SLOW_REQUEST_MS", 1500);
        let min = r.number("DB_POOL_MIN", 2u32, 0, 1000);
        let max = r.number("DB_POOL_MAX", 20u32, 1, 1000);
        if min > max {
            r.problem("DB_POOL_MIN", "must not be larger than DB_POOL_MAX");
        }
        let pool = PoolConfig {
            min,
            max,
            idle_timeout: r.millis("DB_IDLE_TIMEOUT_MS", 30_000),
            connect_timeout: r.millis("DB_CONNECT_TIMEOUT_MS", 2_000),
            init_timeout: r.millis("DB_INIT_TIMEOUT_MS", 5_000),
            statement_timeout: r.millis("DB_STATEMENT_TIMEOUT_MS", 5_000),
        };

        let stripe = r.credentials(
            "STRIPE_SECRET_KEY",
            "STRIPE_WEBHOOK_SECRET",
            "STRIPE_API_BASE",
            "https://api.stripe.com",
        );
        let plaid = r.credentials(
            "PLAID_CLIENT_ID",
            "PLAID_SECRET",
            "PLAID_API_BASE",
            "https://production.plaid.com",
        );
        let metrics_token = r
            .get("METRICS_TOKEN")
            .map(|t| SecretString::from(t.to_owned()));

        let request_timeout = r.millis("REQUEST_TIMEOUT_MS", 10_000);
        let provider_timeout = r.millis("PROVIDER_TIMEOUT_MS", 5_000);
        let body_limit = r.number("BODY_LIMIT_BYTES", 1_048_576usize, 1024, 1 << 30);
        let drain_timeout = r.millis("DRAIN_TIMEOUT_MS", 10_000);
        let shutdown_delay = Duration::from_millis(r.number("SHUTDOWN_DELAY_MS", 0u64, 0, 600_000));
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let pool_share = (max as usize / 4).max(1);
        let trusted_proxies = r.networks("TRUSTED_PROXIES");
        let limits = Limits {
            header_read_timeout: r.millis("HEADER_READ_TIMEOUT_MS", 10_000),
            idle_timeout: r.millis("IDLE_TIMEOUT_MS", 60_000),
            max_connections: r.number("MAX_CONNECTIONS", 1024usize, 1, 1_000_000),
            registrations_per_hour: r.number("REGISTRATIONS_PER_HOUR", 20u32, 1, 1_000_000),
            requests_per_address: r.number("RATE_LIMIT_PER_ADDRESS", 1200u32, 0, 100_000_000),
            requests_per_token: r.number("RATE_LIMIT_PER_TOKEN", 600u32, 0, 100_000_000),
            password_hashing_workers: r.number("PASSWORD_HASHING_WORKERS", cores, 1, 256),
            exports_per_organization: r.number("EXPORTS_PER_ORGANIZATION", 2usize, 1, 1000),
            exports_total: r.number("EXPORTS_MAX", pool_share, 1, 1000),
            large_batch_entries: r.number("LARGE_BATCH_ENTRIES", 1000usize, 1, 10_000),
            large_batches_per_organization: r.number(
                "LARGE_BATCHES_PER_ORGANIZATION",
                2usize,
                1,
                1000,
            ),
            large_batches_total: r.number("LARGE_BATCHES_MAX", pool_share, 1, 1000),
        };

        let transport = match r.get("JOB_TRANSPORT").unwrap_or("auto") {
            "redis" => JobTransport::Redis,
            "database" => JobTransport::Database,
            "auto" => match database_url {
                DatabaseUrl::Sqlite(_) if !redis_configured => JobTransport::Database,
                _ => JobTransport::Redis,
            },
            _ => {
                r.problem("JOB_TRANSPORT", "must be redis, database or auto");
                JobTransport::Redis
            }
        };
        let jobs = JobsConfig {
            transport,
            concurrency: r.number("JOB_CONCURRENCY", 8usize, 1, 1024),
            lease: r.millis("JOB_LEASE_MS", 30_000),
            resend_after: r.millis("JOB_RESEND_AFTER_MS", 300_000),
            max_attempts: r.number("JOB_MAX_ATTEMPTS", 5u32, 1, 1000),
            retry_base: r.millis("JOB_RETRY_BASE_MS", 1_000),
            retry_max: r.millis("JOB_RETRY_MAX_MS", 300_000),
            backlog: Duration::from_secs(r.number("JOB_BACKLOG_SECONDS", 60u64, 1, 86_400)),
            recurring_scan: r.millis("RECURRING_SCAN_MS", 60_000),
            retention_days: r.number("RETENTION_DAYS", 30u32, 1, 36_500),
            report_storage_per_organization: r.number(
                "REPORT_STORAGE_PER_ORGANIZATION_BYTES",
                100u64 << 20,
                1,
                1 << 50,
            ),
        };

        if !r.problems.is_empty() {
            return Err(ConfigError {
                problems: r.problems,
            });
        }
        Ok(Config {
            environment,
            port,
            hostname,
            database_url,
            reports,
            jwt_secret,
            session_secret,
            frontend_url,
            redis,
            slow_request,
            pool,
            stripe,
            plaid,
            metrics_token,
            request_timeout,
            provider_timeout,
            body_limit,
            drain_timeout,
            shutdown_delay,
            limits,
            trusted_proxies,
            jobs,
            warnings: r.warnings,
        })
    }

    /// The address to listen on, `HOSTNAME:PORT`.
    pub fn listen_addr(&self) -> String {
        if self.hostname.contains(':') {
            format!("[{}]:{}", self.hostname, self.port)
        } else {
            format!("{}:{}", self.hostname, self.port)
        }
    }

    /// Whether a presented metrics token matches `METRICS_TOKEN`, compared in
    /// constant time.
    pub fn metrics_token_matches(&self, presented: &str) -> bool {
        let Some(expected) = &self.metrics_token else {
            return false;
        };
        let expected = expected.expose_secret().as_bytes();
        let presented = presented.as_bytes();
        if expected.len() != presented.len() {
            return false;
        }
        expected
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The hosts of a PostgreSQL URL with libpq's list of hosts
/// (`postgres://u:p@h1:5432,h2:5433/db?…`): one set of options per host,
/// in order. `target_session_attrs` is dropped (sqlx does not know it):
/// AccuBooks always looks for the host that accepts writes.
pub(crate) fn postgres_hosts(url: &str) -> Option<Vec<sqlx::postgres::PgConnectOptions>> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("target_session_attrs="))
        .collect();
    let tail = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    hosts
        .split(',')
        .map(|host| {
            <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&format!(
                "{scheme}://{userinfo}{host}{tail}"
            ))
            .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;

    thread_local! {
        /// The names [`Reader::get`] looked up on this thread.
        pub(super) static LOOKED_UP: RefCell<BTreeSet<&'static str>> =
            const { RefCell::new(BTreeSet::new()) };
    }

    #[test]
    fn variables_are_exactly_the_names_the_reader_reads() {
        LOOKED_UP.with(|names| names.borrow_mut().clear());
        // Nothing set: every fallback is looked at too (NODE_ENV after
        // ACCUBOOKS_ENV, the REDIS_* parts without REDIS_URL).
        load(&[]).unwrap();
        let _ = load(&[("ACCUBOOKS_ENV", "production"), ("REDIS_URL", "redis://r")]);
        let read = LOOKED_UP.with(|names| names.borrow().clone());
        let listed: BTreeSet<&str> = VARIABLES.iter().copied().collect();
        assert_eq!(listed.len(), VARIABLES.len(), "a name is listed twice");
        let unread: Vec<_> = listed.difference(&read).collect();
        let unlisted: Vec<_> = read.difference(&listed).collect();
        assert!(unread.is_empty(), "listed but never read: {unread:?}");
        assert!(unlisted.is_empty(), "read but not listed: {unlisted:?}");
        for (name, file_name) in FILE_VARIABLES {
            assert!(VARIABLES.contains(&name), "{name}");
            assert!(variables().any(|v| v == file_name), "{file_name}");
        }
    }

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn a_url_may_list_several_hosts() {
        let hosts = postgres_hosts(
            "postgres://app:pw@db1:5432,db2:5433/books?target_session_attrs=read-write&sslmode=disable",
        )
        .unwrap();
        let shown: Vec<_> = hosts
            .iter()
            .map(|o| {
                (
                    o.get_host().to_owned(),
                    o.get_port(),
                    o.get_database().map(str::to_owned),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("db1".to_owned(), 5432, Some("books".to_owned())),
                ("db2".to_owned(), 5433, Some("books".to_owned()))
            ]
        );
        assert!(hosts.iter().all(|o| o.get_username() == "app"));
        let one = postgres_hosts("postgres://app@db/books").unwrap();
        assert_eq!((one.len(), one[0].get_host()), (1, "db"));
        assert!(postgres_hosts("not a url").is_none());
    }

    #[test]
    fn development_defaults_need_nothing() {
        let config = load(&[]).unwrap();
        assert_eq!(config.environment, Environment::Development);
        assert_eq!(config.port, 5000);
        assert!(
            matches!(&config.database_url, DatabaseUrl::Sqlite(u) if u == "sqlite://accubooks.db")
        );
        assert_eq!(config.pool.max, 20);
        assert_eq!(config.pool.init_timeout, Duration::from_millis(5000));
        assert!(config.stripe.is_none() && config.plaid.is_none());
        assert_eq!(config.limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.max_connections, 1024);
        assert_eq!(config.limits.exports_total, 5, "a quarter of the pool");
        assert_eq!(config.limits.registrations_per_hour, 20);
        assert_eq!(
            (
                config.limits.requests_per_address,
                config.limits.requests_per_token
            ),
            (1200, 600)
        );
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(config.jobs.resend_after, Duration::from_secs(300));
        assert_eq!(config.jwt_secret.expose_secret().len(), 48);
        assert!(config.warnings.iter().any(|w| w.contains("JWT_SECRET")));
        assert_eq!(
            config.redis.url.expose_secret(),
            "redis://localhost:6379",
            "REDIS_HOST/REDIS_PORT defaults"
        );
    }

    #[test]
    fn production_names_every_problem_and_never_a_secret() {
        let err = load(&[
            ("ACCUBOOKS_ENV", "production"),
            ("JWT_SECRET", "short-secret-value"),
            ("FRONTEND_URL", "http://app.example.com"),
            ("PORT", "eighty"),
        ])
        .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.variable).collect();
        assert_eq!(
            names,
            [
                "PORT",
                "DATABASE_URL",
                "JWT_SECRET",
                "SESSION_SECRET",
                "FRONTEND_URL"
            ]
        );
        let text = err.to_string();
        assert!(!text.contains("short-secret-value"), "{text}");
        assert!(text.contains("5 problems"), "{text}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks() {
        let config = load(&[("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,::1")]).unwrap();
        let shown: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]);
        let err = load(&[("TRUSTED_PROXIES", "10.0.0.0/8,haproxy")]).unwrap_err();
        assert_eq!(err.problems[0].variable, "TRUSTED_PROXIES");
        assert!(err.to_string().contains("\"haproxy\""), "{err}");
    }

    #[test]
    fn a_bad_database_url_is_described_not_echoed() {
        let err = load(&[("DATABASE_URL", "mysql://root:hunter2@db/books")]).unwrap_err();
        assert_eq!(err.problems[0].variable, "DATABASE_URL");
        assert!(!err.to_string().contains("hunter2"));
        let err = load(&[("DATABASE_URL", "postgres://root:hunter2@db:port/books")]).unwrap_err();
        assert!(
            err.to_string().contains("not a valid PostgreSQL URL"),
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"));
        load(&[("DATABASE_URL", "postgres://app:pw@db1,db2:5433/books")]).unwrap();
    }

    #[test]
    fn a_reports_standby_needs_postgres_and_a_valid_url() {
        let primary = ("DATABASE_URL", "postgres://app:pw@db1/books");
        let config = load(&[
            primary,
            ("DATABASE_REPORTS_URL", "postgres://app:pw@db2/books"),
            ("REPORTS_MAX_LAG_MS", "2500"),
        ])
        .unwrap();
        let reports = config.reports.unwrap();
        assert_eq!(reports.url.expose_secret(), "postgres://app:pw@db2/books");
        assert_eq!(reports.max_lag, Duration::from_millis(2500));
        assert!(load(&[primary]).unwrap().reports.is_none());
        let err = load(&[("DATABASE_REPORTS_URL", "postgres://app:hunter2@db2/books")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a PostgreSQL DATABASE_URL"), "{err}");
        let err = load(&[
            primary,
            ("DATABASE_REPORTS_URL", "postgres://app:hunter2@db2:x/b"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("not a valid PostgreSQL URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn node_env_is_a_fallback_and_redis_parts_compose_a_url() {
        let config = load(&[
            ("NODE_ENV", "test"),
            ("REDIS_HOST", "cache"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", "pw"),
        ])
        .unwrap();
        assert_eq!(config.environment, Environment::Test);
        assert_eq!(config.redis.url.expose_secret(), "redis://:pw@cache:6380");
    }

    #[test]
    fn several_redis_nodes_need_cluster_mode() {
        let nodes = "redis://10.0.0.1:7000, redis://10.0.0.2:7000";
        let config = load(&[
            ("REDIS_MODE", "cluster"),
            ("REDIS_URL", nodes),
            ("REDIS_WAIT_REPLICAS", "1"),
        ])
        .unwrap();
        assert!(config.redis.cluster);
        assert_eq!(config.redis.wait_replicas, 1);
        assert_eq!(
            config.redis.nodes(),
            ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]
        );
        let err = load(&[("REDIS_URL", nodes)]).unwrap_err().to_string();
        assert!(err.contains("REDIS_MODE=cluster"), "{err}");
        let err = load(&[("REDIS_MODE", "sentinel")]).unwrap_err().to_string();
        assert!(err.contains("REDIS_MODE"), "{err}");
        let err = load(&[
            ("REDIS_MODE", "cluster"),
            ("REDIS_URL", "redis://a,http://b"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("redis://"), "{err}");
    }

    #[test]
    fn third_parties_are_enabled_only_with_both_credentials() {
        let config = load(&[
            ("STRIPE_SECRET_KEY", "sk_test_1"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_1"),
            ("STRIPE_API_BASE", "http://127.0.0.1:9/"),
            ("PLAID_CLIENT_ID", "only-id"),
        ])
        .unwrap();
        assert_eq!(config.stripe.unwrap().api_base, "http://127.0.0.1:9");
        assert!(config.plaid.is_none());
    }

    #[test]
    fn metrics_token_comparison() {
        let config = load(&[("METRICS_TOKEN", "s3cret")]).unwrap();
        assert!(config.metrics_token_matches("s3cret"));
        assert!(!config.metrics_token_matches("s3cre"));
        assert!(!config.metrics_token_matches("s3cret!"));
        assert!(!load(&[]).unwrap().metrics_token_matches(""));
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let config = load(&[
            ("DATABASE_URL", "postgres://u:topsecret@h/db"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdefXYZ"),
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("topsecret") && !debug.contains("XYZ"),
            "{debug}"
        );
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = std::env::temp_dir().join(format!("accubooks-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jwt = dir.join("jwt");
        std::fs::write(&jwt, "a-jwt-secret-from-a-file-of-32-chars-or-more\n").unwrap();
        let config = Config::from_vars([("JWT_SECRET_FILE", jwt.display().to_string())]).unwrap();
        assert_eq!(
            config.jwt_secret.expose_secret(),
            "a-jwt-secret-from-a-file-of-32-chars-or-more"
        );

        let missing = dir.join("missing");
        let err = Config::from_vars([
            ("JWT_SECRET_FILE", jwt.display().to_string()),
            ("JWT_SECRET", "x".repeat(40)),
            ("STRIPE_SECRET_KEY_FILE", missing.display().to_string()),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("JWT_SECRET_FILE: set JWT_SECRET or JWT_SECRET_FILE, not both"));
        assert!(text.contains("STRIPE_SECRET_KEY_FILE: cannot read"));
        assert!(!text.contains("a-jwt-secret-from-a-file") && !text.contains(&"x".repeat(40)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn production_refuses_guessable_and_shared_secrets() {
        let production = |jwt: &str, session: &str| {
            Config::from_vars([
                ("ACCUBOOKS_ENV", "production"),
                ("DATABASE_URL", "postgres://u@db/books"),
                ("FRONTEND_URL", "https://books.example.com"),
                ("JWT_SECRET", jwt),
                ("SESSION_SECRET", session),
            ])
        };
        let random = "q8Zr2LmV7xKp0TnW4yBe9HsUj3FcGd6A";
        let other = "N5tRw1YbQ7mZk2XvL9pC4hJs8DgF0eUa";
        assert!(production(random, other).is_ok());
        let err = production(&"ab".repeat(20), other).unwrap_err().to_string();
        assert!(err.contains("JWT_SECRET: is too easy to guess"), "{err}");
        assert!(!err.contains(&"ab".repeat(20)));
        let err = production(random, random).unwrap_err().to_string();
        assert!(
            err.contains("SESSION_SECRET: must differ from JWT_SECRET"),
            "{err}"
        );
        // Development takes what it is given.
        assert!(Config::from_vars([("JWT_SECRET", "a".repeat(40))]).is_ok());
    }
}
