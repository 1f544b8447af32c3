//! Card payments through Stripe, on the books: the PaymentIntents asked for
//! invoices, Stripe's webhook events kept as jobs, and their postings.
//!
//! Exactly once, whatever Stripe retries and in whatever order:
//!
//! - an event is recorded as a job keyed by its id, so a replayed event is
//!   the same job;
//! - a payment is posted only by the transaction that takes its intent from
//!   `open` to `succeeded` (an [`Effect::StripePaid`] guard), so two events
//!   of one intent (`payment_intent.succeeded`, then `charge.refunded`
//!   carrying the charge) post it once;
//! - refunds are posted from the refunded total the job read to the
//!   charge's new total (an [`Effect::StripeRefunded`] guard), so each
//!   refunded amount is posted once, and an older event finds nothing left.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::committer::Effect;
use super::invoices::{self, CASH, InvoiceKind, RECEIVABLE};
use super::sql::{BeginScoped, in_scope, on_pool};
use super::{Ledger, LedgerError, LedgerResult};
use crate::db::Database;
use crate::jobs::{JobFailure, NewJob, Queue, insert_job, now_ms};
use crate::saas::stripe;

/// The kind of the jobs that post what Stripe's events report.
pub const JOB_KIND: &str = "stripe-event";

/// A PaymentIntent of an invoice, as the caller gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentIntent {
    /// Stripe's id, `pi_…`.
    pub payment_intent_id: String,
    /// What the browser confirms the payment with (Stripe.js).
    pub client_secret: String,
    /// Decimal string in the invoice's currency: what was open when asked.
    pub amount: String,
    /// The invoice's currency.
    pub currency: String,
}

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
    /// Stripe's minor units refunded and posted.
    pub refunded: i64,
}

type IntentRow = (String, i64, i64, String, String, String, i64);

fn from_row(row: IntentRow) -> StoredIntent {
    let (id, invoice_id, amount, currency, client_secret, status, refunded) = row;
    StoredIntent {
        id,
        invoice_id,
        amount,
        currency,
        client_secret,
        status,
        refunded,
    }
}

const INTENT_COLUMNS: &str = "SELECT id, invoice_id, amount, currency, client_secret, status, refunded FROM stripe_payment_intents";

/// The sealing context of an intent's client secret.
pub(crate) fn secret_context(organization: &str, intent_id: &str) -> String {
    format!("stripe-intent:{organization}:{intent_id}")
}

/// What Stripe can charge of an invoice now: its outstanding amount in
/// Stripe's minor units. Refuses an invoice that is not open, and an
/// amount Stripe cannot charge exactly.
pub(crate) async fn payable(
    db: &Database,
    organization: &str,
    invoice_id: i64,
) -> LedgerResult<(super::Invoice, i64)> {
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
    organization: &str,
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

/// Keeps an intent Stripe created (its client secret sealed). An intent
/// kept already (two requests got the same one) is left as it is.
pub(crate) async fn store_intent(
    db: &Database,
    organization: &str,
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
async fn find_intent(
    db: &Database,
    organization: &str,
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
pub(crate) async fn intent_owner(db: &Database, intent_id: &str) -> LedgerResult<Option<String>> {
    let id = intent_id.to_owned();
    Ok(db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for_worker().await?;
                let owner: Option<String> = sqlx::query_scalar(
                    "SELECT organization_id FROM stripe_payment_intents WHERE id = $1",
                )
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(owner)
            })
        })
        .await?)
}

/// What a webhook event asks to post, kept as its job's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EventJob {
    /// Stripe's event id, `evt_…`: the job's unique key.
    pub event: String,
    /// `payment_intent.succeeded` or `charge.refunded`.
    pub kind: EventKind,
    /// The intent, `pi_…`.
    pub intent: String,
    /// When the event happened (Unix seconds): the postings' date.
    pub created: i64,
    /// What the intent received (`amount_received`), or the charge
    /// captured (`amount_captured`), in Stripe's minor units.
    pub received: i64,
    /// The charge's refunded total (`amount_refunded`); 0 for a payment.
    pub refunded: i64,
}

/// The events that post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EventKind {
    /// `payment_intent.succeeded`.
    #[serde(rename = "payment_intent.succeeded")]
    Succeeded,
    /// `charge.refunded`.
    #[serde(rename = "charge.refunded")]
    Refunded,
}

/// Records an event's job for `organization`: a replay of the same event id
/// finds the job recorded the first time. Answers its id.
pub(crate) async fn record_event(
    db: &Database,
    organization: &str,
    event: &EventJob,
) -> LedgerResult<i64> {
    let org = organization.to_owned();
    let job = NewJob {
        queue: Queue::Payments,
        kind: JOB_KIND,
        unique_key: format!("stripe-event:{}", event.event),
        payload: serde_json::to_value(event).expect("an event job serializes"),
    };
    let now = now_ms();
    Ok(db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &org, tx => insert_job!(tx, &org, &job, now)?))
        })
        .await?)
}

