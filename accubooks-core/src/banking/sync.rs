//! The sync job: `/transactions/sync` page by page until a pass completes,
//! then the pass's lines and its last cursor saved in one transaction
//! (compare and set on the cursor); lines that cannot be booked are set
//! aside for review.

use std::collections::HashMap;

use secrecy::SecretString;

use super::*;
use crate::db::Database;
use crate::db::sql::{BeginScoped, List, in_list, in_scope, on_pool};
use crate::events::{self, NewEvent};
use crate::jobs::{JobFailure, JobStatus, NewJob, insert_job, now_ms};
use crate::ledger::{Ledger, LedgerResult};
use crate::money;
use crate::organization::OrganizationId;
use crate::saas::plaid::{Plaid, PlaidAccount, PlaidError, PlaidTransaction, SyncPage};
use crate::sealed::Sealer;

/// Asks for a sync of every linked item: one job on the `bank-feeds` queue.
/// While a sync job of the organization is waiting, running or to be
/// retried, asking again answers that job: two clicks never run two
/// overlapping syncs.
pub async fn request_sync(
    db: &Database,
    organization: &OrganizationId,
) -> LedgerResult<SyncRequested> {
    let owned = organization.to_owned();
    let now = now_ms();
    let asked: Option<(i64, String)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                // A write first: it locks the items (PostgreSQL) or the
                // database (SQLite), so two requests cannot both find no
                // active job and both record one.
                let items = sqlx::query("UPDATE bank_items SET sync_cursor = sync_cursor WHERE organization_id = $1 AND removed_ms IS NULL")
                    .bind(&owned)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if items == 0 {
                    None
                } else {
                    let active: Option<(i64, String)> = sqlx::query_as(
                        "SELECT id, status FROM jobs WHERE organization_id = $1 AND kind = $2 \
                         AND status IN ('pending', 'queued', 'running', 'failed') ORDER BY id LIMIT 1",
                    )
                    .bind(&owned)
                    .bind(JOB_KIND)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match active {
                        Some(active) => Some(active),
                        None => {
                            let job = NewJob {
                                queue: QUEUE,
                                kind: JOB_KIND,
                                unique_key: format!("bank-sync:{}", uuid::Uuid::new_v4()),
                                payload: serde_json::Value::Null,
                            };
                            let id = insert_job!(tx, &owned, &job, now)?;
                            let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
                                .bind(id)
                                .fetch_one(&mut *tx)
                                .await?;
                            Some((id, status))
                        }
                    }
                }
            }))
        })
        .await?;
    let (job_id, status) = asked.ok_or_else(|| {
        conflict(
            "NO_BANK_ITEMS",
            "No bank is linked yet; link one with POST /api/bank/link first.",
        )
    })?;
    Ok(SyncRequested {
        job_id,
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Pending),
    })
}

/// What a failed Plaid call means for a sync job, by its meaning: what
/// passes (Plaid or the bank down, not ready, rate limited) is retried with
/// the job's backoff; what needs the user (a login, a broken item) ends the
/// job and sets the item's status ([`item_status_after`]), so later syncs
/// leave the item alone until the user fixes it. Plaid's own code is logged.
pub(super) fn job_failure(err: &PlaidError) -> JobFailure {
    let failure = match err {
        PlaidError::Unavailable(fault) => JobFailure::temporary(fault.code),
        PlaidError::Temporary { code, .. } => JobFailure::temporary(code),
        PlaidError::MutationDuringPagination => {
            JobFailure::temporary("BANK_SYNC_MUTATION_DURING_PAGINATION")
        }
        PlaidError::LoginRequired(_) | PlaidError::InvalidPublicToken => {
            JobFailure::permanent(ITEM_LOGIN_REQUIRED)
        }
        PlaidError::ItemError(_) => JobFailure::permanent(ITEM_ERROR),
        PlaidError::Refused { .. } => JobFailure::permanent("BANK_SYNC_REFUSED"),
    };
    tracing::info!(plaid_code = err.plaid_code(), code = failure.code, transience = %failure.transience, "a Plaid call of a bank sync failed");
    failure
}

