//! Invoicing: customers, invoices, payments, credit notes and settings;
//! recurring invoices; card payments through Stripe and Stripe's webhooks.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::Error;
use super::idempotent::{Keyed, stored};
use super::{Answer, Books, ClientKey, Result, org};
use crate::deps;
use crate::error::Fault;
use crate::health::Event;
use crate::identity::{Principal, Role};
use crate::invoicing;
use crate::invoicing::payments::{self, EventJob, EventKind, PaymentIntent};
use crate::invoicing::recurring::{self, NewRecurringInvoice, Preview, RecurringInvoice};
use crate::invoicing::{
    ArAging, Customer, Invoice, InvoiceFilter, NewCreditNote, NewCustomer, NewInvoice,
};
use crate::ledger::LedgerError;
use crate::ledger::{self};
use crate::metadata::Metadata;
use crate::money::AmountText;
use crate::paging::{Page, PageRequest};
use crate::saas::Failure;
use crate::saas::stripe::{self, NewIntent};
use crate::usecases::Client;

/// An action that may carry a date (default: today, UTC).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dated {
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub date: Option<String>,
}

/// A payment received against an invoice.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// Decimal string in the invoice's currency, positive.
    pub amount: AmountText,
    /// `YYYY-MM-DD`; default today (UTC).
    #[serde(default)]
    pub date: Option<String>,
}

/// Which action on an existing invoice.
#[derive(Clone, Copy)]
enum Action {
    Issue,
    Void,
}

