//! Closing a period (contract §5): the lock date, its history, and the
//! year-end close.
//!
//! The lock date itself is enforced where every posting passes, in the
//! committer ([`WhenLocked`]); this module changes it, shows its history and
//! posts closing entries.

use chrono::NaiveDate;
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::Row;

use super::accounts::{AccountType, NewAccount, accounts_for_posting, create_account};
use super::committer::{PERIOD_LOCKED, WhenLocked, locked_message};
use super::effects::{Bind, Effect, EffectTx, Guard};
use super::entries::{Entry, EntryKind, RenderEntry, ValidEntry, ValidLine};
use super::reports::balances_as_of;
use super::{Ledger, LedgerError, LedgerResult};
use crate::clock::now_ms;
use crate::db::sql::{BeginScoped, in_scope, on_pool};
use crate::db::{Database, Pool};
use crate::events::{self, NewEvent};
use crate::idempotency::{IdempotencyKey, Render};
use crate::metadata::Metadata;
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};

/// The equity account a close moves the period's result into; opened as
/// "Retained earnings" by the first close that needs it.
pub const RETAINED_EARNINGS: &str = "3900";

/// Why the lock date changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LockChange {
    /// Set, or moved later.
    Locked,
    /// Moved earlier: a locked period opened again.
    Reopened,
    /// Removed.
    Unlocked,
    /// Set by a year-end close.
    Closed,
}

impl LockChange {
    fn as_str(self) -> &'static str {
        match self {
            LockChange::Locked => "locked",
            LockChange::Reopened => "reopened",
            LockChange::Unlocked => "unlocked",
            LockChange::Closed => "closed",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "reopened" => LockChange::Reopened,
            "unlocked" => LockChange::Unlocked,
            "closed" => LockChange::Closed,
            _ => LockChange::Locked,
        }
    }

    /// The change from `old` to `new` (`None` when nothing changes).
    fn between(old: Option<NaiveDate>, new: Option<NaiveDate>) -> Option<Self> {
        match (old, new) {
            (old, new) if old == new => None,
            (_, None) => Some(LockChange::Unlocked),
            (Some(old), Some(new)) if new < old => Some(LockChange::Reopened),
            _ => Some(LockChange::Locked),
        }
    }
}

/// One change of the lock date, as the settings' history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SettingChange {
    /// Its id, in the order of the changes.
    pub id: i64,
    /// When (RFC 3339, UTC).
    pub changed_at: String,
    /// The user who made it.
    pub changed_by: String,
    /// The setting: `lock_date`.
    pub setting: String,
    /// Its value before (`null`: none).
    pub from: Option<String>,
    /// Its value after (`null`: none).
    pub to: Option<String>,
    /// `locked`, `reopened`, `unlocked` or `closed`.
    pub reason: LockChange,
}

/// The organization's lock date, if it has one.
pub async fn lock_date(
    db: &Database,
    organization: &OrganizationId,
) -> LedgerResult<Option<NaiveDate>> {
    let organization = organization.to_owned();
    let found: Option<Option<NaiveDate>> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_scalar("SELECT lock_date FROM organizations WHERE id = $1")
                    .bind(&organization)
                    .fetch_optional(&mut *tx)
                    .await?
            }))
        })
        .await?;
    Ok(found.flatten())
}

/// `409 PERIOD_LOCKED` now for a change dated `date` that the committer
/// would refuse when it posts later (a pay run, posted by a job): the caller
/// hears at once. The committer's check stays the one that holds.
pub async fn ensure_open(
    db: &Database,
    organization: &OrganizationId,
    date: NaiveDate,
) -> LedgerResult<()> {
    match lock_date(db, organization).await? {
        Some(lock) if date <= lock => Err(LedgerError::Conflict {
            code: PERIOD_LOCKED,
            message: locked_message(lock, date),
        }),
        _ => Ok(()),
    }
}

/// Sets (or with `None` removes) the organization's lock date on behalf of
/// user `by`, and records the change in the settings' history. Waits for
/// postings of the organization being written; none written afterwards
/// is dated on or before the new date (except the closing entry of a close).
pub async fn set_lock_date(
    db: &Database,
    organization: &OrganizationId,
    lock: Option<NaiveDate>,
    by: &str,
) -> LedgerResult<Option<NaiveDate>> {
    change_lock_date(db, organization, lock, by, None).await
}

