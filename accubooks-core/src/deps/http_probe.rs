//! Probes of the third-party HTTP APIs (Stripe, Plaid).
//!
//! Each probe makes one cheap, read-only, authenticated call, so a revoked
//! key shows up as a permanent fault rather than as "connected".

use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::ExposeSecret;

use super::Probe;
use crate::config::{ApiCredentials, STRIPE_API_VERSION};
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

/// Probes Stripe with `GET /v1/payment_intents?limit=1`: a read the
/// minimal key the README recommends (a restricted key with PaymentIntents
/// write) may make.
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

/// Stripe's answer to the probe. A 403 is Stripe refusing a valid key a
/// permission (a restricted key): Stripe is reachable and the key
/// authenticated, which is all a probe asks; a missing permission shows on
/// the call that needs it. A 401 is a key Stripe does not know.
fn classify_stripe(status: reqwest::StatusCode) -> Result<(), Fault> {
    match status.as_u16() {
        403 => Ok(()),
        _ => classify_status(status),
    }
}

impl Probe for StripeProbe {
    fn check(&self) -> BoxFuture<'_, Result<(), Fault>> {
        Box::pin(async move {
            let response = self
                .client
                .get(format!(
                    "{}/v1/payment_intents?limit=1",
                    self.credentials.api_base
                ))
                .bearer_auth(self.credentials.key.expose_secret())
                .header("Stripe-Version", STRIPE_API_VERSION)
                .send()
                .await
                .map_err(|e| classify_transport(&e))?;
            classify_stripe(response.status())
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

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    #[test]
    fn stripe_refusing_a_permission_is_reachable_an_unknown_key_is_not() {
        assert_eq!(classify_stripe(StatusCode::OK), Ok(()));
        assert_eq!(classify_stripe(StatusCode::FORBIDDEN), Ok(()));
        assert_eq!(
            classify_stripe(StatusCode::UNAUTHORIZED),
            Err(Fault::permanent("AUTHENTICATION_FAILED"))
        );
        assert_eq!(
            classify_stripe(StatusCode::INTERNAL_SERVER_ERROR),
            Err(Fault::temporary("UPSTREAM_ERROR"))
        );
        // Plaid's refusals keep their meaning.
        assert_eq!(
            classify_status(StatusCode::FORBIDDEN),
            Err(Fault::permanent("AUTHENTICATION_FAILED"))
        );
    }
}