/// The job of a sync: imports every item's updates. An item that fails
/// does not stop the others; the job then fails temporarily if any item
/// did (a retry resumes each from its saved cursor), else permanently.
pub(crate) async fn sync(
    ledger: &Ledger,
    sealer: &Sealer,
    plaid: Option<&Plaid>,
    organization: &OrganizationId,
) -> Result<(), JobFailure> {
    let plaid = plaid.ok_or(JobFailure::permanent("BANK_INTEGRATION_DISABLED"))?;
    let db = ledger.database();
    let owned = organization.to_owned();
    let items: Vec<(i64, String, String, String)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT id, item_id, access_token, sync_cursor FROM bank_items \
                     WHERE organization_id = $1 AND {SYNCABLE} ORDER BY id",
                )))
                .bind(&owned)
                .fetch_all(&mut *tx)
                .await?
            }))
        })
        .await?;
    let mut failure: Option<JobFailure> = None;
    for (id, item_id, sealed, cursor) in items {
        let Ok(token) = sealer.open(&sealed, &token_context(organization, &item_id)) else {
            tracing::warn!(
                organization = %organization,
                item = id,
                "a bank item's access token does not open (SESSION_SECRET changed?); remove it and link the bank again"
            );
            set_item_status(
                db,
                organization,
                &item_id,
                ItemStatus::Error,
                Some(ITEM_UNREADABLE),
            )
            .await?;
            failure = failure.or(Some(JobFailure::permanent(ITEM_UNREADABLE)));
            continue;
        };
        let item = Item {
            id,
            organization,
            token,
        };
        match sync_item(ledger, plaid, &item, cursor).await {
            Ok(imported) => {
                mark_synced(db, organization, id).await?;
                tracing::info!(organization = %organization, item = id, imported, "bank item synced");
            }
            Err(err) => {
                tracing::warn!(organization = %organization, item = id, code = err.code, transience = %err.transience, "bank item sync failed");
                if let Some(status) = item_status_after(&err) {
                    set_item_status(db, organization, &item_id, status, Some(err.code)).await?;
                }
                if failure.is_none_or(|f| f.transience == crate::error::Transience::Permanent) {
                    failure = Some(err);
                }
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// A linked item as a sync works it.
pub(super) struct Item<'a> {
    id: i64,
    organization: &'a str,
    token: SecretString,
}

/// Syncs one item as Plaid specifies: pages from the stored cursor until
/// `has_more` is false, then saves the whole pass (its lines and its last
/// cursor) in one transaction. After `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`
/// the pass is discarded and paged again from its first cursor: no line of
/// an abandoned pass is saved, and the stored cursor only ever names the
/// end of a complete pass. Answers how many lines it saved.
pub(super) async fn sync_item(
    ledger: &Ledger,
    plaid: &Plaid,
    item: &Item<'_>,
    cursor: String,
) -> Result<usize, JobFailure> {
    let db = ledger.database();
    let mut restarts = 0;
    let pages = 'pass: loop {
        let mut pages: Vec<SyncPage> = Vec::new();
        let mut request = cursor.clone();
        loop {
            match plaid.sync(&item.token, &request).await {
                Ok(page) => {
                    let more = page.has_more;
                    request.clone_from(&page.next_cursor);
                    pages.push(page);
                    if !more {
                        break 'pass pages;
                    }
                }
                Err(PlaidError::MutationDuringPagination) if restarts < MAX_RESTARTS => {
                    restarts += 1;
                    tracing::info!(
                        organization = item.organization,
                        item = item.id,
                        restarts,
                        discarded_pages = pages.len(),
                        "bank data changed during pagination; the pass is discarded and restarts from its first cursor"
                    );
                    continue 'pass;
                }
                Err(err) => return Err(job_failure(&err)),
            }
        }
    };
    // Each answer lists the accounts of its own lines (Plaid's schema):
    // lines of an account opened since the link, or one `/accounts/get`
    // leaves out, are kept. The latest listing of an account wins.
    let mut listed: Vec<PlaidAccount> = Vec::new();
    for account in pages.iter().rev().flat_map(|p| &p.accounts) {
        if !listed.iter().any(|a| a.account_id == account.account_id) {
            listed.push(account.clone());
        }
    }
    save_accounts(db, item, &listed).await?;
    let accounts = item_accounts(db, item).await?;
    match save_pass(db, item, &cursor, &pages, &accounts).await? {
        Some(saved) => Ok(saved),
        None => {
            // Another sync of this item saved a pass meanwhile: it holds
            // the same updates.
            tracing::info!(
                organization = item.organization,
                item = item.id,
                "another sync saved this item's updates first"
            );
            Ok(0)
        }
    }
}

/// The item's accounts: Plaid's account id → (our id, currency).
pub(super) async fn item_accounts(
    db: &Database,
    item: &Item<'_>,
) -> LedgerResult<HashMap<String, (i64, String)>> {
    let (owned, id) = (item.organization.to_owned(), item.id);
    let rows: Vec<(String, i64, String)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(
                    "SELECT plaid_account_id, id, currency FROM bank_accounts \
                     WHERE organization_id = $1 AND item_id = $2",
                )
                .bind(&owned)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
            }))
        })
        .await?;
    Ok(rows
        .into_iter()
        .map(|(plaid, id, currency)| (plaid, (id, currency)))
        .collect())
}

