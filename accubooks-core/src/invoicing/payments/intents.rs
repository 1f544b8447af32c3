//! The PaymentIntents asked of Stripe for invoices: what is payable, the
//! idempotency keys of the asks, and the intents kept.

use crate::db::Database;
use crate::db::sql::{in_scope, on_pool};
use crate::invoicing::invoices::{self, InvoiceKind};
use crate::jobs::now_ms;
use crate::ledger::{LedgerError, LedgerResult};
use crate::organization::OrganizationId;
use crate::saas::stripe;

/// The stored intent of an invoice.
#[derive(Debug, Clone)]
pub(crate) struct StoredIntent {
    pub id: String,
    pub invoice_id: i64,
    /// Stripe's minor units.
    pub amount: i64,
    pub currency: String,
    /// Sealed.
    pub client_secret: String,
    pub status: String,
    /// The payment posted, in the invoice's minor units (0 while open).
    pub received: i64,
    /// Stripe's minor units refunded and posted.
    pub refunded: i64,
}

type IntentRow = (String, i64, i64, String, String, String, i64, i64);

fn from_row(row: IntentRow) -> StoredIntent {
    let (id, invoice_id, amount, currency, client_secret, status, received, refunded) = row;
    StoredIntent {
        id,
        invoice_id,
        amount,
        currency,
        client_secret,
        status,
        received,
        refunded,
    }
}

const INTENT_COLUMNS: &str = "SELECT id, invoice_id, amount, currency, client_secret, status, received, refunded FROM stripe_payment_intents";

/// The sealing context of an intent's client secret.
pub(crate) fn secret_context(organization: &OrganizationId, intent_id: &str) -> String {
    format!("stripe-intent:{organization}:{intent_id}")
}

/// What Stripe can charge of an invoice now: its outstanding amount in
/// Stripe's minor units. Refuses an invoice that is not open, and an
/// amount Stripe cannot charge exactly.
pub(crate) async fn payable(
    db: &Database,
    organization: &OrganizationId,
    invoice_id: i64,
) -> LedgerResult<(crate::invoicing::Invoice, i64)> {
    let invoice = invoices::get_invoice(db, organization, invoice_id).await?;
    if invoice.kind != InvoiceKind::Invoice || !invoice.status.is_open() {
        return Err(LedgerError::Conflict {
            code: "INVOICE_NOT_OPEN",
            message: format!(
                "Invoice {invoice_id} is {}; card payments apply to issued, unpaid invoices.",
                invoice.status
            ),
        });
    }
    let digits = invoices::digits(&invoice.currency);
    let amount = stripe::to_stripe(invoice.outstanding_minor, digits, &invoice.currency)
        .filter(|a| *a > 0)
        .ok_or_else(|| {
            LedgerError::invalid(
                "AMOUNT_NOT_PAYABLE",
                format!(
                    "Stripe cannot charge {} {} exactly (its smallest unit of {} is larger).",
                    invoice.outstanding, invoice.currency, invoice.currency
                ),
            )
        })?;
    Ok((invoice, amount))
}

/// The open intent of an invoice for `amount`, if one was asked for, and
/// how many intents the invoice has had.
pub(crate) async fn open_intent(
    db: &Database,
    organization: &OrganizationId,
    invoice_id: i64,
    amount: i64,
) -> LedgerResult<(Option<StoredIntent>, i64)> {
    let org = organization.to_owned();
    let select = format!(
        "{INTENT_COLUMNS} WHERE organization_id = $1 AND invoice_id = $2 ORDER BY created_ms"
    );
    let rows: Vec<IntentRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &org, tx => {
                sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                    .bind(&org)
                    .bind(invoice_id)
                    .fetch_all(&mut *tx)
                    .await?
            }))
        })
        .await?;
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let open = rows
        .into_iter()
        .map(from_row)
        .find(|i| i.status == "open" && i.amount == amount);
    Ok((open, count))
}

/// The attempt number of an invoice's PaymentIntent key: 0 until Stripe
/// answered 5xx to a request under the key, then one more after each.
pub(crate) async fn key_attempt(
    db: &Database,
    organization: &OrganizationId,
    invoice_id: i64,
) -> LedgerResult<i64> {
    let org = organization.to_owned();
    let attempt: Option<i64> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &org, tx => {
                sqlx::query_scalar(
                    "SELECT attempt FROM stripe_intent_attempts \
                     WHERE organization_id = $1 AND invoice_id = $2",
                )
                .bind(&org)
                .bind(invoice_id)
                .fetch_optional(&mut *tx)
                .await?
            }))
        })
        .await?;
    Ok(attempt.unwrap_or(0))
}