impl Books<'_> {
    /// A page of the organization's customers, oldest first: those with
    /// every pair of `metadata` (all when empty).
    pub async fn customers(
        &self,
        caller: &Principal,
        metadata: Metadata,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<Customer>>> {
        self.run("customers", Some(caller), Role::Viewer, async {
            let db = self.app.database();
            Ok(invoicing::list_customers(db, &org(caller), &metadata, &page).await?)
        })
        .await
    }

    /// Replaces a customer's metadata.
    pub async fn replace_customer_metadata(
        &self,
        caller: &Principal,
        id: i64,
        metadata: Metadata,
    ) -> Result<Customer> {
        self.run(
            "replace_customer_metadata",
            Some(caller),
            Role::Accountant,
            async {
                let db = self.app.database();
                Ok(invoicing::replace_customer_metadata(db, &org(caller), id, &metadata).await?)
            },
        )
        .await
    }

    /// Adds a customer.
    pub async fn create_customer(
        &self,
        caller: &Principal,
        new: NewCustomer,
        key: Option<ClientKey>,
    ) -> Result<Answer<Customer>> {
        let keyed = Keyed {
            operation: "create_customer",
            target: None,
            input: &new,
        };
        let new = &new;
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async move {
            let render = |customer: &Customer| stored(customer);
            let key = key
                .as_ref()
                .map(|k| (k, &render as ledger::RenderRecord<'_, _>));
            let db = self.app.database();
            Ok(invoicing::create_customer(db, &org(caller), new.clone(), key).await?)
        })
        .await
    }

    /// A page of the invoices and credit notes, newest first, with their
    /// lines (at most [`invoicing::INVOICE_LINES_PER_PAGE`] lines a page).
    pub async fn invoices(
        &self,
        caller: &Principal,
        filter: InvoiceFilter,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<Invoice>>> {
        self.run("invoices", Some(caller), Role::Viewer, async {
            Ok(invoicing::list_invoices(self.app.database(), &org(caller), filter, &page).await?)
        })
        .await
    }

    /// An invoice or credit note.
    pub async fn invoice(&self, caller: &Principal, id: i64) -> Result<Invoice> {
        self.run("invoice", Some(caller), Role::Viewer, async {
            Ok(invoicing::get_invoice(self.app.database(), &org(caller), id).await?)
        })
        .await
    }

    /// Creates a draft invoice; its totals are computed once, here.
    pub async fn create_invoice(
        &self,
        caller: &Principal,
        new: NewInvoice,
        key: Option<ClientKey>,
    ) -> Result<Answer<Invoice>> {
        let keyed = Keyed {
            operation: "create_invoice",
            target: None,
            input: &new,
        };
        let new = &new;
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async move {
            let render = |invoice: &Invoice| stored(invoice);
            let key = key
                .as_ref()
                .map(|k| (k, &render as ledger::RenderRecord<'_, _>));
            let books = self.app.ledger();
            Ok(invoicing::create_invoice(books, &org(caller), new.clone(), key).await?)
        })
        .await
    }

    /// Issues a draft: posts receivables against revenue and tax payable.
    pub async fn issue_invoice(
        &self,
        caller: &Principal,
        id: i64,
        input: Dated,
        key: Option<ClientKey>,
    ) -> Result<Answer<Invoice>> {
        self.act("issue_invoice", Action::Issue, caller, id, input, key)
            .await
    }

    /// Voids a draft, or an issued invoice without payments or credits (by
    /// reversing its posting).
    pub async fn void_invoice(
        &self,
        caller: &Principal,
        id: i64,
        input: Dated,
        key: Option<ClientKey>,
    ) -> Result<Answer<Invoice>> {
        self.act("void_invoice", Action::Void, caller, id, input, key)
            .await
    }

    async fn act(
        &self,
        operation: &'static str,
        action: Action,
        caller: &Principal,
        id: i64,
        input: Dated,
        key: Option<ClientKey>,
    ) -> Result<Answer<Invoice>> {
        let keyed = Keyed {
            operation,
            target: Some(id),
            input: &input,
        };
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async {
            let (books, date) = (self.app.ledger(), input.date.as_deref());
            let organization = org(caller);
            Ok(match action {
                Action::Issue => {
                    invoicing::issue_invoice(books, &organization, id, date, key).await?
                }
                Action::Void => {
                    invoicing::void_invoice(books, &organization, id, date, key).await?
                }
            })
        })
        .await
    }

    /// Records a (partial) payment: posts cash against receivables.
    pub async fn pay_invoice(
        &self,
        caller: &Principal,
        id: i64,
        payment: Payment,
        key: Option<ClientKey>,
    ) -> Result<Answer<Invoice>> {
        let keyed = Keyed {
            operation: "pay_invoice",
            target: Some(id),
            input: &payment,
        };
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async {
            Ok(invoicing::record_payment(
                self.app.ledger(),
                &org(caller),
                id,
                &payment.amount.0,
                payment.date.as_deref(),
                key,
            )
            .await?)
        })
        .await
    }

    /// Credits part of an open invoice: posts returns and tax against
    /// receivables. Answers the credit note.
    pub async fn credit_note(
        &self,
        caller: &Principal,
        id: i64,
        new: NewCreditNote,
        key: Option<ClientKey>,
    ) -> Result<Answer<Invoice>> {
        let keyed = Keyed {
            operation: "credit_note",
            target: Some(id),
            input: &new,
        };
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async {
            let books = self.app.ledger();
            Ok(invoicing::credit_note(books, &org(caller), id, new.clone(), key).await?)
        })
        .await
    }

    /// Receivables outstanding at the end of `as_of` (default: today, UTC),
    /// by days past due.
    pub async fn ar_aging(&self, caller: &Principal, as_of: Option<NaiveDate>) -> Result<ArAging> {
        self.run("ar_aging", Some(caller), Role::Viewer, async {
            let as_of = super::reporting::or_today(as_of);
            Ok(invoicing::ar_aging(self.app.reports_database(), &org(caller), as_of).await?)
        })
        .await
    }
}

/// The most occurrences a preview shows: no answer holds more items than a
/// list's largest page (contract §4).
pub const MAX_PREVIEW: usize = crate::paging::MAX_LIMIT as usize;

