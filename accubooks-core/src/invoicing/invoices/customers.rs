//! Customers: added and listed.

use super::*;
use crate::db::Database;
use crate::db::sql::{in_scope, on_pool};
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
    db.run(|pool| async move {
        let created: Result<Customer, sqlx::Error> = async {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                let id = sqlx::query_scalar("INSERT INTO customers (organization_id, name, email) VALUES ($1, $2, $3) RETURNING id")
                    .bind(&organization)
                    .bind(&new.name)
                    .bind(&new.email)
                    .fetch_one(&mut *tx)
                    .await?;
                let customer = Customer {
                    id,
                    name: new.name.clone(),
                    email: new.email.clone(),
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

/// A page of the organization's customers, oldest first (by id).
pub async fn list_customers(
    db: &Database,
    organization: &OrganizationId,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<Customer>>> {
    let organization = organization.to_owned();
    let (after, fetch) = (page.after.unwrap_or(0), page.limit.fetch());
    let rows: Vec<(i64, String, Option<String>)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as("SELECT id, name, email FROM customers WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3")
                    .bind(&organization)
                    .bind(after)
                    .bind(fetch)
                    .fetch_all(&mut *tx)
                    .await?
            }))
        })
        .await?;
    let customers = rows
        .into_iter()
        .map(|(id, name, email)| Customer { id, name, email })
        .collect();
    Ok(page.page(customers, |customer| customer.id))
}
