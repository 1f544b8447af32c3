//! The books: organizations and users, the chart of accounts, the journal
//! and the reports, stored the same way on PostgreSQL and SQLite.
//!
//! Every function takes the organization it works for; nothing reads or
//! writes across organizations. Reading functions take the [`Database`];
//! those that post take the [`Ledger`], which adds what the ledger keeps
//! beside it: the account cache and the committer.

pub(crate) mod accounts;
pub(crate) mod balances;
pub(crate) mod committer;
mod effects;
pub(crate) mod entries;
mod export;
pub(crate) mod hierarchy;
pub(crate) mod journal;
pub(crate) mod periods;
pub(crate) mod reports;

use crate::db::Database;

pub(crate) use accounts::AccountShown;
pub use accounts::{
    Account, AccountCache, AccountType, NewAccount, RenderRecord, create_account, list_accounts,
    replace_account_metadata,
};
pub use committer::{Committer, WhenLocked};
pub use effects::{Bind, Effect, EffectTx, Guard, GuardedUpdate};
// Still reachable here for the callers that name it so (usecases/journal.rs).
pub use entries::{
    Entry, EntryInput, EntryKind, EntryLine, LineInput, RenderEntry, ValidEntry, ValidLine,
    get_entry, parse_date, post_reversal, prepare, prepare_batch, reverse_entry,
};
pub use export::{EXPORT_TIME_LIMIT, ExportFormat, ExportStream, export_ledger};
pub use journal::{EntryFilter, EntryKey, EntryOrder, list_entries};
pub use periods::{
    LockChange, RETAINED_EARNINGS, SettingChange, close_period, ensure_open, lock_date,
    set_lock_date, settings_history,
};
pub use reports::{
    AccountBalance, BalanceLine, BalanceSheet, GeneralLedger, IncomeStatement, LedgerKey,
    LedgerRow, TrialBalance, account_balance, account_history, balance_sheet, general_ledger,
    income_statement, trial_balance,
};

/// The ledger's handle: the database it keeps the books in, the accounts
/// it has looked up there (ids, types and currencies, never balances) and
/// the group-commit task that posts entries. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    db: Database,
    accounts: std::sync::Arc<AccountCache>,
    committer: Committer,
}

impl Ledger {
    /// The ledger of `db`; starts its committer (on the current runtime).
    pub fn start(db: Database) -> Self {
        Ledger {
            committer: Committer::start(db.clone()),
            accounts: std::sync::Arc::default(),
            db,
        }
    }

    /// The same ledger reading through `db` (another share of the same
    /// database: the jobs'); entries are still posted by this ledger's
    /// committer, on its connections, and the account cache is shared.
    pub fn with_database(&self, db: Database) -> Self {
        Ledger {
            db,
            accounts: std::sync::Arc::clone(&self.accounts),
            committer: self.committer.clone(),
        }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The task that posts entries, in groups.
    pub fn committer(&self) -> &Committer {
        &self.committer
    }

    pub(crate) fn accounts(&self) -> &AccountCache {
        &self.accounts
    }
}

/// Errors of the books, each a clear answer for the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The input is well-formed but not acceptable (422).
    #[error("{message}")]
    Invalid {
        /// Machine code, e.g. `UNBALANCED_ENTRY`.
        code: &'static str,
        /// What to fix.
        message: String,
    },
    /// Absent, or another organization's (404).
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with what exists (409).
    #[error("{message}")]
    Conflict {
        /// Machine code.
        code: &'static str,
        /// What happened.
        message: String,
    },
    /// Existed, but is no longer kept (410): a report's result purged
    /// after `RETENTION_DAYS`.
    #[error("{message}")]
    Gone {
        /// Machine code, e.g. `REPORT_EXPIRED`.
        code: &'static str,
        /// What expired and how to get it again.
        message: String,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] crate::Error),
}

/// A request whose twin (the same `Idempotency-Key`) committed first: a
/// conflict, answered by the pipeline with the twin's stored answer.
impl From<crate::idempotency::KeyInUse> for LedgerError {
    fn from(err: crate::idempotency::KeyInUse) -> Self {
        LedgerError::Conflict {
            code: crate::idempotency::KeyInUse::CODE,
            message: err.to_string(),
        }
    }
}

/// A page request the books cannot serve is invalid input (422), as at
/// every door.
impl From<crate::paging::PagingError> for LedgerError {
    fn from(err: crate::paging::PagingError) -> Self {
        LedgerError::invalid(err.code(), err.to_string())
    }
}

impl LedgerError {
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        LedgerError::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// How a job that failed on the books ends: what the client got wrong is
/// permanent (no retry fixes it), a storage fault is retried.
impl From<LedgerError> for crate::jobs::JobFailure {
    fn from(err: LedgerError) -> Self {
        use crate::jobs::JobFailure;
        match err {
            LedgerError::Invalid { code, .. }
            | LedgerError::Conflict { code, .. }
            | LedgerError::Gone { code, .. } => JobFailure::permanent(code),
            LedgerError::NotFound(_) => JobFailure::permanent("NOT_FOUND"),
            LedgerError::Storage(err) => err.into(),
        }
    }
}

/// Shorthand for ledger results.
pub type LedgerResult<T> = Result<T, LedgerError>;
