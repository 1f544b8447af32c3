//! Secrets kept at rest: provider tokens (Plaid access tokens, Stripe client
//! secrets) are sealed with ChaCha20-Poly1305 under a key derived from
//! `SESSION_SECRET` (HKDF-SHA256), never stored in clear.
//!
//! Each sealed value is bound to a context (say `plaid-item:<organization>`)
//! as associated data, so a value copied to another row or organization does
//! not open. Changing `SESSION_SECRET` makes the sealed values unreadable:
//! bank items must then be linked again (the README says so).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The prefix of the stored form, naming the scheme and key version.
const VERSION: &str = "v1:";
const NONCE_LEN: usize = 12;

/// A sealed value did not open: tampered with, moved to another context, or
/// sealed under another `SESSION_SECRET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a stored secret could not be opened: it was sealed under another SESSION_SECRET or changed"
)]
pub struct Unreadable;

/// Seals and opens secrets kept in the database.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([REDACTED])")
    }
}

impl Sealer {
    /// The sealer of `session_secret`.
    pub fn new(session_secret: &SecretString) -> Self {
        let mut key = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(
            Some(b"accubooks sealed secrets"),
            session_secret.expose_secret().as_bytes(),
        )
        .expand(b"provider tokens v1", &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
        Sealer {
            cipher: ChaCha20Poly1305::new(&Key::from(key)),
        }
    }

    /// `plaintext` sealed for `context`: `v1:` and the hex of a random nonce
    /// and the ciphertext with its tag.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 seals any message shorter than 256 GiB");
        format!("{VERSION}{}{}", hex::encode(nonce), hex::encode(sealed))
    }

    /// Opens what [`Sealer::seal`] sealed for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<SecretString, Unreadable> {
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|hex_text| hex::decode(hex_text).ok())
            .filter(|bytes| bytes.len() > NONCE_LEN)
            .ok_or(Unreadable)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Unreadable)?;
        let plaintext = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Unreadable)?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(secret: &str) -> Sealer {
        Sealer::new(&SecretString::from(secret.to_owned()))
    }

    #[test]
    fn opens_what_it_sealed_and_never_stores_the_clear_text() {
        let s = sealer("a-session-secret-of-at-least-32-chars!");
        let token = "access-sandbox-8ab976e6-64bc-4b38-98f7-731e7a349970";
        let sealed = s.seal(token, "plaid-item:1");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains(token) && !sealed.contains("access-sandbox"));
        assert_eq!(
            s.open(&sealed, "plaid-item:1").unwrap().expose_secret(),
            token
        );
        // A fresh nonce each time: the same token seals differently.
        assert_ne!(s.seal(token, "plaid-item:1"), sealed);
    }

    #[test]
    fn refuses_another_context_another_secret_and_tampering() {
        let s = sealer("a-session-secret-of-at-least-32-chars!");
        let sealed = s.seal("token", "plaid-item:1");
        assert_eq!(s.open(&sealed, "plaid-item:2").unwrap_err(), Unreadable);
        let other = sealer("another-session-secret-of-32-chars!!!");
        assert_eq!(other.open(&sealed, "plaid-item:1").unwrap_err(), Unreadable);
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(s.open(&tampered, "plaid-item:1").unwrap_err(), Unreadable);
        assert_eq!(s.open("v1:zz", "plaid-item:1").unwrap_err(), Unreadable);
        assert_eq!(s.open("token", "plaid-item:1").unwrap_err(), Unreadable);
    }
}
