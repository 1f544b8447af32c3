//! Bank feeds (contract section 8): Plaid items and their accounts, the
//! bank lines imported from them, match suggestions, and matching.
//!
//! - **Link**: a Plaid item's access token is kept sealed
//!   ([`Sealer`](crate::sealed::Sealer)) under the context
//!   `plaid-item:<organization>:<item id>`, so it opens only for its own row.
//! - **Sync** (a job on the `bank-feeds` queue): `/transactions/sync` from
//!   the stored cursor, page by page. Each page's lines and the next cursor
//!   are saved in one transaction, which first moves the cursor from the
//!   value this run last saved (compare and set): two syncs of one item
//!   never both save a page. Lines are keyed by Plaid's transaction id, so
//!   a page saved twice imports nothing twice. A line the bank modifies or
//!   removes is updated or deleted while unmatched; once matched it keeps
//!   its posting and is flagged (`bank_change`).
//! - **Match**: a line posts once: the posting's transaction turns it from
//!   `unmatched` to `matched` ([`Effect::BankMatch`]), which only one
//!   transaction can do.
//!
//! Amounts keep Plaid's sign: positive is money leaving the account.

use std::collections::HashMap;

use chrono::NaiveDate;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::db::Database;
use crate::db::sql::{BeginScoped, List, in_list, in_scope, on_pool};
use crate::idempotency::{self, IdempotencyKey};
use crate::invoicing::invoices::{self, RECEIVABLE};
use crate::jobs::{JobFailure, JobStatus, NewJob, Queue, insert_job, now_ms};
use crate::ledger::accounts::accounts_for_posting;
use crate::ledger::committer::Effect;
use crate::ledger::{AccountType, Ledger, LedgerError, LedgerResult, RenderRecord};
use crate::money;
use crate::paging::{Page, PageRequest};
use crate::saas::plaid::{Plaid, PlaidAccount, PlaidError, PlaidTransaction, SyncPage};
use crate::sealed::Sealer;

/// The kind of a bank sync's job.
pub const JOB_KIND: &str = "bank-sync";
/// How far (in days, either way) a bank line's date may be from an entry's
/// for the entry to be suggested.
pub const SUGGESTION_WINDOW_DAYS: i64 = 7;
/// The most suggestions a line carries.
pub const MAX_SUGGESTIONS: usize = 5;
/// How often one run restarts its pagination after Plaid reports that the
/// item's data changed meanwhile, before it leaves the rest to a retry.
const MAX_RESTARTS: u32 = 3;
/// The longest bank line name kept.
const MAX_NAME_CHARS: usize = 500;

/// The context a Plaid access token is sealed under: it opens only for this
/// organization's row of this item.
pub fn token_context(organization: &str, item_id: &str) -> String {
    format!("plaid-item:{organization}:{item_id}")
}

fn conflict(code: &'static str, message: impl Into<String>) -> LedgerError {
    LedgerError::Conflict {
        code,
        message: message.into(),
    }
}

/// `POST /api/bank/link`.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// The public token Plaid Link handed the client.
    pub public_token: String,
}

impl std::fmt::Debug for NewLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewLink { public_token: [REDACTED] }")
    }
}

/// A bank account of a linked item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BankAccount {
    /// Id (in AccuBooks).
    pub id: i64,
    /// Plaid's item id.
    pub item_id: String,
    /// Plaid's account id.
    pub plaid_account_id: String,
    /// The bank's name of it.
    pub name: String,
    /// The last digits of its number.
    pub mask: Option<String>,
    /// ISO 4217 (`XXX` when the bank names none).
    pub currency: String,
    /// The ledger account its lines post to, once mapped.
    pub ledger_account: Option<String>,
}

/// A linked item and its accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LinkedItem {
    /// Plaid's item id.
    pub item_id: String,
    /// Its accounts.
    pub accounts: Vec<BankAccount>,
}

/// `PUT /api/bank/accounts/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountMapping {
    /// The code of an asset or liability account of the chart, in the bank
    /// account's currency, e.g. `"1000"`.
    pub ledger_account: String,
}

/// A sync asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncRequested {
    /// The job that imports the lines (`GET /api/jobs/{id}`).
    pub job_id: i64,
    /// The job's status.
    pub status: JobStatus,
}

/// Whether a bank line is reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineStatus {
    /// Imported, not yet posted or matched.
    Unmatched,
    /// Posted (or matched to a payment) once.
    Matched,
}

impl LineStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LineStatus::Unmatched => "unmatched",
            LineStatus::Matched => "matched",
        }
    }
}