/// Sets the lock date; `reason` overrides the reason the change records.
async fn change_lock_date(
    db: &Database,
    organization: &OrganizationId,
    lock: Option<NaiveDate>,
    by: &str,
    reason: Option<LockChange>,
) -> LedgerResult<Option<NaiveDate>> {
    let owned = organization.to_owned();
    let by = by.to_owned();
    db.run(|pool| async move {
        let exclusive = matches!(pool, Pool::Postgres(_));
        on_pool!(pool, p => {
            let mut tx = p.begin_writing_for(&owned).await?;
            if exclusive {
                // The committer reads the lock date from the account rows
                // it locks. Locking every account of the organization (in
                // id order, as the committer does, so neither waits on the
                // other in a circle) waits for the postings being written,
                // which commit under the old date; the rows are then updated
                // below, and later postings read the new date. The
                // organization's row first: an account being opened reads
                // the date from it (ledger::accounts) and waits. NO KEY
                // UPDATE, not UPDATE: the foreign-key checks of rows that
                // postings insert after their account locks (events, credit
                // notes) take KEY SHARE on this row, which UPDATE would make
                // wait on this transaction while it waits on their account
                // locks: a deadlock.
                sqlx::query("SELECT id FROM organizations WHERE id = $1 FOR NO KEY UPDATE")
                    .bind(&owned)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "SELECT id FROM accounts WHERE organization_id = $1 ORDER BY id FOR UPDATE",
                )
                .bind(&owned)
                .execute(&mut *tx)
                .await?;
            }
            let old: Option<NaiveDate> =
                sqlx::query_scalar("SELECT lock_date FROM organizations WHERE id = $1")
                    .bind(&owned)
                    .fetch_optional(&mut *tx)
                    .await?
                    .flatten();
            if let Some(change) = LockChange::between(old, lock) {
                sqlx::query("UPDATE organizations SET lock_date = $1 WHERE id = $2")
                    .bind(lock)
                    .bind(&owned)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE accounts SET lock_date = $1 WHERE organization_id = $2")
                    .bind(lock)
                    .bind(&owned)
                    .execute(&mut *tx)
                    .await?;
                let changed_ms = now_ms();
                let reason = reason.unwrap_or(change);
                let (from, to) = (old.map(|d| d.to_string()), lock.map(|d| d.to_string()));
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO settings_history (organization_id, changed_ms, changed_by, \
                     setting, old_value, new_value, reason) \
                     VALUES ($1, $2, $3, 'lock_date', $4, $5, $6) RETURNING id",
                )
                .bind(&owned)
                .bind(changed_ms)
                .bind(&by)
                .bind(&from)
                .bind(&to)
                .bind(reason.as_str())
                .fetch_one(&mut *tx)
                .await?;
                let shown = SettingChange {
                    id,
                    changed_at: crate::clock::rfc3339(changed_ms),
                    changed_by: by.clone(),
                    setting: "lock_date".to_owned(),
                    from,
                    to,
                    reason,
                };
                let event = NewEvent::new(events::PERIOD_LOCKED, &shown);
                events::write((&mut *tx).into(), &[(owned.as_str(), &event)], changed_ms).await?;
            }
            tx.commit().await?;
            Ok(lock)
        })
    })
    .await
    .map_err(LedgerError::from)
}

/// A page of the changes of the organization's settings, oldest first.
pub async fn settings_history(
    db: &Database,
    organization: &OrganizationId,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<SettingChange>>> {
    let organization = organization.to_owned();
    let after = page.after.unwrap_or(0);
    let fetch = page.limit.fetch();
    let rows = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query(
                    "SELECT id, changed_ms, changed_by, setting, old_value, new_value, reason \
                     FROM settings_history WHERE organization_id = $1 AND id > $2 \
                     ORDER BY id LIMIT $3",
                )
                .bind(&organization)
                .bind(after)
                .bind(fetch)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| {
                    Ok(SettingChange {
                        id: row.try_get("id")?,
                        changed_at: crate::jobs::store::rfc3339(row.try_get("changed_ms")?),
                        changed_by: row.try_get("changed_by")?,
                        setting: row.try_get("setting")?,
                        from: row.try_get("old_value")?,
                        to: row.try_get("new_value")?,
                        reason: LockChange::parse(row.try_get("reason")?),
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
            }))
        })
        .await?;
    Ok(page.page(rows, |change| change.id))
}

