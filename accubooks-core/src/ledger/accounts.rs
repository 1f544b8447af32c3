//! The chart of accounts.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::hierarchy::MAX_DEPTH;
use super::{LedgerError, LedgerResult};
use crate::db::Database;
use crate::db::sql::{BeginScoped, List, has_metadata, in_list, json_param, on_pool};
use crate::idempotency::{self, IdempotencyKey};
use crate::metadata::Metadata;
use crate::money;
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};

/// The five account types of double-entry bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    /// Resources owned; normal balance debit.
    Asset,
    /// Obligations; normal balance credit.
    Liability,
    /// Owners' stake; normal balance credit.
    Equity,
    /// Income; normal balance credit.
    Revenue,
    /// Costs; normal balance debit.
    Expense,
}

impl AccountType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Asset => "asset",
            AccountType::Liability => "liability",
            AccountType::Equity => "equity",
            AccountType::Revenue => "revenue",
            AccountType::Expense => "expense",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "asset" => AccountType::Asset,
            "liability" => AccountType::Liability,
            "equity" => AccountType::Equity,
            "revenue" => AccountType::Revenue,
            "expense" => AccountType::Expense,
            _ => return None,
        })
    }

    /// Whether a positive (debit) balance is normal for it.
    pub fn is_debit_normal(self) -> bool {
        matches!(self, AccountType::Asset | AccountType::Expense)
    }
}

/// An account with its current balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: i64,
    /// Its code, unique within the organization.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: AccountType,
    /// ISO 4217 code.
    pub currency: String,
    /// The parent account's code, if any.
    pub parent: Option<String>,
    /// Balance in minor units, debits positive.
    pub balance_minor: i64,
    /// Its metadata (contract §5).
    pub metadata: Metadata,
}

impl Account {
    /// Fraction digits of its currency.
    pub fn digits(&self) -> u32 {
        money::minor_digits(&self.currency).unwrap_or(2)
    }

    /// The balance as a decimal string.
    pub fn balance_text(&self) -> String {
        money::format_minor(self.balance_minor, self.digits())
    }
}

/// An account as every door shows it: the balance as a decimal string.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Account)]
pub(crate) struct AccountShown<'a> {
    id: i64,
    code: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    kind: AccountType,
    currency: &'a str,
    parent: Option<&'a str>,
    #[schema(value_type = crate::money::AmountText)]
    balance: String,
    metadata: &'a Metadata,
}

impl Serialize for Account {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        AccountShown {
            id: self.id,
            code: &self.code,
            name: &self.name,
            kind: self.kind,
            currency: &self.currency,
            parent: self.parent.as_deref(),
            balance: self.balance_text(),
            metadata: &self.metadata,
        }
        .serialize(serializer)
    }
}

/// A request to open an account.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Code, unique within the organization: 1 to 20 letters, digits, `.`, `-` or `_`.
    pub code: String,
    /// Name, 1 to 200 characters.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: AccountType,
    /// ISO 4217 code.
    pub currency: String,
    /// Code of the parent account, if any: an account of the organization
    /// with the same type and currency, at most 7 levels deep (a tree has
    /// at most 8). Fixed once the account is opened.
    #[serde(default)]
    pub parent: Option<String>,
    /// String keys and values kept with the account (contract §5).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// Checks an account code: short and free of characters that would make
/// exports (hledger, beancount) ambiguous.
pub(crate) fn validate_code(code: &str) -> LedgerResult<()> {
    let ok = (1..=20).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(LedgerError::invalid(
            "INVALID_ACCOUNT_CODE",
            "An account code has 1 to 20 letters, digits, '.', '-' or '_'.",
        ))
    }
}

pub(crate) fn validate_name(name: &str) -> LedgerResult<()> {
    let len = name.chars().count();
    if (1..=200).contains(&len) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(LedgerError::invalid(
            "INVALID_NAME",
            "A name has 1 to 200 characters and no control characters.",
        ))
    }
}

pub(crate) fn validate_currency(currency: &str) -> LedgerResult<u32> {
    money::minor_digits(currency).ok_or_else(|| {
        LedgerError::invalid(
            "UNKNOWN_CURRENCY",
            format!("{currency:?} is not a supported ISO 4217 currency code (e.g. USD, EUR, JPY)."),
        )
    })
}

const SELECT_ACCOUNT: &str = "SELECT a.id, a.code, a.name, a.type, a.currency, p.code AS parent, a.balance, \
     CAST(a.metadata AS TEXT) AS metadata FROM accounts a LEFT JOIN accounts p ON p.id = a.parent_id";