/// What a suggestion proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SuggestionKind {
    /// An open invoice this money in may pay: match with `{"invoice_id"}`.
    Invoice,
    /// A recorded invoice payment on the mapped ledger account.
    Payment,
    /// Another journal entry on the mapped ledger account.
    Entry,
}

/// A likely counterpart of a bank line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    /// What it is.
    pub kind: SuggestionKind,
    /// The invoice (for an invoice or a payment).
    pub invoice_id: Option<i64>,
    /// The entry (for a payment or an entry).
    pub entry_id: Option<i64>,
    /// The invoice number or the entry's memo.
    pub label: String,
    /// The invoice's outstanding amount, or the entry line's amount.
    #[schema(value_type = crate::money::AmountText)]
    pub amount: String,
    /// The entry's date, or the invoice's issue date.
    pub date: Option<NaiveDate>,
    /// Higher ranks first (the README gives the rule).
    pub score: u32,
    /// Why it is suggested: `amount`, `reference`, `date`.
    pub reasons: Vec<&'static str>,
}

/// An imported bank line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BankLine {
    /// Id.
    pub id: i64,
    /// The bank account (its AccuBooks id).
    pub account_id: i64,
    /// Plaid's transaction id.
    pub plaid_transaction_id: String,
    /// The bank's date.
    pub date: NaiveDate,
    /// The bank's description.
    pub name: String,
    /// Decimal string with Plaid's sign: positive is money leaving the
    /// account, negative money received.
    #[schema(value_type = crate::money::AmountText)]
    pub amount: String,
    /// `in` (received) or `out` (paid).
    pub direction: &'static str,
    /// ISO 4217.
    pub currency: String,
    /// Not yet settled at the bank (cannot be matched yet).
    pub pending: bool,
    /// `unmatched` or `matched`.
    pub status: LineStatus,
    /// The entry that posted it, once matched.
    pub entry_id: Option<i64>,
    /// The invoice it paid, if it was matched to one.
    pub invoice_id: Option<i64>,
    /// The ledger account of its bank account, once mapped.
    pub ledger_account: Option<String>,
    /// Set when the bank modified or removed the line after it was matched
    /// (`modified`, `removed`): the posting stands; review it.
    pub bank_change: Option<String>,
    /// For unmatched lines: likely counterparts, best first.
    pub suggestions: Vec<Suggestion>,
}

/// `POST /api/bank/transactions/{id}/match`: exactly one of the fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchInput {
    /// Money received that pays (part of) this open invoice: posts the
    /// mapped bank account against receivables `1100` and records the
    /// payment.
    #[serde(default)]
    pub invoice_id: Option<i64>,
    /// Categorises the line: posts it between the mapped bank account and
    /// this account (e.g. `"5000"`).
    #[serde(default)]
    pub account: Option<String>,
}

// ---------------------------------------------------------------- link

/// Saves an item's accounts (`&[PlaidAccount]`) in the open transaction
/// `$tx`: new ones are added, known ones take the bank's current name and
/// mask (a link and an accounts re-read during a sync say the same).
/// (A macro: the same SQL for both backends' transaction types.)
macro_rules! save_accounts_in {
    ($tx:expr, $organization:expr, $item:expr, $accounts:expr) => {
        for account in $accounts {
            let currency = account
                .balances
                .iso_currency_code
                .clone()
                .unwrap_or_else(|| "XXX".to_owned());
            sqlx::query(
                "INSERT INTO bank_accounts (organization_id, item_id, plaid_account_id, name, mask, currency) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (organization_id, plaid_account_id) \
                 DO UPDATE SET item_id = excluded.item_id, name = excluded.name, mask = excluded.mask",
            )
            .bind($organization)
            .bind($item)
            .bind(&account.account_id)
            .bind(truncate(&account.name))
            .bind(&account.mask)
            .bind(currency)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

/// Stores a linked item, its access token sealed, and its accounts, in one
/// transaction. Linking an item again (say after `SESSION_SECRET` changed)
/// replaces its token and keeps its accounts' mappings. With `idempotency`,
/// the rendered answer is stored in the same transaction.
pub(crate) async fn save_link(
    db: &Database,
    sealer: &Sealer,
    organization: &str,
    item_id: &str,
    access_token: &SecretString,
    accounts: &[PlaidAccount],
    idempotency: Option<(&IdempotencyKey, RenderRecord<'_, LinkedItem>)>,
) -> LedgerResult<LinkedItem> {
    use secrecy::ExposeSecret;
    let sealed = sealer.seal(
        access_token.expose_secret(),
        &token_context(organization, item_id),
    );
    let owned = organization.to_owned();
    let now = now_ms();
    db.run(|pool| async move {
        let saved: Result<LinkedItem, sqlx::Error> = async {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                let item: i64 = sqlx::query_scalar(
                    "INSERT INTO bank_items (organization_id, item_id, access_token, created_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (organization_id, item_id) \
                     DO UPDATE SET access_token = excluded.access_token RETURNING id",
                )
                .bind(&owned)
                .bind(item_id)
                .bind(&sealed)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                save_accounts_in!(tx, &owned, item, accounts);
                let rows: Vec<AccountRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_ACCOUNTS} AND i.id = $2 ORDER BY a.id")))
                    .bind(&owned)
                    .bind(item)
                    .fetch_all(&mut *tx)
                    .await?;
                let linked = LinkedItem {
                    item_id: item_id.to_owned(),
                    accounts: rows.into_iter().map(account_of).collect(),
                };
                if let Some((key, render)) = idempotency {
                    let (status, body) = render(&linked);
                    idempotency::store_answer!(&mut *tx, key, status, body)?;
                }
                linked
            }))
        }
        .await;
        idempotency::settle(saved)
    })
    .await?
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_NAME_CHARS).collect()
}

