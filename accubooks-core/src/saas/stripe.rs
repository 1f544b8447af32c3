//! Stripe's API: the few calls payments need, in its wire format
//! (form-encoded bodies, `Idempotency-Key` headers, error objects), its
//! amounts (minor units by Stripe's own currency rules) and the signature
//! of its webhooks.

use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{Api, Failure, Retry};
use crate::config::{ApiCredentials, STRIPE_API_VERSION};
use crate::deps::Dependency;
use crate::error::Fault;

/// How old a webhook's signature may be, in seconds (Stripe's libraries'
/// default), either way: an older one is a replay.
pub(crate) const SIGNATURE_TOLERANCE_SECONDS: i64 = 300;

/// How often a request whose `Idempotency-Key` a concurrent twin is still
/// using (Stripe's `409 idempotency_key_in_use`) is sent, in all.
const KEY_IN_USE_ATTEMPTS: u32 = 5;
/// The pause before its second attempt; doubled before each further one.
const KEY_IN_USE_BACKOFF: Duration = Duration::from_millis(100);

/// A Stripe client.
pub(crate) struct Stripe {
    api: Api,
    credentials: ApiCredentials,
}

/// A PaymentIntent as Stripe answers it (the fields used here).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PaymentIntent {
    /// `pi_…`.
    pub id: String,
    /// Stripe minor units.
    pub amount: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// What the browser confirms the payment with.
    pub client_secret: String,
}

/// What to ask Stripe for.
pub(crate) struct NewIntent<'a> {
    /// Stripe minor units.
    pub amount: i64,
    /// ISO code (any case).
    pub currency: &'a str,
    /// Shown in Stripe's dashboard.
    pub description: String,
    /// Kept on the intent: `organization`, `invoice_id`.
    pub metadata: Vec<(&'static str, String)>,
    /// Stripe's `Idempotency-Key`: the same key answers the same intent.
    pub idempotency_key: String,
}

impl Stripe {
    /// A client of Stripe at the credentials' API base.
    pub(crate) fn new(
        credentials: ApiCredentials,
        timeout: Duration,
        dependency: Arc<Dependency>,
    ) -> Self {
        Stripe {
            api: Api::new(&credentials.api_base, timeout, dependency)
                .with_retry_advice("Stripe-Should-Retry"),
            credentials,
        }
    }

    /// The dependency Stripe's calls report to.
    pub(crate) fn dependency(&self) -> &Dependency {
        self.api.dependency()
    }

