//! The contract suite of `../shared/CONTRACT.md`, written once and run on
//! every host. A case takes the host and starts its own server.

use std::process::Command;
use std::time::{Duration, Instant};

use accubooks_core::identity::Role;
use http::StatusCode;
use serde_json::{Value, json};

use crate::support::server::{Host, TestServer, base_vars, median, set};
use crate::support::services::{Postgres, Redis};

on_every_host!(
    live_answers_alive,
    ready_turns_ready_then_draining,
    health_is_degraded_and_discreet_with_everything_down,
    health_is_healthy_with_real_dependencies,
    metrics_expose_the_contract_series_and_pass_promtool,
    metrics_token_is_required_when_set,
    request_ids_are_echoed,
    database_routes_answer_503_at_once_during_an_outage,
    unknown_paths_and_methods_are_json_errors,
    oversized_bodies_are_refused_with_413,
    panics_are_answered_500_and_the_server_goes_on,
    slow_requests_time_out_and_are_counted,
    tokens_are_checked,
    openapi_documents_every_route,
    browsers_of_the_frontend_origin_and_only_them_may_call,
    every_answer_carries_the_security_headers,
);

async fn live_answers_alive(host: Host) {
    let server = TestServer::start(host, base_vars()).await;
    let response = server.get("/api/monitoring/live").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "alive"})
    );
}

async fn ready_turns_ready_then_draining(host: Host) {
    let mut vars = base_vars();
    // A first probe that cannot finish (a paused PostgreSQL) is cut short
    // by DB_INIT_TIMEOUT_MS: readiness never waits longer.
    set(&mut vars, "DB_INIT_TIMEOUT_MS", "300");
    // Mounted in a host that keeps serving: its own `serve` would stop
    // accepting once the drain begins (the process tests cover that).
    let server = TestServer::start_mounted(host, vars).await;
    let first = server.get("/api/monitoring/ready").await;
    if first.status() == StatusCode::SERVICE_UNAVAILABLE {
        assert_eq!(
            first.json::<Value>().await.unwrap(),
            json!({"status": "starting"})
        );
    }
    server.wait_ready().await;
    let ready = server.get("/api/monitoring/ready").await;
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"status": "ready"})
    );

    server.app.begin_drain();
    let draining = server.get("/api/monitoring/ready").await;
    assert_eq!(draining.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        draining.json::<Value>().await.unwrap(),
        json!({"status": "draining"})
    );
    let health = server.get("/api/monitoring/health").await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "unhealthy");
}

async fn health_is_degraded_and_discreet_with_everything_down(host: Host) {
    let mut vars = base_vars();
    set(
        &mut vars,
        "STRIPE_SECRET_KEY",
        "sk_test_s3cr3t_never_shown_1234",
    );
    set(
        &mut vars,
        "STRIPE_WEBHOOK_SECRET",
        "whsec_s3cr3t_never_shown_5678",
    );
    set(
        &mut vars,
        "STRIPE_API_BASE",
        format!("http://127.0.0.1:{}", crate::support::services::free_port()),
    );
    let server = TestServer::start(host, vars).await;
    server
        .wait_for_dependency("database", "unavailable", Duration::from_secs(5))
        .await;
    server
        .wait_for_dependency("redis", "unavailable", Duration::from_secs(5))
        .await;
    server
        .wait_for_dependency("stripe", "unavailable", Duration::from_secs(5))
        .await;
    let response = server.get("/api/monitoring/health").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "degraded still answers 200"
    );
    let text = response.text().await.unwrap();
    for secret in [
        "127.0.0.1",
        "postgres://",
        "sk_test_s3cr3t_never_shown",
        "whsec_s3cr3t_never_shown",
        "refused (os error",
    ] {
        assert!(
            !text.contains(secret),
            "health must not show {secret:?}: {text}"
        );
    }
    let health: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["service"], "accubooks");
    assert_eq!(health["environment"], "test");
    assert!(health["version"].is_string() && health["uptime"].is_u64());
    assert!(health["timestamp"].as_str().unwrap().ends_with('Z'));
    let database = &health["dependencies"]["database"];
    assert_eq!(database["status"], "unavailable");
    assert_eq!(database["initialized"], false);
    assert_eq!(
        database["error"],
        json!({"code": "CONNECTION_REFUSED", "kind": "temporary"})
    );
    assert!(
        database["affected_routes"]
            .as_array()
            .unwrap()
            .contains(&json!("GET /api/accounts"))
    );
    assert!(database["consecutive_failures"].as_u64().unwrap() >= 1);
    assert_eq!(health["dependencies"]["jobQueues"]["status"], "degraded");
    assert_eq!(
        health["dependencies"]["jobQueues"]["queues"]["recurring-invoices"],
        false
    );
    assert_eq!(health["dependencies"]["stripe"]["status"], "unavailable");
    assert_eq!(
        health["dependencies"]["plaid"],
        json!({"status": "disabled", "initialized": false})
    );
    assert_eq!(health["resources"]["memory"]["unit"], "MB");
    assert!(health["resources"]["memory"]["total"].as_u64().unwrap() > 0);
    assert!(health["resources"]["cpu"]["usage_percent"].is_number());
}