// ------------------------------------------------------------ accounts

const SELECT_ACCOUNTS: &str = "SELECT a.id, i.item_id, a.plaid_account_id, a.name, a.mask, a.currency, l.code \
     FROM bank_accounts a JOIN bank_items i ON i.id = a.item_id \
     LEFT JOIN accounts l ON l.id = a.ledger_account_id WHERE a.organization_id = $1";

type AccountRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);

fn account_of(row: AccountRow) -> BankAccount {
    let (id, item_id, plaid_account_id, name, mask, currency, ledger_account) = row;
    BankAccount {
        id,
        item_id,
        plaid_account_id,
        name,
        mask,
        currency,
        ledger_account,
    }
}

/// A page of the organization's bank accounts, by id.
pub async fn list_bank_accounts(
    db: &Database,
    organization: &str,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<BankAccount>>> {
    let owned = organization.to_owned();
    let (after, fetch) = (page.after.unwrap_or(0), page.limit.fetch());
    let rows: Vec<AccountRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{SELECT_ACCOUNTS} AND a.id > $2 ORDER BY a.id LIMIT $3"
                )))
                .bind(&owned)
                .bind(after)
                .bind(fetch)
                .fetch_all(&mut *tx)
                .await?
            }))
        })
        .await?;
    Ok(page.page(rows.into_iter().map(account_of).collect(), |a| a.id))
}

async fn bank_account(db: &Database, organization: &str, id: i64) -> LedgerResult<BankAccount> {
    let owned = organization.to_owned();
    let row: Option<AccountRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_ACCOUNTS} AND a.id = $2")))
                    .bind(&owned)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
            }))
        })
        .await?;
    row.map(account_of)
        .ok_or_else(|| LedgerError::NotFound("There is no such bank account.".to_owned()))
}

/// Maps a bank account to a ledger account: an asset or liability account
/// of the chart in the bank account's currency (`422` otherwise).
pub async fn map_bank_account(
    ledger: &Ledger,
    organization: &str,
    id: i64,
    mapping: &AccountMapping,
) -> LedgerResult<BankAccount> {
    let db = ledger.database();
    let account = bank_account(db, organization, id).await?;
    let code = mapping.ledger_account.as_str();
    let found = accounts_for_posting(ledger, organization, &[code]).await?;
    let ledger_account = found.get(code).ok_or_else(|| {
        LedgerError::invalid(
            "UNKNOWN_ACCOUNT",
            format!(
                "There is no account {:?} in the chart; create it first.",
                code.chars().take(40).collect::<String>()
            ),
        )
    })?;
    if !matches!(
        ledger_account.kind,
        AccountType::Asset | AccountType::Liability
    ) {
        return Err(LedgerError::invalid(
            "INVALID_LEDGER_ACCOUNT",
            format!("A bank account maps to an asset or liability account; {code} is not one."),
        ));
    }
    if ledger_account.currency != account.currency {
        return Err(LedgerError::invalid(
            "CURRENCY_MISMATCH",
            format!(
                "The bank account is in {} and account {code} in {}; map it to an account in {}.",
                account.currency, ledger_account.currency, account.currency
            ),
        ));
    }
    let (owned, ledger_id) = (organization.to_owned(), ledger_account.id);
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &owned, tx => {
            sqlx::query("UPDATE bank_accounts SET ledger_account_id = $1 WHERE id = $2 AND organization_id = $3")
                .bind(ledger_id)
                .bind(id)
                .bind(&owned)
                .execute(&mut *tx)
                .await?;
        }))
    })
    .await?;
    bank_account(db, organization, id).await
}

