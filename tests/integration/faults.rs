//! Fault tests: real PostgreSQL and Redis killed, paused and restarted under
//! a running server. Figures are printed (`figure:` lines, see
//! `--nocapture`); assertions are about behaviour, with generous bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use accubooks_core::identity::Role;
use http::StatusCode;
use serde_json::{Value, json};

use crate::support::server::{Host, TestServer, base_vars, median, set};
use crate::support::services::{Postgres, Redis};

async fn server_on(host: Host, pg: &Postgres, extra: &[(&str, &str)]) -> TestServer {
    let mut vars = base_vars();
    set(&mut vars, "DATABASE_URL", pg.url());
    for (name, value) in extra {
        set(&mut vars, name, *value);
    }
    TestServer::start(host, vars).await
}

/// Polls `/api/accounts` until it answers `status`; returns the wait.
async fn until_accounts(
    server: &TestServer,
    token: &str,
    status: StatusCode,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if server.get_as("/api/accounts", token).await.status() == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "/api/accounts never answered {status} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_everything_down_and_recovers_when_the_database_appears() {
    let mut pg = Postgres::start().await;
    pg.kill();
    let mut redis = Redis::start().await;
    redis.kill();
    let mut vars = base_vars();
    set(&mut vars, "DATABASE_URL", pg.url());
    set(&mut vars, "REDIS_URL", redis.url());
    let server = TestServer::start(Host::Axum, vars).await;
    assert_eq!(
        server.get("/api/monitoring/live").await.status(),
        StatusCode::OK
    );
    server.wait_ready().await;
    let health = server.get("/api/monitoring/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "degraded");
    let token = server.token_of_nobody(Role::Viewer);
    assert_eq!(
        server.get_as("/api/accounts", &token).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    pg.restart().await;
    // Served again: the books were asked, and know no such user.
    let recovered = until_accounts(
        &server,
        &token,
        StatusCode::UNAUTHORIZED,
        Duration::from_secs(10),
    )
    .await;
    eprintln!("figure: database appeared after startup; routes served again after {recovered:?}");
    let user = server.user_token(Role::Viewer).await;
    assert_eq!(
        server.get_as("/api/accounts", &user).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        server.health().await["dependencies"]["database"]["initialized"],
        true
    );

    redis.restart().await;
    let redis_back = server
        .wait_for_dependency("redis", "connected", Duration::from_secs(10))
        .await;
    eprintln!("figure: redis appeared after startup; connected after {redis_back:?}");
    server
        .wait_for_dependency("jobQueues", "healthy", Duration::from_secs(10))
        .await;
    assert_eq!(server.health().await["status"], "healthy");
}

/// One answer seen by a load client, timed from the start of the test.
#[derive(Debug)]
struct Answer {
    sent: Duration,
    answered: Duration,
    status: StatusCode,
}

/// Starts `count` clients that each repeat `request(n)` (n: the client's
/// number) until `stop`, and answer what they saw, timed from `started`.
fn load_clients<F, Fut>(
    count: usize,
    started: Instant,
    stop: &Arc<AtomicBool>,
    request: F,
) -> Vec<tokio::task::JoinHandle<Vec<Answer>>>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = StatusCode> + Send,
{
    (0..count)
        .map(|n| {
            let (request, stop) = (request.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent = started.elapsed();
                    let status = request(n).await;
                    seen.push(Answer {
                        sent,
                        answered: started.elapsed(),
                        status,
                    });
                }
                seen
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_dies_under_load_then_returns_without_a_restart() {
    let mut pg = Postgres::start().await;
    let server = Arc::new(server_on(Host::Axum, &pg, &[]).await);
    server
        .wait_for_dependency("database", "connected", Duration::from_secs(10))
        .await;
    let token = Arc::new(server.user_token(Role::Viewer).await);
    let server_for_clients = server.clone();

    // Four clients hammer a database route for the whole test and record
    // when each request was sent, when it was answered, and the status.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let clients = load_clients(4, started, &stop, move |_| {
        let (server, token) = (server_for_clients.clone(), token.clone());
        async move { server.get_as("/api/accounts", &token).await.status() }
    });

    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = started.elapsed();
    pg.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        server.get("/api/monitoring/live").await.status(),
        StatusCode::OK
    );
    // PostgreSQL accepts connections a little before `restart` returns, so the
    // outage window ends when the restart begins, and recovery is timed from
    // when it accepts connections.
    let restart_began = started.elapsed();
    pg.restart().await;
    let restarted_at = started.elapsed();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for client in clients {
        seen.extend(client.await.unwrap());
    }
    seen.sort_by_key(|answer| answer.answered);

    let unexpected: Vec<_> = seen
        .iter()
        .filter(|a| a.status != StatusCode::OK && a.status != StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        unexpected.is_empty(),
        "only 200 and 503 are acceptable: {unexpected:?}"
    );
    let timeline = || {
        seen.iter()
            .filter(|a| a.answered + Duration::from_millis(100) >= killed_at)
            .take(40)
            .map(|a| format!("{:?}..{:?} {}", a.sent, a.answered, a.status.as_u16()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let first_503 = seen
        .iter()
        .find(|a| a.sent >= killed_at && a.status == StatusCode::SERVICE_UNAVAILABLE)
        .unwrap_or_else(|| panic!("the outage was not noticed:\n{}", timeline()))
        .answered;
    assert!(
        first_503 < restart_began,
        "the outage was noticed only after PostgreSQL was back:\n{}",
        timeline()
    );
    let first_200_after = seen
        .iter()
        .find(|a| a.answered >= restarted_at && a.status == StatusCode::OK)
        .expect("the database came back without a restart")
        .answered;
    // Once the outage is known, every request sent before PostgreSQL is back
    // is refused at once.
    let during: Vec<_> = seen
        .iter()
        .filter(|a| a.sent > first_503 && a.answered < restart_began)
        .collect();
    let served: Vec<_> = during
        .iter()
        .filter(|a| a.status != StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    // (On a starved machine the first 503 may come late in the window, so
    // `during` may be short or even empty; the figure below shows its size.)
    assert!(
        served.is_empty(),
        "requests sent during the known outage must all be 503, of {} these were not: {served:?}\n{}",
        during.len(),
        timeline()
    );
    eprintln!(
        "figure: database killed under load: first 503 after {:?}, {} answers during the outage, served again {:?} after restart",
        first_503 - killed_at,
        during.len(),
        first_200_after.saturating_sub(restarted_at)
    );
    let health = server.health().await;
    assert_eq!(health["dependencies"]["database"]["status"], "connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_database_death_is_noticed_by_the_monitor() {
    let mut pg = Postgres::start().await;
    let server = server_on(Host::Warp, &pg, &[]).await;
    server
        .wait_for_dependency("database", "connected", Duration::from_secs(10))
        .await;
    pg.kill();
    let noticed = server
        .wait_for_dependency("database", "unavailable", Duration::from_secs(5))
        .await;
    pg.restart().await;
    let back = server
        .wait_for_dependency("database", "connected", Duration::from_secs(5))
        .await;
    eprintln!(
        "figure: idle server noticed the database die after {noticed:?} and return after {back:?}"
    );
    let health = server.health().await;
    assert!(health["dependencies"]["database"]["last_failure"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_database_bounds_requests_and_turns_health_unavailable() {
    let pg = Postgres::start().await;
    let server = server_on(
        Host::Axum,
        &pg,
        &[
            ("DB_STATEMENT_TIMEOUT_MS", "800"),
            ("DB_CONNECT_TIMEOUT_MS", "800"),
            ("REQUEST_TIMEOUT_MS", "3000"),
        ],
    )
    .await;
    server
        .wait_for_dependency("database", "connected", Duration::from_secs(10))
        .await;
    let token = server.user_token(Role::Viewer).await;
    assert_eq!(
        server.get_as("/api/accounts", &token).await.status(),
        StatusCode::OK
    );

    pg.pause();
    let mut answers = Vec::new();
    for _ in 0..4 {
        let started = Instant::now();
        let status = server.get_as("/api/accounts", &token).await.status();
        answers.push((started.elapsed(), status));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "bounded by the timeouts: {answers:?}"
        );
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answers:?}");
    }
    let noticed = server
        .wait_for_dependency("database", "unavailable", Duration::from_secs(10))
        .await;
    assert_eq!(
        server.get("/api/monitoring/live").await.status(),
        StatusCode::OK
    );
    eprintln!(
        "figure: hung database: answers {answers:?}; health unavailable {noticed:?} after those"
    );

    pg.resume();
    let back = until_accounts(&server, &token, StatusCode::OK, Duration::from_secs(10)).await;
    eprintln!("figure: hung database resumed; served again after {back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dies_and_returns_and_the_connection_heals_itself() {
    let mut redis = Redis::start().await;
    let mut vars = base_vars();
    set(&mut vars, "REDIS_URL", redis.url());
    let server = TestServer::start(Host::Warp, vars).await;
    server
        .wait_for_dependency("redis", "connected", Duration::from_secs(5))
        .await;
    redis.kill();
    let noticed = server
        .wait_for_dependency("redis", "unavailable", Duration::from_secs(5))
        .await;
    assert_eq!(
        server.health().await["dependencies"]["jobQueues"]["status"],
        "degraded"
    );
    // The rest of the API is unaffected.
    assert_eq!(
        server.get("/api/monitoring/live").await.status(),
        StatusCode::OK
    );
    redis.restart().await;
    let back = server
        .wait_for_dependency("redis", "connected", Duration::from_secs(5))
        .await;
    eprintln!(
        "figure: redis killed: noticed after {noticed:?}; reconnected {back:?} after restart"
    );
    // The same connection manager works again: a real command goes through.
    let mut connection = server.app.redis().connection();
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_during_an_outage_costs_no_wait() {
    let server = TestServer::start(Host::Axum, base_vars()).await;
    server
        .wait_for_dependency("database", "unavailable", Duration::from_secs(5))
        .await;
    let token = server.token_of_nobody(Role::Viewer);
    let time = |path: &'static str| {
        let (server, token) = (&server, token.clone());
        async move {
            let mut samples = Vec::new();
            for _ in 0..200 {
                let started = Instant::now();
                let status = server.get_as(path, &token).await.status();
                samples.push(started.elapsed());
                assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
            }
            median(samples)
        }
    };
    let outage = time("/api/accounts").await;
    let live = time("/api/monitoring/live").await;
    eprintln!("figure: median latency over loopback: 503 during outage {outage:?}, /live {live:?}");
    // The 503 does no more work than /live; allow for noise, not for a wait
    // on a pool or a connect timeout (which would be 2 s here).
    assert!(
        outage < live * 10 + Duration::from_millis(20),
        "{outage:?} vs {live:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_and_plaid_outages_are_seen_and_healed() {
    use crate::support::saas::{FakeSaas, PLAID_CLIENT, STRIPE_KEY};
    let mut saas = FakeSaas::start().await;
    let mut vars = base_vars();
    set(&mut vars, "STRIPE_SECRET_KEY", STRIPE_KEY);
    set(&mut vars, "STRIPE_WEBHOOK_SECRET", "whsec_s3cr3t_fake");
    set(&mut vars, "STRIPE_API_BASE", saas.base());
    set(&mut vars, "PLAID_CLIENT_ID", PLAID_CLIENT.0);
    set(&mut vars, "PLAID_SECRET", PLAID_CLIENT.1);
    set(&mut vars, "PLAID_API_BASE", saas.base());
    // Idle, nothing calls the providers: only probes can see an outage, and
    // by default they come every 30 s (the providers' rate limits). Probed
    // every second here; `bank::probes_stay_within_the_providers_limits`
    // holds the default's rate.
    set(&mut vars, "PROVIDER_PROBE_INTERVAL_MS", "1000");
    let server = TestServer::start(Host::Axum, vars).await;
    server
        .wait_for_dependency("stripe", "connected", Duration::from_secs(5))
        .await;
    server
        .wait_for_dependency("plaid", "connected", Duration::from_secs(5))
        .await;

    saas.stop();
    let noticed = server
        .wait_for_dependency("stripe", "unavailable", Duration::from_secs(5))
        .await;
    server
        .wait_for_dependency("plaid", "unavailable", Duration::from_secs(5))
        .await;
    let health = server.health().await;
    assert_eq!(
        health["dependencies"]["stripe"]["error"]["code"],
        "CONNECTION_REFUSED"
    );
    assert!(
        !health.to_string().contains(STRIPE_KEY) && !health.to_string().contains(PLAID_CLIENT.1)
    );
    saas.restart().await;
    let back = server
        .wait_for_dependency("stripe", "connected", Duration::from_secs(5))
        .await;
    server
        .wait_for_dependency("plaid", "connected", Duration::from_secs(5))
        .await;
    eprintln!(
        "figure: fake Stripe stopped: unavailable after {noticed:?}; connected {back:?} after restart"
    );

    // A revoked key is a permanent fault, not an outage that will pass.
    let mut vars = base_vars();
    set(&mut vars, "STRIPE_SECRET_KEY", "sk_test_s3cr3t_revoked");
    set(&mut vars, "STRIPE_WEBHOOK_SECRET", "whsec_s3cr3t_fake");
    set(&mut vars, "STRIPE_API_BASE", saas.base());
    let revoked = TestServer::start(Host::Warp, vars).await;
    revoked
        .wait_for_dependency("stripe", "unavailable", Duration::from_secs(5))
        .await;
    let health = revoked.health().await;
    assert_eq!(
        health["dependencies"]["stripe"]["error"],
        json!({"code": "AUTHENTICATION_FAILED", "kind": "permanent"})
    );
    assert_eq!(health["dependencies"]["plaid"]["status"], "disabled");
}

/// Requests already waiting for a pooled connection when PostgreSQL dies are
/// answered 503 as soon as the outage is known, not after their own
/// `DB_CONNECT_TIMEOUT_MS` (here 8 s): reads and postings, on both hosts.
async fn waiters_are_answered_when_the_outage_is_known(host: Host) {
    let mut pg = Postgres::start().await;
    let server = Arc::new(
        server_on(
            host,
            &pg,
            &[
                ("DB_POOL_MAX", "1"),
                ("DB_POOL_MIN", "1"),
                ("DB_CONNECT_TIMEOUT_MS", "8000"),
                ("REQUEST_TIMEOUT_MS", "20000"),
            ],
        )
        .await,
    );
    server
        .wait_for_dependency("database", "connected", Duration::from_secs(10))
        .await;
    let token = Arc::new(server.user_token(Role::Accountant).await);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    // Sixteen clients on one pooled connection: at any moment most of them
    // wait for it.
    let (for_clients, token_for_clients) = (server.clone(), token.clone());
    let clients = load_clients(16, started, &stop, move |n| {
        let (server, token) = (for_clients.clone(), token_for_clients.clone());
        async move {
            let request = if n % 2 == 0 {
                server.client.get(format!("{}/api/accounts", server.base))
            } else {
                server
                    .client
                    .post(format!("{}/api/journal-entries", server.base))
                    .json(&json!({"date": "2026-01-31", "lines": [
                        {"account": "1000", "debit": "1.00"},
                        {"account": "4000", "credit": "1.00"}]}))
            };
            match request.bearer_auth(token.as_str()).send().await {
                Ok(response) => response.status(),
                Err(_) => StatusCode::BAD_GATEWAY,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = started.elapsed();
    pg.kill();
    server
        .wait_for_dependency("database", "unavailable", Duration::from_secs(10))
        .await;
    let known_at = started.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for client in clients {
        seen.extend(client.await.unwrap());
    }
    let unexpected: Vec<_> = seen
        .iter()
        .filter(|a| !matches!(a.status.as_u16(), 200 | 201 | 503))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    // Every request in flight at the kill was answered soon after the
    // outage was known.
    let last_in_flight = seen
        .iter()
        .filter(|a| a.sent <= killed_at)
        .map(|a| a.answered)
        .max()
        .unwrap();
    eprintln!(
        "figure: {host:?} killed at {killed_at:?}, known down at {known_at:?}, last request in flight answered at {last_in_flight:?}"
    );
    assert!(
        last_in_flight < known_at + Duration::from_secs(2),
        "answered at {last_in_flight:?}, outage known at {known_at:?}"
    );
    assert!(
        seen.iter()
            .any(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_answered_when_the_outage_is_known_on_axum() {
    waiters_are_answered_when_the_outage_is_known(Host::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_answered_when_the_outage_is_known_on_warp() {
    waiters_are_answered_when_the_outage_is_known(Host::Warp).await;
}
