//! The fake Stripe: form-encoded bodies, `Authorization: Bearer` keys (a
//! secret key, and a restricted key allowed PaymentIntents only, refused
//! elsewhere with Stripe's 403), the pinned `Stripe-Version`,
//! `Idempotency-Key` replays of any saved answer (a 500 included, as
//! Stripe keeps it for 24 hours), `409 idempotency_key_in_use` while a twin
//! request with the key runs, and Stripe's error objects; and the events
//! and `Stripe-Signature` headers Stripe's webhooks send. Every answer it
//! gives and every event it makes is checked against Stripe's published
//! schemas (`schemas/stripe.json`); [`FakeStripe::assert_schemas_held`]
//! says where one was not.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use super::schema::Schemas;

/// The secret key the fake Stripe accepts.
pub const STRIPE_KEY: &str = "sk_test_s3cr3t_0123456789";
/// A restricted key with only PaymentIntents write, the README's minimal
/// key: other resources (`/v1/balance`) answer Stripe's 403.
pub const RESTRICTED_KEY: &str = "rk_test_r3str1ct3d_0123456789";
/// A restricted key without PaymentIntents permissions: every resource
/// here answers Stripe's 403.
pub const NO_INTENTS_KEY: &str = "rk_test_n0_1nt3nts_0123456789";
/// The webhook signing secret the tests configure.
pub const WEBHOOK_SECRET: &str = "whsec_s3cr3t_test_signing_42";
/// The Stripe API version the fake speaks (that of its schemas); a request
/// naming no other is refused, as an account's older default would answer
/// in another shape.
pub const API_VERSION: &str = "2020-08-27";

/// A PaymentIntent the fake created.
#[derive(Debug, Clone)]
pub struct Intent {
    /// `pi_…`.
    pub id: String,
    /// Stripe minor units.
    pub amount: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// `pi_…_secret_…`.
    pub client_secret: String,
    /// `metadata[…]` as sent.
    pub metadata: HashMap<String, String>,
    /// Unix seconds.
    pub created: i64,
}

/// An answer saved under an `Idempotency-Key`, replayed to every later
/// request with that key.
#[derive(Debug, Clone)]
struct Saved {
    /// The request's form: another form under the key is refused.
    body: String,
    status: StatusCode,
    answer: Value,
    should_retry: Option<bool>,
}

/// The fake Stripe's state.
#[derive(Debug, Default)]
pub struct FakeStripe {
    intents: Mutex<Vec<Intent>>,
    replays: Mutex<HashMap<String, Saved>>,
    in_flight: Mutex<HashSet<String>>,
    /// Creations to fail with a 500 (saved under their key), each with the
    /// `Stripe-Should-Retry` it sends.
    failures: Mutex<VecDeque<Option<bool>>>,
    create_delay: Mutex<Duration>,
    /// The `Idempotency-Key` of each `POST /v1/payment_intents`, in order.
    keys: Mutex<Vec<String>>,
    /// `POST /v1/payment_intents` calls that created an intent.
    pub created: AtomicUsize,
    /// `POST /v1/payment_intents` calls, replays included.
    pub calls: AtomicUsize,
    /// `409 idempotency_key_in_use` answers.
    pub keys_in_use: AtomicUsize,
    /// Answers and events checked against the schemas.
    checked: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

impl FakeStripe {
    /// An intent it created.
    pub fn intent(&self, id: &str) -> Intent {
        let intents = self.intents.lock().unwrap();
        intents
            .iter()
            .find(|i| i.id == id)
            .cloned()
            .expect("no such intent")
    }

    /// The next `count` creations run and fail with a 500, which is saved
    /// under their key as Stripe does, sending `Stripe-Should-Retry` when
    /// `should_retry` is set.
    pub fn fail_next_creations(&self, count: usize, should_retry: Option<bool>) {
        let mut failures = self.failures.lock().unwrap();
        failures.extend(std::iter::repeat_n(should_retry, count));
    }

    /// How long each creation runs (a twin request with its key meanwhile
    /// is answered 409 `idempotency_key_in_use`).
    pub fn set_create_delay(&self, delay: Duration) {
        *self.create_delay.lock().unwrap() = delay;
    }

    /// The `Idempotency-Key` of each creation request, in order.
    pub fn idempotency_keys(&self) -> Vec<String> {
        self.keys.lock().unwrap().clone()
    }