// ---------------------------------------------------------------- sync

/// Asks for a sync of every linked item: one job on the `bank-feeds` queue.
/// While a sync job of the organization is waiting, running or to be
/// retried, asking again answers that job: two clicks never run two
/// overlapping syncs.
pub async fn request_sync(db: &Database, organization: &str) -> LedgerResult<SyncRequested> {
    let owned = organization.to_owned();
    let now = now_ms();
    let asked: Option<(i64, String)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                // A write first: it locks the items (PostgreSQL) or the
                // database (SQLite), so two requests cannot both find no
                // active job and both record one.
                let items = sqlx::query("UPDATE bank_items SET sync_cursor = sync_cursor WHERE organization_id = $1")
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
                                queue: Queue::BankFeeds,
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

/// What a failed Plaid call means for a sync job.
fn job_failure(err: &PlaidError) -> JobFailure {
    match err {
        PlaidError::Unavailable(fault) => JobFailure::temporary(fault.code),
        PlaidError::MutationDuringPagination => {
            JobFailure::temporary("BANK_SYNC_MUTATION_DURING_PAGINATION")
        }
        PlaidError::LoginRequired(_) | PlaidError::InvalidPublicToken => {
            JobFailure::permanent("BANK_ITEM_LOGIN_REQUIRED")
        }
        PlaidError::Refused { .. } => JobFailure::permanent("BANK_SYNC_REFUSED"),
    }
}

/// The job of a sync: imports every item's updates. An item that fails
/// does not stop the others; the job then fails temporarily if any item
/// did (a retry resumes each from its saved cursor), else permanently.
pub(crate) async fn sync(
    ledger: &Ledger,
    sealer: &Sealer,
    plaid: Option<&Plaid>,
    organization: &str,
) -> Result<(), JobFailure> {
    let plaid = plaid.ok_or(JobFailure::permanent("BANK_INTEGRATION_DISABLED"))?;
    let db = ledger.database();
    let owned = organization.to_owned();
    let items: Vec<(i64, String, String, String)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(
                    "SELECT id, item_id, access_token, sync_cursor FROM bank_items \
                     WHERE organization_id = $1 ORDER BY id",
                )
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
                organization,
                item = id,
                "a bank item's access token does not open (SESSION_SECRET changed?); link it again"
            );
            failure = failure.or(Some(JobFailure::permanent("BANK_ITEM_UNREADABLE")));
            continue;
        };
        let item = Item {
            id,
            organization,
            token,
        };
        match sync_item(ledger, plaid, &item, cursor).await {
            Ok(imported) => {
                tracing::info!(organization, item = id, imported, "bank item synced");
            }
            Err(err) => {
                tracing::warn!(organization, item = id, code = err.code, transience = %err.transience, "bank item sync failed");
                if failure.is_none_or(|f| f.transience == crate::error::Transience::Permanent) {
                    failure = Some(err);
                }
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// A linked item as a sync works it.
struct Item<'a> {
    id: i64,
    organization: &'a str,
    token: SecretString,
}

/// Pages through one item's updates; answers how many lines it saved.
async fn sync_item(
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
async fn item_accounts(
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

async fn save_accounts(
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
fn line_of(
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
async fn save_page(
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

/// Flags a matched line the bank changed (`$1`: `modified` or `removed`);
/// its posting stands.
const FLAG_MATCHED: &str = "UPDATE bank_transactions SET bank_change = $1 WHERE organization_id = $2 \
     AND plaid_transaction_id = $3 AND status = 'matched'";

// --------------------------------------------------------------- lines

const SELECT_LINES: &str = "SELECT t.id, t.account_id, t.plaid_transaction_id, t.posted_on, t.name, t.amount, \
     t.currency, t.pending, t.status, t.entry_id, t.invoice_id, t.bank_change, a.ledger_account_id, l.code \
     FROM bank_transactions t JOIN bank_accounts a ON a.id = t.account_id \
     LEFT JOIN accounts l ON l.id = a.ledger_account_id WHERE t.organization_id = $1";

type LineRow = (
    i64,
    i64,
    String,
    NaiveDate,
    String,
    i64,
    String,
    bool,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

/// A line as read, with what suggestions and matching need.
struct Stored {
    line: BankLine,
    amount_minor: i64,
    ledger_account_id: Option<i64>,
}

fn stored_of(row: LineRow) -> Stored {
    let (
        id,
        account_id,
        plaid_transaction_id,
        date,
        name,
        amount,
        currency,
        pending,
        status,
        entry_id,
        invoice_id,
        bank_change,
        ledger_account_id,
        ledger_account,
    ) = row;
    let digits = money::minor_digits(&currency).unwrap_or(2);
    Stored {
        line: BankLine {
            id,
            account_id,
            plaid_transaction_id,
            date,
            name,
            amount: money::format_minor(amount, digits),
            direction: if amount < 0 { "in" } else { "out" },
            currency,
            pending,
            status: if status == "matched" {
                LineStatus::Matched
            } else {
                LineStatus::Unmatched
            },
            entry_id,
            invoice_id,
            ledger_account,
            bank_change,
            suggestions: Vec::new(),
        },
        amount_minor: amount,
        ledger_account_id,
    }
}

async fn read_lines(
    db: &Database,
    organization: &str,
    filter: &'static str,
    value: LineFilter,
) -> LedgerResult<Vec<Stored>> {
    let owned = organization.to_owned();
    let sql = format!("{SELECT_LINES} {filter}");
    let rows: Vec<LineRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                let query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(&owned);
                match &value {
                    LineFilter::Id(id) => query.bind(*id),
                    LineFilter::Status { status, before, fetch } => {
                        query.bind(*status).bind(*before).bind(*fetch)
                    }
                }
                .fetch_all(&mut *tx)
                .await?
            }))
        })
        .await?;
    Ok(rows.into_iter().map(stored_of).collect())
}

enum LineFilter {
    Id(i64),
    /// A page of the lines with this status: ids below `before`, at most
    /// `fetch` of them.
    Status {
        status: &'static str,
        before: i64,
        fetch: i64,
    },
}

async fn read_line(db: &Database, organization: &str, id: i64) -> LedgerResult<Stored> {
    read_lines(db, organization, "AND t.id = $2", LineFilter::Id(id))
        .await?
        .pop()
        .ok_or_else(|| LedgerError::NotFound("There is no such bank transaction.".to_owned()))
}

/// A page of the organization's bank lines with this status, newest
/// imported first; unmatched ones carry their match suggestions. The order
/// is by id, not by date: a line's date changes when the bank posts a
/// pending line, and a page boundary on it could then skip or repeat it.
pub async fn list_lines(
    db: &Database,
    organization: &str,
    status: LineStatus,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<BankLine>>> {
    let fetched = read_lines(
        db,
        organization,
        "AND t.status = $2 AND t.id < $3 ORDER BY t.id DESC LIMIT $4",
        LineFilter::Status {
            status: status.as_str(),
            before: page.after.unwrap_or(i64::MAX),
            fetch: page.limit.fetch(),
        },
    )
    .await?;
    let Page {
        items: lines,
        next,
        limit,
    } = page.page(fetched, |stored| stored.line.id);
    let page_of = |items| Page { items, next, limit };
    if status == LineStatus::Matched || lines.is_empty() {
        return Ok(page_of(lines.into_iter().map(|s| s.line).collect()));
    }
    let candidates = candidates(db, organization, &lines).await?;
    Ok(page_of(
        lines
            .into_iter()
            .map(|stored| {
                let suggestions = suggest(&stored, &candidates);
                BankLine {
                    suggestions,
                    ..stored.line
                }
            })
            .collect(),
    ))
}

/// An open invoice: (id, currency, outstanding, issue date).
type OpenInvoice = (i64, String, i64, Option<NaiveDate>);
/// A journal line on a mapped account: (account id, amount, entry id, date,
/// memo, the invoice it pays if it is a payment).
type EntryLine = (i64, i64, i64, NaiveDate, String, Option<i64>);

struct Candidates {
    invoices: Vec<OpenInvoice>,
    entries: Vec<EntryLine>,
}

/// Everything the lines' suggestions may name, in two queries.
async fn candidates(
    db: &Database,
    organization: &str,
    lines: &[Stored],
) -> LedgerResult<Candidates> {
    let mut mapped: Vec<i64> = lines.iter().filter_map(|s| s.ledger_account_id).collect();
    mapped.sort_unstable();
    mapped.dedup();
    let window = chrono::Duration::days(SUGGESTION_WINDOW_DAYS);
    let from = lines.iter().map(|s| s.line.date).min().unwrap_or_default() - window;
    let to = lines.iter().map(|s| s.line.date).max().unwrap_or_default() + window;
    let owned = organization.to_owned();
    let (invoices, entries): (Vec<OpenInvoice>, Vec<EntryLine>) = db
        .run(|pool| async move {
            let entries_sql = format!(
                "SELECT l.account_id, l.amount, e.id, e.entry_date, e.memo, p.invoice_id FROM journal_lines l \
                 JOIN journal_entries e ON e.id = l.entry_id LEFT JOIN payments p ON p.entry_id = e.id \
                 WHERE e.organization_id = $1 AND e.entry_date >= $2 AND e.entry_date <= $3 \
                 AND {} \
                 AND NOT EXISTS (SELECT 1 FROM bank_transactions b WHERE b.entry_id = e.id) \
                 ORDER BY e.id LIMIT 10000",
                in_list(&pool, "l.account_id", 4)
            );
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                let invoices: Vec<OpenInvoice> = sqlx::query_as(
                    "SELECT id, currency, total - credited - paid, issue_date FROM invoices \
                     WHERE organization_id = $1 AND kind = 'invoice' AND status IN ('issued', 'partially_paid') \
                     ORDER BY id LIMIT 10000",
                )
                .bind(&owned)
                .fetch_all(&mut *tx)
                .await?;
                let entries: Vec<EntryLine> = if mapped.is_empty() {
                    Vec::new()
                } else {
                    sqlx::query_as(sqlx::AssertSqlSafe(entries_sql.as_str()))
                        .bind(&owned)
                        .bind(from)
                        .bind(to)
                        .bind(List(mapped))
                        .fetch_all(&mut *tx)
                        .await?
                };
                (invoices, entries)
            }))
        })
        .await?;
    Ok(Candidates { invoices, entries })
}