    /// `POST /v1/payment_intents`. Idempotent by its key, so it is retried
    /// (unless Stripe says `Stripe-Should-Retry: false`); a 5xx that
    /// remains is [`Failure::Failed`]: Stripe keeps that answer under the
    /// key, so the caller asks again under a new one. A `409
    /// idempotency_key_in_use` (a twin request under the same key still
    /// running at Stripe) is sent again after a pause, and ends
    /// `IDEMPOTENCY_KEY_IN_USE` (temporary) if the twin never finishes.
    pub(crate) async fn create_payment_intent(
        &self,
        new: &NewIntent<'_>,
    ) -> Result<PaymentIntent, Failure> {
        let mut form: Vec<(String, String)> = vec![
            ("amount".to_owned(), new.amount.to_string()),
            ("currency".to_owned(), new.currency.to_ascii_lowercase()),
            ("description".to_owned(), new.description.clone()),
            (
                "automatic_payment_methods[enabled]".to_owned(),
                "true".to_owned(),
            ),
        ];
        form.extend(
            new.metadata
                .iter()
                .map(|(key, value)| (format!("metadata[{key}]"), value.clone())),
        );
        let body = serde_urlencoded::to_string(&form).expect("pairs of strings always encode");
        let key = self.credentials.key.expose_secret();
        let mut backoff = KEY_IN_USE_BACKOFF;
        let mut attempt = 1;
        let answer = loop {
            let sent = self
                .api
                .send(Retry::Idempotent, |client, base| {
                    client
                        .post(format!("{base}/v1/payment_intents"))
                        .bearer_auth(key)
                        .header("Stripe-Version", STRIPE_API_VERSION)
                        .header("Idempotency-Key", &new.idempotency_key)
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .body(body.clone())
                })
                .await;
            match sent {
                Err(Failure::Refused { status: 409, body }) if key_in_use(&body) => {
                    if attempt == KEY_IN_USE_ATTEMPTS {
                        tracing::warn!(
                            "a twin request kept Stripe's idempotency key busy; giving up"
                        );
                        return Err(Failure::Unavailable(Fault::temporary(
                            "IDEMPOTENCY_KEY_IN_USE",
                        )));
                    }
                    tracing::debug!(attempt, "Stripe's idempotency key is in use by a twin");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                other => break other?,
            }
        };
        serde_json::from_value(answer)
            .map_err(|_| Failure::Unavailable(Fault::temporary("UNEXPECTED_ANSWER")))
    }

    /// Checks a webhook's `Stripe-Signature` header against the raw body,
    /// at `now` (Unix seconds).
    pub(crate) fn verify(
        &self,
        payload: &[u8],
        header: Option<&str>,
        now: i64,
    ) -> Result<(), BadSignature> {
        verify_signature(
            payload,
            header.ok_or(BadSignature::Missing)?,
            self.credentials.secret.expose_secret(),
            now,
        )
    }
}

/// The message of a Stripe error object (`{"error": {"message", …}}`), or
/// a sentence of the status when there is none.
pub(crate) fn error_message(status: u16, body: &serde_json::Value) -> String {
    body["error"]["message"]
        .as_str()
        .map_or_else(|| format!("Stripe answered {status}."), str::to_owned)
}

/// Whether a Stripe error object is `idempotency_key_in_use`: another
/// request with the same key is still running at Stripe.
fn key_in_use(body: &serde_json::Value) -> bool {
    body["error"]["code"] == "idempotency_key_in_use"
}

/// Why a webhook's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    /// No `Stripe-Signature` header.
    #[error("The request has no Stripe-Signature header.")]
    Missing,
    /// The header has no timestamp or no `v1` signature.
    #[error("The Stripe-Signature header is not Stripe's t=…,v1=… form.")]
    Malformed,
    /// No `v1` signature matches the payload under the webhook secret.
    #[error("No signature in the Stripe-Signature header matches the payload.")]
    Forged,
    /// The signature's timestamp is outside the tolerance window.
    #[error("The Stripe-Signature timestamp is more than 5 minutes away from now.")]
    Stale,
}

impl BadSignature {
    /// Its label in `accubooks_webhook_refused_total` (one of
    /// [`crate::metrics::WEBHOOK_REFUSALS`]).
    pub fn reason(self) -> &'static str {
        match self {
            BadSignature::Missing => "missing",
            BadSignature::Malformed => "malformed",
            BadSignature::Forged => "forged",
            BadSignature::Stale => "stale",
        }
    }
}

