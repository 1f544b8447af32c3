//! The fake Plaid: `POST` JSON endpoints authenticated by `client_id` and
//! `secret` in the body, errors as Plaid's error object.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

/// The client id and secret the fake Plaid accepts.
pub const PLAID_CLIENT: (&str, &str) = ("fake-client-id", "fake-plaid-secret");

/// The fake Plaid's state.
#[derive(Debug, Default)]
pub struct FakePlaid {}

/// Plaid's error object.
pub fn error(
    status: StatusCode,
    error_type: &str,
    code: &str,
    message: &str,
) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({
            "error_type": error_type,
            "error_code": code,
            "error_message": message,
            "display_message": null,
            "request_id": "fake",
        })),
    )
}

fn authorized(body: &Value) -> bool {
    body["client_id"] == PLAID_CLIENT.0 && body["secret"] == PLAID_CLIENT.1
}

async fn institutions(Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    if authorized(&body) {
        (
            StatusCode::OK,
            Json(json!({"institutions": [], "total": 0, "request_id": "fake"})),
        )
    } else {
        error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "INVALID_API_KEYS",
            "invalid client_id or secret provided",
        )
    }
}

/// The fake Plaid's routes.
pub fn routes(_state: Arc<FakePlaid>) -> Router {
    Router::new().route("/institutions/get", post(institutions))
}
