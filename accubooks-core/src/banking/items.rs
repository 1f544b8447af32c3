//! Linked items as the user sees them: their status (`active`,
//! `login_required`, `error`), Link tokens for a new item or for update mode,
//! removal, and the lookups Plaid's webhook needs.
//!
//! A removed item keeps its row: its accounts and lines (matched or not,
//! with their postings) stay; its access token is forgotten and it is no
//! longer synced.

use secrecy::SecretString;

use super::*;
use crate::db::Database;
use crate::db::sql::{in_scope, on_pool};
use crate::jobs::now_ms;
use crate::ledger::{LedgerError, LedgerResult};
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};
use crate::saas::plaid::PlaidAccount;
use crate::sealed::Sealer;

/// The `status_code`s of items that still sync although the user should
/// log in again soon (Plaid's `PENDING_EXPIRATION` and `PENDING_DISCONNECT`
/// webhooks): the item works until then.
pub(super) const SYNCABLE: &str = "removed_ms IS NULL AND (status = 'active' \
     OR status_code IN ('PENDING_EXPIRATION', 'PENDING_DISCONNECT'))";

/// A sync's failure that needs the user to log in again.
pub(super) const ITEM_LOGIN_REQUIRED: &str = "BANK_ITEM_LOGIN_REQUIRED";
/// A sync's failure that needs the user to remove the item and link again.
pub(super) const ITEM_ERROR: &str = "BANK_ITEM_ERROR";

/// An item whose access token no longer opens (`SESSION_SECRET` changed).
pub const ITEM_UNREADABLE: &str = "BANK_ITEM_UNREADABLE";

/// The status a failed sync leaves its item in, when the failure needs the
/// user (`None`: the item stays as it is, the job is retried or reports it).
pub(super) fn item_status_after(failure: &crate::jobs::JobFailure) -> Option<ItemStatus> {
    match failure.code {
        ITEM_LOGIN_REQUIRED => Some(ItemStatus::LoginRequired),
        ITEM_ERROR | ITEM_UNREADABLE => Some(ItemStatus::Error),
        _ => None,
    }
}

const NO_SUCH_ITEM: &str = "There is no such bank item; GET /api/bank/items lists them.";

/// Whether an item's feed works, or what it needs from the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Synced (by webhook or when asked).
    Active,
    /// The bank asks the user to log in again: open Plaid Link in update
    /// mode (`POST /api/bank/link-token` with the item's id), then
    /// `POST /api/bank/items/{id}/reconnected`. Not synced meanwhile.
    LoginRequired,
    /// The item cannot be used (Plaid no longer knows it, or the bank
    /// refuses it): remove it and link the bank again.
    Error,
}

impl ItemStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Active => "active",
            ItemStatus::LoginRequired => "login_required",
            ItemStatus::Error => "error",
        }
    }

    fn parse(text: &str) -> ItemStatus {
        match text {
            "login_required" => ItemStatus::LoginRequired,
            "error" => ItemStatus::Error,
            _ => ItemStatus::Active,
        }
    }
}

/// A linked bank item, as `GET /api/bank/items` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BankItem {
    /// Plaid's item id.
    pub id: String,
    /// Plaid's institution id (`ins_…`), when Plaid names one.
    pub institution: Option<String>,
    /// Whether its feed works, or what it needs from the user.
    pub status: ItemStatus,
    /// What set a status other than `active` (Plaid's code, e.g.
    /// `ITEM_LOGIN_REQUIRED`, `PENDING_EXPIRATION`), else `null`.
    pub status_code: Option<String>,
    /// When a sync last completed for it (RFC 3339), `null` before.
    pub last_synced_at: Option<String>,
    #[serde(skip)]
    row: i64,
}

/// `POST /api/bank/link-token`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkTokenRequest {
    /// `null` for a new bank; an item's id for update mode (the user logs
    /// in again; the item keeps its accounts, mappings and lines).
    #[serde(default)]
    pub item_id: Option<String>,
}

/// A Link token: the client opens Plaid Link with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LinkTokenIssued {
    /// Plaid's `link-…` token.
    pub link_token: String,
    /// When it stops working (ISO 8601, Plaid's): 4 hours after it was made
    /// for a new bank, 30 minutes in update mode.
    pub expiration: String,
}

type ItemRow = (
    i64,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
);

fn item_of(row: ItemRow) -> BankItem {
    let (row, id, institution, status, status_code, synced) = row;
    BankItem {
        id,
        institution,
        status: ItemStatus::parse(&status),
        status_code,
        last_synced_at: synced.map(crate::jobs::store::rfc3339),
        row,
    }
}

const SELECT_ITEMS: &str = "SELECT id, item_id, institution, status, status_code, last_synced_ms \
     FROM bank_items WHERE organization_id = $1 AND removed_ms IS NULL";

/// A page of the organization's linked (not removed) items, oldest first.
pub async fn list_items(
    db: &Database,
    organization: &OrganizationId,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<BankItem>>> {
    let owned = organization.to_owned();
    let (after, fetch) = (page.after.unwrap_or(0), page.limit.fetch());
    let rows: Vec<ItemRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{SELECT_ITEMS} AND id > $2 ORDER BY id LIMIT $3"
                )))
                .bind(&owned)
                .bind(after)
                .bind(fetch)
                .fetch_all(&mut *tx)
                .await?
            }))
        })
        .await?;
    Ok(page.page(rows.into_iter().map(item_of).collect(), |i| i.row))
}

