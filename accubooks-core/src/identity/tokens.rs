//! Bearer tokens: HS256 JWTs signed with `JWT_SECRET`, as in section 4 of
//! the contract.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Principal, Role};

/// The claims of section 5 of the contract. `iat` is written but optional:
/// a token minted elsewhere with exactly `sub`, `org`, `role` and `exp` is valid.
#[derive(Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    org: Uuid,
    role: Role,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

/// Why a request's token was not accepted (each is a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub enum TokenError {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Past its `exp`.
    Expired,
    /// Malformed, wrongly signed or of another algorithm.
    Invalid,
}

impl TokenError {
    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Missing => "This route needs an Authorization: Bearer <token> header.",
            TokenError::Expired => "The token has expired. Log in again.",
            TokenError::Invalid => "The token is not valid. Log in again.",
        }
    }
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
            iat: Some(now),
            exp: now + lifetime.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// Verifies the `Authorization` header value. Only HS256 is accepted,
    /// which also rules out `alg: none`.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Principal, TokenError> {
        let token = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::Missing)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        Ok(Principal {
            user: data.claims.sub,
            organization: data.claims.org,
            role: data.claims.role,
        })
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
    fn a_token_with_exactly_the_contract_claims_is_valid() {
        let t = tokens();
        let (sub, org) = (Uuid::new_v4(), Uuid::new_v4());
        let exp = u64::try_from(chrono::Utc::now().timestamp()).unwrap() + 60;
        let claims = serde_json::json!({"sub": sub, "org": org, "role": "viewer", "exp": exp});
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &t.encoding).unwrap();
        let principal = t.verify(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!((principal.user, principal.organization), (sub, org));
        assert_eq!(principal.role, Role::Viewer);
    }

    #[test]
    fn rejects_expired_tokens() {
        let t = tokens();
        let claims = Claims {
            sub: Uuid::new_v4(),
            org: Uuid::new_v4(),
            role: Role::Owner,
            iat: Some(1),
            exp: 2,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &t.encoding).unwrap();
        let err = t.verify(Some(&format!("Bearer {token}"))).unwrap_err();
        assert_eq!(err, TokenError::Expired);
    }
}
