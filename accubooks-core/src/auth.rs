//! Bearer tokens: HS256 JWTs signed with `JWT_SECRET`, as in section 4 of
//! the contract.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::ApiError;

/// A user's role within an organization, from least to most powerful.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, writes nothing.
    Viewer,
    /// Keeps the books.
    Accountant,
    /// Also manages users and settings.
    Owner,
}

/// Who is calling, as proven by a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user id (`sub`).
    pub user: Uuid,
    /// The organization every query is scoped to (`org`).
    pub organization: Uuid,
    /// The role (`role`).
    pub role: Role,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    org: Uuid,
    role: Role,
    exp: u64,
    iat: u64,
}

/// Issues and verifies tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Tokens {
    /// Keys from `JWT_SECRET`.
    pub fn new(secret: &SecretString) -> crate::Result<Self> {
        let bytes = secret.expose_secret().as_bytes();
        let setup = |_| crate::Error::Setup("JWT_SECRET cannot be used as an HMAC key".to_owned());
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Tokens {
            encoding: EncodingKey::from_secret(bytes).map_err(setup)?,
            decoding: DecodingKey::from_secret(bytes).map_err(setup)?,
            validation,
        })
    }

    /// A token for `principal`, valid for `lifetime`.
    pub fn issue(&self, principal: Principal, lifetime: Duration) -> String {
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
        let claims = Claims {
            sub: principal.user,
            org: principal.organization,
            role: principal.role,
            iat: now,
            exp: now + lifetime.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// Verifies the `Authorization` header value. Only HS256 is accepted,
    /// which also rules out `alg: none`.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        let token = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized(
                "This route needs an Authorization: Bearer <token> header.",
            ))?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::Unauthorized("The token has expired. Log in again.")
                }
                _ => ApiError::Unauthorized("The token is not valid. Log in again."),
            })?;
        Ok(Principal {
            user: data.claims.sub,
            organization: data.claims.org,
            role: data.claims.role,
        })
    }
}

/// Slows down password guessing: each key (an e-mail address, a client
/// address) gets a burst of attempts that refills over time.
pub struct LoginLimiter {
    limiter: governor::DefaultKeyedRateLimiter<String>,
}

impl LoginLimiter {
    /// Ten attempts per key at once, then one every six seconds.
    pub fn new() -> Self {
        let quota = governor::Quota::per_minute(std::num::NonZeroU32::new(10).expect("non-zero"));
        LoginLimiter {
            limiter: governor::RateLimiter::keyed(quota),
        }
    }

    /// Spends one attempt of `key`, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        use governor::clock::{Clock, DefaultClock};
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                ApiError::RateLimited {
                    retry_after: wait.as_secs().max(1),
                }
            })
    }

    /// Forgets keys whose budget is full again, bounding memory.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&SecretString::from("x".repeat(40))).unwrap()
    }

    fn principal() -> Principal {
        Principal {
            user: Uuid::new_v4(),
            organization: Uuid::new_v4(),
            role: Role::Accountant,
        }
    }

    #[test]
    fn round_trip() {
        let p = principal();
        let token = tokens().issue(p, Duration::from_secs(60));
        assert_eq!(
            tokens().verify(Some(&format!("Bearer {token}"))).unwrap(),
            p
        );
    }

    #[test]
    fn rejects_missing_tampered_foreign_and_unsigned_tokens() {
        let t = tokens();
        assert!(t.verify(None).is_err());
        assert!(t.verify(Some("Basic abc")).is_err());
        let token = t.issue(principal(), Duration::from_secs(60));
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(t.verify(Some(&format!("Bearer {tampered}"))).is_err());
        let other = Tokens::new(&SecretString::from("y".repeat(40))).unwrap();
        assert!(other.verify(Some(&format!("Bearer {token}"))).is_err());
        // alg: none, with the same claims and no signature.
        let payload = token.split('.').nth(1).unwrap();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(t.verify(Some(&format!("Bearer {none}"))).is_err());
    }

    #[test]
    fn rejects_expired_tokens() {
        let t = tokens();
        let claims = Claims {
            sub: Uuid::new_v4(),
            org: Uuid::new_v4(),
            role: Role::Owner,
            iat: 1,
            exp: 2,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &t.encoding).unwrap();
        let err = t.verify(Some(&format!("Bearer {token}"))).unwrap_err();
        assert!(err.to_string().contains("expired"));
    }

    #[test]
    fn login_attempts_are_limited_per_key() {
        let limiter = LoginLimiter::new();
        for _ in 0..10 {
            limiter.check("email:a@b.c").unwrap();
        }
        let err = limiter.check("email:a@b.c").unwrap_err();
        assert!(matches!(err, ApiError::RateLimited { retry_after } if retry_after >= 1));
        limiter.check("email:other@b.c").unwrap();
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Accountant && Role::Accountant < Role::Owner);
    }
}