/// One linked item, by Plaid's id.
pub async fn get_item(
    db: &Database,
    organization: &OrganizationId,
    item_id: &str,
) -> LedgerResult<BankItem> {
    let (owned, id) = (organization.to_owned(), item_id.to_owned());
    let row: Option<ItemRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_ITEMS} AND item_id = $2")))
                    .bind(&owned)
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?
            }))
        })
        .await?;
    row.map(item_of)
        .ok_or_else(|| LedgerError::NotFound(NO_SUCH_ITEM.to_owned()))
}

/// The access token of a linked item (`404` for an unknown or removed one).
pub(crate) async fn item_token(
    db: &Database,
    sealer: &Sealer,
    organization: &OrganizationId,
    item_id: &str,
) -> LedgerResult<SecretString> {
    let (owned, id) = (organization.to_owned(), item_id.to_owned());
    let sealed: Option<String> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_scalar(
                    "SELECT access_token FROM bank_items WHERE organization_id = $1 \
                     AND item_id = $2 AND removed_ms IS NULL",
                )
                .bind(&owned)
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?
            }))
        })
        .await?;
    let sealed = sealed.ok_or_else(|| LedgerError::NotFound(NO_SUCH_ITEM.to_owned()))?;
    sealer
        .open(&sealed, &token_context(organization, item_id))
        .map_err(|_| LedgerError::Conflict {
            code: ITEM_UNREADABLE,
            message: "The item's access token no longer opens (SESSION_SECRET changed?); \
                      remove the item and link the bank again."
                .to_owned(),
        })
}

/// Sets a linked item's status; `code` says what set it (`None` for
/// `active`). Answers whether the item was found.
pub(crate) async fn set_item_status(
    db: &Database,
    organization: &OrganizationId,
    item_id: &str,
    status: ItemStatus,
    code: Option<&str>,
) -> LedgerResult<bool> {
    let (owned, id) = (organization.to_owned(), item_id.to_owned());
    let code = code.map(|c| c.chars().take(100).collect::<String>());
    let changed = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query(
                    "UPDATE bank_items SET status = $1, status_code = $2 \
                     WHERE organization_id = $3 AND item_id = $4 AND removed_ms IS NULL",
                )
                .bind(status.as_str())
                .bind(&code)
                .bind(&owned)
                .bind(&id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            }))
        })
        .await?;
    Ok(changed == 1)
}

/// Records that a sync of the item (our row id) completed now.
pub(super) async fn mark_synced(
    db: &Database,
    organization: &OrganizationId,
    row: i64,
) -> LedgerResult<()> {
    let (owned, now) = (organization.to_owned(), now_ms());
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &owned, tx => {
            sqlx::query("UPDATE bank_items SET last_synced_ms = $1 WHERE id = $2 AND organization_id = $3")
                .bind(now)
                .bind(row)
                .bind(&owned)
                .execute(&mut *tx)
                .await?;
        }))
    })
    .await?;
    Ok(())
}

/// Marks an item removed (after Plaid removed it): its token is forgotten,
/// it is no longer listed or synced; its accounts and lines stay.
pub(crate) async fn mark_removed(
    db: &Database,
    organization: &OrganizationId,
    item_id: &str,
) -> LedgerResult<()> {
    let (owned, id, now) = (organization.to_owned(), item_id.to_owned(), now_ms());
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &owned, tx => {
            sqlx::query(
                "UPDATE bank_items SET access_token = '', removed_ms = $1 \
                 WHERE organization_id = $2 AND item_id = $3 AND removed_ms IS NULL",
            )
            .bind(now)
            .bind(&owned)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        }))
    })
    .await?;
    Ok(())
}

/// The organization a (not removed) item of Plaid's belongs to, looked up
/// across organizations: Plaid's webhook names only the item.
pub(crate) async fn item_owner(
    db: &Database,
    item_id: &str,
) -> LedgerResult<Option<OrganizationId>> {
    Ok(crate::db::sql::owner_of(
        db,
        "SELECT organization_id FROM bank_items WHERE item_id = $1 AND removed_ms IS NULL",
        item_id,
    )
    .await?)
}

/// A linked item of the organization, other than `item_id`, at the same
/// institution with an account of the same name and mask: the same bank
/// login linked again. Answers its id.
pub(crate) async fn same_login(
    db: &Database,
    organization: &OrganizationId,
    item_id: &str,
    institution: Option<&str>,
    accounts: &[PlaidAccount],
) -> LedgerResult<Option<String>> {
    let Some(institution) = institution.map(str::to_owned) else {
        return Ok(None);
    };
    let (owned, id) = (organization.to_owned(), item_id.to_owned());
    let known: Vec<(String, String, Option<String>)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(
                    "SELECT i.item_id, a.name, a.mask FROM bank_items i \
                     JOIN bank_accounts a ON a.item_id = i.id \
                     WHERE i.organization_id = $1 AND i.removed_ms IS NULL \
                     AND i.institution = $2 AND i.item_id <> $3",
                )
                .bind(&owned)
                .bind(&institution)
                .bind(&id)
                .fetch_all(&mut *tx)
                .await?
            }))
        })
        .await?;
    Ok(known
        .into_iter()
        .find(|(_, name, mask)| {
            accounts
                .iter()
                .any(|a| truncate(&a.name) == *name && a.mask == *mask)
        })
        .map(|(item, _, _)| item))
}
