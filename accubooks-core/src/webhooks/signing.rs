//! Standard Webhooks signatures: secrets and the `webhook-signature`
//! header.
//!
//! A secret is `whsec_` and the base64 of 32 random bytes; the key is those
//! bytes. The signature of a delivery attempt is
//! `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`;
//! during a rotation's overlap the header carries one signature per secret,
//! space-separated, as the specification allows.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> SecretString {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    SecretString::from(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

/// The key of a secret (the bytes its base64 names), or `None` when it is
/// not one [`new_secret`] made.
fn key_of(secret: &SecretString) -> Option<Vec<u8>> {
    let text = secret.expose_secret();
    STANDARD
        .decode(text.strip_prefix(SECRET_PREFIX)?)
        .ok()
        .filter(|key| !key.is_empty())
}

/// One `v1,<base64>` signature of `body` sent as `id` at `timestamp`
/// (Unix seconds) with `secret`; `None` for a malformed secret.
pub fn sign(secret: &SecretString, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = key_of(secret)?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
        .expect("HMAC-SHA256 takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header: one signature per secret (the current
/// one first), space-separated.
pub fn signature_header(
    secrets: &[&SecretString],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    let signatures: Option<Vec<String>> = secrets
        .iter()
        .map(|secret| sign(secret, id, timestamp, body))
        .collect();
    Some(signatures?.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's test vectors
    /// (the reference libraries' `test_sign_function`).
    #[test]
    fn signs_as_the_specification_s_reference_libraries() {
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned());
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, id, 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_32_random_bytes_and_rotation_signs_with_both() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(key_of(&a).unwrap().len(), 32);
        let header = signature_header(&[&a, &b], "evt_1", 7, b"{}").unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&a, "evt_1", 7, b"{}").unwrap());
        assert_eq!(parts[1], sign(&b, "evt_1", 7, b"{}").unwrap());
        assert!(sign(&SecretString::from("nope".to_owned()), "e", 1, b"").is_none());
    }
}