fn account_from_row<R: Row>(row: &R) -> Result<Account, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let kind: String = row.try_get("type")?;
    Ok(Account {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        kind: AccountType::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown account type {kind:?}").into()))?,
        currency: row.try_get("currency")?,
        parent: row.try_get("parent")?,
        balance_minor: row.try_get("balance")?,
        metadata: Metadata::from_stored(row.try_get::<Option<String>, _>("metadata")?.as_deref()),
    })
}

/// A page of the organization's accounts, ordered by code (unique in the
/// organization, and never changed), with every pair of `metadata`.
pub async fn list_accounts(
    db: &Database,
    organization: &OrganizationId,
    metadata: &Metadata,
    page: &PageRequest<String>,
) -> LedgerResult<Page<Vec<Account>>> {
    let filter = if metadata.is_empty() {
        String::new()
    } else {
        format!("AND {}", has_metadata(db.pool(), "a.metadata", 4))
    };
    let sql = format!(
        "{SELECT_ACCOUNT} WHERE a.organization_id = $1 AND a.code > $2 {filter} \
         ORDER BY a.code LIMIT $3"
    );
    let organization = organization.to_owned();
    let after = page.after.clone().unwrap_or_default();
    let fetch = page.limit.fetch();
    let metadata = metadata.to_stored();
    let accounts: Vec<Account> = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&organization).await?;
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&organization)
                    .bind(&after)
                    .bind(fetch);
                if metadata.is_some() {
                    query = query.bind(&metadata);
                }
                let rows = query.fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows.iter().map(account_from_row).collect()
            })
        })
        .await?;
    Ok(page.page(accounts, |account| account.code.clone()))
}

/// Replaces the metadata of account `code` (an empty map removes it).
pub async fn replace_account_metadata(
    db: &Database,
    organization: &OrganizationId,
    code: &str,
    metadata: &Metadata,
) -> LedgerResult<Account> {
    let sql = format!(
        "UPDATE accounts SET metadata = {} WHERE organization_id = $2 AND code = $3",
        json_param(db.pool(), 1)
    );
    let (owned, stored, code_owned) = (
        organization.to_owned(),
        metadata.to_stored(),
        code.to_owned(),
    );
    let changed: u64 = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&owned).await?;
                let changed = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&stored)
                    .bind(&owned)
                    .bind(&code_owned)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(changed)
            })
        })
        .await?;
    if changed == 0 {
        return Err(LedgerError::NotFound(format!(
            "There is no account {code:?}."
        )));
    }
    accounts_by_code(db, organization, &[code])
        .await?
        .remove(code)
        .ok_or_else(|| LedgerError::NotFound(format!("There is no account {code:?}.")))
}

/// The organization's accounts with these codes, by code. Unknown codes are
/// simply absent.
pub async fn accounts_by_code(
    db: &Database,
    organization: &OrganizationId,
    codes: &[&str],
) -> LedgerResult<HashMap<String, Account>> {
    if codes.is_empty() {
        return Ok(HashMap::new());
    }
    let organization = organization.to_owned();
    let codes: Vec<String> = codes.iter().map(|c| (*c).to_owned()).collect();
    let accounts: Vec<Account> = db
        .run(|pool| async move {
            let sql = format!(
                "{SELECT_ACCOUNT} WHERE a.organization_id = $1 AND {}",
                in_list(&pool, "a.code", 2)
            );
            on_pool!(pool, p => {
                let query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&organization)
                    .bind(List(codes));
                let mut tx = p.begin_for(&organization).await?;
                let rows = query.fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows.iter().map(account_from_row).collect::<Result<Vec<_>, _>>()
            })
        })
        .await?;
    Ok(accounts.into_iter().map(|a| (a.code.clone(), a)).collect())
}

/// Accounts by organization and code, kept so that validating a posting
/// costs no round trip. An account's id, code, type and currency never
/// change and accounts are never deleted, so an entry never goes stale;
/// balances are not kept (they are zero here). Restart the server after
/// restoring its database from a backup.
#[derive(Debug, Default)]
pub struct AccountCache {
    accounts: RwLock<HashMap<(OrganizationId, String), Account>>,
}

/// Beyond this many accounts the cache starts over.
const ACCOUNT_CACHE_LIMIT: usize = 100_000;

impl AccountCache {
    fn get(
        &self,
        organization: &OrganizationId,
        codes: &[&str],
    ) -> (HashMap<String, Account>, Vec<String>) {
        let accounts = self.accounts.read().unwrap_or_else(PoisonError::into_inner);
        let mut found = HashMap::with_capacity(codes.len());
        let mut missing = Vec::new();
        for code in codes {
            match accounts.get(&(organization.to_owned(), (*code).to_owned())) {
                Some(account) => {
                    found.insert((*code).to_owned(), account.clone());
                }
                None => missing.push((*code).to_owned()),
            }
        }
        (found, missing)
    }