/// Runs an event's job: posts the payment of its intent if that is not
/// posted yet, then (for a refund) the refunds not posted yet.
pub(crate) async fn process(
    ledger: &Ledger,
    organization: &str,
    payload: &serde_json::Value,
) -> Result<(), JobFailure> {
    let event: EventJob = serde_json::from_value(payload.clone())
        .map_err(|_| JobFailure::permanent("INVALID_PAYLOAD"))?;
    let date = chrono::DateTime::from_timestamp(event.created, 0)
        .map_or_else(|| chrono::Utc::now().date_naive(), |t| t.date_naive());
    let db = ledger.database();
    let Some(intent) = find_intent(db, organization, &event.intent).await? else {
        return Err(JobFailure::permanent("UNKNOWN_PAYMENT_INTENT"));
    };
    let outcome = async {
        if intent.status == "open" && event.received > 0 {
            post_payment(ledger, organization, &intent, event.received, date).await?;
        }
        if event.kind == EventKind::Refunded {
            // Read again: the payment may have been posted just now.
            let intent = find_intent(db, organization, &event.intent)
                .await?
                .ok_or(LedgerError::NotFound("no such payment intent".to_owned()))?;
            if event.refunded > intent.refunded {
                post_refund(ledger, organization, &intent, event.refunded, date).await?;
            }
        }
        Ok::<(), LedgerError>(())
    };
    match outcome.await {
        Ok(()) => Ok(()),
        // Another posting of this intent came first (a twin event's job, a
        // payment recorded by hand): read again and see what is left.
        Err(LedgerError::Conflict {
            code: "INVOICE_STATE_CHANGED",
            ..
        }) => Err(JobFailure::temporary("PAYMENT_STATE_CHANGED")),
        Err(err) => Err(err.into()),
    }
}

async fn post_payment(
    ledger: &Ledger,
    organization: &str,
    intent: &StoredIntent,
    received: i64,
    date: NaiveDate,
) -> LedgerResult<()> {
    let db = ledger.database();
    let invoice = invoices::get_invoice(db, organization, intent.invoice_id).await?;
    let digits = invoices::digits(&invoice.currency);
    let amount = stripe::from_stripe(received, digits, &invoice.currency)
        .filter(|_| intent.currency.eq_ignore_ascii_case(&invoice.currency))
        .ok_or_else(|| {
            LedgerError::invalid(
                "PAYMENT_CURRENCY_MISMATCH",
                format!(
                    "Stripe reports {received} {} for an invoice in {}.",
                    intent.currency, invoice.currency
                ),
            )
        })?;
    if !invoice.status.is_open() || amount > invoice.outstanding_minor {
        // Another posting of this intent (a twin event's job) may have paid
        // the invoice since the intent was read: read it again, after the
        // invoice, so an intent still open means the invoice truly cannot
        // take the payment.
        if find_intent(db, organization, &intent.id)
            .await?
            .is_some_and(|now| now.status != "open")
        {
            return Ok(());
        }
        // Money arrived that the invoice cannot take (paid by hand meanwhile,
        // voided): the job ends dead, for someone to refund or apply it.
        return Err(LedgerError::Conflict {
            code: "PAYMENT_NOT_APPLICABLE",
            message: format!(
                "Stripe payment {} cannot be applied to invoice {} ({}, {} {} outstanding).",
                intent.id, invoice.number, invoice.status, invoice.outstanding, invoice.currency
            ),
        });
    }
    post_cash(
        ledger,
        organization,
        &invoice,
        date,
        format!("Stripe payment {} for {}", intent.id, invoice.number),
        amount,
        vec![
            Effect::Pay {
                invoice_id: invoice.id,
                amount,
                date,
            },
            Effect::StripePaid {
                intent_id: intent.id.clone(),
                received: amount,
            },
        ],
    )
    .await
}

async fn post_refund(
    ledger: &Ledger,
    organization: &str,
    intent: &StoredIntent,
    refunded: i64,
    date: NaiveDate,
) -> LedgerResult<()> {
    let db = ledger.database();
    let invoice = invoices::get_invoice(db, organization, intent.invoice_id).await?;
    let digits = invoices::digits(&invoice.currency);
    let amount = stripe::from_stripe(refunded - intent.refunded, digits, &invoice.currency)
        .ok_or_else(|| {
            LedgerError::invalid(
                "PAYMENT_CURRENCY_MISMATCH",
                "Stripe reports a refund the invoice's currency cannot hold.",
            )
        })?;
    post_cash(
        ledger,
        organization,
        &invoice,
        date,
        format!("Stripe refund of {} for {}", intent.id, invoice.number),
        -amount,
        vec![
            Effect::Unpay {
                invoice_id: invoice.id,
                amount,
            },
            Effect::StripeRefunded {
                intent_id: intent.id.clone(),
                from: intent.refunded,
                to: refunded,
            },
        ],
    )
    .await
}

/// Posts `cash` (minor units; negative: paid back) to cash against the
/// invoice's receivable, with `effects` in the same transaction.
async fn post_cash(
    ledger: &Ledger,
    organization: &str,
    invoice: &super::Invoice,
    date: NaiveDate,
    memo: String,
    cash: i64,
    effects: Vec<Effect>,
) -> LedgerResult<()> {
    let accounts = invoices::posting_accounts(ledger, organization).await?;
    let posting = invoices::posting(
        organization,
        &accounts,
        &invoice.currency,
        date,
        memo,
        &[(CASH, cash), (RECEIVABLE, -cash)],
    )?;
    ledger
        .committer()
        .post_with_effects(vec![posting], None, effects)
        .await?;
    Ok(())
}
