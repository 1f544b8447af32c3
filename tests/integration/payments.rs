//! Card payments through Stripe against the fake Stripe on loopback:
//! PaymentIntents for invoices, signed webhooks posting each payment and
//! refund once whatever the replays and their order, and Stripe's outages
//! answered 503 on its own routes only.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Door, Store};
use crate::support::saas::stripe::{API_VERSION, NO_INTENTS_KEY, RESTRICTED_KEY, signature};
use crate::support::saas::{FakeSaas, Mode, STRIPE_KEY, WEBHOOK_SECRET};
use crate::support::server::Host;
use crate::support::services::Redis;

pub(crate) struct Setup {
    pub(crate) books: Books,
    pub(crate) saas: FakeSaas,
    _redis: Option<Redis>,
    pub(crate) token: String,
    pub(crate) customer: i64,
}

/// A server with Stripe configured against the fake: PostgreSQL with the
/// jobs on Redis, or SQLite with the jobs in the database.
pub(crate) async fn start(door: impl Into<Door>, extra: &[(&str, String)]) -> Setup {
    let door = door.into();
    let saas = FakeSaas::start().await;
    let mut vars = vec![
        ("STRIPE_SECRET_KEY", STRIPE_KEY.to_owned()),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("STRIPE_API_BASE", saas.base()),
        ("JOB_RETRY_BASE_MS", "100".to_owned()),
        ("JOB_RETRY_MAX_MS", "500".to_owned()),
    ];
    vars.retain(|(name, _)| !extra.iter().any(|(set, _)| set == name));
    vars.extend(extra.iter().cloned());
    let redis = match door.store {
        Store::Postgres => {
            let redis = Redis::start().await;
            vars.push(("REDIS_URL", redis.url()));
            vars.push(("JOB_TRANSPORT", "redis".to_owned()));
            Some(redis)
        }
        Store::Sqlite => {
            vars.push(("JOB_TRANSPORT", "database".to_owned()));
            None
        }
    };
    let books = Books::start_with(door, &vars).await;
    books
        .server
        .wait_for_dependency("stripe", "connected", Duration::from_secs(5))
        .await;
    let token = books
        .register(&format!("pay-{}@acme.test", uuid::Uuid::new_v4()), "USD")
        .await;
    let customer = customer(&books, &token).await;
    Setup {
        books,
        saas,
        _redis: redis,
        token,
        customer,
    }
}