pub(super) async fn save_accounts(
    db: &Database,
    item: &Item<'_>,
    accounts: &[PlaidAccount],
) -> LedgerResult<()> {
    let (owned, id) = (item.organization.to_owned(), item.id);
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &owned, tx => {
            save_accounts_in!(tx, &owned, id, accounts);
        }))
    })
    .await?;
    Ok(())
}

/// Why a line is set aside for review rather than booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Review {
    /// More fraction digits than its currency has (`0.123` USD).
    InexactAmount,
    /// Not a decimal number we can read exactly (say `1e21`).
    InvalidAmount,
    /// An ISO code we know no exponent of, or no currency at all.
    UnknownCurrency,
    /// Only an unofficial currency code (a crypto account).
    UnofficialCurrency,
    /// Zero: nothing to book; dismiss it.
    ZeroAmount,
}

impl Review {
    /// The stored and answered name.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Review::InexactAmount => "INEXACT_AMOUNT",
            Review::InvalidAmount => "INVALID_AMOUNT",
            Review::UnknownCurrency => "UNKNOWN_CURRENCY",
            Review::UnofficialCurrency => "UNOFFICIAL_CURRENCY",
            Review::ZeroAmount => "ZERO_AMOUNT",
        }
    }
}

/// A Plaid transaction as a line to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NewLine {
    pub(super) account: i64,
    /// Minor units, when the amount is exact in its currency.
    pub(super) amount: Option<i64>,
    /// Plaid's amount as sent.
    pub(super) plaid_amount: String,
    pub(super) currency: String,
    pub(super) name: String,
    /// Set when the line cannot be booked as it is.
    pub(super) review: Option<Review>,
}

/// The line of a transaction, or `None` for an account the item does not
/// list. A transaction that cannot be booked (an inexact amount, an
/// unofficial or unknown currency, zero) becomes a line set aside for
/// review: one odd line never stops the item's feed.
pub(super) fn line_of(
    transaction: &PlaidTransaction,
    accounts: &HashMap<String, (i64, String)>,
) -> Option<NewLine> {
    let (account, account_currency) = accounts.get(&transaction.account_id)?;
    let plaid_amount = transaction.amount.to_string();
    let (currency, mut review) = match (
        &transaction.iso_currency_code,
        &transaction.unofficial_currency_code,
    ) {
        (Some(iso), _) => (iso.clone(), None),
        (None, Some(unofficial)) => (unofficial.clone(), Some(Review::UnofficialCurrency)),
        (None, None) => (account_currency.clone(), None),
    };
    let amount = match money::minor_digits(&currency) {
        _ if review.is_some() => None,
        None => {
            review = Some(Review::UnknownCurrency);
            None
        }
        Some(digits) => match money::quantize_minor(&plaid_amount, digits) {
            Ok(0) => {
                review = Some(Review::ZeroAmount);
                Some(0)
            }
            Ok(minor) => Some(minor),
            Err(money::MoneyError::TooPrecise { .. }) => {
                review = Some(Review::InexactAmount);
                None
            }
            Err(_) => {
                review = Some(Review::InvalidAmount);
                None
            }
        },
    };
    let name = transaction
        .name
        .as_deref()
        .or(transaction.merchant_name.as_deref())
        .unwrap_or_default();
    Some(NewLine {
        account: *account,
        amount,
        plaid_amount,
        currency: currency.chars().take(16).collect(),
        name: truncate(name),
        review,
    })
}

/// Deletes a line that is not matched (removed by the bank, or the pending
/// line a posted one replaces); a matched one keeps its posting.
const DELETE_UNMATCHED: &str = "DELETE FROM bank_transactions WHERE organization_id = $1 \
     AND plaid_transaction_id = $2 AND status IN ('unmatched', 'review', 'dismissed')";