    /// Panics naming each answer or event of this fake that Stripe's
    /// published schema refuses; answers how many were checked.
    pub fn assert_schemas_held(&self) -> usize {
        let violations = self.violations.lock().unwrap();
        assert!(
            violations.is_empty(),
            "the fake Stripe answered what Stripe's schemas refuse:\n{}",
            violations.join("\n")
        );
        self.checked.load(Ordering::SeqCst)
    }

    fn record(&self, errors: Vec<String>) {
        self.checked.fetch_add(1, Ordering::SeqCst);
        self.violations.lock().unwrap().extend(errors);
    }

    /// `body` as `status`, checked against the schema `name`.
    fn answer(&self, name: &str, status: StatusCode, body: Value) -> Response {
        self.record(Schemas::stripe().check(name, &body));
        (status, Json(body)).into_response()
    }

    /// Stripe's error object, checked.
    fn error(&self, status: StatusCode, body: Value) -> Response {
        self.answer("error", status, body)
    }

    fn event(&self, event_id: &str, kind: &str, object: Value) -> Value {
        let event = json!({
            "id": event_id,
            "object": "event",
            "api_version": API_VERSION,
            "created": chrono::Utc::now().timestamp(),
            "livemode": false,
            "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "type": kind,
            "data": {"object": object},
        });
        self.record(Schemas::stripe().check_event(&event));
        event
    }

    /// `payment_intent.succeeded` for all of the intent's amount.
    pub fn succeeded_event(&self, event_id: &str, intent_id: &str) -> Value {
        let intent = self.intent(intent_id);
        let object = payment_intent(&intent, "succeeded", intent.amount);
        self.event(event_id, "payment_intent.succeeded", object)
    }

    /// `charge.refunded` of the intent's charge, with its refunded total
    /// (one refund `re_<charge>_<total>` of it).
    pub fn refunded_event(&self, event_id: &str, intent_id: &str, amount_refunded: i64) -> Value {
        let intent = self.intent(intent_id);
        let refund = refund(
            &refund_id(&intent, amount_refunded),
            &intent,
            amount_refunded,
            "succeeded",
        );
        self.event(
            event_id,
            "charge.refunded",
            charge(&intent, amount_refunded, vec![refund]),
        )
    }

    /// A refund of the intent's charge that failed (`status: failed`), as
    /// `kind` (`charge.refund.updated` or `refund.updated`) carries it.
    pub fn refund_failed_event(
        &self,
        event_id: &str,
        kind: &str,
        refund_id: &str,
        intent_id: &str,
        amount: i64,
    ) -> Value {
        let intent = self.intent(intent_id);
        let mut object = refund(refund_id, &intent, amount, "failed");
        object["failure_reason"] = json!("expired_or_canceled_card");
        self.event(event_id, kind, object)
    }
}

/// The id of the refund [`FakeStripe::refunded_event`] reports.
pub fn refund_id(intent: &Intent, amount_refunded: i64) -> String {
    format!("re_{}_{amount_refunded}", &intent.id[3..])
}

fn payment_intent(intent: &Intent, status: &str, received: i64) -> Value {
    json!({
        "id": intent.id,
        "object": "payment_intent",
        "amount": intent.amount,
        "amount_capturable": 0,
        "amount_received": received,
        "automatic_payment_methods": {"enabled": true},
        "capture_method": "automatic",
        "client_secret": intent.client_secret,
        "confirmation_method": "automatic",
        "created": intent.created,
        "currency": intent.currency,
        "livemode": false,
        "metadata": intent.metadata,
        "payment_method_types": ["card"],
        "status": status,
    })
}

fn charge(intent: &Intent, amount_refunded: i64, refunds: Vec<Value>) -> Value {
    let id = format!("ch_{}", &intent.id[3..]);
    json!({
        "id": id,
        "object": "charge",
        "amount": intent.amount,
        "amount_captured": intent.amount,
        "amount_refunded": amount_refunded,
        "billing_details": {"address": null, "email": null, "name": null, "phone": null},
        "captured": true,
        "created": intent.created,
        "currency": intent.currency,
        "disputed": false,
        "livemode": false,
        "metadata": {},
        "paid": true,
        "payment_intent": intent.id,
        "refunded": amount_refunded == intent.amount,
        "refunds": {"object": "list", "data": refunds, "has_more": false,
            "url": format!("/v1/charges/{id}/refunds")},
        "status": "succeeded",
    })
}

fn refund(id: &str, intent: &Intent, amount: i64, status: &str) -> Value {
    json!({
        "id": id,
        "object": "refund",
        "amount": amount,
        "charge": format!("ch_{}", &intent.id[3..]),
        "created": chrono::Utc::now().timestamp(),
        "currency": intent.currency,
        "metadata": {},
        "payment_intent": intent.id,
        "status": status,
    })
}

/// A `Stripe-Signature` header for `payload` signed at `timestamp` with
/// each of `secrets` (several during a secret rotation), as Stripe signs:
/// HMAC-SHA256 of `<timestamp>.<payload>`.
pub fn signature(secrets: &[&str], timestamp: i64, payload: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(payload);
        header.push_str(&format!(",v1={}", hex::encode(mac.finalize().into_bytes())));
    }
    header
}

