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
    assert!(matches!(&config.database_url, DatabaseUrl::Sqlite(u) if u == "sqlite://accubooks.db"));
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
fn private_webhook_addresses_are_allowed_only_when_asked() {
    assert!(!load(&[]).unwrap().webhook_allow_private);
    assert!(
        load(&[("WEBHOOK_ALLOW_PRIVATE", "1")])
            .unwrap()
            .webhook_allow_private
    );
    assert!(
        !load(&[("WEBHOOK_ALLOW_PRIVATE", "0")])
            .unwrap()
            .webhook_allow_private
    );
    let err = load(&[("WEBHOOK_ALLOW_PRIVATE", "yes")]).unwrap_err();
    assert_eq!(err.problems[0].variable, "WEBHOOK_ALLOW_PRIVATE");
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

#[test]
fn redis_is_used_when_it_carries_the_jobs_or_is_configured() {
    let config = |pairs: &[(&str, &str)]| {
        Config::from_vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .unwrap()
    };
    let embedded = config(&[("DATABASE_URL", "sqlite://books.db")]);
    assert_eq!(embedded.jobs.transport, JobTransport::Database);
    assert!(
        !embedded.uses_redis(),
        "the embedded default needs no Redis"
    );
    let with_host = config(&[
        ("DATABASE_URL", "sqlite://books.db"),
        ("REDIS_HOST", "cache"),
    ]);
    assert!(with_host.uses_redis());
    let database_jobs = config(&[
        ("DATABASE_URL", "sqlite://books.db"),
        ("JOB_TRANSPORT", "database"),
        ("REDIS_URL", "redis://cache:6379"),
    ]);
    assert!(
        database_jobs.uses_redis(),
        "a Redis variable set means Redis is wanted"
    );
    let postgres = config(&[("DATABASE_URL", "postgres://app@db/books")]);
    assert_eq!(postgres.jobs.transport, JobTransport::Redis);
    assert!(
        postgres.uses_redis(),
        "the redis transport at the default localhost:6379"
    );
}

#[test]
fn jobs_take_their_connections_out_of_the_pool() {
    // The default: a quarter of DB_POOL_MAX, at least 2, leaving requests one.
    for (max, jobs) in [("20", 5), ("40", 10), ("6", 2), ("2", 1), ("1", 0)] {
        let config = load(&[("DB_POOL_MAX", max), ("DB_POOL_MIN", "1")]).unwrap();
        assert_eq!(config.pool.jobs, jobs, "DB_POOL_MAX={max}");
    }
    let config = load(&[]).unwrap();
    assert_eq!(config.pool.shares(), ((2, 15), Some((0, 5))));
    let config = load(&[
        ("DB_POOL_MAX", "8"),
        ("DB_POOL_MIN", "8"),
        ("DB_POOL_JOBS", "3"),
    ])
    .unwrap();
    assert_eq!(
        config.pool.shares(),
        ((5, 5), Some((3, 3))),
        "the minimum is split too"
    );
    let config = load(&[("DB_POOL_JOBS", "0")]).unwrap();
    assert_eq!(
        config.pool.shares(),
        ((2, 20), None),
        "0: one pool, as before"
    );

    for bad in ["20", "25", "-1", "many"] {
        let err = load(&[("DB_POOL_JOBS", bad)]).unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.variable).collect();
        assert_eq!(names, ["DB_POOL_JOBS"], "DB_POOL_JOBS={bad}");
    }
    let err = load(&[("DB_POOL_JOBS", "4"), ("DB_POOL_MAX", "4")]).unwrap_err();
    assert!(
        err.problems[0]
            .message
            .contains("smaller than DB_POOL_MAX (4)"),
        "{err}"
    );
}