/// How many closes the organization has had, and whether one of them
/// reaches `through` while the lock date still covers it.
async fn closes(
    db: &Database,
    organization: &OrganizationId,
    through: NaiveDate,
) -> LedgerResult<(i64, bool)> {
    let organization = organization.to_owned();
    let row: (i64, i64) = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as(
                    "SELECT (SELECT count(*) FROM period_closes WHERE organization_id = $1), \
                     (SELECT count(*) FROM period_closes c JOIN organizations o \
                      ON o.id = c.organization_id \
                      WHERE c.organization_id = $1 AND c.through >= $2 AND o.lock_date >= $2)",
                )
                .bind(&organization)
                .bind(through)
                .fetch_one(&mut *tx)
                .await?
            }))
        })
        .await?;
    Ok((row.0, row.1 > 0))
}

/// The close's record, written with its entry: it holds only if no other
/// close of the organization committed since this one read the balances.
#[derive(Debug)]
struct CloseRecord {
    through: NaiveDate,
    closes_seen: i64,
}

impl Effect for CloseRecord {
    fn apply<'a>(&'a self, tx: &'a mut EffectTx<'_>) -> BoxFuture<'a, Result<Guard, sqlx::Error>> {
        Box::pin(async move {
            tx.serialize("accubooks.period_close").await?;
            let written = tx
                .execute(
                    "INSERT INTO period_closes (organization_id, through, entry_id, closed_ms) \
                     SELECT $1, $2, $3, $4 WHERE \
                     (SELECT count(*) FROM period_closes WHERE organization_id = $1) = $5",
                    &[
                        Bind::Organization,
                        Bind::EntryDate,
                        Bind::EntryId,
                        Bind::I64(now_ms()),
                        Bind::I64(self.closes_seen),
                    ],
                )
                .await?;
            Ok(if written == 1 {
                Guard::Held
            } else {
                Guard::TooEarly {
                    earliest: self.through,
                    code: "PERIOD_ALREADY_CLOSED",
                    message: "Another close of these books committed meanwhile; read them \
                              again before closing."
                        .to_owned(),
                }
            })
        })
    }
}

/// Closes the period through `through` for user `by`: sets the lock date to
/// it, then posts the closing entry dated `through`, moving every revenue
/// and expense balance at the end of that day into retained earnings
/// ([`RETAINED_EARNINGS`]). `409 PERIOD_ALREADY_CLOSED` when a close reaches
/// `through` and the period is still locked; a period reopened (its lock
/// date moved back) and closed again gets an entry for what changed since.
pub async fn close_period(
    ledger: &Ledger,
    organization: &OrganizationId,
    through: NaiveDate,
    by: &str,
    idempotency: Option<(IdempotencyKey, RenderEntry)>,
) -> LedgerResult<Entry> {
    let db = ledger.database();
    let (closes_seen, closed) = closes(db, organization, through).await?;
    if closed {
        return Err(LedgerError::Conflict {
            code: "PERIOD_ALREADY_CLOSED",
            message: format!(
                "The books are already closed through {through}. To close them again, move \
                 the lock date back first."
            ),
        });
    }
    match lock_date(db, organization).await? {
        Some(lock) if lock > through => {
            return Err(LedgerError::Conflict {
                code: PERIOD_LOCKED,
                message: format!(
                    "The books are locked through {lock}, after {through}: move the lock date \
                     back to {through} or earlier to close that period."
                ),
            });
        }
        Some(lock) if lock == through => {}
        _ => {
            // No posting dated in the period commits after this: the
            // balances read below are final.
            change_lock_date(
                db,
                organization,
                Some(through),
                by,
                Some(LockChange::Closed),
            )
            .await?;
        }
    }
    let entry = closing_entry(ledger, organization, through).await?;
    let shown = entry.clone();
    let idempotency = idempotency.map(|(key, render)| {
        let render: Render = Box::new(move |ids: &[i64]| render(&shown.posted(ids[0])));
        (key, render)
    });
    let ids = ledger
        .committer()
        .post_when_locked(
            vec![entry.clone()],
            idempotency,
            vec![Box::new(CloseRecord {
                through,
                closes_seen,
            })],
            WhenLocked::CloseThrough(through),
        )
        .await?;
    Ok(entry.posted(ids[0]))
}