/// Which key a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Secret,
    Restricted,
    NoIntents,
}

/// The request's key, or the answer refusing it: Stripe's 401 for an
/// unknown key, and a 400 for a request that does not name the pinned
/// `Stripe-Version` (the fake speaks only that one).
fn admit(stripe: &FakeStripe, headers: &HeaderMap) -> Result<Key, Box<Response>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let key = match header("authorization") {
        Some(value) if value == format!("Bearer {STRIPE_KEY}") => Key::Secret,
        Some(value) if value == format!("Bearer {RESTRICTED_KEY}") => Key::Restricted,
        Some(value) if value == format!("Bearer {NO_INTENTS_KEY}") => Key::NoIntents,
        _ => {
            return Err(Box::new(stripe.error(
                StatusCode::UNAUTHORIZED,
                json!({"error": {"type": "invalid_request_error",
                    "message": "Invalid API Key provided: sk_test_****6789"}}),
            )));
        }
    };
    if header("stripe-version") != Some(API_VERSION) {
        return Err(Box::new(stripe.error(
            StatusCode::BAD_REQUEST,
            json!({"error": {"type": "invalid_request_error",
                "message": format!("This fake Stripe speaks only Stripe-Version {API_VERSION}; \
                    the request named {:?}.", header("stripe-version"))}}),
        )));
    }
    Ok(key)
}

async fn balance(State(stripe): State<Arc<FakeStripe>>, headers: HeaderMap) -> Response {
    match admit(&stripe, &headers) {
        Err(refused) => *refused,
        Ok(Key::Restricted | Key::NoIntents) => forbidden(&stripe, "rak_balance_read"),
        Ok(Key::Secret) => stripe.answer(
            "balance",
            StatusCode::OK,
            json!({"object": "balance", "available": [{"amount": 0, "currency": "usd"}],
                "livemode": false, "pending": [{"amount": 0, "currency": "usd"}]}),
        ),
    }
}

/// Stripe's answer to a restricted key without `permission`.
fn forbidden(stripe: &FakeStripe, permission: &str) -> Response {
    stripe.error(
        StatusCode::FORBIDDEN,
        json!({"error": {"type": "invalid_request_error",
            "message": format!("The provided key 'rk_test_*********************6789' does not have \
                the required permissions for this endpoint on account 'acct_1FakeAccount0001'. \
                Having the '{permission}' permission would allow this request to continue.")}}),
    )
}

async fn list_intents(State(stripe): State<Arc<FakeStripe>>, headers: HeaderMap) -> Response {
    match admit(&stripe, &headers) {
        Err(refused) => return *refused,
        Ok(Key::NoIntents) => return forbidden(&stripe, "rak_payment_intent_read"),
        Ok(_) => {}
    }
    let data: Vec<Value> = stripe
        .intents
        .lock()
        .unwrap()
        .iter()
        .rev()
        .take(1)
        .map(|i| payment_intent(i, "requires_payment_method", 0))
        .collect();
    let more = stripe.intents.lock().unwrap().len() > data.len();
    stripe.answer(
        "payment_intent_list",
        StatusCode::OK,
        json!({"object": "list", "data": data, "has_more": more, "url": "/v1/payment_intents"}),
    )
}

fn invalid(stripe: &FakeStripe, message: &str) -> Response {
    stripe.error(
        StatusCode::BAD_REQUEST,
        json!({"error": {"type": "invalid_request_error", "message": message}}),
    )
}

/// A saved answer, as Stripe replays it.
fn replay(saved: &Saved) -> Response {
    let mut response = (saved.status, Json(saved.answer.clone())).into_response();
    let headers = response.headers_mut();
    headers.insert("idempotent-replayed", "true".parse().unwrap());
    if let Some(advice) = saved.should_retry {
        headers.insert("stripe-should-retry", advice.to_string().parse().unwrap());
    }
    response
}

