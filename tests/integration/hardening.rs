//! What an anonymous or careless client can try against a real server:
//! invented methods, slow and idle connections, too many connections,
//! non-JSON bodies, registration floods, long e-mail addresses, many heavy
//! requests of one organization, spoofed proxies; and tokens that outlive
//! their user's role.

use std::time::{Duration, Instant};

use accubooks_core::limits::Work;
use futures::StreamExt;
use http::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::books::{Books, Store};
use crate::support::server::{Host, TestServer, base_vars, set};

on_every_host!(
    invented_methods_do_not_grow_the_metrics,
    slow_header_clients_are_disconnected,
    idle_connections_are_closed,
    connections_over_the_cap_are_refused_with_503,
    bodies_must_be_json,
    requests_are_limited_per_address_and_per_token_but_monitoring_never,
);

on_every_store!(
    text_with_nul_is_refused_and_changes_nothing,
    tokens_follow_their_user,
    two_owners_demoting_each_other_leave_one_owner,
);

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `limit` passes);
/// returns what it sent and how long it took.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < limit {
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => {}
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

async fn metrics_text(server: &TestServer) -> String {
    let response = server.get("/api/monitoring/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// Sends `count` requests with distinct invented 2 KB methods, half to a
/// known path (405), half to an unknown one (404); returns the answers.
async fn invented_methods(server: &TestServer, first: usize, count: usize) -> Vec<String> {
    let mut answers = Vec::new();
    for n in first..first + count {
        let letters = format!("{n:04}").replace(|c: char| c.is_ascii_digit(), "");
        let suffix: String = format!("{n:04}")
            .bytes()
            .map(|d| char::from(b'A' + (d - b'0')))
            .collect();
        let method = format!("{letters}{}{suffix}", "X".repeat(2048));
        let path = if n % 2 == 0 {
            "/api/accounts"
        } else {
            "/api/no-such-thing"
        };
        let mut stream = connect(server).await;
        let request = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        answers.push(answer);
    }
    answers
}

/// The lines of the request series (each label set has one per bucket).
fn request_series(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|line| line.starts_with("accubooks_http_"))
        .count()
}

async fn invented_methods_do_not_grow_the_metrics(host: Host) {
    let server = TestServer::start(host, base_vars()).await;
    let fresh = metrics_text(&server).await.len();
    let mut answers = invented_methods(&server, 0, 40).await;
    let once = request_series(&metrics_text(&server).await);
    answers.extend(invented_methods(&server, 40, 200).await);
    let after = metrics_text(&server).await;
    for answer in &answers {
        let status = answer.get(..12).unwrap_or_default();
        assert!(
            status == "HTTP/1.1 404" || status == "HTTP/1.1 405",
            "{}",
            &answer[..answer.len().min(300)]
        );
        assert!(answer.len() < 2048, "the method is not echoed back");
    }
    // The first invented methods add the OTHER series once; 200 more add
    // nothing but larger counts.
    assert_eq!(request_series(&after), once, "{after}");
    assert!(after.contains("method=\"OTHER\""), "{after}");
    assert!(!after.contains("XXXXXXXXXXXXXXXX"));
    assert!(after.len() < 64 * 1024, "{} bytes", after.len());
    eprintln!(
        "figure: {host:?} /metrics {fresh} bytes fresh, {} after 240 invented 2 KB methods",
        after.len()
    );
}

async fn slow_header_clients_are_disconnected(host: Host) {
    let mut vars = base_vars();
    set(&mut vars, "HEADER_READ_TIMEOUT_MS", "1000");
    let server = TestServer::start(host, vars).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /api/monitoring/live HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    // One header line every 300 ms for up to 8 s, never the blank line.
    let started = Instant::now();
    let mut closed = false;
    for n in 0.. {
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if stream
            .write_all(format!("X-Slow-{n}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut byte = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                let text = String::from_utf8_lossy(&byte[..n]);
                assert!(
                    !text.contains("alive"),
                    "answered a request never finished: {text}"
                );
            }
            Err(_) => {}
        }
    }
    let held = started.elapsed();
    eprintln!("figure: {host:?} a client trickling headers was held {held:?}");
    assert!(closed, "still connected after {held:?}");
    assert!(held < Duration::from_secs(5), "held {held:?}");
}

async fn idle_connections_are_closed(host: Host) {
    let mut vars = base_vars();
    set(&mut vars, "IDLE_TIMEOUT_MS", "1000");
    let server = TestServer::start(host, vars).await;
    // A kept-alive connection after one answer, and one that never speaks.
    let mut used = connect(&server).await;
    used.write_all(b"GET /api/monitoring/live HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut silent = connect(&server).await;
    let (answer, used_for) = read_until_closed(&mut used, Duration::from_secs(8)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (nothing, silent_for) = read_until_closed(&mut silent, Duration::from_secs(8)).await;
    eprintln!(
        "figure: {host:?} idle connections closed after {used_for:?} (kept alive) and {silent_for:?} more (silent)"
    );
    assert!(used_for < Duration::from_secs(5), "{used_for:?}");
    assert!(nothing.is_empty(), "{nothing}");
    assert!(silent_for < Duration::from_secs(5), "{silent_for:?}");
}

async fn connections_over_the_cap_are_refused_with_503(host: Host) {
    let mut vars = base_vars();
    set(&mut vars, "MAX_CONNECTIONS", "3");
    let server = TestServer::start(host, vars).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&server).await;
        // A request on each, so each is surely accepted and counted.
        stream
            .write_all(b"GET /api/monitoring/live HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 1024];
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    let mut fourth = connect(&server).await;
    let (answer, _) = read_until_closed(&mut fourth, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("TOO_MANY_CONNECTIONS"), "{answer}");
    // A freed slot serves the next client.
    held.pop();
    let started = Instant::now();
    loop {
        let response = server
            .client
            .get(format!("{}/api/monitoring/live", server.base))
            .header("connection", "close")
            .send()
            .await;
        if response.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the freed slot was never reused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bodies_must_be_json(host: Host) {
    let (server, _dir) = sqlite_server_on(host, &[]).await;
    let body = r#"{"email":"csrf@example.com","password":"correct horse battery","organization":"Forged"}"#;
    let url = format!("{}/api/auth/register", server.base);
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut request = server.client.post(&url).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["code"], "UNSUPPORTED_MEDIA_TYPE");
    }
    // Nothing was created: the same registration as JSON is the first.
    let response = server
        .client
        .post(&url)
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// An axum server on a fresh SQLite file with `extra` variables.
async fn sqlite_server(extra: &[(&str, &str)]) -> (TestServer, tempfile::TempDir) {
    sqlite_server_on(Host::Axum, extra).await
}

/// A server on `host` on a fresh SQLite file with `extra` variables.
async fn sqlite_server_on(host: Host, extra: &[(&str, &str)]) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = base_vars();
    set(
        &mut vars,
        "DATABASE_URL",
        format!("sqlite://{}/books.db", dir.path().display()),
    );
    for (name, value) in extra {
        set(&mut vars, name, *value);
    }
    let server = TestServer::start(host, vars).await;
    server
        .wait_for_dependency("database", "connected", Duration::from_secs(10))
        .await;
    (server, dir)
}

async fn post_json(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = server
        .client
        .post(format!("{}{path}", server.base))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn registration(n: usize) -> Value {
    json!({
        "email": format!("r{n}-{}@example.com", uuid::Uuid::new_v4().simple()),
        "password": "correct horse battery",
        "organization": "Flood",
    })
}

/// A GET with the client address `client` forwarded by the (trusted) proxy
/// on loopback, and `token` when given.
async fn get_from(
    server: &TestServer,
    client: &str,
    path: &str,
    token: Option<&str>,
) -> StatusCode {
    let mut request = server
        .client
        .get(format!("{}{path}", server.base))
        .header("x-forwarded-for", client);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=6).contains(&wait), "Retry-After {wait}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "RATE_LIMITED");
    }
    status
}

async fn requests_are_limited_per_address_and_per_token_but_monitoring_never(host: Host) {
    let (server, _dir) = sqlite_server_on(
        host,
        &[
            ("RATE_LIMIT_PER_ADDRESS", "30"),
            ("RATE_LIMIT_PER_TOKEN", "10"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    // Readiness waits for the first probe of every dependency (a refused
    // Redis takes ~150 ms); the flood below can be over sooner.
    server.wait_ready().await;
    let response = server
        .client
        .post(format!("{}/api/auth/register", server.base))
        .header("x-forwarded-for", "198.51.100.1")
        .json(&registration(0))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let token = response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The token's budget: ten requests, then 429, from any address.
    for n in 0..10 {
        let status = get_from(&server, "198.51.100.1", "/api/accounts", Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "request {n}");
    }
    let status = get_from(&server, "198.51.100.1", "/api/accounts", Some(&token)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let status = get_from(&server, "198.51.100.9", "/api/accounts", Some(&token)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "a new address");

    // A flood of bad tokens from one address: its thirty, then 429, while
    // the monitoring routes answer it and another client is served.
    let started = Instant::now();
    let flood = (0..300).map(|_| {
        let server = &server;
        async move { get_from(server, "198.51.100.2", "/api/accounts", Some("forged")).await }
    });
    let statuses = futures::stream::iter(flood)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(refused + unauthorized, 300, "{statuses:?}");
    // Thirty at once, and one more every two seconds the flood lasted.
    let refilled = (started.elapsed().as_secs() / 2 + 1) as usize;
    assert!(
        (30..=30 + refilled).contains(&unauthorized),
        "{unauthorized} answered, {refused} refused"
    );
    eprintln!(
        "figure: a flood of 300 bad-token requests from one address (budget 30/min): \
         {unauthorized} answered 401, {refused} refused 429 in {:?}",
        started.elapsed()
    );
    // (Metrics refuse forwarded requests: Prometheus scrapes each instance
    // directly, not through the proxy.)
    for path in [
        "/api/monitoring/live",
        "/api/monitoring/ready",
        "/api/monitoring/health",
    ] {
        for _ in 0..40 {
            assert_eq!(
                get_from(&server, "198.51.100.2", path, None).await,
                StatusCode::OK,
                "{path}"
            );
        }
    }
    assert_eq!(
        get_from(&server, "198.51.100.3", "/api/accounts", None).await,
        StatusCode::UNAUTHORIZED,
        "another client is answered"
    );
    // Without the proxy's word, a client cannot pick its address: the
    // header from an untrusted peer is ignored (see the unit tests), and the
    // trusted peer's own budget is separate from its clients'.
    assert_eq!(
        get_from(&server, "127.0.0.1", "/api/accounts", None).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_limited_per_client_address() {
    let (server, _dir) = sqlite_server(&[("REGISTRATIONS_PER_HOUR", "3")]).await;
    for n in 0..3 {
        let response = post_json(&server, "/api/auth/register", None, registration(n)).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let refused = post_json(&server, "/api/auth/register", None, registration(3)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((60..=1200).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "RATE_LIMITED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashing_is_bounded_and_says_when_busy() {
    let (server, _dir) = sqlite_server(&[("PASSWORD_HASHING_WORKERS", "1")]).await;
    // One worker and four waiting places: forty at once overflow it.
    let attempts = (0..40).map(|n| {
        let (client, url) = (
            server.client.clone(),
            format!("{}/api/auth/register", server.base),
        );
        tokio::spawn(async move { client.post(url).json(&registration(n)).send().await })
    });
    let mut created = 0;
    let mut busy = 0;
    for attempt in futures::future::join_all(attempts).await {
        let response = attempt.unwrap().unwrap();
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()["retry-after"], "1");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["code"], "SERVER_BUSY");
                busy += 1;
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    eprintln!(
        "figure: 40 concurrent registrations on one hashing worker: {created} created, {busy} told to retry"
    );
    assert!(created >= 1 && busy >= 1, "{created} created, {busy} busy");
    // Once the burst is over, registering works again.
    let response = post_json(&server, "/api/auth/register", None, registration(99)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_emails_never_reach_the_login_limiter() {
    let (server, _dir) = sqlite_server(&[]).await;
    for n in 0..30 {
        let email = format!("{n}{}@example.com", "a".repeat(10_000));
        let response = post_json(
            &server,
            "/api/auth/login",
            None,
            json!({"email": email, "password": "whatever it is"}),
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response.json::<Value>().await.unwrap()["code"],
            "INVALID_EMAIL"
        );
    }
    assert_eq!(server.app.auth_limits().login_keys(), 0);
    // Well-formed unknown addresses spend the client's budget first: ten
    // attempts, then 429, and no key for the refused one.
    for n in 0..11 {
        let response = post_json(
            &server,
            "/api/auth/login",
            None,
            json!({"email": format!("nobody{n}@example.com"), "password": "whatever it is"}),
        )
        .await;
        let expected = if n < 10 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(response.status(), expected, "attempt {n}");
    }
    // One key for the address; the ten failures each add their pair and
    // their e-mail; the refused attempt added none.
    assert_eq!(server.app.auth_limits().login.len(), 1);
    assert_eq!(server.app.auth_limits().login_keys(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_work_of_one_organization_is_bounded() {
    let (server, _dir) = sqlite_server(&[
        ("EXPORTS_PER_ORGANIZATION", "1"),
        ("EXPORTS_MAX", "2"),
        ("LARGE_BATCH_ENTRIES", "2"),
        ("LARGE_BATCHES_PER_ORGANIZATION", "1"),
    ])
    .await;
    let token = |response: Value| response["token"].as_str().unwrap().to_owned();
    let org = |response: &Value| response["organization_id"].as_str().unwrap().to_owned();
    let a = post_json(&server, "/api/auth/register", None, registration(1))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let b = post_json(&server, "/api/auth/register", None, registration(2))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let (a_org, a_token, b_token) = (org(&a), token(a.clone()), token(b));
    let export = "/api/export/ledger?format=hledger";
    let first = server.get_as(export, &a_token).await;
    assert_eq!(first.status(), StatusCode::OK);
    // The export holds its slot until its stream has ended: read it to the
    // end, then take the slot once the server has let it go.
    first.text().await.unwrap();
    let started = std::time::Instant::now();
    let running = loop {
        match server.app.work_limits().acquire(Work::Export, &a_org) {
            Ok(slot) => break slot,
            Err(busy) => {
                assert!(started.elapsed() < Duration::from_secs(5), "{busy:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    // While one export of A runs, A's next is refused; B's is not.
    let refused = server.get_as(export, &a_token).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "5");
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "TOO_MANY_CONCURRENT"
    );
    assert_eq!(
        server.get_as(export, &b_token).await.status(),
        StatusCode::OK
    );
    drop(running);
    assert_eq!(
        server.get_as(export, &a_token).await.status(),
        StatusCode::OK
    );

    let entry = json!({"date": "2026-01-31", "lines": [
        {"account": "1000", "debit": "1.00"}, {"account": "4000", "credit": "1.00"}]});
    let batch = |n: usize| json!({"entries": vec![entry.clone(); n]});
    let running = server
        .app
        .work_limits()
        .acquire(Work::LargeBatch, &a_org)
        .unwrap();
    let path = "/api/journal-entries/batch";
    let large = post_json(&server, path, Some(&a_token), batch(3)).await;
    assert_eq!(large.status(), StatusCode::TOO_MANY_REQUESTS);
    let small = post_json(&server, path, Some(&a_token), batch(2)).await;
    assert_eq!(small.status(), StatusCode::CREATED);
    drop(running);
    let large = post_json(&server, path, Some(&a_token), batch(3)).await;
    assert_eq!(large.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_refuse_requests_that_came_through_a_proxy() {
    let server = TestServer::start(Host::Axum, base_vars()).await;
    let metrics = format!("{}/api/monitoring/metrics", server.base);
    assert_eq!(
        server.get("/api/monitoring/metrics").await.status(),
        StatusCode::OK
    );
    for (name, value) in [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9;proto=https"),
    ] {
        let response = server
            .client
            .get(&metrics)
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}");
    }
}

async fn user_call(
    books: &Books,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    books.call(method, path, Some(token), body).await
}

async fn add_user(books: &Books, owner: &str, email: &str, role: &str) -> String {
    let (status, body) = user_call(
        books,
        "POST",
        "/api/users",
        owner,
        Some(json!({"email": email, "password": "correct horse battery", "role": role})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["role"], role);
    body["id"].as_str().unwrap().to_owned()
}

async fn put_role(books: &Books, token: &str, id: &str, role: &str) -> (StatusCode, Value) {
    let path = format!("/api/users/{id}");
    user_call(books, "PUT", &path, token, Some(json!({"role": role}))).await
}

async fn tokens_follow_their_user(store: Store) {
    let books = Books::start(store).await;
    let owner = books.register("owner@follow.test", "USD").await;
    let accountant_id = add_user(&books, &owner, "acct@follow.test", "accountant").await;
    let accountant = books.login("acct@follow.test").await;
    let entry = json!({"date": "2026-01-31", "lines": [
        {"account": "1000", "debit": "1.00"}, {"account": "4000", "credit": "1.00"}]});
    let post = |token: String| {
        let (books, entry) = (&books, entry.clone());
        async move {
            user_call(books, "POST", "/api/journal-entries", &token, Some(entry))
                .await
                .0
        }
    };
    assert_eq!(post(accountant.clone()).await, StatusCode::CREATED);

    // Demoted: the same token now reads but cannot write.
    let (status, body) = put_role(&books, &owner, &accountant_id, "viewer").await;
    assert_eq!(
        (status, body["role"].as_str()),
        (StatusCode::OK, Some("viewer"))
    );
    assert_eq!(post(accountant.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(
        user_call(&books, "GET", "/api/accounts", &accountant, None)
            .await
            .0,
        StatusCode::OK
    );

    let (status, users) = user_call(&books, "GET", "/api/users", &owner, None).await;
    assert_eq!(status, StatusCode::OK);
    let roles: Vec<_> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["email"].as_str().unwrap(), u["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            ("acct@follow.test", "viewer"),
            ("owner@follow.test", "owner")
        ]
    );
    assert_eq!(
        user_call(&books, "GET", "/api/users", &accountant, None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // The last owner can be neither demoted nor removed.
    let owner_id = users[1]["id"].as_str().unwrap().to_owned();
    for (method, body) in [
        ("PUT", Some(json!({"role": "accountant"}))),
        ("DELETE", None),
    ] {
        let (status, answer) = user_call(
            &books,
            method,
            &format!("/api/users/{owner_id}"),
            &owner,
            body,
        )
        .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::CONFLICT, Some("LAST_OWNER"))
        );
    }

    // A second owner demotes the first: the first's token loses its powers.
    let second_id = add_user(&books, &owner, "second@follow.test", "owner").await;
    let second = books.login("second@follow.test").await;
    let (status, _) = put_role(&books, &second, &owner_id, "viewer").await;
    assert_eq!(status, StatusCode::OK);
    for (method, path, body) in [
        (
            "PUT",
            "/api/settings",
            Some(json!({"tax_rounding": "document"})),
        ),
        (
            "POST",
            "/api/users",
            Some(
                json!({"email": "coup@follow.test", "password": "correct horse battery", "role": "owner"}),
            ),
        ),
    ] {
        assert_eq!(
            user_call(&books, method, path, &owner, body).await.0,
            StatusCode::FORBIDDEN,
            "{method} {path}"
        );
    }

    // Removed (204, as the OpenAPI document says): the token is refused
    // outright; the id is gone.
    let (_, document) = books.call("GET", "/api/openapi.json", None, None).await;
    let removal = &document["paths"]["/api/users/{id}"]["delete"]["responses"];
    assert!(removal["204"].is_object(), "{removal}");
    let (status, _) = user_call(
        &books,
        "DELETE",
        &format!("/api/users/{accountant_id}"),
        &second,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = user_call(&books, "GET", "/api/accounts", &accountant, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED"))
    );
    assert_eq!(
        user_call(
            &books,
            "DELETE",
            &format!("/api/users/{accountant_id}"),
            &second,
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    // Another organization's owner cannot touch these users.
    let stranger = books.register("stranger@other.test", "USD").await;
    let (status, _) = put_role(&books, &stranger, &second_id, "viewer").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        user_call(&books, "GET", "/api/users", &second, None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn two_owners_demoting_each_other_leave_one_owner(store: Store) {
    let books = Books::start(store).await;
    for round in 0..5 {
        let first = books
            .register(&format!("first{round}@race.test"), "USD")
            .await;
        let second_id =
            add_user(&books, &first, &format!("second{round}@race.test"), "owner").await;
        let second = books.login(&format!("second{round}@race.test")).await;
        let (_, users) = user_call(&books, "GET", "/api/users", &first, None).await;
        let first_id = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] != second_id.as_str())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let demote = |token: String, id: String| {
            let books = &books;
            async move { put_role(books, &token, &id, "viewer").await.0 }
        };
        let (a, b) = tokio::join!(
            demote(first.clone(), second_id.clone()),
            demote(second.clone(), first_id.clone())
        );
        let statuses = [a, b];
        assert!(
            statuses.contains(&StatusCode::OK),
            "one of them wins: {statuses:?}"
        );
        let (_, users) = user_call(
            &books,
            "GET",
            "/api/users",
            if a == StatusCode::OK { &first } else { &second },
            None,
        )
        .await;
        let owners = users
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["role"] == "owner")
            .count();
        assert_eq!(owners, 1, "round {round}: {statuses:?} {users}");
    }
}

async fn text_with_nul_is_refused_and_changes_nothing(store: Store) {
    let books = Books::start(store).await;
    let owner = books.register("nul@text.test", "USD").await;
    let before = books.trial_balance(&owner, "2026-12-31").await;
    let line = |code: &str| json!([{"account": code, "debit": "1.00"}, {"account": "4000", "credit": "1.00"}]);
    let cases = [
        (
            "/api/journal-entries",
            json!({"date": "2026-01-31", "lines": line("10\u{0}00")}),
        ),
        (
            "/api/journal-entries",
            json!({"date": "2026-01-31", "memo": "a\u{0}b", "lines": line("1000")}),
        ),
        (
            "/api/journal-entries/batch",
            json!({"entries": [{"date": "2026-01-31", "lines": line("1000\u{0}")}]}),
        ),
        (
            "/api/accounts",
            json!({"code": "7\u{0}", "name": "Nul", "type": "asset", "currency": "USD"}),
        ),
        ("/api/customers", json!({"name": "Nul\u{0} Ltd"})),
    ];
    for (path, body) in cases {
        let (status, answer) = books.call("POST", path, Some(&owner), Some(body)).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("INVALID_TEXT")),
            "{path}: {answer}"
        );
    }
    let (status, _) = books
        .call(
            "GET",
            "/api/reports/trial-balance?as_of=2026%0012-31",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(books.trial_balance(&owner, "2026-12-31").await, before);
    let (_, customers) = books
        .call("GET", "/api/customers", Some(&owner), None)
        .await;
    assert_eq!(customers, json!([]));
}