/// Stripe's scheme: the header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`
/// (more than one `v1` while a secret is rolled; other schemes such as
/// `v0` are ignored); each `v1` is HMAC-SHA256 under the endpoint's secret
/// of `<t>.<payload>`. One match within the tolerance is enough. Compared
/// in constant time.
pub(crate) fn verify_signature(
    payload: &[u8],
    header: &str,
    secret: &str,
    now: i64,
) -> Result<(), BadSignature> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => {
                if let Ok(bytes) = hex::decode(value) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(BadSignature::Malformed)?;
    if signatures.is_empty() {
        return Err(BadSignature::Malformed);
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let expected = mac.finalize().into_bytes();
    let matches = signatures.iter().fold(subtle::Choice::from(0), |any, s| {
        any | subtle::ConstantTimeEq::ct_eq(expected.as_slice(), s.as_slice())
    });
    if !bool::from(matches) {
        return Err(BadSignature::Forged);
    }
    if (now - timestamp).abs() > SIGNATURE_TOLERANCE_SECONDS {
        return Err(BadSignature::Stale);
    }
    Ok(())
}

/// Stripe's exponent of a currency: 0 for its zero-decimal currencies, 3
/// for its three-decimal ones, else 2 (ISK among them: Stripe keeps it
/// two-decimal, in whole krónur).
pub(crate) fn exponent(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "JPY" | "KMF" | "KRW" | "MGA" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "JOD" | "KWD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// An amount in our minor units (`digits` of them) as Stripe's, or `None`
/// when Stripe cannot charge it exactly: a fraction Stripe's exponent lacks,
/// a three-decimal amount not a multiple of ten, a fraction of an ISK.
pub(crate) fn to_stripe(minor: i64, digits: u32, currency: &str) -> Option<i64> {
    let stripe = exponent(currency);
    let amount = if stripe >= digits {
        minor.checked_mul(10_i64.checked_pow(stripe - digits)?)?
    } else {
        let divisor = 10_i64.checked_pow(digits - stripe)?;
        (minor % divisor == 0).then_some(minor / divisor)?
    };
    let whole_only = match currency.to_ascii_uppercase().as_str() {
        "BHD" | "JOD" | "KWD" | "OMR" | "TND" => 10,
        "ISK" => 100,
        _ => 1,
    };
    (amount % whole_only == 0).then_some(amount)
}

/// A Stripe amount in our minor units (`digits` of them), or `None` when
/// it has a fraction our currency does not.
pub(crate) fn from_stripe(amount: i64, digits: u32, currency: &str) -> Option<i64> {
    let stripe = exponent(currency);
    if digits >= stripe {
        amount.checked_mul(10_i64.checked_pow(digits - stripe)?)
    } else {
        let divisor = 10_i64.checked_pow(stripe - digits)?;
        (amount % divisor == 0).then_some(amount / divisor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, payload: &[u8]) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(payload);
        hex::encode(mac.finalize().into_bytes())
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn accepts_a_signature_of_the_secret_among_others() {
        let payload = br#"{"id":"evt_1"}"#;
        let good = sign("whsec_new", NOW, payload);
        let old = sign("whsec_old", NOW, payload);
        let header = format!("t={NOW},v1={old},v1={good},v0=abc");
        assert_eq!(
            verify_signature(payload, &header, "whsec_new", NOW + 10),
            Ok(())
        );
        assert_eq!(verify_signature(payload, &header, "whsec_old", NOW), Ok(()));
    }

    #[test]
    fn refuses_forged_malformed_and_stale_signatures() {
        let payload = br#"{"id":"evt_1"}"#;
        let good = sign("whsec_1", NOW, payload);
        let header = format!("t={NOW},v1={good}");
        assert_eq!(
            verify_signature(b"{\"id\":\"evt_2\"}", &header, "whsec_1", NOW),
            Err(BadSignature::Forged)
        );
        assert_eq!(
            verify_signature(payload, &header, "whsec_2", NOW),
            Err(BadSignature::Forged)
        );
        // The timestamp is signed: moving it breaks the signature.
        let moved = format!("t={},v1={good}", NOW + 1);
        assert_eq!(
            verify_signature(payload, &moved, "whsec_1", NOW),
            Err(BadSignature::Forged)
        );
        assert_eq!(
            verify_signature(payload, &header, "whsec_1", NOW + 301),
            Err(BadSignature::Stale)
        );
        assert_eq!(
            verify_signature(payload, &header, "whsec_1", NOW - 301),
            Err(BadSignature::Stale)
        );
        assert_eq!(
            verify_signature(payload, &header, "whsec_1", NOW + 300),
            Ok(())
        );
        for malformed in [
            String::new(),
            format!("v1={good}"),
            format!("t={NOW}"),
            format!("t=soon,v1={good}"),
            format!("t={NOW},v1=not-hex"),
        ] {
            assert_eq!(
                verify_signature(payload, &malformed, "whsec_1", NOW),
                Err(BadSignature::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn amounts_follow_stripes_currency_rules() {
        // Two-decimal and zero-decimal currencies as ISO has them.
        assert_eq!(to_stripe(12_345, 2, "USD"), Some(12_345));
        assert_eq!(to_stripe(500, 0, "JPY"), Some(500));
        assert_eq!(to_stripe(500, 0, "jpy"), Some(500));
        // ISK: ISO has no minor unit, Stripe two decimals of whole krónur.
        assert_eq!(to_stripe(500, 0, "ISK"), Some(50_000));
        assert_eq!(from_stripe(50_000, 0, "ISK"), Some(500));
        // Three decimals, the last one zero.
        assert_eq!(to_stripe(5_120, 3, "KWD"), Some(5_120));
        assert_eq!(to_stripe(5_124, 3, "KWD"), None);
        // IQD: ISO three decimals, Stripe two.
        assert_eq!(to_stripe(1_230, 3, "IQD"), Some(123));
        assert_eq!(to_stripe(1_234, 3, "IQD"), None);
        assert_eq!(from_stripe(123, 3, "IQD"), Some(1_230));
        assert_eq!(from_stripe(12_345, 2, "USD"), Some(12_345));
    }
}