async fn health_is_healthy_with_real_dependencies(host: Host) {
    let (pg, redis) = tokio::join!(Postgres::start(), Redis::start());
    let mut vars = base_vars();
    set(&mut vars, "DATABASE_URL", pg.url());
    set(&mut vars, "REDIS_URL", redis.url());
    let server = TestServer::start(host, vars).await;
    server
        .wait_for_dependency("database", "connected", Duration::from_secs(10))
        .await;
    server
        .wait_for_dependency("redis", "connected", Duration::from_secs(10))
        .await;
    // The job workers are running and the first count of the queues is in.
    server
        .wait_for_dependency("jobQueues", "healthy", Duration::from_secs(10))
        .await;
    let health = server.health().await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["dependencies"]["database"]["initialized"], true);
    assert!(health["dependencies"]["database"]["last_success"].is_string());
    assert_eq!(health["dependencies"]["jobQueues"]["status"], "healthy");
    let accounts = server
        .get_as("/api/accounts", &server.user_token(Role::Viewer).await)
        .await;
    assert_eq!(accounts.status(), StatusCode::OK);
    // The user's organization, with its default chart.
    let accounts: Value = accounts.json().await.unwrap();
    assert_eq!(accounts.as_array().map(Vec::len), Some(9), "{accounts}");
}

async fn metrics_expose_the_contract_series_and_pass_promtool(host: Host) {
    let server = TestServer::start(host, base_vars()).await;
    server.wait_ready().await;
    // One request of each kind so the histograms have samples.
    server.get("/api/accounts").await;
    let response = server.get("/api/monitoring/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    for series in [
        "accubooks_up 1",
        "accubooks_database_available 0",
        "accubooks_redis_available 0",
        "accubooks_uptime_seconds ",
        "accubooks_memory_used_bytes ",
        "accubooks_memory_total_bytes ",
        "accubooks_dependency_up{dependency=\"database\"} 0",
        "accubooks_dependency_state_changes_total{dependency=\"database\",to=\"unavailable\"} 1",
        "accubooks_dependency_probe_duration_seconds_count{dependency=\"redis\"} ",
        "accubooks_http_request_duration_seconds_count{method=\"GET\",route=\"/api/accounts\",status=\"401\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(series)),
            "missing {series:?} in\n{text}"
        );
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus; .ci/run installs it)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn metrics_token_is_required_when_set(host: Host) {
    let mut vars = base_vars();
    set(&mut vars, "METRICS_TOKEN", "metrics-s3cr3t-42");
    let server = TestServer::start(host, vars).await;
    let url = format!("{}/api/monitoring/metrics", server.base);
    let none = server.client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let wrong = server
        .client
        .get(&url)
        .bearer_auth("metrics-token-4")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.unwrap();
    assert!(!body.to_string().contains("metrics-s3cr3t-42"));
    let right = server
        .client
        .get(&url)
        .bearer_auth("metrics-s3cr3t-42")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
}

