//! Outgoing signed webhooks (issue 25, contract §10): a real receiver on
//! loopback verifies every delivery with the `standardwebhooks` library;
//! the server runs on PostgreSQL (row-level security on) and SQLite. Days
//! of failure are simulated with the injected clock of
//! `AccuBooks::deliver_webhooks`, never by sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Door, Store};
use crate::support::receiver::Receiver;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A server whose jobs run from the database, with private addresses
/// allowed or not.
async fn start(door: impl Into<Door>, allow_private: bool) -> Books {
    let allow = if allow_private { "1" } else { "0" };
    Books::start_with(
        door,
        &[
            ("JOB_TRANSPORT", "database".to_owned()),
            ("WEBHOOK_ALLOW_PRIVATE", allow.to_owned()),
        ],
    )
    .await
}

fn moved(amount: &str) -> Value {
    json!([{"account": "1000", "debit": amount}, {"account": "4000", "credit": amount}])
}

/// Creates an endpoint; answers the 201 body.
async fn endpoint(books: &Books, token: &str, url: &str, events: Value) -> Value {
    let (status, body) = books
        .call(
            "POST",
            "/api/webhook-endpoints",
            Some(token),
            Some(json!({"url": url, "events": events, "description": "test receiver"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn secret_of(created: &Value) -> String {
    created["secret"].as_str().unwrap().to_owned()
}

async fn deliveries(books: &Books, token: &str, endpoint: &Value) -> Vec<Value> {
    books
        .list(
            &format!("/api/webhook-endpoints/{}/deliveries", endpoint["id"]),
            token,
        )
        .await
}

/// Waits until the endpoint's deliveries satisfy `done` (at most 30 s).
async fn wait_deliveries(
    books: &Books,
    token: &str,
    endpoint: &Value,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let list = deliveries(books, token, endpoint).await;
        if done(&list) {
            return list;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "deliveries did not get there: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The receiver's requests answered 200, by webhook-id (deduplicated).
fn delivered_ids(received: &[Value]) -> BTreeSet<String> {
    received
        .iter()
        .filter(|r| r["answered"] == 200)
        .map(|r| r["webhook_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn event_ids(books: &Books, token: &str) -> Vec<String> {
    books
        .list("/api/events?limit=500", token)
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn every_event_arrives_verified_once(store: Store) {
    let books = start(store, true).await;
    let token = books.register("hooks@acme.test", "USD").await;
    let mut receiver = Receiver::start(&[]).await;
    let created = endpoint(&books, &token, &receiver.url(), json!(["*"])).await;
    let secret = secret_of(&created);
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 44,
        "{created}"
    );
    assert_eq!(created["status"], "enabled");
    assert_eq!(created["events"], json!(["*"]));
    receiver.verify_with(&[&secret]).await;

    for n in 1..=12 {
        books
            .post(&token, "2026-03-01", moved(&format!("{n}.00")))
            .await;
    }
    let events = event_ids(&books, &token).await;
    assert_eq!(events.len(), 12);
    let received = receiver
        .wait_for(Duration::from_secs(30), |r| delivered_ids(r).len() == 12)
        .await;
    assert_eq!(
        delivered_ids(&received),
        events.iter().cloned().collect::<BTreeSet<_>>()
    );
    for request in &received {
        assert_eq!(request["verified"], json!([true]), "{request}");
        assert_eq!(request["content_type"], "application/json");
        let body = &request["body"];
        assert_eq!(body["id"], request["webhook_id"]);
        assert_eq!(body["type"], "entry.posted");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(body["data"]["id"].as_i64().is_some(), "{body}");
    }
    // The amounts posted arrive to the cent (up to 8 in flight at once, so
    // in any order: receivers order by the event, not by arrival).
    let mut amounts: Vec<String> = received
        .iter()
        .map(|r| {
            r["body"]["data"]["lines"][0]["debit"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    amounts.sort_by_key(|a| a.trim_end_matches(".00").parse::<u32>().unwrap());
    let expected: Vec<String> = (1..=12).map(|n| format!("{n}.00")).collect();
    assert_eq!(amounts, expected);

    // The delivery log (once the last outcome is recorded, which follows
    // the receiver's answer): newest first, each delivered at the first
    // attempt.
    let log = wait_deliveries(&books, &token, &created, |log| {
        log.len() == 12 && log.iter().all(|d| d["status"] != "pending")
    })
    .await;
    let ids: Vec<i64> = log.iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    for delivery in &log {
        assert_eq!(delivery["status"], "delivered", "{delivery}");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["last_status"], 200);
        assert_eq!(delivery["event_type"], "entry.posted");
        assert!(
            delivery["response_excerpt"]
                .as_str()
                .unwrap()
                .contains("received")
        );
        assert!(delivery["next_attempt_at"].is_null());
    }
    assert_eq!(log.last().unwrap()["event_id"], json!(events[0]));

    // However many times it was asked for, the endpoint has one job row.
    let jobs = books
        .count_as_admin("SELECT COUNT(*) FROM jobs WHERE queue = 'webhooks'")
        .await;
    assert_eq!(jobs, 1);

    // The list shows the endpoint without its secret.
    let listed = books.list("/api/webhook-endpoints", &token).await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("secret").is_none(), "{listed:?}");
    assert_eq!(listed[0]["description"], "test receiver");

    // The queue is in health and the deliveries in metrics.
    let health = books.server.health().await;
    assert_eq!(
        health["dependencies"]["jobQueues"]["queues"]["webhooks"], true,
        "{health}"
    );
    // (Counted just after each outcome is recorded.)
    let started = Instant::now();
    loop {
        let metrics = books.server.get("/api/monitoring/metrics").await;
        let metrics = metrics.text().await.unwrap();
        assert!(metrics.contains("accubooks_webhook_oldest_undelivered_seconds"));
        if metrics.contains("accubooks_webhook_deliveries_total{outcome=\"delivered\"} 12") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver.stop();
}

async fn a_receiver_down_then_failing_gets_every_event_with_the_same_ids(store: Store) {
    let books = start(store, true).await;
    let token = books.register("down@acme.test", "USD").await;
    let mut receiver = Receiver::start(&[]).await;
    let created = endpoint(&books, &token, &receiver.url(), json!(["entry.posted"])).await;
    receiver.stop();
    for amount in ["1.00", "2.00", "3.00"] {
        books.post(&token, "2026-03-01", moved(amount)).await;
    }
    // Down for a while: attempts fail and stay pending.
    let attempts = |log: &[Value]| {
        log.iter()
            .map(|d| d["attempts"].as_i64().unwrap())
            .sum::<i64>()
    };
    let log = wait_deliveries(&books, &token, &created, |log| {
        log.len() == 3 && attempts(log) >= 4
    })
    .await;
    let tried = log.iter().find(|d| d["attempts"] != 0).unwrap();
    assert_eq!(tried["status"], "pending");
    assert!(tried["last_status"].is_null());
    assert!(
        tried["last_error"].as_str().unwrap().contains("connect"),
        "{log:#?}"
    );
    // Back, answering 500 once, then 200: everything arrives, the retried
    // event under the same webhook-id.
    receiver.restart_with(&[&secret_of(&created)], 1);
    let events = event_ids(&books, &token).await;
    let received = receiver
        .wait_for(Duration::from_secs(40), |r| delivered_ids(r).len() == 3)
        .await;
    assert_eq!(
        delivered_ids(&received),
        events.iter().cloned().collect::<BTreeSet<_>>()
    );
    let failed_id = received[0]["webhook_id"].clone();
    assert_eq!(received[0]["answered"], 500);
    assert!(
        received[1..]
            .iter()
            .any(|r| r["webhook_id"] == failed_id && r["answered"] == 200),
        "{received:#?}"
    );
    assert!(received.iter().all(|r| r["verified"] == json!([true])));
    let log = wait_deliveries(&books, &token, &created, |log| {
        log.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert!(
        log.iter().any(|d| d["attempts"].as_i64().unwrap() >= 3),
        "{log:#?}"
    );
    let listed = books.list("/api/webhook-endpoints", &token).await;
    assert!(listed[0]["failing_since"].is_null(), "{listed:?}");
}

async fn a_dead_receiver_costs_one_attempt_per_step(store: Store) {
    let books = start(store, true).await;
    let token = books.register("steps@acme.test", "USD").await;
    let mut receiver = Receiver::start(&[]).await;
    let url = receiver.url();
    receiver.stop();
    let created = endpoint(&books, &token, &url, json!(["*"])).await;
    books.post(&token, "2026-03-01", moved("1.00")).await;
    wait_deliveries(&books, &token, &created, |log| {
        log.len() == 1 && log[0]["attempts"] != 0
    })
    .await;
    for amount in ["2.00", "3.00", "4.00", "5.00"] {
        books.post(&token, "2026-03-01", moved(amount)).await;
    }
    wait_deliveries(&books, &token, &created, |log| log.len() == 5).await;
    // The endpoint's next step in half an hour: the background scheduler
    // leaves it alone from now on (an attempt it had in flight lands
    // within the pause), and the clock of the passes below is ahead.
    let now = chrono::Utc::now().timestamp_millis();
    books
        .execute_as_admin(&format!(
            "UPDATE webhook_endpoints SET retry_at_ms = {} WHERE id = {}",
            now + 1_800_000,
            created["id"]
        ))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let total = |log: &[Value]| {
        log.iter()
            .map(|d| d["attempts"].as_i64().unwrap())
            .sum::<i64>()
    };
    let before = total(&deliveries(&books, &token, &created).await);
    // Each step of the failing endpoint (an hour apart, past any backoff)
    // costs one attempt, whatever the number of events waiting, and takes
    // the delivery tried longest ago: every event gets its turn.
    for step in 1..=5 {
        let pass = books
            .server
            .app
            .deliver_webhooks(now + step * 3_600_000)
            .await
            .unwrap();
        assert_eq!(pass.failed_attempts, 1, "step {step}: {pass:?}");
        assert_eq!(pass.delivered + pass.failed, 0, "step {step}: {pass:?}");
    }
    let log = deliveries(&books, &token, &created).await;
    assert_eq!(log.len(), 5);
    assert_eq!(total(&log), before + 5, "{log:#?}");
    assert!(log.iter().all(|d| d["attempts"] != 0), "{log:#?}");
    assert!(log.iter().all(|d| d["status"] == "pending"), "{log:#?}");
}

async fn a_slow_receiver_does_not_delay_another_endpoint(store: Store) {
    let books = start(store, true).await;
    let token = books.register("slow@acme.test", "USD").await;
    let slow = Receiver::start(&[]).await;
    let fast = Receiver::start(&[]).await;
    slow.control(json!({"delay_ms": 6000})).await;
    endpoint(&books, &token, &slow.url(), json!(["*"])).await;
    endpoint(&books, &token, &fast.url(), json!(["*"])).await;
    let posted = Instant::now();
    books.post(&token, "2026-03-01", moved("5.00")).await;
    books.post(&token, "2026-03-01", moved("6.00")).await;
    fast.wait_for(Duration::from_secs(5), |r| delivered_ids(r).len() == 2)
        .await;
    let fast_after = posted.elapsed();
    assert!(
        fast_after < Duration::from_secs(5),
        "the fast endpoint waited {fast_after:?}"
    );
    // The slow one had the first event in hand all along; both arrive.
    let slow_got = slow.received().await;
    assert!(slow_got.len() <= 2, "{slow_got:#?}");
    slow.wait_for(Duration::from_secs(30), |r| delivered_ids(r).len() == 2)
        .await;
}

/// An organization whose receivers are all slow holds two of the queue's
/// workers at most, however many endpoints it has: its endpoints take
/// turns, and another organization's events go out meanwhile.
async fn slow_receivers_of_one_organization_hold_two_workers_at_most(store: Store) {
    let books = Books::start_with(
        store,
        &[
            ("JOB_TRANSPORT", "database".to_owned()),
            ("WEBHOOK_ALLOW_PRIVATE", "1".to_owned()),
            ("JOB_CONCURRENCY", "4".to_owned()),
        ],
    )
    .await;
    let hostile = books.register("slow-org@acme.test", "USD").await;
    let other = books.register("fast-org@acme.test", "USD").await;
    let slow = Receiver::start(&[]).await;
    slow.control(json!({"delay_ms": 6000})).await;
    let fast = Receiver::start(&[]).await;
    for _ in 0..6 {
        endpoint(&books, &hostile, &slow.url(), json!(["*"])).await;
    }
    endpoint(&books, &other, &fast.url(), json!(["*"])).await;
    books.post(&hostile, "2026-03-01", moved("1.00")).await;
    slow.wait_for(Duration::from_secs(10), |r| !r.is_empty())
        .await;

    let posted = Instant::now();
    books.post(&other, "2026-03-01", moved("2.00")).await;
    fast.wait_for(Duration::from_secs(10), |r| delivered_ids(r).len() == 1)
        .await;
    let fast_after = posted.elapsed();
    assert!(
        fast_after < Duration::from_secs(5),
        "the other organization waited {fast_after:?}"
    );
    assert!(slow.received().await.len() < 6);

    // Until the six slow deliveries are in, never more than two passes of
    // the organization run at once.
    let started = Instant::now();
    let mut most = 0;
    while slow.received().await.len() < 6 {
        let running = books
            .list("/api/jobs?queue=webhooks&status=running", &hostile)
            .await;
        most = most.max(running.len());
        assert!(most <= 2, "{running:#?}");
        assert!(started.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(most >= 1);
}

async fn a_rotated_secret_still_verifies_for_a_day(door: Door) {
    let books = start(door, true).await;
    let token = books.register("rotate@acme.test", "USD").await;
    let receiver = Receiver::start(&[]).await;
    let created = endpoint(&books, &token, &receiver.url(), json!(["entry.posted"])).await;
    let old = secret_of(&created);
    let (status, rotated) = books
        .call(
            "POST",
            &format!("/api/webhook-endpoints/{}/rotate-secret", created["id"]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = secret_of(&rotated);
    assert!(new.starts_with("whsec_") && new != old);
    assert_eq!(rotated["id"], created["id"]);
    receiver.verify_with(&[&old, &new]).await;

    books.post(&token, "2026-03-01", moved("1.00")).await;
    let received = receiver
        .wait_for(Duration::from_secs(30), |r| delivered_ids(r).len() == 1)
        .await;
    assert_eq!(received[0]["verified"], json!([true, true]), "{received:?}");
    assert_eq!(
        received[0]["signature"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );

    // A day later the old secret no longer signs.
    books
        .execute_as_admin(&format!(
            "UPDATE webhook_endpoints SET previous_until_ms = {} WHERE id = {}",
            chrono::Utc::now().timestamp_millis() - 1,
            created["id"]
        ))
        .await;
    books.post(&token, "2026-03-02", moved("2.00")).await;
    let received = receiver
        .wait_for(Duration::from_secs(30), |r| delivered_ids(r).len() == 2)
        .await;
    assert_eq!(
        received[1]["verified"],
        json!([false, true]),
        "{received:?}"
    );
    assert_eq!(
        received[1]["signature"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        1
    );
}

async fn refused(books: &Books, token: &str, body: Value) -> (StatusCode, Value) {
    books
        .call("POST", "/api/webhook-endpoints", Some(token), Some(body))
        .await
}

async fn forbidden_urls_and_bounds_are_refused_at_creation(store: Store) {
    let books = start(store, false).await;
    let token = books.register("ssrf@acme.test", "USD").await;
    for url in [
        "http://93.184.216.34/hook",
        "https://127.0.0.1/hook",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://127.1/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://10.0.0.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00::1]/",
        "https://localhost/hook",
    ] {
        let (status, body) = refused(&books, &token, json!({"url": url, "events": ["*"]})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["code"], "WEBHOOK_URL_FORBIDDEN", "{url}: {body}");
    }
    let public = "https://93.184.216.34/hook";
    let cases = [
        (
            json!({"url": format!("{public}/{}", "a".repeat(2048)), "events": ["*"]}),
            "URL_TOO_LONG",
        ),
        (
            json!({"url": public, "events": ["*"], "description": "d".repeat(257)}),
            "DESCRIPTION_TOO_LONG",
        ),
        (
            json!({"url": public, "events": vec!["entry.posted"; 33]}),
            "TOO_MANY_EVENT_TYPES",
        ),
        (
            json!({"url": public, "events": ["entry.posted", "entry.pasted"]}),
            "UNKNOWN_EVENT_TYPE",
        ),
        (
            json!({"url": public, "events": ["*", "entry.posted"]}),
            "UNKNOWN_EVENT_TYPE",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = refused(&books, &token, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["code"], code, "{answer}");
    }
    // Owners only.
    let accountant = books
        .member_token(&token, "clerk@acme.test", "accountant")
        .await;
    let (status, _) = refused(&books, &accountant, json!({"url": public, "events": ["*"]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = books
        .call("GET", "/api/webhook-endpoints", Some(&accountant), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The same Idempotency-Key answers the same endpoint and secret.
    let body = json!({"url": public, "events": ["invoice.paid"]});
    let key = [("Idempotency-Key", "hook-1")];
    let (status, first) = books
        .call_with(
            "POST",
            "/api/webhook-endpoints",
            Some(&token),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = books
        .call_with(
            "POST",
            "/api/webhook-endpoints",
            Some(&token),
            Some(body),
            &key,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(
        (&again["id"], &again["secret"]),
        (&first["id"], &first["secret"])
    );

    // At most 16 endpoints.
    for _ in 1..16 {
        endpoint(&books, &token, public, json!(["*"])).await;
    }
    let (status, answer) = refused(&books, &token, json!({"url": public, "events": ["*"]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["code"], "TOO_MANY_ENDPOINTS");
    assert_eq!(
        books
            .list("/api/webhook-endpoints?limit=5", &token)
            .await
            .len(),
        16
    );
}

async fn a_name_resolving_to_loopback_is_refused_at_delivery(store: Store) {
    let books = start(store, false).await;
    let token = books.register("rebind@acme.test", "USD").await;
    let receiver = Receiver::start(&[]).await;
    let created = endpoint(&books, &token, "https://93.184.216.34/hook", json!(["*"])).await;
    // The name now resolves to loopback (DNS rebinding after creation).
    let port = receiver
        .url()
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    books
        .execute_as_admin(&format!(
            "UPDATE webhook_endpoints SET url = 'https://localhost:{port}/hook' WHERE id = {}",
            created["id"]
        ))
        .await;
    books.post(&token, "2026-03-01", moved("1.00")).await;
    let log = wait_deliveries(&books, &token, &created, |log| {
        log.len() == 1 && log[0]["attempts"] != 0
    })
    .await;
    let error = log[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("localhost") && error.contains("not public"),
        "{error}"
    );
    assert_eq!(log[0]["status"], "pending");
    assert!(receiver.received().await.is_empty());
}

async fn three_days_of_failure_give_up_and_five_disable(store: Store) {
    let books = start(store, true).await;
    let token = books.register("dead@acme.test", "USD").await;
    let mut receiver = Receiver::start(&[]).await;
    let url = receiver.url();
    receiver.stop();
    let created = endpoint(&books, &token, &url, json!(["*"])).await;
    books.post(&token, "2026-03-01", moved("1.00")).await;
    wait_deliveries(&books, &token, &created, |log| {
        log.len() == 1 && log[0]["attempts"] != 0
    })
    .await;
    let app = &books.server.app;
    let now = chrono::Utc::now().timestamp_millis();

    // Two days on: still pending.
    app.deliver_webhooks(now + 2 * DAY_MS).await.unwrap();
    let log = deliveries(&books, &token, &created).await;
    assert_eq!(log[0]["status"], "pending", "{log:#?}");

    // Three days after its first attempt it is given up.
    let pass = app
        .deliver_webhooks(now + 3 * DAY_MS + 60_000)
        .await
        .unwrap();
    assert_eq!(pass.failed, 1, "{pass:?}");
    let log = deliveries(&books, &token, &created).await;
    assert_eq!(log[0]["status"], "failed", "{log:#?}");
    assert!(log[0]["next_attempt_at"].is_null());
    let listed = books.list("/api/webhook-endpoints", &token).await;
    assert_eq!(listed[0]["status"], "enabled");
    assert!(listed[0]["failing_since"].is_string());

    // Five days of failures disable the endpoint, with the reason.
    books.post(&token, "2026-03-02", moved("2.00")).await;
    let pass = app
        .deliver_webhooks(now + 5 * DAY_MS + 60_000)
        .await
        .unwrap();
    assert_eq!(pass.disabled, 1, "{pass:?}");
    let listed = books.list("/api/webhook-endpoints", &token).await;
    assert_eq!(listed[0]["status"], "disabled", "{listed:?}");
    assert!(
        listed[0]["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("5 days"),
        "{listed:?}"
    );
    let log = deliveries(&books, &token, &created).await;
    assert!(log.iter().all(|d| d["status"] == "failed"), "{log:#?}");

    // A disabled endpoint gets nothing more, even by hand.
    books.post(&token, "2026-03-03", moved("3.00")).await;
    let pass = app.deliver_webhooks(now + 6 * DAY_MS).await.unwrap();
    assert_eq!(pass, Default::default());
    let (status, body) = books
        .call(
            "POST",
            &format!(
                "/api/webhook-endpoints/{}/deliveries/{}/retry",
                created["id"], log[0]["id"]
            ),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "ENDPOINT_DISABLED");
    let metrics = books
        .server
        .get("/api/monitoring/metrics")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("accubooks_webhook_deliveries_total{outcome=\"failed\"}"),
        "{metrics}"
    );
}

async fn another_organization_cannot_see_retry_or_delete_endpoints(door: Door) {
    let books = start(door, true).await;
    let token = books.register("mine@acme.test", "USD").await;
    let other = books.register("theirs@acme.test", "USD").await;
    let receiver = Receiver::start(&[]).await;
    let created = endpoint(&books, &token, &receiver.url(), json!(["*"])).await;
    books.post(&token, "2026-03-01", moved("1.00")).await;
    let log = wait_deliveries(&books, &token, &created, |log| {
        log.len() == 1 && log[0]["status"] == "delivered"
    })
    .await;
    let (id, delivery) = (&created["id"], &log[0]["id"]);

    assert!(
        books
            .list("/api/webhook-endpoints", &other)
            .await
            .is_empty()
    );
    let calls = [
        ("GET", format!("/api/webhook-endpoints/{id}/deliveries")),
        (
            "POST",
            format!("/api/webhook-endpoints/{id}/deliveries/{delivery}/retry"),
        ),
        ("POST", format!("/api/webhook-endpoints/{id}/rotate-secret")),
        ("DELETE", format!("/api/webhook-endpoints/{id}")),
    ];
    for (method, path) in &calls {
        let (status, body) = books.call(method, path, Some(&other), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    // Still there, still delivered once; the owner may retry it.
    assert_eq!(books.list("/api/webhook-endpoints", &token).await.len(), 1);
    let (status, retried) = books.call("POST", &calls[1].1, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["status"], "pending");
    let received = receiver
        .wait_for(Duration::from_secs(30), |r| {
            r.iter().filter(|x| x["answered"] == 200).count() == 2
        })
        .await;
    let per_id: BTreeMap<&str, usize> = received.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["webhook_id"].as_str().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(
        per_id.len(),
        1,
        "a retry resends the same event id: {per_id:?}"
    );
    let (status, _) = books
        .call(
            "DELETE",
            &format!("/api/webhook-endpoints/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        books
            .list("/api/webhook-endpoints", &token)
            .await
            .is_empty()
    );
}

async fn a_delivery_taken_by_a_process_that_died_is_sent_again(store: Store) {
    let books = start(store, true).await;
    let token = books.register("crash@acme.test", "USD").await;
    let receiver = Receiver::start(&[]).await;
    let created = endpoint(&books, &token, &receiver.url(), json!(["*"])).await;
    books.post(&token, "2026-03-01", moved("1.00")).await;
    let log = wait_deliveries(&books, &token, &created, |log| {
        log.len() == 1 && log[0]["status"] == "delivered"
    })
    .await;
    // As a process leaves it when it dies after taking the delivery and
    // before recording its outcome: pending, its next attempt pushed a
    // minute ahead (the lease).
    let now = chrono::Utc::now().timestamp_millis();
    books
        .execute_as_admin(&format!(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, \
             next_attempt_ms = {} WHERE id = {}",
            now + 60_000,
            log[0]["id"]
        ))
        .await;
    // Within the lease nobody sends it; once it has passed, it is sent again
    // under the same webhook-id.
    let pass = books
        .server
        .app
        .deliver_webhooks(now + 30_000)
        .await
        .unwrap();
    assert_eq!(pass, Default::default());
    let pass = books
        .server
        .app
        .deliver_webhooks(now + 61_000)
        .await
        .unwrap();
    assert_eq!(pass.delivered, 1, "{pass:?}");
    let received = receiver.received().await;
    assert_eq!(received.len(), 2);
    assert_eq!(received[0]["webhook_id"], received[1]["webhook_id"]);
    let log = deliveries(&books, &token, &created).await;
    assert_eq!(
        (&log[0]["status"], &log[0]["attempts"]),
        (&json!("delivered"), &json!(1))
    );
}

// Routes are declared once in the core; these go through both hosts too.
on_every_door!(
    a_rotated_secret_still_verifies_for_a_day,
    another_organization_cannot_see_retry_or_delete_endpoints,
);

on_every_store!(
    slow_receivers_of_one_organization_hold_two_workers_at_most,
    a_delivery_taken_by_a_process_that_died_is_sent_again,
    every_event_arrives_verified_once,
    a_receiver_down_then_failing_gets_every_event_with_the_same_ids,
    a_dead_receiver_costs_one_attempt_per_step,
    a_slow_receiver_does_not_delay_another_endpoint,
    forbidden_urls_and_bounds_are_refused_at_creation,
    a_name_resolving_to_loopback_is_refused_at_delivery,
    three_days_of_failure_give_up_and_five_disable,
);

/// On the Redis Streams transport (the default with Redis): the endpoint's
/// one job row is relayed, run, and made pending again for later events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_run_on_the_redis_transport() {
    let redis = crate::support::services::Redis::start().await;
    let books = Books::start_with(
        Store::Postgres,
        &[
            ("REDIS_URL", redis.url()),
            ("JOB_TRANSPORT", "redis".to_owned()),
            ("WEBHOOK_ALLOW_PRIVATE", "1".to_owned()),
        ],
    )
    .await;
    books
        .server
        .wait_for_dependency("redis", "connected", Duration::from_secs(10))
        .await;
    let token = books.register("streams@acme.test", "USD").await;
    let receiver = Receiver::start(&[]).await;
    let created = endpoint(&books, &token, &receiver.url(), json!(["*"])).await;
    receiver.verify_with(&[&secret_of(&created)]).await;
    for round in 1..=3 {
        for amount in ["1.00", "2.00"] {
            books.post(&token, "2026-03-01", moved(amount)).await;
        }
        let received = receiver
            .wait_for(Duration::from_secs(30), |r| {
                delivered_ids(r).len() == 2 * round
            })
            .await;
        assert!(received.iter().all(|r| r["verified"] == json!([true])));
        // The job ends before the next round's events.
        wait_deliveries(&books, &token, &created, |log| {
            log.len() == 2 * round && log.iter().all(|d| d["status"] == "delivered")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let jobs = books
        .count_as_admin("SELECT COUNT(*) FROM jobs WHERE queue = 'webhooks'")
        .await;
    assert_eq!(jobs, 1);
}