/// The suggestions of one unmatched line, best first. The rule (also in
/// the README):
///
/// - money in only: an open invoice in the line's currency whose
///   outstanding amount equals the line's scores 70 (`amount`), and 30 more
///   (`reference`) when its number (`INV-000042`) appears in the line's
///   name; one whose number appears but whose amount differs scores 30;
/// - a journal line on the mapped ledger account that moves it by the
///   line's amount (a recorded payment, or any entry) within
///   ±[`SUGGESTION_WINDOW_DAYS`] days scores 60 less a point per day apart
///   (`amount`, `date`), and is not matched to another bank line;
/// - ties: the closer date, then the lower id.
fn suggest(stored: &Stored, candidates: &Candidates) -> Vec<Suggestion> {
    let line = &stored.line;
    let digits = money::minor_digits(&line.currency).unwrap_or(2);
    let name = line.name.to_uppercase();
    let mut found: Vec<(u32, i64, i64, Suggestion)> = Vec::new();
    if stored.amount_minor < 0 {
        let incoming = -stored.amount_minor;
        for (id, currency, outstanding, issued) in &candidates.invoices {
            if *currency != line.currency {
                continue;
            }
            let number = format!("INV-{id:06}");
            let mut reasons = Vec::new();
            let mut score = 0;
            if *outstanding == incoming {
                reasons.push("amount");
                score += 70;
            }
            if name.contains(&number) {
                reasons.push("reference");
                score += 30;
            }
            if score == 0 {
                continue;
            }
            let apart = issued.map_or(i64::MAX, |d| (line.date - d).num_days().abs());
            found.push((
                score,
                apart,
                *id,
                Suggestion {
                    kind: SuggestionKind::Invoice,
                    invoice_id: Some(*id),
                    entry_id: None,
                    label: number,
                    amount: money::format_minor(*outstanding, digits),
                    date: *issued,
                    score,
                    reasons,
                },
            ));
        }
    }
    if let Some(account) = stored.ledger_account_id {
        // The bank line moves the bank's ledger account the other way round
        // from Plaid's sign: money in is a debit.
        let movement = -stored.amount_minor;
        for (line_account, amount, entry, date, memo, invoice) in &candidates.entries {
            let apart = (line.date - *date).num_days().abs();
            if *line_account != account || *amount != movement || apart > SUGGESTION_WINDOW_DAYS {
                continue;
            }
            let score = 60 - u32::try_from(apart).unwrap_or(60);
            found.push((
                score,
                apart,
                *entry,
                Suggestion {
                    kind: if invoice.is_some() {
                        SuggestionKind::Payment
                    } else {
                        SuggestionKind::Entry
                    },
                    invoice_id: *invoice,
                    entry_id: Some(*entry),
                    label: memo.clone(),
                    amount: money::format_minor(amount.abs(), digits),
                    date: Some(*date),
                    score,
                    reasons: vec!["amount", "date"],
                },
            ));
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    found.dedup_by_key(|f| (f.3.kind, f.3.invoice_id, f.3.entry_id));
    found
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|f| f.3)
        .collect()
}

// --------------------------------------------------------------- match

/// Matches an unmatched line: to an open invoice (records the payment and
/// posts the mapped bank account against receivables) or to an account
/// (posts the line between the mapped bank account and it). Posts once: a
/// second match is `409 BANK_TRANSACTION_MATCHED`.
pub async fn match_line(
    ledger: &Ledger,
    organization: &str,
    id: i64,
    input: &MatchInput,
    idempotency: Option<IdempotencyKey>,
) -> LedgerResult<BankLine> {
    let db = ledger.database();
    let stored = read_line(db, organization, id).await?;
    let line = &stored.line;
    if line.status == LineStatus::Matched {
        return Err(already_matched(id));
    }
    if line.pending {
        return Err(conflict(
            "BANK_TRANSACTION_PENDING",
            "This bank transaction is still pending at the bank; match it once it has posted.",
        ));
    }
    let bank = line.ledger_account.clone().ok_or_else(|| {
        conflict(
            "BANK_ACCOUNT_NOT_MAPPED",
            format!(
                "Map bank account {} to a ledger account first (PUT /api/bank/accounts/{}).",
                line.account_id, line.account_id
            ),
        )
    })?;
    let memo: String = format!("Bank: {}", line.name).chars().take(200).collect();
    let (entry, effects) = match (input.invoice_id, input.account.as_deref()) {
        (Some(invoice_id), None) => {
            if stored.amount_minor >= 0 {
                return Err(LedgerError::invalid(
                    "BANK_TRANSACTION_NOT_INCOMING",
                    "Only money received (a negative Plaid amount) can pay an invoice.",
                ));
            }
            let incoming = -stored.amount_minor;
            let invoice = match invoices::get_invoice(db, organization, invoice_id).await {
                Err(LedgerError::NotFound(_)) => {
                    return Err(LedgerError::invalid(
                        "UNKNOWN_INVOICE",
                        format!("There is no invoice {invoice_id}."),
                    ));
                }
                other => other?,
            };
            if invoice.kind != invoices::InvoiceKind::Invoice || !invoice.status.is_open() {
                return Err(conflict(
                    "INVOICE_NOT_OPEN",
                    format!(
                        "Invoice {invoice_id} is {}; a bank line pays issued, unpaid invoices.",
                        invoice.status
                    ),
                ));
            }
            if invoice.currency != line.currency {
                return Err(LedgerError::invalid(
                    "CURRENCY_MISMATCH",
                    format!(
                        "The bank line is in {} and invoice {} in {}.",
                        line.currency, invoice.number, invoice.currency
                    ),
                ));
            }
            let digits = invoices::digits(&invoice.currency);
            if incoming > invoice.outstanding_minor {
                return Err(LedgerError::invalid(
                    "OVERPAYMENT",
                    format!(
                        "The bank line ({} {}) exceeds what is outstanding on {} ({} {}).",
                        money::format_minor(incoming, digits),
                        line.currency,
                        invoice.number,
                        invoice.outstanding,
                        invoice.currency
                    ),
                ));
            }
            let accounts = accounts_for_posting(ledger, organization, &[&bank, RECEIVABLE]).await?;
            let entry = invoices::posting(
                organization,
                &accounts,
                &line.currency,
                line.date,
                memo,
                &[(&bank, incoming), (RECEIVABLE, -incoming)],
            )?;
            let effects = vec![
                Effect::Pay {
                    invoice_id,
                    amount: incoming,
                    date: line.date,
                },
                Effect::BankMatch {
                    transaction_id: id,
                    invoice_id: Some(invoice_id),
                },
            ];
            (entry, effects)
        }
        (None, Some(account)) => {
            if account == bank {
                return Err(LedgerError::invalid(
                    "INVALID_FIELD",
                    format!(
                        "Account {bank} is the bank account itself; categorise the line to another account."
                    ),
                ));
            }
            let accounts = accounts_for_posting(ledger, organization, &[&bank, account]).await?;
            let entry = invoices::posting(
                organization,
                &accounts,
                &line.currency,
                line.date,
                memo,
                &[
                    (&bank, -stored.amount_minor),
                    (account, stored.amount_minor),
                ],
            )?;
            let effects = vec![Effect::BankMatch {
                transaction_id: id,
                invoice_id: None,
            }];
            (entry, effects)
        }
        _ => {
            return Err(LedgerError::invalid(
                "INVALID_FIELD",
                "Give exactly one of invoice_id (an invoice this line pays) or account (a category).",
            ));
        }
    };
    match ledger
        .committer()
        .post_with_effects(vec![entry], idempotency.map(idempotency::pending), effects)
        .await
    {
        Ok(_) => {}
        Err(err @ LedgerError::Conflict { .. }) => {
            // Matched meanwhile by another request: say so, not that the
            // invoice changed.
            return Err(
                if read_line(db, organization, id).await?.line.status == LineStatus::Matched {
                    already_matched(id)
                } else {
                    err
                },
            );
        }
        Err(err) => return Err(err),
    }
    Ok(read_line(db, organization, id).await?.line)
}

fn already_matched(id: i64) -> LedgerError {
    conflict(
        "BANK_TRANSACTION_MATCHED",
        format!("Bank transaction {id} is already matched; it posts once."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(amount: i64, name: &str, date: &str, mapped: Option<i64>) -> Stored {
        stored_of((
            1,
            1,
            "t".into(),
            NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
            name.into(),
            amount,
            "USD".into(),
            false,
            "unmatched".into(),
            None,
            None,
            None,
            mapped,
            mapped.map(|_| "1000".to_owned()),
        ))
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn suggestions_rank_reference_and_amount_first() {
        let candidates = Candidates {
            invoices: vec![
                (7, "USD".into(), 12_500, Some(day("2026-01-02"))),
                (8, "USD".into(), 12_500, Some(day("2026-01-20"))),
                (9, "USD".into(), 99, Some(day("2026-01-20"))),
                (10, "EUR".into(), 12_500, Some(day("2026-01-20"))),
            ],
            entries: vec![
                (3, 12_500, 40, day("2026-01-22"), "Deposit".into(), None),
                (3, 12_500, 41, day("2026-01-12"), "Too early".into(), None),
                (
                    4,
                    12_500,
                    42,
                    day("2026-01-21"),
                    "Other account".into(),
                    None,
                ),
            ],
        };
        let line = stored(-12_500, "Wire ACME inv-000009", "2026-01-21", Some(3));
        let found = suggest(&line, &candidates);
        let order: Vec<(SuggestionKind, Option<i64>, Option<i64>, u32)> = found
            .iter()
            .map(|s| (s.kind, s.invoice_id, s.entry_id, s.score))
            .collect();
        assert_eq!(
            order,
            vec![
                (SuggestionKind::Invoice, Some(8), None, 70),
                (SuggestionKind::Invoice, Some(7), None, 70),
                (SuggestionKind::Entry, None, Some(40), 59),
                (SuggestionKind::Invoice, Some(9), None, 30),
            ]
        );
        assert_eq!(found[0].amount, "125.00");
        assert_eq!(found[3].reasons, vec!["reference"]);
    }

    #[test]
    fn money_out_suggests_no_invoice_and_unmapped_lines_no_entry() {
        let candidates = Candidates {
            invoices: vec![(7, "USD".into(), 500, None)],
            entries: vec![(3, -500, 40, day("2026-01-21"), "Rent".into(), None)],
        };
        let out = suggest(
            &stored(500, "INV-000007", "2026-01-21", Some(3)),
            &candidates,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].entry_id, Some(40));
        assert!(suggest(&stored(500, "x", "2026-01-21", None), &candidates).is_empty());
    }

    #[test]
    fn plaid_failures_are_temporary_only_when_they_pass() {
        use crate::error::{Fault, Transience};
        let kind = |err: PlaidError| job_failure(&err).transience;
        assert_eq!(
            kind(PlaidError::Unavailable(Fault::TIMEOUT)),
            Transience::Temporary
        );
        assert_eq!(
            kind(PlaidError::LoginRequired("ITEM_LOGIN_REQUIRED".into())),
            Transience::Permanent
        );
        assert_eq!(
            kind(PlaidError::Refused {
                error_type: "INVALID_INPUT".into(),
                error_code: "INVALID_API_KEYS".into()
            }),
            Transience::Permanent
        );
    }

    #[test]
    fn tokens_are_sealed_for_their_organization_and_item() {
        assert_eq!(token_context("o1", "item-9"), "plaid-item:o1:item-9");
    }
}
