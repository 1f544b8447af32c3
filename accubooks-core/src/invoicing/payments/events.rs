//! Stripe's webhook events kept as jobs, and the postings of the payments
//! and refunds they report, each exactly once.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::db::Database;
use crate::db::sql::{in_scope, on_pool};
use crate::events;
use crate::invoicing::invoices::{self, CASH, RECEIVABLE};
use crate::invoicing::recurring::day_in;
use crate::jobs::{JobFailure, NewJob, insert_job, now_ms};
use crate::ledger::{Bind, Effect, GuardedUpdate, WhenLocked};
use crate::ledger::{Ledger, LedgerError, LedgerResult};
use crate::organization::OrganizationId;
use crate::saas::stripe;

use super::intents::{StoredIntent, find_intent};
use super::{CardPayment, JOB_KIND, QUEUE};

/// Emits a card payment's or refund's event, with the invoice as the
/// job's earlier effects left it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CardMoved {
    kind: &'static str,
    payment_intent_id: String,
    /// In the invoice's minor units.
    amount: i64,
    invoice_id: i64,
}

impl Effect for CardMoved {
    fn apply<'a>(
        &'a self,
        tx: &'a mut crate::ledger::EffectTx<'_>,
    ) -> futures::future::BoxFuture<'a, Result<crate::ledger::Guard, sqlx::Error>> {
        Box::pin(async move {
            let invoice = invoices::read_in(tx, self.invoice_id).await?;
            let payment = CardPayment {
                payment_intent_id: self.payment_intent_id.clone(),
                amount: crate::money::format_minor(
                    self.amount,
                    invoices::digits(&invoice.currency),
                ),
                currency: invoice.currency.clone(),
                entry_id: tx.entry_id(),
                invoice,
            };
            tx.emit(crate::events::NewEvent::new(self.kind, &payment));
            Ok(crate::ledger::Guard::Held)
        })
    }
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
    /// The currency of the event's amounts (Stripe's lowercase ISO code);
    /// `None` in jobs recorded before it was kept.
    #[serde(default)]
    pub currency: Option<String>,
    /// When the event happened (Unix seconds): the postings' date, in the
    /// organization's time zone. `None` when the event has no `created`.
    pub created: Option<i64>,
    /// What the intent received (`amount_received`), or the charge
    /// captured (`amount_captured`), in Stripe's minor units.
    pub received: i64,
    /// The charge's refunded total (`amount_refunded`); 0 for a payment;
    /// for a failed refund, the refund's amount.
    pub refunded: i64,
    /// The failed refund, `re_…` (only for [`EventKind::RefundFailed`]).
    #[serde(default)]
    pub refund: Option<String>,
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
    /// `charge.refund.updated` or `refund.updated` of a refund whose
    /// status is `failed`: the money went back to the payment.
    #[serde(rename = "refund.failed")]
    RefundFailed,
}

