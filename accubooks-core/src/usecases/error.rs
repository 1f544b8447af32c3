//! The one error of every use case.

use crate::deps::Unavailable;
use crate::ledger::LedgerError;

/// The sentence of [`Error::Forbidden`].
pub(crate) const FORBIDDEN: &str = "Your role may not do this.";
/// The sentence of [`Error::UnknownUser`].
pub(crate) const UNKNOWN_USER: &str = "The user of this token no longer exists. Log in again.";

/// Why a use case did not do what it was asked. Each door maps it to its
/// own form (HTTP: [`ApiError`](crate::http::ApiError), in one place).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// What the books refused or failed at.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Login with an unknown e-mail address or a wrong password.
    #[error("The e-mail address or the password is wrong.")]
    InvalidCredentials,
    /// Too many attempts from this client or for this key.
    #[error(transparent)]
    Throttled(#[from] crate::throttle::Throttled),
    /// Every password-hashing worker is busy; retry shortly.
    #[error(transparent)]
    HashingBusy(#[from] crate::identity::HashingBusy),
    /// The caller's role may not do this.
    #[error("{FORBIDDEN}")]
    Forbidden,
    /// The caller's user was removed from the organization.
    #[error("{UNKNOWN_USER}")]
    UnknownUser,
    /// A dependency the operation needs is known to be down.
    #[error("{}", .0.message)]
    Unavailable(Unavailable),
    /// The operation did not finish within its time limit.
    #[error("The operation did not finish within {limit_ms} ms. Please retry.")]
    TimedOut {
        /// The limit.
        limit_ms: u64,
    },
    /// Too much heavy work of this kind runs already.
    #[error(transparent)]
    Overloaded(#[from] crate::limits::Overloaded),
    /// A webhook's signature is missing, forged or stale.
    #[error(transparent)]
    InvalidSignature(#[from] crate::saas::stripe::BadSignature),
    /// A Plaid webhook's `Plaid-Verification` is missing, forged or stale.
    #[error(transparent)]
    InvalidPlaidSignature(crate::saas::plaid::webhook::BadPlaidSignature),
    /// The `Idempotency-Key` is not 1 to 200 visible ASCII characters.
    #[error("An Idempotency-Key has 1 to 200 visible ASCII characters.")]
    InvalidKey,
    /// The `Idempotency-Key` was used with a different request.
    #[error("This Idempotency-Key was used with a different request; use a new key.")]
    KeyReused,
    /// The request with this key was written but its answer is not ready.
    #[error(
        "The request with this Idempotency-Key was written but its answer is not ready; \
         retry shortly, or read the resource to see its state."
    )]
    KeyInProgress,
}

impl From<crate::Error> for Error {
    fn from(err: crate::Error) -> Self {
        Error::Ledger(LedgerError::Storage(err))
    }
}

impl From<crate::identity::IdentityError> for Error {
    fn from(err: crate::identity::IdentityError) -> Self {
        use crate::identity::IdentityError as E;
        match err {
            E::Books(err) => Error::Ledger(err),
            E::InvalidCredentials => Error::InvalidCredentials,
            E::Throttled(throttled) => Error::Throttled(throttled),
            E::HashingBusy(busy) => Error::HashingBusy(busy),
        }
    }
}

impl Error {
    /// Whether the operation was refused (bad input, a conflict, a known
    /// outage, a limit) rather than failed.
    pub(crate) fn is_refusal(&self) -> bool {
        !matches!(
            self,
            Error::TimedOut { .. }
                | Error::Ledger(LedgerError::Storage(
                    crate::Error::Query(_)
                        | crate::Error::Setup(_)
                        | crate::Error::StatementTimedOut { .. }
                ))
        )
    }

    /// Adds the position of an entry in a batch to the message of an
    /// invalid entry.
    pub(crate) fn in_entry(err: LedgerError, index: usize) -> Self {
        match err {
            LedgerError::Invalid { code, message } => Error::Ledger(LedgerError::Invalid {
                code,
                message: format!("Entry {}: {message}", index + 1),
            }),
            other => Error::Ledger(other),
        }
    }
}

/// Shorthand for use-case results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