    fn insert(&self, organization: &OrganizationId, found: &HashMap<String, Account>) {
        let mut accounts = self
            .accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if accounts.len() + found.len() > ACCOUNT_CACHE_LIMIT {
            accounts.clear();
        }
        for account in found.values() {
            // Postings need ids, types and currencies: not balances, nor
            // metadata (up to 10 KB an account).
            let kept = Account {
                balance_minor: 0,
                metadata: Metadata::default(),
                ..account.clone()
            };
            accounts.insert((organization.to_owned(), account.code.clone()), kept);
        }
    }
}

/// The organization's accounts with these codes, for validating postings:
/// from the cache where it knows them, else from the database. Their
/// balances are zero, not current. Unknown codes are simply absent.
pub async fn accounts_for_posting(
    ledger: &super::Ledger,
    organization: &OrganizationId,
    codes: &[&str],
) -> LedgerResult<HashMap<String, Account>> {
    let (db, cache) = (ledger.database(), ledger.accounts());
    let (mut found, missing) = cache.get(organization, codes);
    if !missing.is_empty() {
        let missing: Vec<&str> = missing.iter().map(String::as_str).collect();
        let fetched = accounts_by_code(db, organization, &missing).await?;
        cache.insert(organization, &fetched);
        found.extend(fetched.into_iter().map(|(code, account)| {
            let account = Account {
                balance_minor: 0,
                metadata: Metadata::default(),
                ..account
            };
            (code, account)
        }));
    }
    Ok(found)
}

/// The id of `parent`, the parent `new` names, once checked: it exists in
/// the organization (`422 UNKNOWN_ACCOUNT`), has `new`'s type
/// (`PARENT_TYPE_MISMATCH`) and currency (`PARENT_CURRENCY_MISMATCH`: a
/// subtotal adds amounts of one currency), and is less than
/// [`MAX_DEPTH`] levels deep (`ACCOUNT_TREE_TOO_DEEP`). A parent is
/// fixed when the account is opened and exists before its child, so the
/// accounts form a tree and no loop can arise.
async fn check_parent(
    db: &Database,
    organization: &OrganizationId,
    new: &NewAccount,
    parent: &str,
) -> LedgerResult<i64> {
    let found = accounts_by_code(db, organization, &[parent]).await?;
    let parent = found.get(parent).ok_or_else(|| {
        LedgerError::invalid(
            "UNKNOWN_ACCOUNT",
            format!(
                "There is no account {parent:?} to be the parent; open it first, or leave \
                 \"parent\" out."
            ),
        )
    })?;
    if parent.kind != new.kind {
        return Err(LedgerError::invalid(
            "PARENT_TYPE_MISMATCH",
            format!(
                "A parent account must have the same type as its child: {:?} is {}, not {}.",
                parent.code,
                parent.kind.as_str(),
                new.kind.as_str()
            ),
        ));
    }
    if parent.currency != new.currency {
        return Err(LedgerError::invalid(
            "PARENT_CURRENCY_MISMATCH",
            format!(
                "A parent account must have the same currency as its child (reports add them \
                 up): {:?} is in {}, not {}.",
                parent.code, parent.currency, new.currency
            ),
        ));
    }
    let (owned, id) = (organization.to_owned(), parent.id);
    // The parent's level: 1 for a root. The walk stops past the bound.
    let levels: i64 = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&owned).await?;
                let levels = sqlx::query_scalar(
                    "WITH RECURSIVE up (id, parent_id, level) AS ( \
                         SELECT id, parent_id, 1 FROM accounts WHERE id = $1 AND organization_id = $2 \
                         UNION ALL \
                         SELECT a.id, a.parent_id, up.level + 1 FROM accounts a \
                         JOIN up ON a.id = up.parent_id WHERE up.level <= $3) \
                     SELECT CAST(MAX(level) AS BIGINT) FROM up",
                )
                .bind(id)
                .bind(&owned)
                .bind(i64::from(MAX_DEPTH))
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(levels)
            })
        })
        .await?;
    if levels >= i64::from(MAX_DEPTH) {
        return Err(LedgerError::invalid(
            "ACCOUNT_TREE_TOO_DEEP",
            format!(
                "An account tree has at most {MAX_DEPTH} levels, and {:?} is already on level \
                 {levels}: choose a parent higher up.",
                parent.code
            ),
        ));
    }
    Ok(parent.id)
}

