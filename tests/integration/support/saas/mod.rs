//! Fake Stripe and Plaid on loopback, speaking the parts of their real wire
//! formats that AccuBooks uses, so every call runs over real HTTP. One fake
//! serves both (Stripe's paths start with `/v1/`); each provider can be
//! made slow or failing while the other keeps answering.

pub mod plaid;
pub mod schema;
pub mod stripe;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

pub use plaid::PLAID_CLIENT;
pub use stripe::{STRIPE_KEY, WEBHOOK_SECRET};

/// How a fake provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As the real API would.
    Normal,
    /// Only after this long (past the server's `PROVIDER_TIMEOUT_MS`).
    Slow(Duration),
    /// With this 5xx status and the provider's error body.
    Failing(u16),
}

/// What the tests control and read of one fake provider.
#[derive(Debug)]
pub struct Provider {
    mode: Mutex<Mode>,
}

impl Provider {
    fn new() -> Arc<Provider> {
        Arc::new(Provider {
            mode: Mutex::new(Mode::Normal),
        })
    }

    /// Sets how it answers from now on.
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }
}

/// The modes of both providers, read by the middleware.
#[derive(Clone)]
struct Modes {
    stripe: Arc<Provider>,
    plaid: Arc<Provider>,
}

async fn apply_mode(State(modes): State<Modes>, request: Request, next: Next) -> Response {
    let is_stripe = request.uri().path().starts_with("/v1/");
    let provider = if is_stripe {
        &modes.stripe
    } else {
        &modes.plaid
    };
    match provider.mode() {
        Mode::Normal => next.run(request).await,
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Mode::Failing(status) => {
            let status = StatusCode::from_u16(status).unwrap();
            let body = if is_stripe {
                serde_json::json!({"error": {"type": "api_error", "message": "An unknown error occurred."}})
            } else {
                serde_json::json!({
                    "error_type": "API_ERROR", "error_code": "INTERNAL_SERVER_ERROR",
                    "error_message": "an unexpected error occurred", "display_message": null,
                    "request_id": "fake",
                })
            };
            (status, axum::Json(body)).into_response()
        }
    }
}

/// Both fakes on one loopback port; stoppable and restartable on that port.
pub struct FakeSaas {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
    /// The fake Stripe's state and controls.
    pub stripe: Arc<stripe::FakeStripe>,
    /// The fake Plaid's state and controls.
    pub plaid: Arc<plaid::FakePlaid>,
    modes: Modes,
}

impl FakeSaas {
    /// Starts on a free port.
    pub async fn start() -> FakeSaas {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fake = FakeSaas {
            addr,
            task: None,
            stripe: Arc::new(stripe::FakeStripe::default()),
            plaid: Arc::new(plaid::FakePlaid::default()),
            modes: Modes {
                stripe: Provider::new(),
                plaid: Provider::new(),
            },
        };
        fake.serve(listener);
        fake
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .merge(stripe::routes(Arc::clone(&self.stripe)))
            .merge(plaid::routes(Arc::clone(&self.plaid)))
            .layer(axum::middleware::from_fn_with_state(
                self.modes.clone(),
                apply_mode,
            ));
        self.task = Some(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    /// How the fake Stripe answers from now on.
    pub fn stripe_mode(&self, mode: Mode) {
        self.modes.stripe.set_mode(mode);
    }

    /// How the fake Plaid answers from now on.
    pub fn plaid_mode(&self, mode: Mode) {
        self.modes.plaid.set_mode(mode);
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

    /// Answers again on the same port, with the same state.
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