/// Moves an invoice's key attempt on from `failed`, the attempt whose key
/// Stripe answered 5xx (and keeps that answer under for 24 hours). Only
/// from `failed`: twin requests that met the same failure move it once, so
/// they share the next key too.
pub(crate) async fn next_key_attempt(
    db: &Database,
    organization: &OrganizationId,
    invoice_id: i64,
    failed: i64,
) -> LedgerResult<()> {
    let org = organization.to_owned();
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &org, tx => {
            sqlx::query(
                "INSERT INTO stripe_intent_attempts (organization_id, invoice_id, attempt) \
                 VALUES ($1, $2, $3 + 1) ON CONFLICT (organization_id, invoice_id) \
                 DO UPDATE SET attempt = stripe_intent_attempts.attempt + 1 \
                 WHERE stripe_intent_attempts.attempt = $3",
            )
            .bind(&org)
            .bind(invoice_id)
            .bind(failed)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        }))
    })
    .await?;
    Ok(())
}

/// The `Idempotency-Key` of an invoice's PaymentIntent: the same request
/// (invoice, its how-manieth intent, amount, key attempt) is the same
/// intent at Stripe, so a retry after a lost answer, or a twin request,
/// creates no second; after a 5xx the attempt moves on (see
/// [`next_key_attempt`]). The first attempt's key is the one used before
/// attempts were counted.
pub(crate) fn idempotency_key(
    organization: &OrganizationId,
    invoice_id: i64,
    intents: i64,
    amount: i64,
    attempt: i64,
) -> String {
    let key = format!("accubooks:{organization}:invoice:{invoice_id}:intent:{intents}:{amount}");
    if attempt == 0 {
        key
    } else {
        format!("{key}:attempt:{attempt}")
    }
}

/// Keeps an intent Stripe created (its client secret sealed). An intent
/// kept already (two requests got the same one) is left as it is.
pub(crate) async fn store_intent(
    db: &Database,
    organization: &OrganizationId,
    invoice_id: i64,
    intent: &stripe::PaymentIntent,
    sealed_secret: &str,
) -> LedgerResult<()> {
    let org = organization.to_owned();
    let now = now_ms();
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &org, tx => {
            sqlx::query(
                "INSERT INTO stripe_payment_intents (id, organization_id, invoice_id, amount, currency, \
                 client_secret, status, created_ms) VALUES ($1, $2, $3, $4, $5, $6, 'open', $7) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&intent.id)
            .bind(&org)
            .bind(invoice_id)
            .bind(intent.amount)
            .bind(intent.currency.to_ascii_uppercase())
            .bind(sealed_secret)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        }))
    })
    .await?;
    Ok(())
}

/// An intent by id, in its organization.
pub(super) async fn find_intent(
    db: &Database,
    organization: &OrganizationId,
    id: &str,
) -> LedgerResult<Option<StoredIntent>> {
    let (org, id) = (organization.to_owned(), id.to_owned());
    let select = format!("{INTENT_COLUMNS} WHERE organization_id = $1 AND id = $2");
    let row: Option<IntentRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &org, tx => {
                sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                    .bind(&org)
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?
            }))
        })
        .await?;
    Ok(row.map(from_row))
}

/// The organization an intent was asked for, looked up across
/// organizations (a webhook arrives with no caller), or `None` for an
/// intent this server never asked for.
pub(crate) async fn intent_owner(
    db: &Database,
    intent_id: &str,
) -> LedgerResult<Option<OrganizationId>> {
    Ok(crate::db::sql::owner_of(
        db,
        "SELECT organization_id FROM stripe_payment_intents WHERE id = $1",
        intent_id,
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_moves_on_only_with_its_attempt() {
        let org = OrganizationId::parse("5f0c1a52-8d6e-4c1b-9a53-2b4c8e7d9f10").unwrap();
        let first = idempotency_key(&org, 7, 0, 10_000, 0);
        // The key used before attempts were counted: intents asked for then
        // are still found under it.
        assert_eq!(
            first,
            "accubooks:5f0c1a52-8d6e-4c1b-9a53-2b4c8e7d9f10:invoice:7:intent:0:10000"
        );
        assert_eq!(first, idempotency_key(&org, 7, 0, 10_000, 0));
        let second = idempotency_key(&org, 7, 0, 10_000, 1);
        assert_ne!(second, first);
        assert_ne!(second, idempotency_key(&org, 7, 0, 10_000, 2));
    }
}