/// Records an event's job for `organization`: a replay of the same event id
/// finds the job recorded the first time. Answers its id.
pub(crate) async fn record_event(
    db: &Database,
    organization: &OrganizationId,
    event: &EventJob,
) -> LedgerResult<i64> {
    let org = organization.to_owned();
    let job = NewJob {
        queue: QUEUE,
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
///
/// An event that cannot be true of its intent (another currency, a date
/// that is missing or absurd, more refunded than was paid) ends the job
/// `dead` with a permanent code and posts nothing: retrying cannot make it
/// true, and its job stays listed for someone to look at.
pub(crate) async fn process(
    ledger: &Ledger,
    organization: &OrganizationId,
    payload: &serde_json::Value,
) -> Result<(), JobFailure> {
    let event: EventJob = serde_json::from_value(payload.clone())
        .map_err(|_| JobFailure::permanent("INVALID_PAYLOAD"))?;
    let db = ledger.database();
    let Some(intent) = find_intent(db, organization, &event.intent).await? else {
        return Err(JobFailure::permanent("UNKNOWN_PAYMENT_INTENT"));
    };
    let checked = async {
        check_currency(&event, &intent)?;
        let timezone = invoices::get_settings(db, organization).await?.timezone;
        posting_date(&event, &timezone, chrono::Utc::now())
    };
    let date = match checked.await {
        Ok(date) => date,
        Err(err) => {
            tracing::warn!(event = %event.event, payment_intent = %intent.id, error = %err,
                "a Stripe event was refused; nothing is posted");
            return Err(err.into());
        }
    };
    if event.kind == EventKind::RefundFailed {
        return reverse_failed_refund(ledger, organization, &event, &intent, date).await;
    }
    let outcome = async {
        if intent.status == "open" && event.received > 0 {
            post_payment(ledger, organization, &intent, event.received, date).await?;
        }
        if event.kind == EventKind::Refunded {
            // Read again: the payment may have been posted just now.
            let intent = find_intent(db, organization, &event.intent)
                .await?
                .ok_or(LedgerError::NotFound("no such payment intent".to_owned()))?;
            check_refund(ledger, organization, &event, &intent).await?;
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
        Err(err) => {
            if let LedgerError::Invalid { .. } = err {
                tracing::warn!(event = %event.event, payment_intent = %intent.id, error = %err,
                    "a Stripe event was refused; nothing more is posted");
            }
            Err(err.into())
        }
    }
}

/// The event's amounts are in the intent's currency: a signed event in
/// another currency (¥5000 reported for a $50.00 invoice) is refused.
fn check_currency(event: &EventJob, intent: &StoredIntent) -> LedgerResult<()> {
    match &event.currency {
        Some(currency) if !currency.eq_ignore_ascii_case(&intent.currency) => {
            Err(LedgerError::invalid(
                "PAYMENT_CURRENCY_MISMATCH",
                format!(
                    "Stripe event {} reports an amount in {} for payment intent {}, which is in {}; \
                     nothing is posted.",
                    event.event,
                    currency.to_ascii_uppercase(),
                    intent.id,
                    intent.currency
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The date the event's postings carry: the day of its `created` time in
/// the organization's time zone. Refused when it is missing, before 1970,
/// or later than tomorrow there (a clock or a forgery, not a payment).
pub(crate) fn posting_date(
    event: &EventJob,
    timezone: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> LedgerResult<NaiveDate> {
    let invalid = |what: &str| {
        LedgerError::invalid(
            "INVALID_EVENT_DATE",
            format!(
                "Stripe event {} has {what}; its payment cannot be dated, and nothing is posted.",
                event.event
            ),
        )
    };
    let created = event.created.ok_or_else(|| invalid("no created time"))?;
    let at = chrono::DateTime::from_timestamp(created, 0)
        .filter(|_| created >= 0)
        .ok_or_else(|| invalid(&format!("the created time {created}, before 1970")))?;
    let date = day_in(timezone, at);
    let tomorrow = day_in(timezone, now) + chrono::Days::new(1);
    if date > tomorrow {
        return Err(invalid(&format!(
            "the created date {date}, later than tomorrow ({tomorrow}) in {timezone}"
        )));
    }
    Ok(date)
}

/// A charge's refunded total never exceeds the payment posted for its
/// intent: a larger one is refused for good (`REFUND_EXCEEDS_PAYMENT`), not
/// retried as if the invoice might change.
async fn check_refund(
    ledger: &Ledger,
    organization: &OrganizationId,
    event: &EventJob,
    intent: &StoredIntent,
) -> LedgerResult<()> {
    let invoice = invoices::get_invoice(ledger.database(), organization, intent.invoice_id).await?;
    let digits = invoices::digits(&invoice.currency);
    let refunded = stripe::from_stripe(event.refunded, digits, &invoice.currency);
    if refunded.is_some_and(|refunded| refunded <= intent.received) {
        return Ok(());
    }
    let shown = refunded.map_or_else(
        || format!("{} (Stripe's minor units)", event.refunded),
        |refunded| crate::money::format_minor(refunded, digits),
    );
    Err(LedgerError::invalid(
        "REFUND_EXCEEDS_PAYMENT",
        format!(
            "Stripe event {} reports {shown} {} refunded of payment intent {}, more than the \
             {} {} paid through it; nothing more is posted.",
            event.event,
            invoice.currency,
            intent.id,
            crate::money::format_minor(intent.received, digits),
            invoice.currency
        ),
    ))
}

/// Gives a failed refund back to its payment, once: cash against the
/// invoice's receivable for the refund's amount, the invoice paid again by
/// it, the intent's posted refunds lowered by it (Stripe lowers the
/// charge's `amount_refunded` too), and the refund's id recorded, all in
/// the posting's transaction. A refund already given back posts nothing;
/// one not posted yet (its `charge.refunded` still on the way) is retried.
async fn reverse_failed_refund(
    ledger: &Ledger,
    organization: &OrganizationId,
    event: &EventJob,
    intent: &StoredIntent,
    date: NaiveDate,
) -> Result<(), JobFailure> {
    let refund = event
        .refund
        .as_deref()
        .ok_or(JobFailure::permanent("INVALID_PAYLOAD"))?;
    let db = ledger.database();
    if refund_reversed(db, organization, refund).await? {
        return Ok(());
    }
    if intent.status != "succeeded" || intent.refunded < event.refunded {
        tracing::info!(event = %event.event, refund, payment_intent = %intent.id,
            "a failed refund is not posted yet; its reversal waits for it");
        return Err(JobFailure::temporary("REFUND_NOT_POSTED"));
    }
    let invoice = invoices::get_invoice(db, organization, intent.invoice_id).await?;
    let digits = invoices::digits(&invoice.currency);
    let amount = stripe::from_stripe(event.refunded, digits, &invoice.currency)
        .filter(|amount| *amount > 0)
        .ok_or(JobFailure::permanent("PAYMENT_CURRENCY_MISMATCH"))?;
    let posted = post_cash(
        ledger,
        organization,
        &invoice,
        date,
        format!(
            "Stripe refund {refund} of {} failed, for {}",
            intent.id,
            invoice.name()
        ),
        amount,
        vec![
            Box::new(invoices::Payment {
                invoice_id: invoice.id,
                amount,
            }),
            Box::new(refunded_to(
                &intent.id,
                intent.refunded,
                intent.refunded - event.refunded,
            )),
            Box::new(refund_failed(refund, &intent.id, event.refunded)),
            Box::new(invoices::Announce {
                kind: events::INVOICE_PAID,
                invoice_id: invoice.id,
                when: invoices::When::Paid,
            }),
        ],
    )
    .await;
    match posted {
        Ok(()) => Ok(()),
        // A twin event's job came first, or a refund was posted meanwhile:
        // read again.
        Err(LedgerError::Conflict {
            code: "INVOICE_STATE_CHANGED",
            ..
        }) => Err(JobFailure::temporary("PAYMENT_STATE_CHANGED")),
        Err(err) => Err(err.into()),
    }
}

/// Whether a failed refund was given back already.
async fn refund_reversed(
    db: &Database,
    organization: &OrganizationId,
    refund: &str,
) -> LedgerResult<bool> {
    let (org, refund) = (organization.to_owned(), refund.to_owned());
    let found: Option<i64> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &org, tx => {
                sqlx::query_scalar(
                    "SELECT amount FROM stripe_failed_refunds \
                     WHERE organization_id = $1 AND refund_id = $2",
                )
                .bind(&org)
                .bind(&refund)
                .fetch_optional(&mut *tx)
                .await?
            }))
        })
        .await?;
    Ok(found.is_some())
}

async fn post_payment(
    ledger: &Ledger,
    organization: &OrganizationId,
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
                intent.id,
                invoice.name(),
                invoice.status,
                invoice.outstanding,
                invoice.currency
            ),
        });
    }
    post_cash(
        ledger,
        organization,
        &invoice,
        date,
        format!("Stripe payment {} for {}", intent.id, invoice.name()),
        amount,
        vec![
            Box::new(invoices::Payment {
                invoice_id: invoice.id,
                amount,
            }),
            Box::new(paid(&intent.id, amount)),
            Box::new(CardMoved {
                kind: events::PAYMENT_SUCCEEDED,
                payment_intent_id: intent.id.clone(),
                amount,
                invoice_id: invoice.id,
            }),
            Box::new(invoices::Announce {
                kind: events::INVOICE_PAID,
                invoice_id: invoice.id,
                when: invoices::When::Paid,
            }),
        ],
    )
    .await
}

async fn post_refund(
    ledger: &Ledger,
    organization: &OrganizationId,
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
        format!("Stripe refund of {} for {}", intent.id, invoice.name()),
        -amount,
        vec![
            Box::new(invoices::unpay(invoice.id, amount)),
            Box::new(refunded_to(&intent.id, intent.refunded, refunded)),
            Box::new(CardMoved {
                kind: events::PAYMENT_REFUNDED,
                payment_intent_id: intent.id.clone(),
                amount,
                invoice_id: invoice.id,
            }),
        ],
    )
    .await
}

/// An open PaymentIntent is paid by the posting's entry: only one posting
/// can take it from `open` to `succeeded`. `received` is the payment posted,
/// in the invoice's minor units.
fn paid(intent_id: &str, received: i64) -> GuardedUpdate {
    GuardedUpdate::new(
        "UPDATE stripe_payment_intents SET status = 'succeeded', received = $1, \
         payment_entry_id = $2 \
         WHERE id = $3 AND organization_id = $4 AND status = 'open'",
        vec![
            Bind::I64(received),
            Bind::EntryId,
            Bind::Text(intent_id.to_owned()),
            Bind::Organization,
        ],
    )
}

/// Refunds of a paid PaymentIntent are posted by the posting's entry, from
/// the refunded total the job read (`from`) to the charge's new one (`to`,
/// Stripe's minor units): only one posting can move it from `from`.
fn refunded_to(intent_id: &str, from: i64, to: i64) -> GuardedUpdate {
    GuardedUpdate::new(
        "UPDATE stripe_payment_intents SET refunded = $1 \
         WHERE id = $2 AND organization_id = $3 AND status = 'succeeded' \
         AND refunded = $4",
        vec![
            Bind::I64(to),
            Bind::Text(intent_id.to_owned()),
            Bind::Organization,
            Bind::I64(from),
        ],
    )
}

/// A failed refund is given back by the posting's entry: only one posting
/// can record its id.
fn refund_failed(refund: &str, intent_id: &str, amount: i64) -> GuardedUpdate {
    GuardedUpdate::new(
        "INSERT INTO stripe_failed_refunds (refund_id, organization_id, payment_intent_id, \
         amount, entry_id, created_ms) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (refund_id) DO NOTHING",
        vec![
            Bind::Text(refund.to_owned()),
            Bind::Organization,
            Bind::Text(intent_id.to_owned()),
            Bind::I64(amount),
            Bind::EntryId,
            Bind::I64(now_ms()),
        ],
    )
}

/// Posts `cash` (minor units; negative: paid back) to cash against the
/// invoice's receivable, with `effects` in the same transaction. Stripe's
/// money moved whatever the books say: dated in a locked period, it is
/// posted on the first open day instead (its date kept as `original_date`).
async fn post_cash(
    ledger: &Ledger,
    organization: &OrganizationId,
    invoice: &crate::invoicing::Invoice,
    date: NaiveDate,
    memo: String,
    cash: i64,
    effects: Vec<Box<dyn Effect>>,
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
        .post_when_locked(vec![posting], None, effects, WhenLocked::PostOnFirstOpenDay)
        .await?;
    Ok(())
}

/// Registers the job that posts what a Stripe event reports.
pub(crate) fn register(registry: &mut crate::jobs::JobRegistry, ledger: &Ledger) {
    fn run<'a>(
        ledger: &'a Ledger,
        _: &'a crate::jobs::JobEnv,
        job: &'a crate::jobs::JobContext,
    ) -> futures::future::BoxFuture<'a, Result<(), JobFailure>> {
        Box::pin(process(ledger, &job.organization, &job.payload))
    }
    registry.kind(
        JOB_KIND,
        QUEUE,
        crate::jobs::with_state(ledger.clone(), run),
    );
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn event(created: Option<i64>) -> EventJob {
        EventJob {
            event: "evt_1".to_owned(),
            kind: EventKind::Succeeded,
            intent: "pi_1".to_owned(),
            currency: Some("usd".to_owned()),
            created,
            received: 100,
            refunded: 0,
            refund: None,
        }
    }

    #[test]
    fn events_are_dated_in_the_organizations_time_zone_within_reason() {
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
        let at = |d, h| {
            Some(
                Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0)
                    .unwrap()
                    .timestamp(),
            )
        };
        let date = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let dated = |created, zone| {
            posting_date(&event(created), zone, now).map_err(|err| match err {
                LedgerError::Invalid { code, .. } => code,
                other => panic!("{other}"),
            })
        };
        assert_eq!(dated(at(9, 23), "UTC"), Ok(date(9)));
        assert_eq!(dated(at(9, 23), "Europe/Paris"), Ok(date(10)));
        assert_eq!(dated(at(10, 3), "America/New_York"), Ok(date(9)));
        // Tomorrow in the zone is the last day taken (clocks differ a little).
        assert_eq!(dated(at(11, 20), "UTC"), Ok(date(11)));
        assert_eq!(dated(at(11, 11), "Pacific/Kiritimati"), Ok(date(12)));
        for refused in [
            None,
            at(12, 0),
            Some(-1),
            Some(253_402_214_400 - 86_400),
            Some(i64::MAX),
        ] {
            assert_eq!(
                dated(refused, "UTC"),
                Err("INVALID_EVENT_DATE"),
                "{refused:?}"
            );
        }
    }
}
