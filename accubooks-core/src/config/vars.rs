//! The variables AccuBooks reads, and how: the one list ([`VARIABLES`]),
//! secrets from files (`<NAME>_FILE`), and the reader that collects every
//! problem instead of stopping at the first.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::SecretString;

use super::*;

/// The fewest different characters a production secret may have: a random
/// string of 32 has about 25; `aaaa…` or `abcabc…` has a handful.
pub(super) const MIN_DISTINCT_SECRET_CHARS: usize = 12;

/// The exit code for a configuration error, as in the contract.
pub const CONFIG_EXIT_CODE: i32 = 2;

/// Every variable [`Config::from_vars`] reads (besides the `<NAME>_FILE`
/// forms of [`FILE_VARIABLES`]): the one list a door that takes the
/// configuration another way (the Python `AccuBooks(**config)`) checks names
/// against. The reader refuses, in debug builds, a name missing here, and a
/// unit test proves every name here is read.
pub const VARIABLES: [&str; 63] = [
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
    "DB_POOL_JOBS",
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
    "PLAID_WEBHOOK_URL",
    "METRICS_TOKEN",
    "REQUEST_TIMEOUT_MS",
    "PROVIDER_TIMEOUT_MS",
    "PROVIDER_PROBE_INTERVAL_MS",
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
    "WEBHOOK_ALLOW_PRIVATE",
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
pub(super) fn read_secret_files(vars: &mut HashMap<String, String>) -> Vec<ConfigProblem> {
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
pub(super) struct Reader<'a> {
    pub(super) vars: &'a HashMap<String, String>,
    pub(super) problems: Vec<ConfigProblem>,
    pub(super) warnings: Vec<String>,
    pub(super) production: bool,
}

impl<'a> Reader<'a> {
    pub(super) fn get(&self, name: &'static str) -> Option<&'a str> {
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

    pub(super) fn problem(&mut self, variable: &'static str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            variable,
            message: message.into(),
        });
    }

    pub(super) fn number<T>(&mut self, name: &'static str, default: T, min: T, max: T) -> T
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
    pub(super) fn networks(&mut self, name: &'static str) -> Vec<ipnet::IpNet> {
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

    pub(super) fn millis(&mut self, name: &'static str, default: u64) -> Duration {
        Duration::from_millis(self.number(name, default, 1, 86_400_000))
    }

    pub(super) fn secret(&mut self, name: &'static str) -> SecretString {
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

    pub(super) fn credentials(
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
                webhook_url: None,
            }),
            _ => None,
        }
    }
}

pub(super) fn generated_secret() -> SecretString {
    let secret: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    SecretString::from(secret)
}