/// The entry that brings every revenue and expense account to zero at the
/// end of `through`, against retained earnings.
async fn closing_entry(
    ledger: &Ledger,
    organization: &OrganizationId,
    through: NaiveDate,
) -> LedgerResult<ValidEntry> {
    let balances: Vec<_> = balances_as_of(ledger.database(), organization, through)
        .await?
        .into_iter()
        .filter(|line| {
            matches!(line.kind, AccountType::Revenue | AccountType::Expense)
                && line.balance_minor != 0
        })
        .collect();
    let Some(first) = balances.first() else {
        return Err(LedgerError::invalid(
            "NOTHING_TO_CLOSE",
            format!(
                "No revenue or expense account has a balance at the end of {through}; set the \
                 lock date instead to lock the period."
            ),
        ));
    };
    let currency = first.currency.clone();
    if let Some(other) = balances.iter().find(|line| line.currency != currency) {
        return Err(LedgerError::invalid(
            "CLOSE_CURRENCY_MISMATCH",
            format!(
                "Revenue and expense accounts are kept in {currency} and {}: a close moves them \
                 into one retained earnings account ({RETAINED_EARNINGS}), so they must share \
                 its currency.",
                other.currency
            ),
        ));
    }
    let mut codes: Vec<&str> = balances.iter().map(|line| line.code.as_str()).collect();
    codes.push(RETAINED_EARNINGS);
    let mut accounts = accounts_for_posting(ledger, organization, &codes).await?;
    if !accounts.contains_key(RETAINED_EARNINGS) {
        let opened = create_account(
            ledger.database(),
            organization,
            NewAccount {
                code: RETAINED_EARNINGS.to_owned(),
                name: "Retained earnings".to_owned(),
                kind: AccountType::Equity,
                currency: currency.clone(),
                parent: None,
                metadata: Metadata::default(),
            },
            None,
        )
        .await;
        match opened {
            // Opened meanwhile by a concurrent close: read below.
            Ok(_) | Err(LedgerError::Conflict { .. }) => {}
            Err(err) => return Err(err),
        }
        accounts = accounts_for_posting(ledger, organization, &codes).await?;
    }
    let retained = accounts.get(RETAINED_EARNINGS).ok_or_else(|| {
        LedgerError::invalid(
            "UNKNOWN_ACCOUNT",
            format!("The retained earnings account {RETAINED_EARNINGS} could not be opened."),
        )
    })?;
    if retained.kind != AccountType::Equity || retained.currency != currency {
        return Err(LedgerError::invalid(
            "CLOSE_CURRENCY_MISMATCH",
            format!(
                "Account {RETAINED_EARNINGS} must be an equity account in {currency} to take \
                 the period's result."
            ),
        ));
    }
    let mut lines = Vec::with_capacity(balances.len() + 1);
    let mut result: i64 = 0;
    for line in &balances {
        let account = accounts.get(&line.code).ok_or_else(|| {
            LedgerError::invalid(
                "UNKNOWN_ACCOUNT",
                format!("Account {} disappeared during the close.", line.code),
            )
        })?;
        result = result.checked_add(line.balance_minor).ok_or_else(|| {
            LedgerError::invalid(
                "AMOUNT_OUT_OF_RANGE",
                "The period's result is beyond what the books can hold.",
            )
        })?;
        lines.push(ValidLine {
            account_id: account.id,
            account_code: line.code.clone(),
            currency: currency.clone(),
            amount: -line.balance_minor,
        });
    }
    if result != 0 {
        lines.push(ValidLine {
            account_id: retained.id,
            account_code: RETAINED_EARNINGS.to_owned(),
            currency: currency.clone(),
            amount: result,
        });
    }
    Ok(ValidEntry {
        organization: organization.to_owned(),
        date: through,
        memo: format!("Closing entry for the period through {through}"),
        reverses: None,
        lines,
        metadata: Metadata::default(),
        kind: EntryKind::Closing,
    })
}
