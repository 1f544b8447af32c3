//! Parsing the variables into a [`Config`](super::Config), every problem
//! at once; and the hosts of a PostgreSQL URL.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::*;

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
            configured: redis_configured,
        };

        let slow_request = r.millis("SLOW_REQUEST_MS", 1500);
        let min = r.number("DB_POOL_MIN", 2u32, 0, 1000);
        let max = r.number("DB_POOL_MAX", 20u32, 1, 1000);
        if min > max {
            r.problem("DB_POOL_MIN", "must not be larger than DB_POOL_MAX");
        }
        // Jobs get a quarter of the connections, at least 2 (a claim and a
        // handler's statement at once), and leave requests at least one.
        let jobs_default = (max / 4).max(2).min(max - 1);
        let jobs = r.number("DB_POOL_JOBS", jobs_default, 0, 1000);
        if jobs >= max && r.get("DB_POOL_JOBS").is_some() {
            r.problem(
                "DB_POOL_JOBS",
                format!(
                    "must be smaller than DB_POOL_MAX ({max}), so that requests keep at least one \
                     connection; 0 lets jobs share the requests' connections"
                ),
            );
        }
        let pool = PoolConfig {
            min,
            max,
            jobs,
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
        // The public URL of `POST /api/webhooks/plaid`, given to Plaid with
        // each Link token; without it Plaid sends no webhooks and syncs
        // happen only when asked (`POST /api/bank/sync`).
        let plaid_webhook = r.get("PLAID_WEBHOOK_URL").map(str::to_owned);
        if plaid_webhook
            .as_deref()
            .is_some_and(|url| !(url.starts_with("https://") || url.starts_with("http://")))
        {
            r.problem("PLAID_WEBHOOK_URL", "must be an http:// or https:// URL");
        }
        let plaid = plaid.map(|credentials| ApiCredentials {
            webhook_url: plaid_webhook,
            ..credentials
        });
        let metrics_token = r
            .get("METRICS_TOKEN")
            .map(|t| SecretString::from(t.to_owned()));

        let request_timeout = r.millis("REQUEST_TIMEOUT_MS", 10_000);
        let provider_timeout = r.millis("PROVIDER_TIMEOUT_MS", 5_000);
        let provider_probe_interval = r.millis("PROVIDER_PROBE_INTERVAL_MS", 30_000);
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

        let webhook_allow_private = match r.get("WEBHOOK_ALLOW_PRIVATE").unwrap_or("0") {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => {
                r.problem(
                    "WEBHOOK_ALLOW_PRIVATE",
                    "must be 1 (allow private addresses) or 0",
                );
                false
            }
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
            provider_probe_interval,
            body_limit,
            drain_timeout,
            shutdown_delay,
            limits,
            trusted_proxies,
            jobs,
            webhook_allow_private,
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
