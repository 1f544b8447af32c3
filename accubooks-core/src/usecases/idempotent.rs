//! `Idempotency-Key` for every door: the same key with the same request
//! answers the first answer again; with another request it is refused.
//!
//! A request is fingerprinted from its operation, its target and the JSON of
//! its typed input (fields in declaration order), so a retry is recognised
//! whichever door sends it and however its JSON was spaced or ordered.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use super::{Books, Error};
use crate::idempotency::{self, IdempotencyKey, Stored};
use crate::identity::{Principal, Role};
use crate::ledger::LedgerError;

/// How long a retry waits for the answer of its twin whose write committed
/// but whose answer is still being written.
const PENDING_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// An `Idempotency-Key` as a client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    text: String,
    legacy_fingerprint: Option<String>,
}

impl ClientKey {
    /// The key a client sent.
    pub fn new(text: impl Into<String>) -> Self {
        ClientKey {
            text: text.into(),
            legacy_fingerprint: None,
        }
    }

    /// Also accepts the fingerprint that releases before the use-case layer
    /// stored for an HTTP request (its method, path and raw body), so that a
    /// client retrying across the upgrade still gets its first answer.
    /// Remove once no key written before the upgrade can be retried.
    pub fn with_http_fingerprint(mut self, method: &str, path: &str, body: &[u8]) -> Self {
        self.legacy_fingerprint = Some(IdempotencyKey::http_fingerprint(method, path, body));
        self
    }

    fn fingerprint(
        &self,
        caller: &Principal,
        operation: &str,
        target: Option<i64>,
        input: &(impl Serialize + ?Sized),
    ) -> super::Result<IdempotencyKey> {
        if !IdempotencyKey::is_valid_key(&self.text) {
            return Err(Error::InvalidKey);
        }
        let input = serde_json::to_vec(input).expect("use-case inputs serialize");
        let mut key = IdempotencyKey::for_operation(
            &super::org(caller),
            &self.text,
            operation,
            target,
            &input,
        );
        key.legacy_hash.clone_from(&self.legacy_fingerprint);
        Ok(key)
    }
}

/// What a creating operation answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// Done by this call.
    Done(T),
    /// A retry under the same key: the first call's answer, as the JSON
    /// of `T` stored with its write.
    Replayed(String),
}

impl<T: Serialize> Answer<T> {
    /// The answer as JSON: the same text for the first call and its replays.
    pub fn to_json(&self) -> String {
        match self {
            Answer::Done(value) => json(value),
            Answer::Replayed(text) => text.clone(),
        }
    }

    /// Whether this is a replay of an earlier call.
    pub fn is_replay(&self) -> bool {
        matches!(self, Answer::Replayed(_))
    }
}

/// The same JSON as [`Answer::to_json`], for doors that convert answers
/// through serde (the Python classes).
impl<T: Serialize> Serialize for Answer<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Answer::Done(value) => value.serialize(serializer),
            Answer::Replayed(text) => serde_json::from_str::<serde_json::Value>(text)
                .map_err(serde::ser::Error::custom)?
                .serialize(serializer),
        }
    }
}

/// The JSON stored (and answered) for a value.
pub(crate) fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("use-case outputs serialize")
}

/// The stored answer of a write, for the ledger to store in the write's
/// own transaction.
pub(crate) fn stored<T: Serialize + ?Sized>(value: &T) -> (u16, String) {
    (idempotency::ANSWERED, json(value))
}

/// The identity of one keyed operation.
pub(crate) struct Keyed<'a, I: ?Sized> {
    /// The operation's stable name, part of the fingerprint.
    pub(crate) operation: &'static str,
    /// The record it acts on (an invoice, an entry), if any.
    pub(crate) target: Option<i64>,
    /// Its typed input.
    pub(crate) input: &'a I,
}

impl Books<'_> {
    /// A creating use case as every door runs it: [`Books::run`] around
    /// [`Books::keyed`], under the operation's one name.
    pub(crate) async fn run_keyed<I, T, F, Fut>(
        &self,
        caller: &Principal,
        role: Role,
        key: Option<ClientKey>,
        keyed: Keyed<'_, I>,
        work: F,
    ) -> super::Result<Answer<T>>
    where
        I: Serialize + ?Sized,
        T: Serialize,
        F: FnOnce(Option<IdempotencyKey>) -> Fut,
        Fut: Future<Output = super::Result<T>>,
    {
        let operation = keyed.operation;
        let work = self.keyed(caller, key, keyed, work);
        self.run(operation, Some(caller), role, work).await
    }

    /// Runs a creating operation under an optional key: replays the stored
    /// answer of a retry, refuses a key reused with another request, and
    /// otherwise runs `work`, which stores its answer with its write (or a
    /// pending mark that this fills in after it).
    pub(crate) async fn keyed<I, T, F, Fut>(
        &self,
        caller: &Principal,
        key: Option<ClientKey>,
        keyed: Keyed<'_, I>,
        work: F,
    ) -> super::Result<Answer<T>>
    where
        I: Serialize + ?Sized,
        T: Serialize,
        F: FnOnce(Option<IdempotencyKey>) -> Fut,
        Fut: Future<Output = super::Result<T>>,
    {
        let Some(key) = key else {
            return Ok(Answer::Done(work(None).await?));
        };
        let key = key.fingerprint(caller, keyed.operation, keyed.target, keyed.input)?;
        let db = self.app.database();
        match Box::pin(idempotency::lookup(db, &key)).await? {
            Stored::Absent => {}
            stored => {
                return Box::pin(self.replay(&key, stored))
                    .await
                    .map(Answer::Replayed);
            }
        }
        match work(Some(key.clone())).await {
            Ok(value) => {
                Box::pin(idempotency::store(db, &key, &json(&value))).await?;
                Ok(Answer::Done(value))
            }
            // A conflict may be a twin with the same key that committed
            // first (the key itself, or the state it changed, such as an
            // invoice it issued): then answer what it answered.
            Err(Error::Ledger(conflict @ LedgerError::Conflict { .. })) => {
                match Box::pin(idempotency::lookup(db, &key)).await? {
                    Stored::Absent => Err(conflict.into()),
                    stored => Box::pin(self.replay(&key, stored))
                        .await
                        .map(Answer::Replayed),
                }
            }
            Err(err) => Err(err),
        }
    }

    /// The answer stored under a key, waiting a little while it is pending.
    async fn replay(&self, key: &IdempotencyKey, mut stored: Stored) -> super::Result<String> {
        let deadline = tokio::time::Instant::now() + PENDING_ANSWER_WAIT;
        loop {
            match stored {
                Stored::Replay { body } => return Ok(body),
                Stored::Mismatch => return Err(Error::KeyReused),
                Stored::Pending if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Stored::Pending => return Err(Error::KeyInProgress),
                Stored::Absent => {
                    return Err(LedgerError::Storage(crate::Error::Setup(
                        "an idempotency key vanished while its answer was replayed".to_owned(),
                    ))
                    .into());
                }
            }
            stored = idempotency::lookup(self.app.database(), key).await?;
        }
    }
}
