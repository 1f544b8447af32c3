//! Calls to the third-party APIs (Stripe, Plaid).
//!
//! [`Api`] is the one client both use: a timeout on every call
//! (`PROVIDER_TIMEOUT_MS`), a few quick retries of failures that are
//! temporary and safe to retry, and what it learns reported to the
//! dependency's state machine, so that health shows an outage real traffic
//! met and the provider's routes answer 503 at once until a probe sees it
//! back. The provider's own wire format (bodies, errors) lives in its
//! module.

pub(crate) mod plaid;
pub mod stripe;

use std::sync::Arc;
use std::time::Duration;

use crate::deps::Dependency;
use crate::error::Fault;
use crate::health::Event;

/// Attempts of one call, when its failures may be retried.
const ATTEMPTS: u32 = 3;
/// The pause before the second attempt; doubled before each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Which failures of a call may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// The call is idempotent (a read, or a write with an `Idempotency-Key`
    /// the provider honours): refused connections, 429 and 5xx are retried.
    Idempotent,
    /// The call must not run twice: only a connection that was refused (so
    /// the request never left) is retried.
    Unsent,
}

/// Why a provider call gave no answer to use.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The provider is down, slow (past the timeout) or failing (5xx); or it
    /// was already known down, and no call was made.
    #[error("the provider is unavailable ({0})")]
    Unavailable(Fault),
    /// The provider answered 4xx: it refused this request. `body` is its
    /// error object (the provider's module reads it).
    #[error("the provider refused the request with status {status}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The answer's JSON (`null` when it was not JSON).
        body: serde_json::Value,
    },
}

/// What [`Api::send`] met, in more detail than [`CallError`]: whether a
/// failure was an answer (5xx) the provider gave to this very request, which
/// a provider with idempotency keys (Stripe) keeps and replays under the
/// request's key.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No usable answer: see [`CallError::Unavailable`].
    Unavailable(Fault),
    /// The provider answered 5xx (each attempt, when retried).
    Failed(Fault),
    /// See [`CallError::Refused`].
    Refused {
        /// The HTTP status.
        status: u16,
        /// The answer's JSON (`null` when it was not JSON).
        body: serde_json::Value,
    },
}

impl From<Failure> for CallError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Unavailable(fault) | Failure::Failed(fault) => CallError::Unavailable(fault),
            Failure::Refused { status, body } => CallError::Refused { status, body },
        }
    }
}

/// A client of one provider's HTTP API.
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    dependency: Arc<Dependency>,
    /// The header in which the provider says whether a failed request may
    /// be retried (`Stripe-Should-Retry`), when it has one.
    retry_advice: Option<&'static str>,
}

impl Api {
    /// A client of the API at `base` whose calls give up after `timeout`;
    /// what it meets is reported to `dependency`.
    pub(crate) fn new(base: &str, timeout: Duration, dependency: Arc<Dependency>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .expect("a client with only timeouts set always builds");
        Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            dependency,
            retry_advice: None,
        }
    }

    /// The same client, following the provider's advice in `header`
    /// (`true`/`false`) on whether a failed request may be retried: `false`
    /// stops the retries of a 5xx, which would only meet the same answer.
    pub(crate) fn with_retry_advice(mut self, header: &'static str) -> Self {
        self.retry_advice = Some(header);
        self
    }

    /// The dependency this client reports to.
    pub(crate) fn dependency(&self) -> &Dependency {
        &self.dependency
    }

    /// Sends the request `build` makes (from the client and the API base)
    /// and answers the JSON of a 2xx answer. Refused at once, with no call,
    /// while the provider is known down.
    pub(crate) async fn call(
        &self,
        retry: Retry,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, CallError> {
        Ok(self.send(retry, build).await?)
    }

    /// [`Api::call`], telling a 5xx answer ([`Failure::Failed`]) from no
    /// answer.
    pub(crate) async fn send(
        &self,
        retry: Retry,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, Failure> {
        if !self.dependency.is_available() {
            let fault = self
                .dependency
                .state()
                .last_error
                .unwrap_or(Fault::temporary("UNAVAILABLE"));
            return Err(Failure::Unavailable(fault));
        }
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        let (fault, answered) = loop {
            let (fault, retryable, answered) = match build(&self.http, &self.base).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let advice = self.advice(&response);
                    match status {
                        200..=299 => match response.json::<serde_json::Value>().await {
                            Ok(body) => {
                                self.dependency.report_success();
                                return Ok(body);
                            }
                            Err(err) => (transport_fault(&err), false, false),
                        },
                        429 => (
                            Fault::temporary("RATE_LIMITED"),
                            retry == Retry::Idempotent,
                            false,
                        ),
                        400..=499 => {
                            let body = response.json().await.unwrap_or(serde_json::Value::Null);
                            self.dependency.report_success();
                            return Err(Failure::Refused { status, body });
                        }
                        _ => (
                            Fault::temporary("UPSTREAM_ERROR"),
                            retry == Retry::Idempotent && advice != Some(false),
                            true,
                        ),
                    }
                }
                // Never sent: always safe to try again.
                Err(err) if err.is_connect() && !err.is_timeout() => {
                    (Fault::temporary("CONNECTION_REFUSED"), true, false)
                }
                // A slow provider stays slow for a while: the caller (or the
                // job's retry) tries again later, not now.
                Err(err) => (transport_fault(&err), false, false),
            };
            if !retryable || attempt == ATTEMPTS {
                break (fault, answered);
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        };
        self.dependency.report(if fault == Fault::TIMEOUT {
            Event::TrafficSuspect
        } else {
            Event::TrafficFailed(fault)
        });
        Err(if answered {
            Failure::Failed(fault)
        } else {
            Failure::Unavailable(fault)
        })
    }

    /// The provider's advice on retrying, from its header: `Some(true)`,
    /// `Some(false)`, or `None` when it gives none.
    fn advice(&self, response: &reqwest::Response) -> Option<bool> {
        let value = response.headers().get(self.retry_advice?)?.to_str().ok()?;
        match value.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

/// The fault of a request that got no usable answer.
pub(crate) fn transport_fault(err: &reqwest::Error) -> Fault {
    if err.is_timeout() {
        Fault::TIMEOUT
    } else if err.is_connect() {
        Fault::temporary("CONNECTION_REFUSED")
    } else {
        Fault::temporary("UPSTREAM_ERROR")
    }
}
