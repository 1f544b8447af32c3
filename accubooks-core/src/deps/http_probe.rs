//! Probes of the third-party HTTP APIs (Stripe, Plaid).
//!
//! Each probe makes one cheap, read-only, authenticated call, so a revoked
//! key shows up as a permanent fault rather than as "connected".

use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::ExposeSecret;

use super::Probe;
use crate::config::ApiCredentials;
use crate::error::Fault;

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .expect("a client with only timeouts set always builds")
}

fn classify_transport(err: &reqwest::Error) -> Fault {
    if err.is_timeout() {
        return Fault::TIMEOUT;
    }
    if err.is_connect() {
        return Fault::temporary("CONNECTION_REFUSED");
    }
    Fault::temporary("UPSTREAM_ERROR")
}

fn classify_status(status: reqwest::StatusCode) -> Result<(), Fault> {
    match status.as_u16() {
        200..=299 => Ok(()),
        // Rate limited means the API is there and our key works.
        429 => Ok(()),
        401 | 403 => Err(Fault::permanent("AUTHENTICATION_FAILED")),
        400..=499 => Err(Fault::permanent("REQUEST_REJECTED")),
        _ => Err(Fault::temporary("UPSTREAM_ERROR")),
    }
}

/// The Plaid API version every request names in its `Plaid-Version` header
/// (the probe's and the client's): what AccuBooks sends and reads follows
/// this version's schemas, whatever the account's default version is.
pub const PLAID_VERSION: &str = "2020-09-14";

/// Probes Stripe with `GET /v1/balance`.
pub struct StripeProbe {
    client: reqwest::Client,
    credentials: ApiCredentials,
}

impl StripeProbe {
    /// A probe whose calls give up after `timeout`.
    pub fn new(credentials: ApiCredentials, timeout: Duration) -> Self {
        StripeProbe {
            client: client(timeout),
            credentials,
        }
    }
}

impl Probe for StripeProbe {
    fn check(&self) -> BoxFuture<'_, Result<(), Fault>> {
        Box::pin(async move {
            let response = self
                .client
                .get(format!("{}/v1/balance", self.credentials.api_base))
                .bearer_auth(self.credentials.key.expose_secret())
                .send()
                .await
                .map_err(|e| classify_transport(&e))?;
            classify_status(response.status())
        })
    }
}

/// Probes Plaid with `POST /institutions/get` for one institution.
pub struct PlaidProbe {
    client: reqwest::Client,
    credentials: ApiCredentials,
}

impl PlaidProbe {
    /// A probe whose calls give up after `timeout`.
    pub fn new(credentials: ApiCredentials, timeout: Duration) -> Self {
        PlaidProbe {
            client: client(timeout),
            credentials,
        }
    }
}

impl Probe for PlaidProbe {
    fn check(&self) -> BoxFuture<'_, Result<(), Fault>> {
        Box::pin(async move {
            let body = serde_json::json!({
                "client_id": self.credentials.key.expose_secret(),
                "secret": self.credentials.secret.expose_secret(),
                "count": 1,
                "offset": 0,
                "country_codes": ["US"],
            });
            let response = self
                .client
                .post(format!("{}/institutions/get", self.credentials.api_base))
                .header("Plaid-Version", PLAID_VERSION)
                .json(&body)
                .send()
                .await
                .map_err(|e| classify_transport(&e))?;
            classify_status(response.status())
        })
    }
}
