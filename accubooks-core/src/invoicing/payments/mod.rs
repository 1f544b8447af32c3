//! Card payments through Stripe, on the books: the PaymentIntents asked for
//! invoices, Stripe's webhook events kept as jobs, and their postings.
//!
//! Exactly once, whatever Stripe retries and in whatever order:
//!
//! - an event is recorded as a job keyed by its id, so a replayed event is
//!   the same job;
//! - a payment is posted only by the transaction that takes its intent from
//!   `open` to `succeeded` (the `paid` guard), so two events
//!   of one intent (`payment_intent.succeeded`, then `charge.refunded`
//!   carrying the charge) post it once;
//! - refunds are posted from the refunded total the job read to the
//!   charge's new total (the `refunded_to` guard), so each
//!   refunded amount is posted once, and an older event finds nothing left;
//! - a refund that failed later is reversed by the transaction that records
//!   its id in `stripe_failed_refunds` (the `refund_failed` guard), so each
//!   failed refund is given back once, whichever of Stripe's two events
//!   about it comes, and however often.
//!
//! `intents` asks Stripe for an invoice's PaymentIntent and keeps it;
//! `events` turns Stripe's webhook events into jobs and posts them.

use serde::{Deserialize, Serialize};

use crate::jobs::Queue;

mod events;
mod intents;

pub(crate) use events::{EventJob, EventKind, record_event, register};
pub(crate) use intents::{
    idempotency_key, intent_owner, key_attempt, next_key_attempt, open_intent, payable,
    secret_context, store_intent,
};

/// The kind of the jobs that post what Stripe's events report.
pub const JOB_KIND: &str = "stripe-event";
/// The queue of the follow-ups of Stripe's webhooks: payments and refunds
/// to post.
pub const QUEUE: Queue = Queue::new("payments");

/// A PaymentIntent of an invoice, as the caller gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentIntent {
    /// Stripe's id, `pi_…`.
    pub payment_intent_id: String,
    /// What the browser confirms the payment with (Stripe.js).
    pub client_secret: String,
    /// Decimal string in the invoice's currency: what was open when asked.
    #[schema(value_type = crate::money::AmountText)]
    pub amount: String,
    /// The invoice's currency.
    pub currency: String,
}

/// A card payment or refund as its event (`payment.succeeded`,
/// `payment.refunded`) shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CardPayment {
    /// Stripe's id, `pi_…`.
    pub payment_intent_id: String,
    /// Decimal string in the invoice's currency: what this posting moved
    /// (the payment received, or this refund).
    #[schema(value_type = crate::money::AmountText)]
    pub amount: String,
    /// The invoice's currency.
    pub currency: String,
    /// The journal entry that posted it.
    pub entry_id: i64,
    /// The invoice, as the payment or refund left it.
    pub invoice: super::Invoice,
}