async fn customer(books: &Books, token: &str) -> i64 {
    let (status, customer) = books
        .call(
            "POST",
            "/api/customers",
            Some(token),
            Some(json!({"name": "Globex"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    customer["id"].as_i64().unwrap()
}

/// An issued invoice of one line at `price`, untaxed.
pub(crate) async fn issued(books: &Books, token: &str, customer: i64, price: &str) -> i64 {
    let (status, invoice) = books
        .call(
            "POST",
            "/api/invoices",
            Some(token),
            Some(json!({"customer_id": customer, "due_date": "2026-12-31",
                "lines": [{"description": "Consulting", "quantity": "1", "unit_price": price}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    let id = invoice["id"].as_i64().unwrap();
    let (status, body) = books
        .call(
            "POST",
            &format!("/api/invoices/{id}/issue"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

pub(crate) async fn intent(books: &Books, token: &str, invoice: i64) -> (StatusCode, Value) {
    books
        .call(
            "POST",
            &format!("/api/invoices/{invoice}/payment-intent"),
            Some(token),
            None,
        )
        .await
}

/// Delivers `event` to the webhook as Stripe does, signed now.
async fn deliver(books: &Books, event: &Value) -> (StatusCode, Value) {
    let payload = serde_json::to_vec(event).unwrap();
    let header = signature(&[WEBHOOK_SECRET], chrono::Utc::now().timestamp(), &payload);
    deliver_raw(books, payload, Some(&header)).await
}

async fn deliver_raw(books: &Books, payload: Vec<u8>, header: Option<&str>) -> (StatusCode, Value) {
    let mut request = books
        .server
        .client
        .post(format!("{}/api/webhooks/stripe", books.server.base))
        .header("content-type", "application/json; charset=utf-8")
        .body(payload);
    if let Some(header) = header {
        request = request.header("stripe-signature", header);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn invoice_of(books: &Books, token: &str, id: i64) -> Value {
    let (status, invoice) = books
        .call("GET", &format!("/api/invoices/{id}"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{invoice}");
    invoice
}

/// Waits until every job of the payments queue has ended, and answers them.
pub(crate) async fn settled_jobs(books: &Books, token: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, jobs) = books
            .call("GET", "/api/jobs?queue=payments", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{jobs}");
        let jobs = jobs.as_array().unwrap().clone();
        if jobs
            .iter()
            .all(|j| j["status"] == "succeeded" || j["status"] == "dead")
        {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "payment jobs still open: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Stripe postings (memo starting "Stripe") on cash, in minor units,
/// from the general ledger: what was posted, not what an invoice says.
async fn stripe_cash_lines(books: &Books, token: &str) -> Vec<i64> {
    let (status, ledger) = books
        .call(
            "GET",
            "/api/reports/general-ledger?from=2000-01-01&to=2100-12-31&account=1000",
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ledger}");
    let cents = |v: &Value| -> i64 {
        let text = v.as_str().unwrap_or("0");
        let (whole, frac) = text.split_once('.').unwrap_or((text, "00"));
        whole.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
    };
    ledger["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["memo"].as_str().unwrap_or_default().starts_with("Stripe"))
        .map(|r| cents(&r["debit"]) - cents(&r["credit"]))
        .collect()
}

on_every_store!(
    a_card_payment_is_posted_once_whatever_stripe_retries,
    refunds_are_posted_once_in_any_order,
    after_a_stripe_5xx_the_next_request_asks_under_a_new_key,
    a_refund_that_fails_is_reversed_once,
    a_card_payment_in_a_locked_period_is_posted_on_the_first_open_day,
);

/// The job of a delivered event, once it has ended.
async fn ended_job(books: &Books, token: &str, receipt: &Value) -> Value {
    let id = receipt["job_id"].clone();
    settled_jobs(books, token)
        .await
        .into_iter()
        .find(|job| job["id"] == id)
        .unwrap_or_else(|| panic!("no job for {receipt}"))
}

/// Signed events that cannot be true of their PaymentIntent (another
/// currency, no date or an absurd one, more refunded than paid) post
/// nothing and end their job dead at once with a permanent code; a good
/// event is dated by its `created` time in the organization's time zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_events_are_checked_against_their_payment_intent() {
    let s = start(Store::Postgres, &[]).await;
    let (books, token) = (&s.books, s.token.as_str());
    let (status, body) = books
        .call(
            "PUT",
            "/api/settings",
            Some(token),
            Some(json!({"timezone": "Pacific/Kiritimati"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let invoice = issued(books, token, s.customer, "100.00").await;
    let (_, first) = intent(books, token, invoice).await;
    let id = first["payment_intent_id"].as_str().unwrap().to_owned();
    let stripe = &s.saas.stripe;

    let mut yen = stripe.succeeded_event("evt_yen", &id);
    yen["data"]["object"]["currency"] = json!("jpy");
    let mut undated = stripe.succeeded_event("evt_undated", &id);
    undated.as_object_mut().unwrap().remove("created");
    let mut far = stripe.succeeded_event("evt_9999", &id);
    // 9999-12-31T00:00:00Z.
    far["created"] = json!(253_402_214_400_i64 - 86_400);
    let mut early = stripe.succeeded_event("evt_1969", &id);
    early["created"] = json!(-86_400);
    for (event, code) in [
        (yen, "PAYMENT_CURRENCY_MISMATCH"),
        (undated, "INVALID_EVENT_DATE"),
        (far, "INVALID_EVENT_DATE"),
        (early, "INVALID_EVENT_DATE"),
    ] {
        let (status, receipt) = deliver(books, &event).await;
        assert_eq!(
            (status, receipt["outcome"].clone()),
            (StatusCode::OK, json!("queued")),
            "{receipt}"
        );
        let job = ended_job(books, token, &receipt).await;
        assert_eq!(
            (
                job["status"].clone(),
                job["error"]["code"].clone(),
                job["attempts"].clone()
            ),
            (json!("dead"), json!(code), json!(1)),
            "{}: {job}",
            event["id"]
        );
    }
    assert_eq!(invoice_of(books, token, invoice).await["status"], "issued");
    assert_eq!(stripe_cash_lines(books, token).await, Vec::<i64>::new());

    // Created yesterday at 11:00 UTC: already today in Kiritimati (UTC+14).
    let yesterday = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let created = yesterday
        .and_hms_opt(11, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    let mut paid = stripe.succeeded_event("evt_paid", &id);
    paid["created"] = json!(created);
    let (_, receipt) = deliver(books, &paid).await;
    assert_eq!(
        ended_job(books, token, &receipt).await["status"],
        "succeeded"
    );
    let (_, ledger) = books
        .call(
            "GET",
            "/api/reports/general-ledger?from=2000-01-01&to=2100-12-31&account=1000",
            Some(token),
            None,
        )
        .await;
    assert_eq!(
        ledger["rows"][0]["date"],
        json!((yesterday + chrono::Days::new(1)).to_string()),
        "{ledger}"
    );

    // Refunded beyond what was paid: refused for good, not retried.
    let (_, receipt) = deliver(books, &stripe.refunded_event("evt_over", &id, 10_001)).await;
    let job = ended_job(books, token, &receipt).await;
    assert_eq!(
        (
            job["status"].clone(),
            job["error"]["code"].clone(),
            job["attempts"].clone()
        ),
        (json!("dead"), json!("REFUND_EXCEEDS_PAYMENT"), json!(1)),
        "{job}"
    );
    assert_eq!(stripe_cash_lines(books, token).await, vec![10_000]);
    // A refund within it is posted.
    let (_, receipt) = deliver(books, &stripe.refunded_event("evt_part", &id, 2_500)).await;
    assert_eq!(
        ended_job(books, token, &receipt).await["status"],
        "succeeded"
    );
    assert_eq!(stripe_cash_lines(books, token).await, vec![10_000, -2_500]);
}

async fn a_card_payment_is_posted_once_whatever_stripe_retries(store: Store) {
    let s = start(store, &[]).await;
    let (books, token) = (&s.books, s.token.as_str());
    let invoice = issued(books, token, s.customer, "100.00").await;

    let (status, first) = intent(books, token, invoice).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let id = first["payment_intent_id"].as_str().unwrap().to_owned();
    let at_stripe = s.saas.stripe.intent(&id);
    assert_eq!(first["client_secret"], at_stripe.client_secret.as_str());
    assert_eq!(
        (first["amount"].clone(), first["currency"].clone()),
        (json!("100.00"), json!("USD"))
    );
    assert_eq!(
        (at_stripe.amount, at_stripe.currency.as_str()),
        (10_000, "usd")
    );
    assert_eq!(at_stripe.metadata["invoice_id"], invoice.to_string());
    // Asked again for the same open amount: the same intent, no new one.
    let (status, again) = intent(books, token, invoice).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again, first);
    assert_eq!(
        s.saas
            .stripe
            .created
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // The client secret is kept sealed, never in clear.
    if let Some(pg) = books.postgres() {
        let pool = sqlx::PgPool::connect(&pg.admin_url()).await.unwrap();
        let stored: String =
            sqlx::query_scalar("SELECT client_secret FROM stripe_payment_intents WHERE id = $1")
                .bind(&id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(stored.starts_with("v1:"), "{stored}");
        assert!(!stored.contains(&at_stripe.client_secret) && !stored.contains("_secret_"));
    }

    // Stripe retries the event (the same id, six times at once) and, for
    // good measure, a second event about the same intent.
    let event = s.saas.stripe.succeeded_event("evt_paid_1", &id);
    let twin = s.saas.stripe.succeeded_event("evt_paid_2", &id);
    let deliveries = (0..6).map(|_| deliver(books, &event)).collect::<Vec<_>>();
    let answers = futures::future::join_all(deliveries).await;
    let (status, twin_answer) = deliver(books, &twin).await;
    assert_eq!(status, StatusCode::OK, "{twin_answer}");
    let mut job_ids = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            assert_eq!(body["outcome"], "queued", "{body}");
            body["job_id"].as_i64().unwrap()
        })
        .collect::<Vec<_>>();
    job_ids.dedup();
    assert_eq!(job_ids.len(), 1, "one job per event id: {job_ids:?}");

    let jobs = settled_jobs(books, token).await;
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|j| j["status"] == "succeeded"), "{jobs:?}");
    let paid = invoice_of(books, token, invoice).await;
    assert_eq!(
        (paid["status"].clone(), paid["paid"].clone()),
        (json!("paid"), json!("100.00"))
    );
    assert_eq!(stripe_cash_lines(books, token).await, vec![10_000]);
    assert_eq!(books.balance(token, "1000").await, "100.00");
    assert_eq!(books.balance(token, "1100").await, "0.00");

    // A replay after the job ran posts nothing either, and a paid invoice
    // has no open amount to ask an intent for.
    let (status, _) = deliver(books, &event).await;
    assert_eq!(status, StatusCode::OK);
    settled_jobs(books, token).await;
    assert_eq!(stripe_cash_lines(books, token).await, vec![10_000]);
    let (status, body) = intent(books, token, invoice).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("INVOICE_NOT_OPEN"))
    );

    // One payment, so one event of it, whatever Stripe retried: the
    // payment with the invoice it paid, then the invoice paid.
    let events = books
        .events(token, "payment.succeeded,payment.refunded,invoice.paid")
        .await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["payment.succeeded", "invoice.paid"], "{events:?}");
    let payment = &events[0]["data"];
    assert_eq!(payment["payment_intent_id"], id.as_str());
    assert_eq!(
        (payment["amount"].clone(), payment["currency"].clone()),
        (json!("100.00"), json!("USD"))
    );
    assert_eq!(payment["invoice"], paid);
    assert!(
        payment.get("client_secret").is_none(),
        "no secret in an event: {payment}"
    );
    assert_eq!(events[1]["data"], paid);
}

async fn refunds_are_posted_once_in_any_order(store: Store) {
    let s = start(store, &[]).await;
    let (books, token) = (&s.books, s.token.as_str());

    // In order: paid, refunded in part (sent twice), then refunded in full,
    // then the partial refund's event again, late.
    let invoice = issued(books, token, s.customer, "100.00").await;
    let (_, first) = intent(books, token, invoice).await;
    let id = first["payment_intent_id"].as_str().unwrap().to_owned();
    let stripe = &s.saas.stripe;
    deliver(books, &stripe.succeeded_event("evt_a_paid", &id)).await;
    settled_jobs(books, token).await;
    let partial = stripe.refunded_event("evt_a_ref30", &id, 3_000);
    for _ in 0..2 {
        let (status, body) = deliver(books, &partial).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    settled_jobs(books, token).await;
    let after_partial = invoice_of(books, token, invoice).await;
    assert_eq!(
        (
            after_partial["status"].clone(),
            after_partial["paid"].clone(),
            after_partial["outstanding"].clone()
        ),
        (json!("partially_paid"), json!("70.00"), json!("30.00"))
    );
    deliver(books, &stripe.refunded_event("evt_a_ref100", &id, 10_000)).await;
    deliver(
        books,
        &stripe.refunded_event("evt_a_ref30_late", &id, 3_000),
    )
    .await;
    settled_jobs(books, token).await;
    let refunded = invoice_of(books, token, invoice).await;
    assert_eq!(
        (refunded["status"].clone(), refunded["paid"].clone()),
        (json!("issued"), json!("0.00"))
    );
    assert_eq!(
        stripe_cash_lines(books, token).await,
        vec![10_000, -3_000, -7_000]
    );

    // Out of order: the refund's event arrives before the payment's. The
    // charge it carries posts the payment first, once.
    let second = issued(books, token, s.customer, "40.00").await;
    let (_, intent_b) = intent(books, token, second).await;
    let id_b = intent_b["payment_intent_id"].as_str().unwrap().to_owned();
    deliver(books, &stripe.refunded_event("evt_b_ref", &id_b, 1_500)).await;
    deliver(books, &stripe.succeeded_event("evt_b_paid", &id_b)).await;
    let jobs = settled_jobs(books, token).await;
    assert!(jobs.iter().all(|j| j["status"] == "succeeded"), "{jobs:?}");
    let b = invoice_of(books, token, second).await;
    assert_eq!(
        (b["status"].clone(), b["paid"].clone()),
        (json!("partially_paid"), json!("25.00"))
    );
    assert_eq!(
        stripe_cash_lines(books, token).await,
        vec![10_000, -3_000, -7_000, 4_000, -1_500]
    );
    assert_eq!(books.balance(token, "1000").await, "25.00");

    // Each refund posted has its one event, with what it took back.
    let refunds: Vec<(Value, Value)> = books
        .events(token, "payment.refunded")
        .await
        .iter()
        .map(|e| {
            (
                e["data"]["payment_intent_id"].clone(),
                e["data"]["amount"].clone(),
            )
        })
        .collect();
    assert_eq!(
        refunds,
        [
            (json!(id), json!("30.00")),
            (json!(id), json!("70.00")),
            (json!(id_b), json!("15.00"))
        ]
    );
}

on_every_host!(webhooks_refuse_unsigned_forged_and_stale_events);

/// Through both hosts: the raw body and the header reach the use case as
/// sent.
async fn webhooks_refuse_unsigned_forged_and_stale_events(host: Host) {
    let door = Door {
        store: Store::Sqlite,
        host,
    };
    let s = start(door, &[]).await;
    let (books, token) = (&s.books, s.token.as_str());
    let invoice = issued(books, token, s.customer, "10.00").await;
    let (_, first) = intent(books, token, invoice).await;
    let id = first["payment_intent_id"].as_str().unwrap().to_owned();
    let payload = serde_json::to_vec(&s.saas.stripe.succeeded_event("evt_1", &id)).unwrap();
    let now = chrono::Utc::now().timestamp();

    let forged = signature(&["whsec_someone_else"], now, &payload);
    let stale = signature(&[WEBHOOK_SECRET], now - 301, &payload);
    let mut tampered = payload.clone();
    let at = tampered.len() - 2;
    tampered[at] = b' ';
    let good = signature(&[WEBHOOK_SECRET], now, &payload);
    for (what, body, header) in [
        ("unsigned", payload.clone(), None),
        ("forged", payload.clone(), Some(forged.as_str())),
        ("stale", payload.clone(), Some(stale.as_str())),
        ("tampered", tampered, Some(good.as_str())),
        ("garbage", payload.clone(), Some("t=abc,v1=zz")),
    ] {
        let (status, body) = deliver_raw(books, body, header).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["code"], "INVALID_SIGNATURE", "{what}: {body}");
    }
    let (_, jobs) = books
        .call("GET", "/api/jobs?queue=payments", Some(token), None)
        .await;
    assert_eq!(jobs, json!([]), "a refused event records nothing");
    assert_eq!(invoice_of(books, token, invoice).await["status"], "issued");

    // During a secret rotation Stripe signs with the old and the new secret.
    let rotating = signature(&["whsec_old_secret", WEBHOOK_SECRET], now, &payload);
    let (status, body) = deliver_raw(books, payload, Some(&rotating)).await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (StatusCode::OK, json!("queued")),
        "{body}"
    );
    settled_jobs(books, token).await;
    assert_eq!(invoice_of(books, token, invoice).await["status"], "paid");

    // Events that post nothing are acknowledged, so Stripe stops sending them.
    let unknown = json!({"id": "evt_unknown", "type": "payment_intent.succeeded", "created": now,
        "data": {"object": {"id": "pi_not_ours", "amount_received": 500, "currency": "usd"}}});
    let (status, body) = deliver(books, &unknown).await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (StatusCode::OK, json!("unknown_intent")),
        "{body}"
    );
    let other = json!({"id": "evt_other", "type": "customer.created", "created": now,
        "data": {"object": {"id": "cus_1"}}});
    let (status, body) = deliver(books, &other).await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (StatusCode::OK, json!("ignored")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_follow_stripes_currency_rules() {
    let s = start(Store::Sqlite, &[]).await;
    let books = &s.books;
    let token = books
        .register(&format!("yen-{}@acme.test", uuid::Uuid::new_v4()), "JPY")
        .await;
    let customer = customer(books, &token).await;
    let invoice = issued(books, &token, customer, "5000").await;
    let (status, answer) = intent(books, &token, invoice).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let at_stripe = s
        .saas
        .stripe
        .intent(answer["payment_intent_id"].as_str().unwrap());
    // JPY is zero-decimal at Stripe too: ¥5000 is 5000, not 500000.
    assert_eq!(
        (at_stripe.amount, at_stripe.currency.as_str()),
        (5_000, "jpy")
    );
    assert_eq!(answer["amount"], "5000");
    let id = at_stripe.id.clone();
    deliver(books, &s.saas.stripe.succeeded_event("evt_yen", &id)).await;
    settled_jobs(books, &token).await;
    assert_eq!(invoice_of(books, &token, invoice).await["paid"], "5000");
}

/// Without Stripe's variables, its routes say so (503, so Stripe retries
/// the webhook once an operator has set them), naming what to set, rather
/// than "retry shortly".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stripe_payment_routes_answer_503_not_configured_and_the_rest_works() {
    let books = Books::start_with(Store::Sqlite, &[("JOB_TRANSPORT", "database".to_owned())]).await;
    let token = books
        .register(
            &format!("nostripe-{}@acme.test", uuid::Uuid::new_v4()),
            "USD",
        )
        .await;
    let customer = customer(&books, &token).await;
    let invoice = issued(&books, &token, customer, "10.00").await;
    let refused = |what: &str, (status, body): (StatusCode, Value)| {
        assert_eq!(
            (status, body["code"].clone()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!("PAYMENTS_NOT_CONFIGURED")
            ),
            "{what}: {body}"
        );
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains("not configured")
                && message.contains("STRIPE_SECRET_KEY")
                && message.contains("STRIPE_WEBHOOK_SECRET"),
            "{what}: {message}"
        );
    };
    refused("payment intent", intent(&books, &token, invoice).await);
    // No secret to verify with: the webhook answers 503, and Stripe retries.
    refused(
        "webhook",
        deliver(&books, &json!({"id": "evt_1", "type": "charge.refunded"})).await,
    );
    let health = books.server.health().await;
    assert_eq!(health["dependencies"]["stripe"]["status"], "disabled");
    let (status, _) = books
        .call(
            "POST",
            &format!("/api/invoices/{invoice}/payments"),
            Some(&token),
            Some(json!({"amount": "10.00"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

/// Stripe stopped, slow past `PROVIDER_TIMEOUT_MS`, and answering 500: its
/// routes answer 503 `PAYMENTS_UNAVAILABLE` (at once once the outage is
/// known), everything else works, webhooks still land and post, health
/// shows it, and it heals by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_outages_touch_only_payment_intents() {
    let mut s = start(
        Store::Postgres,
        &[("PROVIDER_TIMEOUT_MS", "500".to_owned())],
    )
    .await;
    let (books, token) = (&s.books, s.token.as_str());
    let invoice = issued(books, token, s.customer, "60.00").await;
    let (status, first) = intent(books, token, invoice).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let id = first["payment_intent_id"].as_str().unwrap().to_owned();
    let stripe = std::sync::Arc::clone(&s.saas.stripe);
    let other = issued(books, token, s.customer, "15.00").await;

    for (what, mode) in [
        ("stopped", None),
        ("slow", Some(Mode::Slow(Duration::from_secs(3)))),
        ("failing", Some(Mode::Failing(500))),
    ] {
        match mode {
            None => s.saas.stop(),
            Some(mode) => s.saas.stripe_mode(mode),
        }
        // The first call meets the fault (or the probe already saw it).
        let started = Instant::now();
        let (status, body) = intent(books, token, other).await;
        assert_eq!(
            (status, body["code"].clone()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!("PAYMENTS_UNAVAILABLE")
            ),
            "{what}: {body}"
        );
        let first_answer = started.elapsed();
        assert!(
            first_answer < Duration::from_secs(3),
            "{what}: {first_answer:?}"
        );
        // Known down soon (a slow answer counts like a failed probe), then
        // answered at once, without calling Stripe.
        books
            .server
            .wait_for_dependency("stripe", "unavailable", Duration::from_secs(10))
            .await;
        let calls = stripe.calls.load(std::sync::atomic::Ordering::SeqCst);
        let started = Instant::now();
        let (status, _) = intent(books, token, other).await;
        let known = started.elapsed();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
        assert_eq!(
            stripe.calls.load(std::sync::atomic::Ordering::SeqCst),
            calls,
            "{what}"
        );
        eprintln!("figure: Stripe {what}: first 503 after {first_answer:?}, then {known:?}");
        let health = books.server.health().await;
        assert_eq!(
            health["dependencies"]["stripe"]["status"], "unavailable",
            "{what}: {health}"
        );
        assert_eq!(health["status"], "degraded", "{what}");
        assert!(!health.to_string().contains(STRIPE_KEY));
        // Everything else works, webhooks included.
        assert_eq!(invoice_of(books, token, invoice).await["status"], "issued");
        let (status, _) = books.call("GET", "/api/accounts", Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{what}");

        match mode {
            None => s.saas.restart().await,
            Some(_) => s.saas.stripe_mode(Mode::Normal),
        }
        let healed = books
            .server
            .wait_for_dependency("stripe", "connected", Duration::from_secs(10))
            .await;
        eprintln!("figure: Stripe {what}: connected again {healed:?} after it recovered");
    }
    s.saas.stop();
    let (status, body) = deliver(books, &stripe.succeeded_event("evt_down", &id)).await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (StatusCode::OK, json!("queued")),
        "{body}"
    );
    settled_jobs(books, token).await;
    assert_eq!(invoice_of(books, token, invoice).await["status"], "paid");
    s.saas.restart().await;
    books
        .server
        .wait_for_dependency("stripe", "connected", Duration::from_secs(10))
        .await;
    let (status, body) = intent(books, token, other).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The README's minimal key, a restricted key with PaymentIntents write
/// only, keeps payments online: the fake refuses it `/v1/balance` with
/// Stripe's own 403 (what the probe read before), yet the probe sees
/// Stripe connected and a PaymentIntent is created. The fake refuses any
/// request that does not name the pinned `Stripe-Version`, so the probe
/// and the creation both sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_key_with_payment_intents_write_keeps_payments_online() {
    let s = start(
        Store::Sqlite,
        &[("STRIPE_SECRET_KEY", RESTRICTED_KEY.to_owned())],
    )
    .await;
    let (books, token) = (&s.books, s.token.as_str());
    let refused = reqwest::Client::new()
        .get(format!("{}/v1/balance", s.saas.base()))
        .bearer_auth(RESTRICTED_KEY)
        .header("Stripe-Version", API_VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not have the required permissions"),
        "{body}"
    );

    let invoice = issued(books, token, s.customer, "42.00").await;
    let (status, answer) = intent(books, token, invoice).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let health = books.server.health().await;
    assert_eq!(
        health["dependencies"]["stripe"]["status"], "connected",
        "{health}"
    );
    assert!(!health.to_string().contains(RESTRICTED_KEY));
}

/// A key Stripe knows but refuses PaymentIntents (403, a missing
/// permission) is not an outage: the probe keeps Stripe `connected`, and a
/// PaymentIntent is answered 503 (the operator's to fix, logged as an
/// error naming the permission), never `PAYMENT_REJECTED`. A 401 stays a
/// permanent `AUTHENTICATION_FAILED` (`faults::stripe_and_plaid_outages_are_seen_and_healed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_the_permission_is_answered_503_and_stripe_stays_connected() {
    let s = start(
        Store::Sqlite,
        &[("STRIPE_SECRET_KEY", NO_INTENTS_KEY.to_owned())],
    )
    .await;
    let (books, token) = (&s.books, s.token.as_str());
    let invoice = issued(books, token, s.customer, "42.00").await;
    let (status, body) = intent(books, token, invoice).await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!("PAYMENTS_UNAVAILABLE")
        ),
        "{body}"
    );
    assert_eq!(
        s.saas
            .stripe
            .calls
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let health = books.server.health().await;
    assert_eq!(
        health["dependencies"]["stripe"]["status"], "connected",
        "{health}"
    );
}

/// Stripe keeps a key's answer, a 500 included, and replays it: the fake
/// does too. The retries of the failed request (same key) meet the replayed
/// 500 and create nothing; the request after it asks under a new key and
/// gets its intent; asked again, the same intent. `Stripe-Should-Retry:
/// false` is honoured: one call, no retries.
async fn after_a_stripe_5xx_the_next_request_asks_under_a_new_key(store: Store) {
    let s = start(store, &[]).await;
    let (books, token) = (&s.books, s.token.as_str());
    let stripe = &s.saas.stripe;
    let invoice = issued(books, token, s.customer, "100.00").await;

    stripe.fail_next_creations(1, None);
    let (status, body) = intent(books, token, invoice).await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!("PAYMENTS_UNAVAILABLE")
        ),
        "{body}"
    );
    let failed = stripe.idempotency_keys();
    assert_eq!(failed.len(), 3, "the call and its two retries: {failed:?}");
    assert!(failed.iter().all(|k| *k == failed[0]), "{failed:?}");
    assert_eq!(stripe.created.load(std::sync::atomic::Ordering::SeqCst), 0);

    books
        .server
        .wait_for_dependency("stripe", "connected", Duration::from_secs(10))
        .await;
    let (status, first) = intent(books, token, invoice).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let keys = stripe.idempotency_keys();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert_ne!(keys[3], failed[0], "a new key after the 5xx");
    assert_eq!(stripe.created.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (status, again) = intent(books, token, invoice).await;
    assert_eq!((status, &again), (StatusCode::CREATED, &first));
    assert_eq!(stripe.created.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Stripe says not to retry: one call, then a new key.
    let other = issued(books, token, s.customer, "30.00").await;
    stripe.fail_next_creations(1, Some(false));
    let before = stripe.idempotency_keys().len();
    let (status, _) = intent(books, token, other).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stripe.idempotency_keys().len(), before + 1);
    books
        .server
        .wait_for_dependency("stripe", "connected", Duration::from_secs(10))
        .await;
    let (status, body) = intent(books, token, other).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let keys = stripe.idempotency_keys();
    assert_ne!(keys[keys.len() - 1], keys[before]);
    assert_eq!(stripe.created.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// Twin requests for one invoice share one key: while the first runs at
/// Stripe, the second is answered `409 idempotency_key_in_use`, waits and
/// asks again, and both get the one intent (not `PAYMENT_REJECTED`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_requests_wait_out_idempotency_key_in_use_and_share_one_intent() {
    let s = start(Store::Postgres, &[]).await;
    let (books, token) = (&s.books, s.token.as_str());
    let stripe = &s.saas.stripe;
    let invoice = issued(books, token, s.customer, "75.00").await;
    stripe.set_create_delay(Duration::from_millis(400));
    let (a, b) = tokio::join!(intent(books, token, invoice), intent(books, token, invoice));
    assert_eq!(a.0, StatusCode::CREATED, "{}", a.1);
    assert_eq!(b.0, StatusCode::CREATED, "{}", b.1);
    assert_eq!(a.1["payment_intent_id"], b.1["payment_intent_id"]);
    assert!(
        stripe.keys_in_use.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the twins met at Stripe"
    );
    assert_eq!(stripe.created.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A refund that fails after it was posted (Stripe sends both
/// `charge.refund.updated` and `refund.updated`, and retries them) is given
/// back once: the cash comes back, the invoice is paid again; a later
/// refund, whose charge total Stripe lowered by the failed one, posts as
/// usual. A refund update that did not fail posts nothing.
async fn a_refund_that_fails_is_reversed_once(store: Store) {
    let s = start(store, &[]).await;
    let (books, token) = (&s.books, s.token.as_str());
    let stripe = &s.saas.stripe;
    let invoice = issued(books, token, s.customer, "100.00").await;
    let (_, first) = intent(books, token, invoice).await;
    let id = first["payment_intent_id"].as_str().unwrap().to_owned();
    deliver(books, &stripe.succeeded_event("evt_f_paid", &id)).await;
    deliver(books, &stripe.refunded_event("evt_f_ref30", &id, 3_000)).await;
    settled_jobs(books, token).await;
    assert_eq!(
        invoice_of(books, token, invoice).await["status"],
        "partially_paid"
    );

    let refund = crate::support::saas::stripe::refund_id(&stripe.intent(&id), 3_000);
    let mut succeeded =
        stripe.refund_failed_event("evt_f_ok", "refund.updated", &refund, &id, 3_000);
    succeeded["data"]["object"]["status"] = json!("succeeded");
    let (status, body) = deliver(books, &succeeded).await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (StatusCode::OK, json!("ignored")),
        "{body}"
    );
    let failed_charge =
        stripe.refund_failed_event("evt_f_fail1", "charge.refund.updated", &refund, &id, 3_000);
    let failed_refund =
        stripe.refund_failed_event("evt_f_fail2", "refund.updated", &refund, &id, 3_000);
    let deliveries = [
        &failed_charge,
        &failed_refund,
        &failed_charge,
        &failed_refund,
    ]
    .map(|event| deliver(books, event));
    for (status, body) in futures::future::join_all(deliveries).await {
        assert_eq!(
            (status, body["outcome"].clone()),
            (StatusCode::OK, json!("queued")),
            "{body}"
        );
    }
    let jobs = settled_jobs(books, token).await;
    assert!(jobs.iter().all(|j| j["status"] == "succeeded"), "{jobs:?}");
    assert_eq!(
        stripe_cash_lines(books, token).await,
        vec![10_000, -3_000, 3_000]
    );
    let paid = invoice_of(books, token, invoice).await;
    assert_eq!(
        (paid["status"].clone(), paid["paid"].clone()),
        (json!("paid"), json!("100.00"))
    );
    assert_eq!(books.balance(token, "1000").await, "100.00");

    // A new refund of 20.00: the charge's total is 20.00, not 50.00.
    deliver(books, &stripe.refunded_event("evt_f_ref20", &id, 2_000)).await;
    settled_jobs(books, token).await;
    assert_eq!(
        stripe_cash_lines(books, token).await,
        vec![10_000, -3_000, 3_000, -2_000]
    );
    assert_eq!(invoice_of(books, token, invoice).await["paid"], "80.00");
}

/// Every kind of answer the fake Stripe gives (objects, lists, errors:
/// 400, 401, 403, 409, a saved 500 and its replay) and every event it
/// makes is checked against Stripe's published schemas
/// (`support/saas/schemas/stripe.json`, trimmed from `github:stripe/openapi`
/// `openapi/spec3.json`); so are the answers of every test that uses the
/// fake, when it is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_stripe_answers_as_stripes_published_schemas_say() {
    let saas = FakeSaas::start().await;
    let stripe = &saas.stripe;
    let client = reqwest::Client::new();
    let base = saas.base();
    let call = |method: reqwest::Method, path: &str, key: &str, idempotency: Option<&str>| {
        let mut request = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(key)
            .header("Stripe-Version", API_VERSION)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("amount=500&currency=usd&metadata[invoice_id]=1");
        if let Some(key) = idempotency {
            request = request.header("Idempotency-Key", key);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    use reqwest::Method;
    let (status, created) = call(Method::POST, "/v1/payment_intents", STRIPE_KEY, Some("k1")).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (status, replayed) =
        call(Method::POST, "/v1/payment_intents", STRIPE_KEY, Some("k1")).await;
    assert_eq!((status, &replayed), (StatusCode::OK, &created));
    for (method, path, key, expected) in [
        (
            Method::GET,
            "/v1/payment_intents?limit=1",
            RESTRICTED_KEY,
            StatusCode::OK,
        ),
        (Method::GET, "/v1/balance", STRIPE_KEY, StatusCode::OK),
        (
            Method::GET,
            "/v1/balance",
            RESTRICTED_KEY,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/v1/balance",
            "sk_test_unknown",
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::GET,
            "/v1/payment_intents",
            NO_INTENTS_KEY,
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (status, body) = call(method, path, key, None).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    // A request that does not name the pinned version is refused.
    let unversioned = client
        .get(format!("{base}/v1/payment_intents"))
        .bearer_auth(STRIPE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status(), StatusCode::BAD_REQUEST);
    stripe.fail_next_creations(1, Some(false));
    for _ in 0..2 {
        let (status, body) =
            call(Method::POST, "/v1/payment_intents", STRIPE_KEY, Some("k2")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(body["error"]["type"], "api_error");
    }
    stripe.set_create_delay(Duration::from_millis(300));
    let (first, twin) = tokio::join!(
        call(Method::POST, "/v1/payment_intents", STRIPE_KEY, Some("k3")),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            call(Method::POST, "/v1/payment_intents", STRIPE_KEY, Some("k3")).await
        }
    );
    assert_eq!(first.0, StatusCode::OK);
    assert_eq!(twin.0, StatusCode::CONFLICT, "{}", twin.1);
    assert_eq!(twin.1["error"]["code"], "idempotency_key_in_use");
    let id = created["id"].as_str().unwrap();
    stripe.succeeded_event("evt_s1", id);
    stripe.refunded_event("evt_s2", id, 200);
    stripe.refund_failed_event("evt_s3", "charge.refund.updated", "re_1", id, 200);
    stripe.refund_failed_event("evt_s4", "refund.updated", "re_1", id, 200);
    let checked = stripe.assert_schemas_held();
    assert_eq!(checked, 16, "answers and events checked");
}

/// Stripe's money moved whatever the books say: a payment whose day is in
/// a locked period is posted on the first open day, its own day kept in
/// the entry's metadata, and the invoice is paid; a payment typed in by a
/// user for that day is refused instead.
async fn a_card_payment_in_a_locked_period_is_posted_on_the_first_open_day(store: Store) {
    let s = start(store, &[]).await;
    let (books, token) = (&s.books, s.token.as_str());
    let invoice = issued(books, token, s.customer, "42.00").await;
    let (status, intent) = intent(books, token, invoice).await;
    assert_eq!(status, StatusCode::CREATED, "{intent}");
    let today = chrono::Utc::now().date_naive();
    let lock = today + chrono::Days::new(30);
    let (status, settings) = books
        .call(
            "PUT",
            "/api/settings",
            Some(token),
            Some(json!({"lock_date": lock.to_string()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let (status, typed) = books
        .call(
            "POST",
            &format!("/api/invoices/{invoice}/payments"),
            Some(token),
            Some(json!({"amount": "1.00", "date": today.to_string()})),
        )
        .await;
    assert_eq!(
        (status, typed["code"].as_str()),
        (StatusCode::CONFLICT, Some("PERIOD_LOCKED")),
        "{typed}"
    );

    let id = intent["payment_intent_id"].as_str().unwrap();
    let (status, body) = deliver(books, &s.saas.stripe.succeeded_event("evt_locked", id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jobs = settled_jobs(books, token).await;
    assert!(jobs.iter().all(|j| j["status"] == "succeeded"), "{jobs:?}");
    assert_eq!(invoice_of(books, token, invoice).await["status"], "paid");
    let cash = books
        .list("/api/journal-entries?account=1000&limit=500", token)
        .await;
    let stripe: Vec<&Value> = cash
        .iter()
        .filter(|e| e["memo"].as_str().unwrap_or_default().starts_with("Stripe"))
        .collect();
    assert_eq!(stripe.len(), 1, "{cash:?}");
    let first_open = lock + chrono::Days::new(1);
    assert_eq!(stripe[0]["date"], first_open.to_string());
    assert_eq!(stripe[0]["metadata"]["original_date"], today.to_string());
    assert_eq!(stripe_cash_lines(books, token).await, vec![4_200]);
}