async fn request_ids_are_echoed(host: Host) {
    let server = TestServer::start(host, base_vars()).await;
    let response = server
        .client
        .get(format!("{}/api/accounts", server.base))
        .header("X-Request-Id", "client-chosen-id-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chosen-id-1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], "client-chosen-id-1");
    assert_eq!(body["code"], "UNAUTHORIZED");
    let generated = server.get("/api/monitoring/live").await;
    assert_eq!(generated.headers()["x-request-id"].len(), 32);
}

async fn database_routes_answer_503_at_once_during_an_outage(host: Host) {
    let server = TestServer::start(host, base_vars()).await;
    server
        .wait_for_dependency("database", "unavailable", Duration::from_secs(5))
        .await;
    let token = server.token_of_nobody(Role::Viewer);
    let mut latencies = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let response = server.get_as("/api/accounts", &token).await;
        latencies.push(started.elapsed());
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "DATABASE_UNAVAILABLE");
        assert_eq!(
            body["error"],
            "Database unavailable. Server running in degraded mode."
        );
    }
    eprintln!(
        "figure: {host:?} median 503 latency during a database outage: {:?}",
        median(latencies)
    );
    // Monitoring and other routes keep working meanwhile.
    assert_eq!(
        server.get("/api/monitoring/live").await.status(),
        StatusCode::OK
    );
}

async fn unknown_paths_and_methods_are_json_errors(host: Host) {
    let server = TestServer::start(host, base_vars()).await;
    let missing = server.get("/api/no-such-thing").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<Value>().await.unwrap()["code"], "NOT_FOUND");
    // Served standalone and mounted in a host's own router alike.
    let mounted = TestServer::start_mounted(host, base_vars()).await;
    for server in [&server, &mounted] {
        for (method, path, allow) in [
            (http::Method::DELETE, "/api/accounts", "GET, POST"),
            (http::Method::PUT, "/api/monitoring/live", "GET"),
        ] {
            let wrong = server
                .client
                .request(method.clone(), format!("{}{path}", server.base))
                .send()
                .await
                .unwrap();
            assert_eq!(
                wrong.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(wrong.headers()["allow"], allow, "{method} {path}");
            let body: Value = wrong.json().await.unwrap();
            assert_eq!(body["code"], "METHOD_NOT_ALLOWED", "{method} {path}");
            assert!(body["request_id"].is_string());
        }
    }
}

async fn oversized_bodies_are_refused_with_413(host: Host) {
    let mut vars = base_vars();
    set(&mut vars, "BODY_LIMIT_BYTES", "65536");
    let server = TestServer::start(host, vars).await;
    let url = format!("{}/api/test/echo", server.base);
    let small = server
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(small.json::<Value>().await.unwrap(), json!({"bytes": 1000}));
    // A client that announces 10 MB gets its 413 before sending the body.
    let head = "POST /api/test/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10485760\r\n\r\n";
    let answer = server.raw_exchange(head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("PAYLOAD_TOO_LARGE"), "{answer}");
    // Without a Content-Length (chunked), the limit holds as the body streams in.
    let mut chunked =
        b"POST /api/test/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..80 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend_from_slice(&[b'y'; 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    let answer = server.raw_exchange(&chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// Writes `request` on a fresh connection and reads what the server answers
/// (tolerating the server closing before taking everything).
async fn panics_are_answered_500_and_the_server_goes_on(host: Host) {
    let server = TestServer::start(host, base_vars()).await;
    for _ in 0..3 {
        let response = server.get("/api/test/panic").await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "INTERNAL_ERROR");
        assert_eq!(body["request_id"], request_id.as_str());
        assert!(!body.to_string().contains("a handler bug"));
    }
    assert_eq!(
        server.get("/api/monitoring/live").await.status(),
        StatusCode::OK
    );
}

