//! Outgoing signed webhooks (contract §10, issue 25): endpoints, the
//! deliveries of the organization's events to them, and the `webhooks`
//! queue that sends them.
//!
//! - [`address`]: where an endpoint may point (the SSRF guard).
//! - [`signing`]: Standard Webhooks secrets and signatures.
//! - `endpoints`: the endpoints' rows (create, list, delete, rotate).
//! - `deliveries`: fan-out of events into delivery rows, their outcomes,
//!   their list and the manual retry.
//! - `sender`: one HTTP attempt, bounded in time, body and destination.
//! - `dispatch`: the scheduler that asks for one job per endpoint with work,
//!   and the pass that job runs (with an injectable clock).

pub mod address;
mod deliveries;
mod dispatch;
mod endpoints;
mod sender;
pub mod signing;

pub use deliveries::{Delivery, DeliveryStatus, list_deliveries, retry_delivery};
pub use dispatch::{Pass, ask_for_endpoint, deliver_due, run_endpoint};
pub use endpoints::{
    Created, Endpoint, EndpointStatus, NewEndpoint, create_endpoint, delete_endpoint,
    endpoint_secret, list_endpoints, rotate_secret,
};
pub use sender::Sender;

use crate::jobs::Queue;

/// The queue of deliveries: shown in health and metrics like the others.
pub const QUEUE: Queue = Queue::new("webhooks");
/// The job that delivers one endpoint's due events.
pub const JOB_KIND: &str = "webhooks.deliver";

/// Most endpoints per organization.
pub const MAX_ENDPOINTS: i64 = 16;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 256;
/// Most event types per endpoint.
pub const MAX_EVENT_TYPES: usize = 32;
/// Most deliveries in flight per endpoint.
pub const MAX_IN_FLIGHT: usize = 8;
/// How long one attempt may take, answer included.
pub const ATTEMPT_TIMEOUT_MS: i64 = 15_000;
/// Most bytes of an answer's body read (and kept as its excerpt).
pub const EXCERPT_BYTES: usize = 256;
/// A delivery still failing this long after its first attempt is `failed`.
pub const GIVE_UP_AFTER_MS: i64 = 3 * 24 * 3600 * 1000;
/// An endpoint failing continuously this long is `disabled`.
pub const DISABLE_AFTER_MS: i64 = 5 * 24 * 3600 * 1000;
/// How long the previous secret still signs after a rotation.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

/// The event types an endpoint may ask for ([`crate::events::TYPES`]).
pub use crate::events::TYPES as EVENT_TYPES;

/// The sentence of a 404 for an endpoint.
pub const NO_SUCH_ENDPOINT: &str = "There is no such webhook endpoint.";
/// The sentence of a 404 for a delivery.
pub const NO_SUCH_DELIVERY: &str = "There is no such delivery of this webhook endpoint.";

use crate::clock::rfc3339;

/// What delivery needs beyond the engine: the sealer of the secrets and
/// the HTTP client.
struct State {
    sealer: crate::sealed::Sealer,
    sender: Sender,
}

/// How often the scheduler looks for endpoints with work: the first retry
/// of a failed attempt comes about a second after it.
const SCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Registers the delivery job and its scheduler.
pub(crate) fn register(
    registry: &mut crate::jobs::JobRegistry,
    ledger: &crate::ledger::Ledger,
    sealer: &crate::sealed::Sealer,
    allow_private: bool,
) {
    fn run<'a>(
        state: &'a State,
        env: &'a crate::jobs::JobEnv,
        job: &'a crate::jobs::JobContext,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::jobs::JobFailure>> {
        Box::pin(async move {
            let endpoint = job
                .payload
                .get("endpoint")
                .and_then(serde_json::Value::as_i64)
                .ok_or(crate::jobs::JobFailure::permanent("INVALID_PAYLOAD"))?;
            run_endpoint(
                env.database(),
                env.metrics(),
                &state.sealer,
                &state.sender,
                &job.organization,
                endpoint,
                crate::clock::now_ms(),
            )
            .await?;
            Ok(())
        })
    }
    let state = State {
        sealer: sealer.clone(),
        sender: Sender::new(allow_private),
    };
    registry.kind(JOB_KIND, QUEUE, crate::jobs::with_state(state, run));
    // Run at once after each commit of the ledger (entries, invoices,
    // payments: most events), and every SCAN_EVERY for the others.
    registry.periodic_woken(
        "webhooks-scheduler",
        SCAN_EVERY,
        ledger.committer().commits(),
        |env| async move {
            match dispatch::ask_for_due(env.database(), env.metrics(), crate::clock::now_ms()).await
            {
                Ok(0) => {}
                Ok(_) => env.jobs().wake(QUEUE),
                Err(err) => tracing::warn!(error = %err, "the webhook scheduler failed; it runs again within a second"),
            }
        },
    );
}