impl Books<'_> {
    /// Creates a recurring invoice; its occurrences already due (a start in
    /// the past) are asked for in the same transaction.
    pub async fn create_recurring_invoice(
        &self,
        caller: &Principal,
        new: NewRecurringInvoice,
        key: Option<ClientKey>,
    ) -> Result<Answer<RecurringInvoice>> {
        let keyed = Keyed {
            operation: "create_recurring_invoice",
            target: None,
            input: &new,
        };
        let new = &new;
        let answer = self
            .run_keyed(caller, Role::Accountant, key, keyed, |key| async move {
                let render = |recurring: &RecurringInvoice| stored(recurring);
                let key = key
                    .as_ref()
                    .map(|k| (k, &render as ledger::RenderRecord<'_, _>));
                let (recurring, _asked) = recurring::create_recurring(
                    self.app.ledger(),
                    &org(caller),
                    new.clone(),
                    chrono::Utc::now(),
                    key,
                )
                .await?;
                Ok(recurring)
            })
            .await?;
        self.app.jobs().wake(recurring::QUEUE);
        Ok(answer)
    }

    /// A page of the organization's recurring invoices, oldest first.
    pub async fn recurring_invoices(
        &self,
        caller: &Principal,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<RecurringInvoice>>> {
        self.run("recurring_invoices", Some(caller), Role::Viewer, async {
            Ok(recurring::list_recurring(self.app.database(), &org(caller), &page).await?)
        })
        .await
    }

    /// One recurring invoice.
    pub async fn recurring_invoice(&self, caller: &Principal, id: i64) -> Result<RecurringInvoice> {
        self.run("recurring_invoice", Some(caller), Role::Viewer, async {
            Ok(recurring::get_recurring(self.app.database(), &org(caller), id).await?)
        })
        .await
    }

    /// The next `count` (1 to 1000) occurrences not yet asked for.
    pub async fn preview_recurring_invoice(
        &self,
        caller: &Principal,
        id: i64,
        count: usize,
    ) -> Result<Preview> {
        self.run(
            "preview_recurring_invoice",
            Some(caller),
            Role::Viewer,
            async {
                if !(1..=MAX_PREVIEW).contains(&count) {
                    return Err(LedgerError::invalid(
                        "INVALID_FIELD",
                        format!("count is a whole number from 1 to {MAX_PREVIEW}."),
                    )
                    .into());
                }
                Ok(recurring::preview(self.app.database(), &org(caller), id, count).await?)
            },
        )
        .await
    }
}

/// The provider label of Stripe's webhook in metrics and logs.
const PROVIDER: &str = deps::STRIPE;

/// What a webhook did with an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookReceipt {
    /// Stripe's event id.
    pub event: String,
    /// `queued`: its postings run as a job (a replay finds the same job);
    /// `ignored`: a type that posts nothing; `unknown_intent`: about a
    /// PaymentIntent this server did not ask for (acknowledged and logged,
    /// so Stripe stops sending it).
    pub outcome: WebhookOutcome,
    /// The job, when queued.
    pub job_id: Option<i64>,
}

/// See [`WebhookReceipt::outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookOutcome {
    /// Recorded as a job.
    Queued,
    /// A type that posts nothing.
    Ignored,
    /// About an intent this server never asked for.
    UnknownIntent,
}