async fn slow_requests_time_out_and_are_counted(host: Host) {
    let mut vars = base_vars();
    set(&mut vars, "SLOW_REQUEST_MS", "50");
    set(&mut vars, "REQUEST_TIMEOUT_MS", "400");
    let server = TestServer::start(host, vars).await;
    let slow = server
        .get("/api/test/sleep/{ms}".replace("{ms}", "100").as_str())
        .await;
    assert_eq!(slow.status(), StatusCode::OK);
    let started = Instant::now();
    let stuck = server.get("/api/test/sleep/5000").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the request timeout bounds it"
    );
    assert_eq!(stuck.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        stuck.json::<Value>().await.unwrap()["code"],
        "REQUEST_TIMEOUT"
    );
    let metrics = server
        .get("/api/monitoring/metrics")
        .await
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "accubooks_http_slow_requests_total{method=\"GET\",route=\"/api/test/sleep/{ms}\"}",
            )
        })
        .unwrap_or_else(|| panic!("no slow request counter in\n{metrics}"));
    assert!(line.ends_with(" 2"), "{line}");
}

async fn tokens_are_checked(host: Host) {
    let (pg, _) = (Postgres::start().await, ());
    let mut vars = base_vars();
    set(&mut vars, "DATABASE_URL", pg.url());
    let server = TestServer::start(host, vars).await;
    server
        .wait_for_dependency("database", "connected", Duration::from_secs(10))
        .await;
    let valid = server.user_token(Role::Viewer).await;
    assert_eq!(
        server.get_as("/api/accounts", &valid).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        server.get("/api/accounts").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mut tampered = valid.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        server.get_as("/api/accounts", &tampered).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let payload = valid.split('.').nth(1).unwrap();
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    assert_eq!(
        server.get_as("/api/accounts", &unsigned).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn openapi_documents_every_route(host: Host) {
    let server = TestServer::start(host, base_vars()).await;
    let response = server.get("/api/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    for route in server.app.routes().iter() {
        let operation = &doc["paths"][route.path()][route.method().as_str().to_lowercase()];
        assert!(
            operation.is_object(),
            "{} {} is not documented",
            route.method(),
            route.path()
        );
    }
    let post = &doc["paths"]["/api/journal-entries"]["post"];
    assert_eq!(
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/EntryInput",
        "{post}"
    );
    assert!(post["responses"]["422"].is_object() && post["responses"]["503"].is_object());
    assert_eq!(post["security"], json!([{"bearer": []}]));
    // Every reference points at a schema the document defines.
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    found.push(r.clone());
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 20);
    for reference in found {
        let name = reference.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling {reference}"
        );
    }
    let money = &doc["components"]["schemas"]["AmountText"];
    assert_eq!(money["type"], "string", "money is a string: {money}");
}

/// A browser page of `FRONTEND_URL` passes the CORS preflight and reads the
/// answers; a page of any other origin gets no `Access-Control-Allow-Origin`.
async fn browsers_of_the_frontend_origin_and_only_them_may_call(host: Host) {
    let mut vars = base_vars();
    set(&mut vars, "FRONTEND_URL", "https://books.example.com/");
    let server = TestServer::start(host, vars).await;
    let preflight = |origin: &'static str, method: &'static str, path: &'static str| {
        server
            .client
            .request(http::Method::OPTIONS, format!("{}{path}", server.base))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", method)
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
    };
    let granted = preflight("https://books.example.com", "POST", "/api/journal-entries")
        .await
        .unwrap();
    assert_eq!(granted.status(), StatusCode::NO_CONTENT);
    let headers = granted.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://books.example.com"
    );
    // The path's methods: the journal is listed (GET) and posted to (POST).
    assert_eq!(headers["access-control-allow-methods"], "GET, POST");
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    for name in [
        "authorization",
        "content-type",
        "idempotency-key",
        "x-request-id",
    ] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(headers.contains_key("access-control-max-age"));

    // Another origin, a method the path does not serve, an unknown path:
    // no grant (the OPTIONS is then an ordinary 405 or 404).
    for (origin, method, path, status) in [
        (
            "https://evil.example",
            "POST",
            "/api/journal-entries",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "https://books.example.com",
            "DELETE",
            "/api/journal-entries",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "https://books.example.com",
            "GET",
            "/api/nothing-here",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let refused = preflight(origin, method, path).await.unwrap();
        assert_eq!(refused.status(), status, "{origin} {method} {path}");
        assert!(
            !refused
                .headers()
                .contains_key("access-control-allow-methods"),
            "{origin} {method} {path}"
        );
        assert_eq!(
            refused
                .headers()
                .contains_key("access-control-allow-origin"),
            origin == "https://books.example.com",
            "{origin} {method} {path}: only the frontend's answers are readable"
        );
    }

    // The actual request: the frontend reads it (and its request id), others do not.
    let token = server.token_of_nobody(Role::Viewer);
    for (origin, allowed) in [
        ("https://books.example.com", true),
        ("https://evil.example", false),
    ] {
        let answer = server
            .client
            .get(format!("{}/api/accounts", server.base))
            .header("Origin", origin)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let headers = answer.headers();
        assert_eq!(
            headers.get("access-control-allow-origin").is_some(),
            allowed,
            "{origin}"
        );
        if allowed {
            assert_eq!(headers["access-control-allow-origin"], origin);
            assert!(
                headers["access-control-expose-headers"]
                    .to_str()
                    .unwrap()
                    .contains("x-request-id")
            );
        }
        assert!(headers["vary"].to_str().unwrap().contains("origin"));
    }
}

