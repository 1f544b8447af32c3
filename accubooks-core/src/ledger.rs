//! Accounting storage, written once for both backends.

use sqlx::Row;
use uuid::Uuid;

use crate::db::{Database, Pool};
use crate::money;

/// An account of the chart with its running balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: String,
    /// Its code, unique within the organization.
    pub code: String,
    /// Its name.
    pub name: String,
    /// `asset`, `liability`, `equity`, `revenue` or `expense`.
    pub kind: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Balance in minor units, debits positive.
    pub balance_minor: i64,
}

impl Account {
    /// The balance as a decimal string in the account's currency.
    pub fn balance_text(&self) -> String {
        let digits = money::minor_digits(&self.currency).unwrap_or(2);
        money::format_minor(self.balance_minor, digits)
    }
}

const LIST_ACCOUNTS_PG: &str = "SELECT id::text AS id, code, name, type, currency, balance \
     FROM accounts WHERE organization_id = $1 ORDER BY code";
const LIST_ACCOUNTS_SQLITE: &str = "SELECT id, code, name, type, currency, balance \
     FROM accounts WHERE organization_id = $1 ORDER BY code";

/// The organization's accounts, ordered by code.
pub async fn list_accounts(db: &Database, organization: Uuid) -> crate::Result<Vec<Account>> {
    let rows = db
        .run(|pool| async move {
            match pool {
                Pool::Postgres(pool) => {
                    let rows = sqlx::query(LIST_ACCOUNTS_PG)
                        .bind(organization)
                        .fetch_all(&pool)
                        .await?;
                    rows.iter().map(account_from_pg).collect()
                }
                Pool::Sqlite(pool) => {
                    let rows = sqlx::query(LIST_ACCOUNTS_SQLITE)
                        .bind(organization.to_string())
                        .fetch_all(&pool)
                        .await?;
                    rows.iter().map(account_from_sqlite).collect()
                }
            }
        })
        .await?;
    Ok(rows)
}

fn account_from_pg(row: &sqlx::postgres::PgRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        kind: row.try_get("type")?,
        currency: row.try_get("currency")?,
        balance_minor: row.try_get("balance")?,
    })
}

fn account_from_sqlite(row: &sqlx::sqlite::SqliteRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        kind: row.try_get("type")?,
        currency: row.try_get("currency")?,
        balance_minor: row.try_get("balance")?,
    })
}
