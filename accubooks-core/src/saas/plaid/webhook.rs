//! Plaid's webhook verification, as Plaid documents it: the
//! `Plaid-Verification` header is a JWT signed with ES256; its header's
//! `kid` names a key `/webhook_verification_key/get` answers (a JWK of an
//! EC P-256 key, cached here); its claims carry `iat` (within 5 minutes of
//! now) and `request_body_sha256`, the SHA-256 of the raw body in hex.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Plaid, PlaidError, WebhookKey};

/// How far (seconds, either way) a webhook's `iat` may be from now.
pub const TOLERANCE_SECONDS: i64 = 300;
/// The most keys kept: Plaid rotates its keys rarely, so more ids than this
/// are forged headers, which must not grow memory.
const MAX_CACHED_KEYS: usize = 16;

/// Why a Plaid webhook was refused (`400 INVALID_SIGNATURE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadPlaidSignature {
    /// No `Plaid-Verification` header.
    #[error("The request has no Plaid-Verification header.")]
    Missing,
    /// The header is not an ES256 JWT with a `kid`, or its claims are not
    /// Plaid's.
    #[error("The Plaid-Verification header is not an ES256 JWT with a kid and Plaid's claims.")]
    Malformed,
    /// The key is unknown or expired, the signature does not verify, or the
    /// body's SHA-256 is not the one signed.
    #[error("The Plaid-Verification JWT does not verify with Plaid's key for this body.")]
    Forged,
    /// `iat` is more than 5 minutes away from now.
    #[error("The Plaid-Verification JWT was issued more than 5 minutes away from now.")]
    Stale,
}

impl BadPlaidSignature {
    /// Its label in `accubooks_webhook_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            BadPlaidSignature::Missing => "missing",
            BadPlaidSignature::Malformed => "malformed",
            BadPlaidSignature::Forged => "forged",
            BadPlaidSignature::Stale => "stale",
        }
    }
}

/// Why a webhook could not be verified.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    /// The request is not from Plaid (or not this body, or too old).
    #[error(transparent)]
    Bad(#[from] BadPlaidSignature),
    /// Plaid could not be asked for the key: Plaid retries the webhook.
    #[error(transparent)]
    Plaid(PlaidError),
}

/// How long a fetched key is trusted before it is fetched again (Plaid may
/// expire a key it rotated out).
const KEY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The keys met so far, by `kid`, with when each was fetched.
#[derive(Default)]
pub(crate) struct KeyCache {
    keys: Mutex<HashMap<String, (WebhookKey, Instant)>>,
}

impl KeyCache {
    fn get(&self, kid: &str) -> Option<WebhookKey> {
        let keys = self.keys.lock().expect("never poisoned");
        keys.get(kid)
            .filter(|(_, fetched)| fetched.elapsed() < KEY_LIFETIME)
            .map(|(key, _)| key.clone())
    }

    fn put(&self, key: WebhookKey) {
        let mut keys = self.keys.lock().expect("never poisoned");
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(key.kid.clone(), (key, Instant::now()));
    }
}

#[derive(Deserialize)]
struct Claims {
    iat: i64,
    request_body_sha256: String,
}

impl Plaid {
    /// Verifies a webhook's `Plaid-Verification` header against its raw
    /// body at `now` (Unix seconds).
    pub(crate) async fn verify_webhook(
        &self,
        body: &[u8],
        header: Option<&str>,
        now: i64,
    ) -> Result<(), VerifyError> {
        let token = header.ok_or(BadPlaidSignature::Missing)?.trim();
        let head = jsonwebtoken::decode_header(token).map_err(|_| BadPlaidSignature::Malformed)?;
        let kid = match (head.alg, head.kid) {
            (Algorithm::ES256, Some(kid)) if !kid.is_empty() && kid.len() <= 200 => kid,
            _ => return Err(BadPlaidSignature::Malformed.into()),
        };
        let key = match self.webhook_keys.get(&kid) {
            Some(key) => key,
            None => {
                let key = match self.webhook_key(&kid).await {
                    Ok(key) => key,
                    // Plaid knows no such key: not Plaid's signature.
                    Err(
                        PlaidError::Refused { .. }
                        | PlaidError::ItemError(_)
                        | PlaidError::LoginRequired(_),
                    ) => return Err(BadPlaidSignature::Forged.into()),
                    Err(err) => return Err(VerifyError::Plaid(err)),
                };
                self.webhook_keys.put(key.clone());
                key
            }
        };
        Ok(check(token, &key, body, now)?)
    }
}

