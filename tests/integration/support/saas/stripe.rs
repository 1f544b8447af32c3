//! The fake Stripe: form-encoded bodies, `Authorization: Bearer` secret
//! keys, `Idempotency-Key` replays and Stripe's error objects; and the
//! events and `Stripe-Signature` headers Stripe's webhooks send.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

/// The secret key the fake Stripe accepts.
pub const STRIPE_KEY: &str = "sk_test_s3cr3t_0123456789";
/// The webhook signing secret the tests configure.
pub const WEBHOOK_SECRET: &str = "whsec_s3cr3t_test_signing_42";

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
}

/// The fake Stripe's state.
#[derive(Debug, Default)]
pub struct FakeStripe {
    intents: Mutex<Vec<Intent>>,
    /// Idempotency-Key -> (the request's form, the answer).
    replays: Mutex<HashMap<String, (String, Value)>>,
    /// `POST /v1/payment_intents` calls that created an intent.
    pub created: AtomicUsize,
    /// `POST /v1/payment_intents` calls, replays included.
    pub calls: AtomicUsize,
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

    /// `payment_intent.succeeded` for all of the intent's amount.
    pub fn succeeded_event(&self, event_id: &str, intent_id: &str) -> Value {
        let intent = self.intent(intent_id);
        json!({
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": chrono::Utc::now().timestamp(),
            "livemode": false,
            "pending_webhooks": 1,
            "type": "payment_intent.succeeded",
            "data": {"object": {
                "id": intent.id,
                "object": "payment_intent",
                "amount": intent.amount,
                "amount_received": intent.amount,
                "currency": intent.currency,
                "status": "succeeded",
                "latest_charge": format!("ch_{}", &intent.id[3..]),
                "metadata": intent.metadata,
            }},
        })
    }

    /// `charge.refunded` of the intent's charge, with its refunded total.
    pub fn refunded_event(&self, event_id: &str, intent_id: &str, amount_refunded: i64) -> Value {
        let intent = self.intent(intent_id);
        json!({
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": chrono::Utc::now().timestamp(),
            "livemode": false,
            "pending_webhooks": 1,
            "type": "charge.refunded",
            "data": {"object": {
                "id": format!("ch_{}", &intent.id[3..]),
                "object": "charge",
                "amount": intent.amount,
                "amount_captured": intent.amount,
                "amount_refunded": amount_refunded,
                "currency": intent.currency,
                "payment_intent": intent.id,
                "paid": true,
                "refunded": amount_refunded == intent.amount,
                "metadata": {},
            }},
        })
    }
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

/// Stripe's error object.
pub fn error(status: StatusCode, error_type: &str, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"error": {"message": message, "type": error_type}})),
    )
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {STRIPE_KEY}"))
}

fn unauthorized() -> (StatusCode, Json<Value>) {
    error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "Invalid API Key provided: sk_test_****",
    )
}

async fn balance(headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return unauthorized();
    }
    (
        StatusCode::OK,
        Json(
            json!({"object": "balance", "available": [{"amount": 0, "currency": "usd"}], "livemode": false, "pending": []}),
        ),
    )
}

async fn create_intent(
    State(stripe): State<Arc<FakeStripe>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    stripe.calls.fetch_add(1, Ordering::SeqCst);
    if !authorized(&headers) {
        return unauthorized();
    }
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let Ok(form) = serde_urlencoded::from_str::<Vec<(String, String)>>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Invalid form body.",
        );
    };
    if !is_form {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Send a form body.",
        );
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(key) = &key
        && let Some((earlier, answer)) = stripe.replays.lock().unwrap().get(key)
    {
        if *earlier != body {
            return error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            );
        }
        return (StatusCode::OK, Json(answer.clone()));
    }
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let Some(amount) = field("amount")
        .and_then(|a| a.parse::<i64>().ok())
        .filter(|a| *a > 0)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "This value must be greater than or equal to 1.",
        );
    };
    let Some(currency) = field("currency") else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Missing required param: currency.",
        );
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
    };
    let answer = json!({
        "id": intent.id,
        "object": "payment_intent",
        "amount": intent.amount,
        "amount_received": 0,
        "currency": intent.currency,
        "client_secret": intent.client_secret,
        "status": "requires_payment_method",
        "metadata": intent.metadata,
        "livemode": false,
    });
    stripe.intents.lock().unwrap().push(intent);
    stripe.created.fetch_add(1, Ordering::SeqCst);
    if let Some(key) = key {
        stripe
            .replays
            .lock()
            .unwrap()
            .insert(key, (body, answer.clone()));
    }
    (StatusCode::OK, Json(answer))
}

/// The fake Stripe's routes.
pub fn routes(state: Arc<FakeStripe>) -> Router {
    Router::new()
        .route("/v1/balance", get(balance))
        .route("/v1/payment_intents", post(create_intent))
        .with_state(state)
}