async fn create_intent(
    State(stripe): State<Arc<FakeStripe>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    stripe.calls.fetch_add(1, Ordering::SeqCst);
    match admit(&stripe, &headers) {
        Err(refused) => return *refused,
        Ok(Key::NoIntents) => return forbidden(&stripe, "rak_payment_intent_write"),
        Ok(_) => {}
    }
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let Ok(form) = serde_urlencoded::from_str::<Vec<(String, String)>>(&body) else {
        return invalid(&stripe, "Invalid form body.");
    };
    if !is_form {
        return invalid(&stripe, "Send a form body.");
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(key) = &key {
        stripe.keys.lock().unwrap().push(key.clone());
        let saved = stripe.replays.lock().unwrap().get(key).cloned();
        if let Some(saved) = saved {
            if saved.body != body {
                return stripe.error(
                    StatusCode::BAD_REQUEST,
                    json!({"error": {"type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the same \
                            parameters they were first used with."}}),
                );
            }
            stripe.record(Schemas::stripe().check(
                if saved.status.is_success() {
                    "payment_intent"
                } else {
                    "error"
                },
                &saved.answer,
            ));
            return replay(&saved);
        }
        if !stripe.in_flight.lock().unwrap().insert(key.clone()) {
            stripe.keys_in_use.fetch_add(1, Ordering::SeqCst);
            return stripe.error(
                StatusCode::CONFLICT,
                json!({"error": {"type": "invalid_request_error", "code": "idempotency_key_in_use",
                    "message": format!("There is currently another in-progress request using this \
                        Idempotent Key (that probably means you submitted twice, and the other \
                        request is still going through): {key}. Please try again later.")}}),
            );
        }
    }
    let delay = *stripe.create_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let (status, answer, should_retry) = run_creation(&stripe, &form);
    if let Some(key) = key {
        stripe.replays.lock().unwrap().insert(
            key.clone(),
            Saved {
                body,
                status,
                answer: answer.clone(),
                should_retry,
            },
        );
        stripe.in_flight.lock().unwrap().remove(&key);
    }
    let name = if status.is_success() {
        "payment_intent"
    } else {
        "error"
    };
    let mut response = stripe.answer(name, status, answer);
    if let Some(advice) = should_retry {
        response
            .headers_mut()
            .insert("stripe-should-retry", advice.to_string().parse().unwrap());
    }
    response
}

/// Runs one creation: its status, answer and `Stripe-Should-Retry`.
fn run_creation(
    stripe: &FakeStripe,
    form: &[(String, String)],
) -> (StatusCode, Value, Option<bool>) {
    let refused = |message: &str| {
        (
            StatusCode::BAD_REQUEST,
            json!({"error": {"type": "invalid_request_error", "message": message}}),
            None,
        )
    };
    if let Some(should_retry) = stripe.failures.lock().unwrap().pop_front() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"type": "api_error", "message": "An unknown error occurred."}}),
            should_retry,
        );
    }
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let Some(amount) = field("amount")
        .and_then(|a| a.parse::<i64>().ok())
        .filter(|a| *a > 0)
    else {
        return refused("This value must be greater than or equal to 1.");
    };
    let Some(currency) = field("currency") else {
        return refused("Missing required param: currency.");
    };
    let metadata: HashMap<String, String> = form
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((name.to_owned(), v.clone()))
        })
        .collect();
    let id = format!("pi_{}", uuid::Uuid::new_v4().simple());
    let intent = Intent {
        client_secret: format!("{id}_secret_{}", uuid::Uuid::new_v4().simple()),
        id,
        amount,
        currency,
        metadata,
        created: chrono::Utc::now().timestamp(),
    };
    let mut answer = payment_intent(&intent, "requires_payment_method", 0);
    answer["description"] = json!(field("description"));
    stripe.intents.lock().unwrap().push(intent);
    stripe.created.fetch_add(1, Ordering::SeqCst);
    (StatusCode::OK, answer, None)
}

/// The fake Stripe's routes.
pub fn routes(state: Arc<FakeStripe>) -> Router {
    Router::new()
        .route("/v1/balance", get(balance))
        .route("/v1/payment_intents", get(list_intents).post(create_intent))
        .with_state(state)
}
