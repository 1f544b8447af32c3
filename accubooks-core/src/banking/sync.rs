//! The sync job: `/transactions/sync` page by page, each page's lines and
//! the next cursor saved in one transaction (compare and set on the cursor).

use std::collections::HashMap;

use secrecy::SecretString;

use super::*;
use crate::db::Database;
use crate::db::sql::{BeginScoped, in_scope, on_pool};
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

/// Pages through one item's updates; answers how many lines it saved.
pub(super) async fn sync_item(
    ledger: &Ledger,
    plaid: &Plaid,
    item: &Item<'_>,
    cursor: String,
) -> Result<usize, JobFailure> {
    let db = ledger.database();
    let begun = cursor.clone();
    let (mut request, mut saved) = (cursor.clone(), cursor);
    let mut restarts = 0;
    let mut accounts = item_accounts(db, item).await?;
    let mut imported = 0;
    loop {
        let page = match plaid.sync(&item.token, &request).await {
            Ok(page) => page,
            Err(PlaidError::MutationDuringPagination) if restarts < MAX_RESTARTS => {
                // Plaid's rule: the whole pagination again, from where it began.
                restarts += 1;
                tracing::info!(
                    organization = item.organization,
                    item = item.id,
                    restarts,
                    "bank data changed during pagination; restarting from the run's first cursor"
                );
                request = begun.clone();
                continue;
            }
            Err(err) => return Err(job_failure(&err)),
        };
        let unknown = page
            .added
            .iter()
            .chain(&page.modified)
            .any(|t| !accounts.contains_key(&t.account_id));
        if unknown {
            // An account opened at the bank since the link.
            let listed = plaid
                .accounts(&item.token)
                .await
                .map_err(|err| job_failure(&err))?;
            save_accounts(db, item, &listed).await?;
            accounts = item_accounts(db, item).await?;
        }
        let Some(count) = save_page(db, item, &saved, &page, &accounts).await? else {
            // Another sync of this item saved a page meanwhile: it goes on.
            return Ok(imported);
        };
        imported += count;
        saved.clone_from(&page.next_cursor);
        request = page.next_cursor;
        if !page.has_more {
            return Ok(imported);
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

/// A line as stored: (account id, amount in minor units, currency, name).
pub(super) fn line_of(
    transaction: &PlaidTransaction,
    accounts: &HashMap<String, (i64, String)>,
) -> Result<Option<(i64, i64, String, String)>, JobFailure> {
    let Some((account, account_currency)) = accounts.get(&transaction.account_id) else {
        return Ok(None);
    };
    let currency = transaction
        .iso_currency_code
        .clone()
        .unwrap_or_else(|| account_currency.clone());
    let digits = money::minor_digits(&currency).unwrap_or(2);
    let amount = money::parse_minor(&transaction.amount.to_string(), digits)
        .map_err(|_| JobFailure::permanent("INVALID_BANK_AMOUNT"))?;
    let name = transaction
        .name
        .as_deref()
        .or(transaction.merchant_name.as_deref())
        .unwrap_or_default();
    Ok(Some((*account, amount, currency, truncate(name))))
}

/// Saves one page and the cursor after it, in one transaction that first
/// moves the item's cursor from `saved` (what this run saved last). Answers
/// the lines saved, or `None` when the cursor had moved (another sync).
pub(super) async fn save_page(
    db: &Database,
    item: &Item<'_>,
    saved: &str,
    page: &SyncPage,
    accounts: &HashMap<String, (i64, String)>,
) -> Result<Option<usize>, JobFailure> {
    let mut lines = Vec::with_capacity(page.added.len() + page.modified.len());
    for (transaction, modified) in page
        .added
        .iter()
        .map(|t| (t, false))
        .chain(page.modified.iter().map(|t| (t, true)))
    {
        match line_of(transaction, accounts)? {
            Some(line) => lines.push((transaction, modified, line)),
            None => tracing::warn!(
                organization = item.organization,
                item = item.id,
                "a bank line of an account Plaid does not list was skipped"
            ),
        }
    }
    let (owned, id, now) = (item.organization.to_owned(), item.id, now_ms());
    let saved = saved.to_owned();
    let (lines, removed, next) = (&lines, &page.removed, &page.next_cursor);
    let count = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&owned).await?;
                // First: on PostgreSQL this locks the item's row, so pages of
                // two syncs of one item are saved one after the other.
                let moved = sqlx::query(
                    "UPDATE bank_items SET sync_cursor = $1 WHERE id = $2 AND organization_id = $3 AND sync_cursor = $4",
                )
                .bind(next)
                .bind(id)
                .bind(&owned)
                .bind(&saved)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if moved != 1 {
                    return Ok(None);
                }
                for (transaction, modified, (account, amount, currency, name)) in lines {
                    sqlx::query(
                        "INSERT INTO bank_transactions (organization_id, account_id, plaid_transaction_id, amount, \
                         currency, posted_on, name, pending, status, created_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'unmatched', $9) \
                         ON CONFLICT (organization_id, plaid_transaction_id) DO UPDATE SET \
                         account_id = excluded.account_id, amount = excluded.amount, currency = excluded.currency, \
                         posted_on = excluded.posted_on, name = excluded.name, pending = excluded.pending \
                         WHERE bank_transactions.status = 'unmatched'",
                    )
                    .bind(&owned)
                    .bind(*account)
                    .bind(&transaction.transaction_id)
                    .bind(*amount)
                    .bind(currency)
                    .bind(transaction.date)
                    .bind(name)
                    .bind(transaction.pending)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    if *modified {
                        sqlx::query(FLAG_MATCHED)
                            .bind("modified")
                            .bind(&owned)
                            .bind(&transaction.transaction_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                for gone in removed {
                    sqlx::query(
                        "DELETE FROM bank_transactions WHERE organization_id = $1 AND plaid_transaction_id = $2 \
                         AND status = 'unmatched'",
                    )
                    .bind(&owned)
                    .bind(&gone.transaction_id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(FLAG_MATCHED)
                        .bind("removed")
                        .bind(&owned)
                        .bind(&gone.transaction_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Some(lines.len()))
            })
        })
        .await?;
    Ok(count)
}
