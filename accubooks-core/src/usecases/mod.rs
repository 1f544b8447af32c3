//! The use cases: one method per thing a caller can do with the books.
//!
//! Every door (the HTTP routes of [`crate::http`], the Python classes)
//! translates its input, calls one method of [`Books`] and translates the
//! answer back. What every door must share lives here, once:
//!
//! - the role the caller needs (`FORBIDDEN` otherwise);
//! - the 503 guard: refused at once while the database is known down;
//! - the time limit of the operation (`REQUEST_TIMEOUT_MS`, exports
//!   [`EXPORT_TIME_LIMIT`](crate::ledger::EXPORT_TIME_LIMIT));
//! - `Idempotency-Key` replay, fingerprinted from the typed input (so one
//!   request is the same whichever door it came through, however its JSON
//!   was spaced), with the wait for a twin whose answer is pending;
//! - the metrics of the work (`accubooks_operation_duration_seconds`).
//!
//! The methods take the caller's [`Principal`], typed input and an optional
//! [`ClientKey`], and answer typed output or one [`Error`].

mod banking;
pub(crate) mod error;
mod events;
mod idempotent;
mod identity;
mod invoicing;
mod jobs;
mod ledger;
mod payroll;
mod periods;
mod plaid_webhook;
mod reporting;
mod webhooks;

use std::future::Future;
use std::time::{Duration, Instant};

pub use error::{Error, Result};
pub use idempotent::{Answer, ClientKey};
pub use identity::{Client, TOKEN_LIFETIME};
pub use invoicing::{Dated, MAX_PREVIEW, Payment, WebhookOutcome, WebhookReceipt};
pub use ledger::{Batch, MAX_BATCH, Posted};
pub use periods::{Close, Settings, SettingsChange};
pub use plaid_webhook::{PlaidWebhookOutcome, PlaidWebhookReceipt};

use crate::app::AccuBooks;
use crate::identity::{Principal, Role};
use crate::organization::OrganizationId;

/// The use cases of one AccuBooks instance, from
/// [`AccuBooks::books`].
#[derive(Clone, Copy)]
pub struct Books<'a> {
    app: &'a AccuBooks,
}

impl<'a> Books<'a> {
    pub(crate) fn new(app: &'a AccuBooks) -> Self {
        Books { app }
    }
}

impl Books<'_> {
    /// Runs one operation as every door must: the role check, the guard,
    /// the time limit and the metrics.
    async fn run<T, F>(
        &self,
        operation: &'static str,
        caller: Option<&Principal>,
        role: Role,
        work: F,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        self.run_within(
            operation,
            caller,
            role,
            self.app.config().request_timeout,
            work,
        )
        .await
    }

    async fn run_within<T, F>(
        &self,
        operation: &'static str,
        caller: Option<&Principal>,
        role: Role,
        limit: Duration,
        work: F,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let result = async {
            if let Some(caller) = caller
                && caller.role < role
            {
                return Err(Error::Forbidden);
            }
            self.guard()?;
            // Boxed: a use case's future nests the ledger's, and a door's
            // nests the use case's; one allocation keeps every door's future
            // small (and within the compiler's layout depth).
            tokio::time::timeout(limit, Box::pin(work))
                .await
                .unwrap_or(Err(Error::TimedOut {
                    limit_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                }))
        }
        .await;
        self.app
            .metrics()
            .observe_operation(operation, outcome(&result), started.elapsed());
        result
    }

    /// Refuses at once while the database is known to be down.
    fn guard(&self) -> Result<()> {
        match self.app.registry().get(crate::deps::DATABASE) {
            Some(db) if !db.is_available() => Err(Error::Unavailable(db.unavailable())),
            _ => Ok(()),
        }
    }

    /// The 503 of the dependency `name` (one of the built-in ones).
    fn unavailable(&self, name: &'static str) -> Error {
        let dependency = self.app.registry().get(name);
        Error::Unavailable(dependency.expect("a built-in dependency").unavailable())
    }

    /// The caller of a token as the books know them now: the lower of the
    /// token's `role` claim and the role of the user's row (briefly cached,
    /// so a demotion applies at once), or [`Error::UnknownUser`] when the
    /// user was removed. A token never grants more than it says: one minted
    /// with `role: viewer` for an owner only reads.
    pub async fn current_principal(&self, claimed: Principal) -> Result<Principal> {
        let (user, organization) = (claimed.user, claimed.organization);
        let role = match self.app.members().get(user, organization) {
            Some(role) => role,
            None => {
                let role =
                    crate::identity::member_role(self.app.database(), organization, user).await?;
                self.app.members().put(user, organization, role);
                role
            }
        };
        let role = role.ok_or(Error::UnknownUser)?;
        Ok(Principal {
            role: role.min(claimed.role),
            ..claimed
        })
    }
}

/// The `outcome` label of an operation's metrics.
fn outcome<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(err) if err.is_refusal() => "refused",
        Err(_) => "failed",
    }
}

/// The organization id as the storage layer keys it.
fn org(caller: &Principal) -> OrganizationId {
    OrganizationId::from(caller.organization)
}
