//! Customers: added, listed, and their metadata replaced.

use super::*;
use crate::db::Database;
use crate::db::sql::{has_metadata, in_scope, json_param, on_pool};
use crate::idempotency::{self, IdempotencyKey};
use crate::ledger::LedgerResult;
use crate::ledger::accounts::{RenderRecord, validate_name};
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};

/// Adds a customer. With `idempotency`, the rendered answer is stored in
/// the same transaction.
pub async fn create_customer(
    db: &Database,
    organization: &OrganizationId,
    new: NewCustomer,
    idempotency: Option<(&IdempotencyKey, RenderRecord<'_, Customer>)>,
) -> LedgerResult<Customer> {
    validate_name(&new.name)?;
    if let Some(email) = &new.email
        && (email.len() > 254 || !email.contains('@') || email.chars().any(char::is_whitespace))
    {
        return Err(invalid(
            "INVALID_EMAIL",
            "Give a valid e-mail address or none.",
        ));
    }
    let organization = organization.to_owned();
    let new = &new;
    let sql = format!(
        "INSERT INTO customers (organization_id, name, email, metadata) VALUES ($1, $2, $3, {}) \
         RETURNING id",
        json_param(db.pool(), 4)
    );
    let sql = &sql;
    db.run(|pool| async move {
        let created: Result<Customer, sqlx::Error> = async {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                let id = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&organization)
                    .bind(&new.name)
                    .bind(&new.email)
                    .bind(new.metadata.to_stored())
                    .fetch_one(&mut *tx)
                    .await?;
                let customer = Customer {
                    id,
                    name: new.name.clone(),
                    email: new.email.clone(),
                    metadata: new.metadata.clone(),
                };
                if let Some((key, render)) = idempotency {
                    let (status, body) = render(&customer);
                    idempotency::store_answer!(&mut *tx, key, status, body)?;
                }
                customer
            }))
        }
        .await;
        idempotency::settle(created)
    })
    .await?
}

/// A page of the organization's customers, oldest first (by id), with
/// every pair of `metadata`.
pub async fn list_customers(
    db: &Database,
    organization: &OrganizationId,
    metadata: &Metadata,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<Customer>>> {
    let filter = if metadata.is_empty() {
        String::new()
    } else {
        format!("AND {}", has_metadata(db.pool(), "metadata", 4))
    };
    let sql = format!(
        "SELECT id, name, email, CAST(metadata AS TEXT) FROM customers \
         WHERE organization_id = $1 AND id > $2 {filter} ORDER BY id LIMIT $3"
    );
    let organization = organization.to_owned();
    let (after, fetch) = (page.after.unwrap_or(0), page.limit.fetch());
    let (sql, metadata) = (&sql, metadata.to_stored());
    let rows: Vec<(i64, String, Option<String>, Option<String>)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&organization)
                    .bind(after)
                    .bind(fetch);
                if metadata.is_some() {
                    query = query.bind(&metadata);
                }
                query.fetch_all(&mut *tx).await?
            }))
        })
        .await?;
    let customers = rows
        .into_iter()
        .map(|(id, name, email, metadata)| Customer {
            id,
            name,
            email,
            metadata: Metadata::from_stored(metadata.as_deref()),
        })
        .collect();
    Ok(page.page(customers, |customer| customer.id))
}

/// Replaces customer `id`'s metadata (an empty map removes it).
pub async fn replace_customer_metadata(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
    metadata: &Metadata,
) -> LedgerResult<Customer> {
    let sql = format!(
        "UPDATE customers SET metadata = {} WHERE organization_id = $2 AND id = $3 \
         RETURNING name, email",
        json_param(db.pool(), 1)
    );
    let (owned, stored, sql) = (organization.to_owned(), metadata.to_stored(), &sql);
    let found: Option<(String, Option<String>)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&stored)
                    .bind(&owned)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
            }))
        })
        .await?;
    let (name, email) =
        found.ok_or_else(|| LedgerError::NotFound(format!("There is no customer {id}.")))?;
    Ok(Customer {
        id,
        name,
        email,
        metadata: metadata.clone(),
    })
}
