//! Draft invoices: checked, numbered by their customer and stored with
//! their lines and totals.

use std::collections::HashMap;

use chrono::NaiveDate;
use sqlx::Row;

use super::totals::{self, LineFigures};
use super::*;
use crate::db::Database;
use crate::db::sql::{BeginScoped, json_param, on_pool};
use crate::idempotency::{self, IdempotencyKey};
use crate::ledger::accounts::{Account, RenderRecord, accounts_for_posting};
use crate::ledger::entries::parse_date;
use crate::ledger::{Ledger, LedgerResult};
use crate::money::{self};
use crate::organization::OrganizationId;

/// Inserts a draft and reads it back; with `idempotency`, stores the
/// rendered answer in the same transaction.
pub(super) async fn insert_draft(
    db: &Database,
    draft: Draft,
    idempotency: Option<(&IdempotencyKey, RenderRecord<'_, Invoice>)>,
) -> LedgerResult<Invoice> {
    let figures: Vec<LineFigures> = draft
        .lines
        .iter()
        .map(|l| LineFigures {
            quantity: l.quantity,
            unit_price: l.unit_price,
            tax_rate: l.tax_rate,
        })
        .collect();
    let totals = totals::compute(&figures, draft.rounding)
        .map_err(|_| invalid("AMOUNT_TOO_LARGE", "The invoice amounts are too large."))?;
    let draft = &draft;
    let totals = &totals;
    let today = chrono::Utc::now().date_naive();
    let insert = format!(
        "INSERT INTO invoices (organization_id, customer_id, kind, currency, status, \
         due_date, tax_rounding, subtotal, tax, total, recurring_id, period, metadata) \
         VALUES ($1, $2, 'invoice', $3, 'draft', $4, $5, $6, $7, $8, $9, $10, {}) \
         ON CONFLICT (recurring_id, period) WHERE recurring_id IS NOT NULL DO NOTHING \
         RETURNING id",
        json_param(db.pool(), 11)
    );
    let insert = &insert;
    db.run(|pool| async move {
        let inserted: Result<Invoice, sqlx::Error> = async {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&draft.organization).await?;
                let (recurring_id, period) = draft.recurring.unzip();
                let inserted: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(insert.as_str()))
                .bind(&draft.organization)
                .bind(draft.customer_id)
                .bind(&draft.currency)
                .bind(draft.due_date)
                .bind(draft.rounding.as_str())
                .bind(totals.subtotal)
                .bind(totals.tax)
                .bind(totals.total)
                .bind(recurring_id)
                .bind(period)
                .bind(draft.metadata.to_stored())
                .fetch_optional(&mut *tx)
                .await?;
                let (id, new) = match inserted {
                    Some(id) => (id, true),
                    // The occurrence exists already (a job run again).
                    None => (
                        sqlx::query_scalar(
                            "SELECT id FROM invoices WHERE recurring_id = $1 AND period = $2",
                        )
                        .bind(recurring_id)
                        .bind(period)
                        .fetch_one(&mut *tx)
                        .await?,
                        false,
                    ),
                };
                for (line, computed) in draft.lines.iter().zip(&totals.lines).filter(|_| new) {
                    sqlx::query(
                        "INSERT INTO invoice_lines (invoice_id, description, quantity, unit_price, tax_rate, amount, tax) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(id)
                    .bind(&line.description)
                    .bind(line.quantity.to_string())
                    .bind(line.unit_price)
                    .bind(line.tax_rate.to_string())
                    .bind(computed.amount)
                    .bind(computed.tax)
                    .execute(&mut *tx)
                    .await?;
                }
                let invoice = read_invoices_in!(tx, &p, &draft.organization, &InvoiceSelection::One(id), today)
                    .0
                    .pop()
                    .ok_or(sqlx::Error::RowNotFound)?;
                if let Some((key, render)) = idempotency {
                    let (status, body) = render(&invoice);
                    idempotency::store_answer!(&mut *tx, key, status, body)?;
                }
                tx.commit().await?;
                Ok(invoice)
            })
        }
        .await;
        idempotency::settle(inserted)
    })
    .await?
}

/// Creates a draft invoice with its totals.
///
/// With `idempotency`, the rendered answer is stored in the same transaction.
pub async fn create_invoice(
    ledger: &Ledger,
    organization: &OrganizationId,
    new: NewInvoice,
    idempotency: Option<(&IdempotencyKey, RenderRecord<'_, Invoice>)>,
) -> LedgerResult<Invoice> {
    let draft = draft_of(ledger, organization, new, None).await?;
    insert_draft(ledger.database(), draft, idempotency).await
}

/// Creates the draft of one occurrence of a recurring invoice, or answers
/// the one created before: there is one invoice per template and period,
/// however often this runs.
pub async fn create_recurring_invoice(
    ledger: &Ledger,
    organization: &OrganizationId,
    recurring_id: i64,
    period: NaiveDate,
    new: NewInvoice,
) -> LedgerResult<Invoice> {
    let draft = draft_of(ledger, organization, new, Some((recurring_id, period))).await?;
    insert_draft(ledger.database(), draft, None).await
}

/// Checks a new invoice as [`create_invoice`] would, without creating it.
pub(crate) async fn check_invoice(
    ledger: &Ledger,
    organization: &OrganizationId,
    new: NewInvoice,
) -> LedgerResult<()> {
    draft_of(ledger, organization, new, None).await.map(drop)
}

/// Checks a new invoice and computes what its draft holds.
pub(super) async fn draft_of(
    ledger: &Ledger,
    organization: &OrganizationId,
    new: NewInvoice,
    recurring: Option<(i64, NaiveDate)>,
) -> LedgerResult<Draft> {
    let db = ledger.database();
    let due_date = parse_date(&new.due_date)?;
    if !customer_exists(db, organization, new.customer_id).await? {
        return Err(invalid(
            "UNKNOWN_CUSTOMER",
            format!("There is no customer {}.", new.customer_id),
        ));
    }
    let accounts = posting_accounts(ledger, organization).await?;
    let currency = match new.currency {
        Some(currency) => currency,
        None => accounts
            .get(RECEIVABLE)
            .map(|a| a.currency.clone())
            .ok_or_else(|| {
                invalid(
                    "MISSING_ACCOUNT",
                    format!("Invoices need account {RECEIVABLE} (receivables)."),
                )
            })?,
    };
    let currency_digits = crate::ledger::accounts::validate_currency(&currency)?;
    let lines = parse_lines(&new.lines, currency_digits)?;
    Ok(Draft {
        organization: organization.to_owned(),
        customer_id: new.customer_id,
        currency,
        due_date,
        rounding: get_settings(db, organization).await?.tax_rounding,
        lines,
        recurring,
        metadata: new.metadata,
    })
}

pub(crate) async fn posting_accounts(
    ledger: &Ledger,
    organization: &OrganizationId,
) -> LedgerResult<HashMap<String, Account>> {
    accounts_for_posting(
        ledger,
        organization,
        &[CASH, RECEIVABLE, TAX_PAYABLE, REVENUE, RETURNS],
    )
    .await
}