/// Checks a `Plaid-Verification` JWT with Plaid's key `key` against the raw
/// body at `now` (Unix seconds).
fn check(token: &str, key: &WebhookKey, body: &[u8], now: i64) -> Result<(), BadPlaidSignature> {
    if key.expired_at.is_some() || key.alg != "ES256" || key.kty != "EC" || key.crv != "P-256" {
        return Err(BadPlaidSignature::Forged);
    }
    let decoding =
        DecodingKey::from_ec_components(&key.x, &key.y).map_err(|_| BadPlaidSignature::Forged)?;
    let mut validation = Validation::new(Algorithm::ES256);
    // Plaid's JWT carries `iat`, checked below, and no `exp`.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
        .map_err(|err| match err.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature
            | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey => BadPlaidSignature::Forged,
            _ => BadPlaidSignature::Malformed,
        })?
        .claims;
    if (now - claims.iat).abs() > TOLERANCE_SECONDS {
        return Err(BadPlaidSignature::Stale);
    }
    let digest = hex::encode(Sha256::digest(body));
    let signed = claims.request_body_sha256.to_ascii_lowercase();
    if !bool::from(digest.as_bytes().ct_eq(signed.as_bytes())) {
        return Err(BadPlaidSignature::Forged);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    /// A P-256 key made for these tests (PKCS #8 DER) and its public part.
    const PRIVATE: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420f8b1bace5c5d025a5d0b5836da373164de57809fa8c1db1e66d5c398d6a81f55a14403420004e289a11738bedde414ee5a5895d47f236c1d1da1a00963ae2826e0ba443c0482da8b1dda46d06c95dad3b2c52483483b869f0b80a18fe91a852937306ca1f243";
    /// Another key: a signer that is not Plaid.
    const OTHER: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420846506e147b122f3e3e5b09c9ba987b2f9133653d68cb3fa908627f2f4d9f2cca14403420004b223f2b306709f0cfb9d76d51852217875242e4ac14c9b05f61f70770d4f727c165361d3f47f35a3ceaef4c2be6ffa489cb03a3b0380de9cc932bd2d25d36e13";

    fn key() -> WebhookKey {
        WebhookKey {
            kid: "k1".into(),
            alg: "ES256".into(),
            crv: "P-256".into(),
            kty: "EC".into(),
            x: "4omhFzi-3eQU7lpYldR_I2wdHaGgCWOuKCbgukQ8BII".into(),
            y: "2osd2kbQbJXa07LFJINIO4afC4Chj-kahSk3MGyh8kM".into(),
            expired_at: None,
        }
    }

    fn sign(private: &str, body: &[u8], iat: i64) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        let claims = json!({"iat": iat, "request_body_sha256": hex::encode(Sha256::digest(body))});
        let der = hex::decode(private).unwrap();
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&der)).unwrap()
    }

    #[test]
    fn verifies_plaids_jwt_for_this_body_within_five_minutes() {
        let body = br#"{"webhook_type":"TRANSACTIONS","webhook_code":"SYNC_UPDATES_AVAILABLE"}"#;
        let now = 1_800_000_000;
        let token = sign(PRIVATE, body, now - 60);
        assert_eq!(check(&token, &key(), body, now), Ok(()));
        assert_eq!(
            check(&token, &key(), b"{\"other\":1}", now),
            Err(BadPlaidSignature::Forged)
        );
        assert_eq!(
            check(&sign(OTHER, body, now), &key(), body, now),
            Err(BadPlaidSignature::Forged)
        );
        assert_eq!(
            check(&sign(PRIVATE, body, now - 301), &key(), body, now),
            Err(BadPlaidSignature::Stale)
        );
        assert_eq!(
            check(&sign(PRIVATE, body, now + 301), &key(), body, now),
            Err(BadPlaidSignature::Stale)
        );
        let expired = WebhookKey {
            expired_at: Some(now - 10),
            ..key()
        };
        assert_eq!(
            check(&token, &expired, body, now),
            Err(BadPlaidSignature::Forged)
        );
        assert_eq!(
            check("not.a.jwt", &key(), body, now),
            Err(BadPlaidSignature::Malformed)
        );
    }
}