/// Saves a complete pass (its pages in order) and the cursor after it, in
/// one transaction that first moves the item's cursor from `begun` (where
/// the pass began). Answers the lines saved, or `None` when the cursor had
/// moved (another sync saved a pass meanwhile).
pub(super) async fn save_pass(
    db: &Database,
    item: &Item<'_>,
    begun: &str,
    pages: &[SyncPage],
    accounts: &HashMap<String, (i64, String)>,
) -> Result<Option<usize>, JobFailure> {
    let mut lines = Vec::new();
    let mut removed: Vec<&str> = Vec::new();
    for page in pages {
        for (transaction, modified) in page
            .added
            .iter()
            .map(|t| (t, false))
            .chain(page.modified.iter().map(|t| (t, true)))
        {
            match line_of(transaction, accounts) {
                Some(line) => lines.push((transaction, modified, line)),
                None => tracing::warn!(
                    organization = item.organization,
                    item = item.id,
                    "a bank line of an account Plaid does not list was skipped"
                ),
            }
        }
        removed.extend(page.removed.iter().map(|r| r.transaction_id.as_str()));
    }
    let set_aside = lines.iter().filter(|l| l.2.review.is_some()).count();
    if set_aside > 0 {
        tracing::info!(
            organization = item.organization,
            item = item.id,
            set_aside,
            "bank lines that cannot be booked as sent were set aside for review"
        );
    }
    let Some(next) = pages.last().map(|p| p.next_cursor.as_str()) else {
        return Ok(Some(0));
    };
    let (owned, id, now) = (item.organization.to_owned(), item.id, now_ms());
    let begun = begun.to_owned();
    let (lines, removed) = (&lines, &removed);
    let count = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&owned).await?;
                // First: on PostgreSQL this locks the item's row, so passes of
                // two syncs of one item are saved one after the other.
                let moved = sqlx::query(
                    "UPDATE bank_items SET sync_cursor = $1 WHERE id = $2 AND organization_id = $3 AND sync_cursor = $4",
                )
                .bind(next)
                .bind(id)
                .bind(&owned)
                .bind(&begun)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if moved != 1 {
                    return Ok(None);
                }
                // The lines written (new, or unmatched ones the bank changed):
                // each has its event.
                let mut imported: Vec<i64> = Vec::new();
                for (transaction, modified, line) in lines {
                    let written: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO bank_transactions (organization_id, account_id, plaid_transaction_id, amount, \
                         currency, posted_on, name, pending, status, created_ms, review_reason, plaid_amount) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                         ON CONFLICT (organization_id, plaid_transaction_id) DO UPDATE SET \
                         account_id = excluded.account_id, amount = excluded.amount, currency = excluded.currency, \
                         posted_on = excluded.posted_on, name = excluded.name, pending = excluded.pending, \
                         status = excluded.status, review_reason = excluded.review_reason, \
                         plaid_amount = excluded.plaid_amount \
                         WHERE bank_transactions.status IN ('unmatched', 'review') RETURNING id",
                    )
                    .bind(&owned)
                    .bind(line.account)
                    .bind(&transaction.transaction_id)
                    .bind(line.amount)
                    .bind(&line.currency)
                    .bind(transaction.date)
                    .bind(&line.name)
                    .bind(transaction.pending)
                    .bind(if line.review.is_some() { "review" } else { "unmatched" })
                    .bind(now)
                    .bind(line.review.map(Review::as_str))
                    .bind(&line.plaid_amount)
                    .fetch_optional(&mut *tx)
                    .await?;
                    imported.extend(written);
                    if *modified {
                        sqlx::query(FLAG_MATCHED)
                            .bind("modified")
                            .bind(&owned)
                            .bind(&transaction.transaction_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    // A posted transaction replaces its pending one, which
                    // Plaid removes in this answer or a later one: never
                    // both at once.
                    if let Some(pending) = &transaction.pending_transaction_id {
                        sqlx::query(DELETE_UNMATCHED)
                            .bind(&owned)
                            .bind(pending)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                for gone in removed {
                    sqlx::query(DELETE_UNMATCHED)
                        .bind(&owned)
                        .bind(*gone)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(FLAG_MATCHED)
                        .bind("removed")
                        .bind(&owned)
                        .bind(*gone)
                        .execute(&mut *tx)
                        .await?;
                }
                if !imported.is_empty() {
                    let sql = format!("{SELECT_LINES} AND {} ORDER BY t.id", in_list(&p, "t.id", 2));
                    let rows: Vec<LineRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(&owned)
                        .bind(List(imported))
                        .fetch_all(&mut *tx)
                        .await?;
                    let news: Vec<NewEvent> = rows
                        .into_iter()
                        .map(|row| NewEvent::new(events::BANK_TRANSACTION_IMPORTED, &stored_of(row).line))
                        .collect();
                    let news: Vec<(&str, &NewEvent)> =
                        news.iter().map(|event| (owned.as_str(), event)).collect();
                    events::write((&mut *tx).into(), &news, now).await?;
                }
                tx.commit().await?;
                Ok(Some(lines.len()))
            })
        })
        .await?;
    Ok(count)
}