/// Renders the answer (stored status, JSON) stored under an idempotency key
/// for a newly created record, inside the transaction that creates it.
pub type RenderRecord<'a, T> = &'a (dyn Fn(&T) -> (u16, String) + Send + Sync);

/// Opens an account. With `idempotency`, the rendered answer is stored in
/// the same transaction.
pub async fn create_account(
    db: &Database,
    organization: &OrganizationId,
    new: NewAccount,
    idempotency: Option<(&IdempotencyKey, RenderRecord<'_, Account>)>,
) -> LedgerResult<Account> {
    validate_code(&new.code)?;
    validate_name(&new.name)?;
    validate_currency(&new.currency)?;
    let parent_id = match &new.parent {
        None => None,
        Some(parent) => Some(check_parent(db, organization, &new, parent).await?),
    };
    let organization_owned = organization.to_owned();
    db.run(|pool| {
            let new = new.clone();
            async move {
                // The organization's lock date is copied onto the account
                // (the committer reads it there). On PostgreSQL the
                // organization's row is locked (SHARE, which waits for the
                // NO KEY UPDATE of a change of the lock date) first, in its
                // own statement: a change of the lock date holding it is
                // waited for, and the insert's statement then reads the new
                // date.
                let share = matches!(pool, crate::db::Pool::Postgres(_));
                let sql = format!(
                    "INSERT INTO accounts (organization_id, code, name, type, currency, parent_id, metadata, \
                     lock_date) VALUES ($1, $2, $3, $4, $5, $6, {}, \
                     (SELECT lock_date FROM organizations WHERE id = $1)) RETURNING id",
                    json_param(&pool, 7)
                );
                let result: Result<Account, sqlx::Error> = async {
                    on_pool!(pool, p => {
                    let mut tx = p.begin_for(&organization_owned).await?;
                    if share {
                        sqlx::query("SELECT id FROM organizations WHERE id = $1 FOR SHARE")
                            .bind(&organization_owned)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(&organization_owned)
                        .bind(&new.code)
                        .bind(&new.name)
                        .bind(new.kind.as_str())
                        .bind(&new.currency)
                        .bind(parent_id)
                        .bind(new.metadata.to_stored())
                        .fetch_one(&mut *tx)
                        .await?;
                    let account = Account {
                        id,
                        code: new.code,
                        name: new.name,
                        kind: new.kind,
                        currency: new.currency,
                        parent: new.parent,
                        balance_minor: 0,
                        metadata: new.metadata,
                    };
                    if let Some((key, render)) = idempotency {
                        let (status, body) = render(&account);
                        idempotency::store_answer!(&mut *tx, key, status, body)?;
                    }
                    tx.commit().await?;
                    Ok(account)
                })
                }
                .await;
                match result {
                    Ok(account) => Ok(Ok(account)),
                    Err(err) if idempotency::is_key_violation(&err) => Ok(Err(idempotency::key_in_use().into())),
                    Err(err) if crate::db::sql::unique_violation(&err) == Some(crate::db::sql::Unique::AccountCode) => Ok(Err(LedgerError::Conflict {
                        code: "ACCOUNT_EXISTS",
                        message: "An account with this code already exists.".to_owned(),
                    })),
                    Err(err) => Err(err),
                }
            }
        })
        .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_cache_is_per_organization_and_keeps_no_balances() {
        let account = |id, code: &str| Account {
            id,
            code: code.to_owned(),
            name: "Cash".to_owned(),
            kind: AccountType::Asset,
            currency: "USD".to_owned(),
            parent: None,
            balance_minor: 1234,
            metadata: Metadata::default(),
        };
        let cache = AccountCache::default();
        cache.insert(
            &OrganizationId::nth(1),
            &HashMap::from([("1000".to_owned(), account(1, "1000"))]),
        );
        let (found, missing) = cache.get(&OrganizationId::nth(1), &["1000", "4000"]);
        assert_eq!(found["1000"].id, 1);
        assert_eq!(found["1000"].balance_minor, 0);
        assert_eq!(missing, vec!["4000".to_owned()]);
        let (found, missing) = cache.get(&OrganizationId::nth(2), &["1000"]);
        assert!(found.is_empty());
        assert_eq!(missing, vec!["1000".to_owned()]);
    }

    #[test]
    fn codes_and_names() {
        assert!(validate_code("1000").is_ok());
        assert!(validate_code("AR-1.2_x").is_ok());
        for bad in [
            "",
            "has space",
            "semi;colon",
            "quote'",
            "x".repeat(21).as_str(),
            "ü",
        ] {
            assert!(validate_code(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("Cash at bank").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("tab\there").is_err());
    }
}
