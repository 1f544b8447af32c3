//! `Idempotency-Key`: the same key with the same request returns the first
//! answer again; with another request it is refused.
//!
//! The answer is stored in the same transaction as the write it reports, so
//! a crash can never leave a write without its key or a key without its
//! write. Two concurrent requests with one key race on the primary key: the
//! loser's transaction fails as a whole and it replays the winner's answer.

use sha2::{Digest, Sha256};

use crate::db::Database;
use crate::db::sql::{BeginScoped, on_pool};
use crate::organization::OrganizationId;

/// Renders the answer stored under an idempotency key, from the ids the
/// entries received: its stored status ([`ANSWERED`], or the pending mark)
/// and its JSON.
pub type Render = Box<dyn Fn(&[i64]) -> (u16, String) + Send + Sync>;

/// A key sent by a client, with the fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The organization it belongs to (keys are per organization).
    pub organization: OrganizationId,
    /// The client's key.
    pub key: String,
    /// SHA-256 of the operation, its target and its canonical input.
    pub request_hash: String,
    /// A fingerprint of the same request as an earlier release stored it,
    /// also accepted on lookup.
    pub legacy_hash: Option<String>,
}

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update([0]);
        }
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl IdempotencyKey {
    /// Fingerprints a request from its operation's name, the record it acts
    /// on and the JSON of its typed input.
    pub fn for_operation(
        organization: &OrganizationId,
        key: &str,
        operation: &str,
        target: Option<i64>,
        input: &[u8],
    ) -> Self {
        let target = target.map(|id| id.to_string()).unwrap_or_default();
        IdempotencyKey {
            organization: organization.to_owned(),
            key: key.to_owned(),
            request_hash: hex_sha256(&[b"v2", operation.as_bytes(), target.as_bytes(), input]),
            legacy_hash: None,
        }
    }

    /// The fingerprint releases before the use-case layer stored: method,
    /// path and raw body of the HTTP request.
    pub fn http_fingerprint(method: &str, path: &str, body: &[u8]) -> String {
        hex_sha256(&[method.as_bytes(), path.as_bytes(), body])
    }

    /// Whether a client's key is acceptable: 1 to 200 visible ASCII characters.
    pub fn is_valid_key(key: &str) -> bool {
        (1..=200).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
    }
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The key is new.
    Absent,
    /// The key was used with this request: here is the first answer.
    Replay {
        /// The answer's JSON.
        body: String,
    },
    /// The key was used with a different request.
    Mismatch,
    /// The request's write committed but its answer is not stored yet: it
    /// is being rendered, or the process died in between.
    Pending,
}

/// The status stored with the write of a request whose answer is rendered
/// only after it commits (it reads back what the write changed); the use
/// case replaces it with the answer.
const PENDING: u16 = 0;

/// The status of a stored answer. (Rows written before the use-case layer
/// hold the HTTP status of their answer instead: any other value than
/// the pending mark, 0, is an answer.)
pub const ANSWERED: u16 = 1;

/// A placeholder answer for the committer to store with a job's write: the
/// key is taken atomically with the write, so a retry can never write twice,
/// and [`store`] fills in the answer after the commit.
pub fn pending(key: IdempotencyKey) -> (IdempotencyKey, Render) {
    (key, Box::new(|_: &[i64]| (PENDING, String::new())))
}

/// Looks the key up.
pub async fn lookup(db: &Database, key: &IdempotencyKey) -> crate::Result<Stored> {
    let found: Option<(String, i64, String)> = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&key.organization).await?;
                let found = sqlx::query_as(
                    "SELECT request_hash, CAST(status AS BIGINT), response FROM idempotency_keys \
                     WHERE organization_id = $1 AND key = $2",
                )
                .bind(&key.organization)
                .bind(&key.key)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(found)
            })
        })
        .await?;
    Ok(match found {
        None => Stored::Absent,
        Some((hash, _, _))
            if hash != key.request_hash && key.legacy_hash.as_ref() != Some(&hash) =>
        {
            Stored::Mismatch
        }
        Some((_, status, _)) if status == i64::from(PENDING) => Stored::Pending,
        Some((_, _, body)) => Stored::Replay { body },
    })
}