impl Books<'_> {
    /// The Stripe client, or the dependency's 503 while Stripe is
    /// unconfigured or known down.
    fn stripe(&self) -> Result<&stripe::Stripe> {
        match self.app.stripe() {
            Some(stripe) if stripe.dependency().is_available() => Ok(stripe),
            _ => Err(self.unavailable(deps::STRIPE)),
        }
    }

    /// Asks Stripe for a PaymentIntent of an issued invoice's open amount;
    /// answers its client secret. Asked again while the open amount is the
    /// same, it answers the same intent.
    pub async fn payment_intent(
        &self,
        caller: &Principal,
        invoice_id: i64,
    ) -> Result<PaymentIntent> {
        self.run("payment_intent", Some(caller), Role::Accountant, async {
            let stripe = self.stripe()?;
            let (db, sealer) = (self.app.database(), self.app.sealer());
            let organization = org(caller);
            let (invoice, amount) = payments::payable(db, &organization, invoice_id).await?;
            let (open, count) =
                payments::open_intent(db, &organization, invoice_id, amount).await?;
            let answer = |id: String, client_secret: String| PaymentIntent {
                payment_intent_id: id,
                client_secret,
                amount: invoice.outstanding.clone(),
                currency: invoice.currency.clone(),
            };
            // An intent sealed under an older SESSION_SECRET does not open:
            // a new one is asked for.
            if let Some(intent) = open
                && let Ok(secret) = sealer.open(
                    &intent.client_secret,
                    &payments::secret_context(&organization, &intent.id),
                )
            {
                use secrecy::ExposeSecret;
                return Ok(answer(intent.id, secret.expose_secret().to_owned()));
            }
            let attempt = payments::key_attempt(db, &organization, invoice_id).await?;
            let created = match stripe
                .create_payment_intent(&NewIntent {
                    amount,
                    currency: &invoice.currency,
                    description: format!("Invoice {}", invoice.name()),
                    metadata: vec![
                        ("organization", organization.to_string()),
                        ("invoice_id", invoice_id.to_string()),
                        ("invoice_number", invoice.name()),
                    ],
                    idempotency_key: payments::idempotency_key(
                        &organization,
                        invoice_id,
                        count,
                        amount,
                        attempt,
                    ),
                })
                .await
            {
                Ok(created) => created,
                Err(Failure::Failed(fault)) => {
                    // Stripe keeps this answer under the key for 24 hours and
                    // would replay it: the next request asks under a new key.
                    payments::next_key_attempt(db, &organization, invoice_id, attempt).await?;
                    return Err(self.stripe_error(Failure::Failed(fault)));
                }
                Err(err) => return Err(self.stripe_error(err)),
            };
            let sealed = sealer.seal(
                &created.client_secret,
                &payments::secret_context(&organization, &created.id),
            );
            payments::store_intent(db, &organization, invoice_id, &created, &sealed).await?;
            Ok(answer(created.id, created.client_secret))
        })
        .await
    }

    /// What a failed Stripe call means for the caller.
    fn stripe_error(&self, err: Failure) -> Error {
        match err {
            Failure::Refused { status: 401, .. } => {
                tracing::error!("Stripe refused the secret key; check STRIPE_SECRET_KEY");
                if let Some(dependency) = self.app.registry().get(deps::STRIPE) {
                    dependency.report(Event::TrafficFailed(Fault::permanent(
                        "AUTHENTICATION_FAILED",
                    )));
                }
                self.unavailable(deps::STRIPE)
            }
            // The key is valid (Stripe is reachable, the probe stays
            // green) but lacks a permission: the operator's to give.
            Failure::Refused { status: 403, body } => {
                tracing::error!(
                    stripe_message = %stripe::error_message(403, &body),
                    "Stripe refused the key a permission; give STRIPE_SECRET_KEY \
                     (a restricted key) PaymentIntents write"
                );
                self.unavailable(deps::STRIPE)
            }
            Failure::Refused { status, body } => Error::Ledger(LedgerError::invalid(
                "PAYMENT_REJECTED",
                format!(
                    "Stripe refused the payment intent: {}",
                    stripe::error_message(status, &body)
                ),
            )),
            Failure::Unavailable(fault) | Failure::Failed(fault) => {
                tracing::warn!(code = fault.code, "a Stripe call failed");
                self.unavailable(deps::STRIPE)
            }
        }
    }

    /// Takes one of Stripe's webhook calls: verifies `Stripe-Signature`
    /// over the raw `payload`, then records what the event asks to post as
    /// a job. Needs only the database (and the webhook secret), not Stripe.
    ///
    /// A refused signature costs the `client` one of its failures
    /// ([`crate::throttle::AuthLimits::webhook_signatures`]); a client over that
    /// budget is refused (`RATE_LIMITED`) before its signature is checked.
    /// Valid signatures spend nothing, so Stripe's bursts always land.
    /// Refusals are counted in `accubooks_webhook_refused_total` and logged
    /// at debug only: a flood of them must not flood the logs.
    pub async fn stripe_webhook(
        &self,
        payload: &[u8],
        signature: Option<&str>,
        client: Client,
    ) -> Result<WebhookReceipt> {
        self.run("stripe_webhook", None, Role::Viewer, async {
            let Some(stripe) = self.app.stripe() else {
                return Err(self.unavailable(deps::STRIPE));
            };
            let address = match client {
                Client::Remote(address) => address,
                Client::Host => None,
            };
            let (limits, metrics) = (self.app.auth_limits(), self.app.metrics());
            if let Err(throttled) = limits.check_webhook(address) {
                metrics.count_webhook_refused(PROVIDER, "rate_limited");
                tracing::debug!(
                    provider = PROVIDER,
                    reason = "rate_limited",
                    "webhook refused"
                );
                return Err(throttled.into());
            }
            if let Err(bad) = stripe.verify(payload, signature, chrono::Utc::now().timestamp()) {
                metrics.count_webhook_refused(PROVIDER, bad.reason());
                tracing::debug!(
                    provider = PROVIDER,
                    reason = bad.reason(),
                    "webhook refused"
                );
                limits.fail_webhook(address);
                return Err(bad.into());
            }
            let event: serde_json::Value = serde_json::from_slice(payload)
                .map_err(|_| Error::InvalidSignature(stripe::BadSignature::Malformed))?;
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            let Some(job) = event_job(&event) else {
                tracing::debug!(event = %id, kind = event["type"].as_str(), "Stripe event ignored");
                return Ok(WebhookReceipt {
                    event: id,
                    outcome: WebhookOutcome::Ignored,
                    job_id: None,
                });
            };
            let db = self.app.database();
            let Some(organization) = payments::intent_owner(db, &job.intent).await? else {
                tracing::warn!(
                    event = %id,
                    payment_intent = %job.intent,
                    "Stripe event about a payment intent this server did not ask for; acknowledged"
                );
                return Ok(WebhookReceipt {
                    event: id,
                    outcome: WebhookOutcome::UnknownIntent,
                    job_id: None,
                });
            };
            let job_id = payments::record_event(db, &organization, &job).await?;
            self.app.jobs().wake(payments::QUEUE);
            Ok(WebhookReceipt {
                event: id,
                outcome: WebhookOutcome::Queued,
                job_id: Some(job_id),
            })
        })
        .await
    }
}

