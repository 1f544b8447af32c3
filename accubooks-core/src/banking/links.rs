//! Linked Plaid items and their accounts: saving a link (its token sealed),
//! listing the bank accounts and mapping each to a ledger account.

use secrecy::SecretString;

use super::*;
use crate::db::Database;
use crate::db::sql::{in_scope, on_pool};
use crate::idempotency::{self, IdempotencyKey};
use crate::jobs::now_ms;
use crate::ledger::accounts::accounts_for_posting;
use crate::ledger::{AccountType, Ledger, LedgerError, LedgerResult, RenderRecord};
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};
use crate::saas::plaid::PlaidAccount;
use crate::sealed::Sealer;

/// Stores a linked item, its access token sealed, and its accounts, in one
/// transaction. Linking an item again (say after `SESSION_SECRET` changed)
/// replaces its token, makes it `active` again and keeps its accounts'
/// mappings. With `idempotency`, the rendered answer is stored in the same
/// transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn save_link(
    db: &Database,
    sealer: &Sealer,
    organization: &OrganizationId,
    item_id: &str,
    institution: Option<&str>,
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
                    "INSERT INTO bank_items (organization_id, item_id, access_token, created_ms, institution) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organization_id, item_id) \
                     DO UPDATE SET access_token = excluded.access_token, institution = excluded.institution, \
                     status = 'active', status_code = NULL, removed_ms = NULL RETURNING id",
                )
                .bind(&owned)
                .bind(item_id)
                .bind(&sealed)
                .bind(now)
                .bind(institution)
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

pub(super) fn truncate(text: &str) -> String {
    text.chars().take(MAX_NAME_CHARS).collect()
}

// ------------------------------------------------------------ accounts

pub(super) const SELECT_ACCOUNTS: &str = "SELECT a.id, i.item_id, a.plaid_account_id, a.name, a.mask, a.currency, l.code \
     FROM bank_accounts a JOIN bank_items i ON i.id = a.item_id \
     LEFT JOIN accounts l ON l.id = a.ledger_account_id WHERE a.organization_id = $1";

pub(super) type AccountRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);

pub(super) fn account_of(row: AccountRow) -> BankAccount {
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
    organization: &OrganizationId,
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

pub(super) async fn bank_account(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
) -> LedgerResult<BankAccount> {
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
    organization: &OrganizationId,
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
