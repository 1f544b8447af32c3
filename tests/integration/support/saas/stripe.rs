//! The fake Stripe: form-encoded bodies, `Authorization: Bearer` secret
//! keys, `Idempotency-Key` headers and Stripe's error objects.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};

/// The secret key the fake Stripe accepts.
pub const STRIPE_KEY: &str = "sk_test_fake_0123456789";

/// The fake Stripe's state.
#[derive(Debug, Default)]
pub struct FakeStripe {}

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

async fn balance(headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided: sk_test_****",
        );
    }
    (
        StatusCode::OK,
        Json(
            json!({"object": "balance", "available": [{"amount": 0, "currency": "usd"}], "livemode": false, "pending": []}),
        ),
    )
}

/// The fake Stripe's routes.
pub fn routes(_state: Arc<FakeStripe>) -> Router {
    Router::new().route("/v1/balance", get(balance))
}