/// The postings an event asks for, from Stripe's event object: a succeeded
/// PaymentIntent, a refunded charge of one, or a refund of one that failed.
fn event_job(event: &serde_json::Value) -> Option<EventJob> {
    let object = &event["data"]["object"];
    let (kind, intent, received, refunded) = match event["type"].as_str()? {
        "payment_intent.succeeded" => (
            EventKind::Succeeded,
            object["id"].as_str()?,
            object["amount_received"].as_i64()?,
            0,
        ),
        "charge.refunded" => (
            EventKind::Refunded,
            object["payment_intent"].as_str()?,
            object["amount_captured"].as_i64().unwrap_or(0),
            object["amount_refunded"].as_i64()?,
        ),
        // Stripe sends both about a refund; only a failure posts (the
        // refund was posted when its charge was refunded).
        "charge.refund.updated" | "refund.updated" if object["status"] == "failed" => (
            EventKind::RefundFailed,
            object["payment_intent"].as_str()?,
            0,
            object["amount"].as_i64()?,
        ),
        _ => return None,
    };
    let refund = match kind {
        EventKind::RefundFailed => Some(object["id"].as_str()?.to_owned()),
        EventKind::Succeeded | EventKind::Refunded => None,
    };
    Some(EventJob {
        event: event["id"].as_str()?.to_owned(),
        kind,
        intent: intent.to_owned(),
        currency: object["currency"].as_str().map(str::to_owned),
        created: event["created"].as_i64(),
        received,
        refunded,
        refund,
    })
}
