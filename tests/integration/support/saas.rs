//! Fake Stripe and Plaid on loopback, speaking the parts of their real wire
//! formats that AccuBooks uses, so probes run against real HTTP.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The secret key the fake Stripe accepts.
pub const STRIPE_KEY: &str = "sk_test_fake_0123456789";
/// The client id and secret the fake Plaid accepts.
pub const PLAID_CLIENT: (&str, &str) = ("fake-client-id", "fake-plaid-secret");

async fn balance(headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {STRIPE_KEY}"));
    if authorized {
        (
            StatusCode::OK,
            Json(
                json!({"object": "balance", "available": [{"amount": 0, "currency": "usd"}], "livemode": false, "pending": []}),
            ),
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"error": {"message": "Invalid API Key provided: sk_test_****", "type": "invalid_request_error"}}),
            ),
        )
    }
}

async fn institutions(Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    if body["client_id"] == PLAID_CLIENT.0 && body["secret"] == PLAID_CLIENT.1 {
        (
            StatusCode::OK,
            Json(json!({"institutions": [], "total": 0, "request_id": "fake"})),
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error_type": "INVALID_INPUT",
                "error_code": "INVALID_API_KEYS",
                "error_message": "invalid client_id or secret provided",
                "display_message": null,
                "request_id": "fake",
            })),
        )
    }
}

/// Both fakes on one loopback port; stoppable and restartable on that port.
pub struct FakeSaas {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl FakeSaas {
    /// Starts on a free port.
    pub async fn start() -> FakeSaas {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fake = FakeSaas { addr, task: None };
        fake.serve(listener);
        fake
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/v1/balance", get(balance))
            .route("/institutions/get", post(institutions));
        self.task = Some(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    /// `http://127.0.0.1:PORT`, the API base for both.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops answering: connections are refused.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Answers again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
    }
}

impl Drop for FakeSaas {
    fn drop(&mut self) {
        self.stop();
    }
}