/// `nosniff`, a referrer policy, no framing and a closed content policy on
/// every answer (errors included); `no-store` on answers to a token;
/// `Strict-Transport-Security` only in production.
async fn every_answer_carries_the_security_headers(host: Host) {
    let server = TestServer::start(host, base_vars()).await;
    let token = server.token_of_nobody(Role::Viewer);
    let answers = [
        server.get("/api/monitoring/live").await,
        server.get("/api/nothing-here").await,
        server.get("/api/accounts").await,
        server.get_as("/api/accounts", &token).await,
    ];
    for answer in &answers {
        let headers = answer.headers();
        let what = format!("{} {}", answer.url().path(), answer.status());
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
        assert_eq!(headers["x-frame-options"], "DENY", "{what}");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"),
            "{what}"
        );
        assert!(
            !headers.contains_key("strict-transport-security"),
            "{what}: test env"
        );
    }
    assert_eq!(answers[3].headers()["cache-control"], "no-store");
    assert!(!answers[0].headers().contains_key("cache-control"));
}

/// Every series the alerting rules of `deploy/prometheus/alerts.yml` and
/// the dashboard of `deploy/grafana/accubooks.json` read is exported by a server that has served nothing but a scrape, with the
/// label values the rules select (the dependencies, every queue), so no
/// alert silently watches a series that does not exist yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerting_rules_read_series_that_exist_from_start_up() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The alerting rules, and the queries of the Grafana dashboard.
    let rules = [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/accubooks.json",
    ]
    .map(|file| std::fs::read_to_string(root.join(file)).unwrap())
    .join("\n");
    let mut names: Vec<&str> = rules
        .match_indices("accubooks_")
        .map(|(at, _)| {
            let rest = &rules[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|name| *name != "accubooks_" && !name.starts_with("accubooks_up"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 6, "{names:?}");

    let server = TestServer::start(Host::Axum, base_vars()).await;
    // The first scrape is itself a request: the second shows its series.
    server.get("/api/monitoring/metrics").await;
    let text = server
        .get("/api/monitoring/metrics")
        .await
        .text()
        .await
        .unwrap();
    for name in &names {
        assert!(
            text.lines().any(|line| line.starts_with(name)),
            "{name} (read by alerts.yml or the dashboard) is not exported at start-up"
        );
    }
    for dependency in ["database", "redis"] {
        assert!(
            text.contains(&format!(
                "accubooks_dependency_up{{dependency=\"{dependency}\"}}"
            )),
            "{dependency}"
        );
    }
    for queue in [
        "recurring-invoices",
        "payroll-processing",
        "report-generation",
        "payments",
        "bank-feeds",
        "webhooks",
    ] {
        for series in ["accubooks_job_queue_waiting", "accubooks_job_dead"] {
            assert!(
                text.contains(&format!("{series}{{queue=\"{queue}\"}}")),
                "{series} of {queue}"
            );
        }
    }
}

/// The route sweep: every operation of the OpenAPI document, called without
/// a token, answers 401, except the public ones the contract names; with a
/// viewer's token, every writing operation answers 403 (but those the
/// document grants viewers: asking for a report as a job).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_token_and_writing_needs_more_than_a_viewer() {
    // The public routes of the contract (sections 2, 3 and 8).
    const PUBLIC: [&str; 9] = [
        "GET /api/monitoring/live",
        "GET /api/monitoring/ready",
        "GET /api/monitoring/health",
        "GET /api/monitoring/metrics",
        "GET /api/openapi.json",
        "POST /api/auth/register",
        "POST /api/auth/login",
        "POST /api/webhooks/stripe",
        "POST /api/webhooks/plaid",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut vars = base_vars();
    set(
        &mut vars,
        "DATABASE_URL",
        format!("sqlite://{}/books.db", dir.path().display()),
    );
    // Every dependency a route needs is up, so no 503 stands in for the
    // access rule (a known outage is answered before the role is read).
    let saas = crate::support::saas::FakeSaas::start().await;
    for (name, value) in [
        (
            "STRIPE_SECRET_KEY",
            crate::support::saas::STRIPE_KEY.to_owned(),
        ),
        (
            "STRIPE_WEBHOOK_SECRET",
            crate::support::saas::WEBHOOK_SECRET.to_owned(),
        ),
        ("STRIPE_API_BASE", saas.base()),
        (
            "PLAID_CLIENT_ID",
            crate::support::saas::PLAID_CLIENT.0.to_owned(),
        ),
        (
            "PLAID_SECRET",
            crate::support::saas::PLAID_CLIENT.1.to_owned(),
        ),
        ("PLAID_API_BASE", saas.base()),
    ] {
        set(&mut vars, name, value);
    }
    let server = TestServer::start(Host::Axum, vars).await;
    for dependency in ["database", "stripe", "plaid"] {
        server
            .wait_for_dependency(dependency, "connected", Duration::from_secs(10))
            .await;
    }
    let viewer = server.user_token(Role::Viewer).await;
    let document: Value = server.get("/api/openapi.json").await.json().await.unwrap();
    let (mut anonymous, mut forbidden, mut public) = (0, 0, Vec::new());
    for (path, operations) in document["paths"].as_object().unwrap() {
        // The test host's own routes (support/server.rs) are not the API's.
        if path.starts_with("/api/test/") {
            continue;
        }
        let concrete = path
            .split('/')
            .map(|part| if part.starts_with('{') { "1" } else { part })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in operations.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            let send = |token: Option<&str>| {
                let mut request = server.client.request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{concrete}", server.base),
                );
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if method != "get" {
                    request = request.json(&json!({}));
                }
                request.send()
            };
            if operation.get("security").is_none() {
                public.push(name);
                continue;
            }
            let status = send(None).await.unwrap().status();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} without a token");
            anonymous += 1;
            // Writing, except what viewers may ask for (a report as a job).
            let viewers_may =
                operation["responses"]["403"]["description"] == "Never for a valid token";
            if method != "get" && !viewers_may {
                let status = send(Some(&viewer)).await.unwrap().status();
                assert_eq!(status, StatusCode::FORBIDDEN, "{name} as a viewer");
                forbidden += 1;
            }
        }
    }
    for name in &public {
        assert!(
            PUBLIC.contains(&name.as_str()),
            "{name} is public, yet the contract does not say so"
        );
    }
    assert_eq!(public.len(), PUBLIC.len(), "public: {public:?}");
    eprintln!(
        "figure: route sweep: {anonymous} operations answer 401 without a token, {forbidden} writing ones 403 to a viewer, {} public",
        public.len()
    );
}
