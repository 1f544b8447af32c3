//! Card payments through Stripe: PaymentIntents for invoices, and Stripe's
//! webhooks.

use serde::{Deserialize, Serialize};

use super::{Books, Error, Result, org};
use crate::deps;
use crate::error::Fault;
use crate::health::Event;
use crate::identity::{Principal, Role};
use crate::invoicing::payments::{self, EventJob, EventKind, PaymentIntent};
use crate::ledger::LedgerError;
use crate::saas::CallError;
use crate::saas::stripe::{self, NewIntent};
use crate::usecases::Client;

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
            let created = stripe
                .create_payment_intent(&NewIntent {
                    amount,
                    currency: &invoice.currency,
                    description: format!("Invoice {}", invoice.number),
                    metadata: vec![
                        ("organization", organization.clone()),
                        ("invoice_id", invoice_id.to_string()),
                        ("invoice_number", invoice.number.clone()),
                    ],
                    // The same request (invoice, its how-manieth intent,
                    // amount) is the same intent at Stripe, so a retry after
                    // a lost answer, or a twin request, creates no second.
                    idempotency_key: format!(
                        "accubooks:{organization}:invoice:{invoice_id}:intent:{count}:{amount}"
                    ),
                })
                .await
                .map_err(|err| self.stripe_error(err))?;
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
    fn stripe_error(&self, err: CallError) -> Error {
        match err {
            CallError::Refused {
                status: 401 | 403, ..
            } => {
                tracing::error!("Stripe refused the secret key; check STRIPE_SECRET_KEY");
                if let Some(dependency) = self.app.registry().get(deps::STRIPE) {
                    dependency.report(Event::TrafficFailed(Fault::permanent(
                        "AUTHENTICATION_FAILED",
                    )));
                }
                self.unavailable(deps::STRIPE)
            }
            CallError::Refused { status, body } => Error::Ledger(LedgerError::invalid(
                "PAYMENT_REJECTED",
                format!(
                    "Stripe refused the payment intent: {}",
                    stripe::error_message(status, &body)
                ),
            )),
            CallError::Unavailable(fault) => {
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
    /// ([`crate::identity::AuthLimits::webhook_signatures`]); a client over that
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
                return Err(LedgerError::from(throttled).into());
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
/// PaymentIntent, or a refunded charge of one.
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
        _ => return None,
    };
    Some(EventJob {
        event: event["id"].as_str()?.to_owned(),
        kind,
        intent: intent.to_owned(),
        currency: object["currency"].as_str().map(str::to_owned),
        created: event["created"].as_i64(),
        received,
        refunded,
    })
}