/// Stores an answer unless one is stored already (a pending placeholder is
/// replaced).
pub async fn store(db: &Database, key: &IdempotencyKey, body: &str) -> crate::Result<()> {
    let status = i32::from(ANSWERED);
    let sql = format!(
        "{INSERT} ON CONFLICT (organization_id, key) DO UPDATE \
         SET status = EXCLUDED.status, response = EXCLUDED.response \
         WHERE idempotency_keys.status = {PENDING} AND idempotency_keys.request_hash = EXCLUDED.request_hash"
    );
    db.run(|pool| async move {
        on_pool!(pool, p => {
            let mut tx = p.begin_for(&key.organization).await?;
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&key.organization)
                .bind(&key.key)
                .bind(&key.request_hash)
                .bind(status)
                .bind(body)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
    })
    .await
}

/// Stores an answer inside the caller's transaction: `store_answer!(&mut
/// *tx, key, status, body)`. A macro because each backend's transaction is
/// its own type.
macro_rules! store_answer {
    ($executor:expr, $key:expr, $status:expr, $body:expr) => {
        sqlx::query($crate::idempotency::INSERT)
            .bind(&$key.organization)
            .bind(&$key.key)
            .bind(&$key.request_hash)
            .bind(i32::from($status))
            .bind(&$body)
            .execute($executor)
            .await
    };
}
pub(crate) use store_answer;

/// The statement that stores an answer; bind organization, key, hash,
/// status and body, in that order.
pub(crate) const INSERT: &str = "INSERT INTO idempotency_keys \
     (organization_id, key, request_hash, status, response) VALUES ($1, $2, $3, $4, $5)";

/// The conflict of a request whose twin (same key) committed first; the
/// pipeline answers it with the twin's stored answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Another request with this Idempotency-Key was committed first.")]
pub struct KeyInUse;

impl KeyInUse {
    /// The machine code of the conflict.
    pub const CODE: &'static str = "IDEMPOTENCY_KEY_IN_USE";
}

pub(crate) fn key_in_use() -> KeyInUse {
    KeyInUse
}

/// Sorts out a write whose transaction stored an idempotency answer: a key
/// violation means a concurrent twin won the race. Other errors stay
/// storage errors, for the database guard.
pub(crate) fn settle<T, E: From<KeyInUse>>(
    result: Result<T, sqlx::Error>,
) -> Result<Result<T, E>, sqlx::Error> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(err) if is_key_violation(&err) => Ok(Err(KeyInUse.into())),
        Err(err) => Err(err),
    }
}

/// Whether a unique violation came from the idempotency table (rather than
/// from the write itself).
pub(crate) fn is_key_violation(err: &sqlx::Error) -> bool {
    crate::db::sql::unique_violation(err) == Some(crate::db::sql::Unique::IdempotencyKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_everything() {
        let key = |operation, target, input: &[u8]| {
            IdempotencyKey::for_operation(&OrganizationId::nth(1), "k", operation, target, input)
                .request_hash
        };
        let a = key("post_entry", None, b"{}");
        assert_eq!(a.len(), 64);
        assert_eq!(a, key("post_entry", None, b"{}"));
        assert_ne!(a, key("create_account", None, b"{}"));
        assert_ne!(a, key("post_entry", Some(1), b"{}"));
        assert_ne!(a, key("post_entry", None, b"[]"));
        assert_ne!(
            key("issue_invoice", Some(1), b"{}"),
            key("issue_invoice", Some(2), b"{}")
        );
        assert_ne!(
            IdempotencyKey::http_fingerprint("POST", "/x", b"{}"),
            IdempotencyKey::http_fingerprint("POST", "/x", b"{ }")
        );
    }

    #[test]
    fn key_syntax() {
        assert!(IdempotencyKey::is_valid_key("a3f9-01"));
        assert!(!IdempotencyKey::is_valid_key(""));
        assert!(!IdempotencyKey::is_valid_key("has space"));
        assert!(!IdempotencyKey::is_valid_key(&"k".repeat(201)));
    }
}
