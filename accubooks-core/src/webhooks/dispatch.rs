//! The delivery schedule: the scheduler that asks for one
//! `webhooks.deliver` job per endpoint with work, and the pass that job
//! runs.
//!
//! A pass fans the endpoint's new events out into delivery rows, then sends
//! its due deliveries in event order, at most [`MAX_IN_FLIGHT`] at once,
//! and records each outcome, until nothing is due. While an endpoint is
//! *failing* (no success since its last failed attempt) the pass tries one
//! delivery per backoff step of the endpoint (the one tried longest ago)
//! and holds the others: a dead receiver costs one attempt per step, not
//! one per event, and one event the receiver keeps refusing does not hold
//! up the rest. The clock is a
//! parameter (`now_ms`), so tests can be three or five days later at once.

use std::time::{Duration, Instant};

use rand::Rng;

use super::deliveries::{self, EndpointChange, Outcome};
use super::endpoints::secrets_of;
use super::sender::{Attempt, Sender};
use super::{
    ATTEMPT_TIMEOUT_MS, DISABLE_AFTER_MS, GIVE_UP_AFTER_MS, JOB_KIND, MAX_IN_FLIGHT, QUEUE,
};
use crate::db::Database;
use crate::db::sql::{BeginScoped, on_pool};
use crate::jobs::NewJob;
use crate::jobs::store::insert_jobs;
use crate::metrics::Metrics;
use crate::organization::OrganizationId;
use crate::sealed::Sealer;

/// The first retry's delay; it doubles per failed attempt.
const BACKOFF_FIRST_MS: i64 = 1_000;
/// The longest delay between two attempts.
const BACKOFF_MAX_MS: i64 = 3_600_000;
/// Most deliveries one step of a pass takes, sends ([`MAX_IN_FLIGHT`] at
/// a time, in event order) and records: the step's three transactions
/// (fan-out, take, record) are shared by this many deliveries, not by the
/// eight in flight (331 deliveries a second to a fast receiver with 8,
/// measured by `BENCH_ONLY=events scripts/bench`).
const TAKE_BATCH: usize = 64;
/// A delivery taken for an attempt is not taken again for this long (an
/// attempt's time limit and room to record it): if the process dies
/// mid-step, its deliveries are due again after this. Only one pass of an
/// endpoint runs at a time (its one job row), so the lease matters only
/// after a crash or a stall past the job's own lease; a step of a slow
/// receiver may outlast it, and then a stalled worker's delivery may be
/// sent twice under the same `webhook-id`, which receivers deduplicate. A
/// lease covering a whole step (3 minutes) kept a killed process's
/// deliveries back past `scripts/chaos`'s 60 s to settle.
const LEASE_MS: i64 = ATTEMPT_TIMEOUT_MS + 45_000;
/// A pass hands its worker back after about this long, so endpoints with
/// long backlogs take turns with the others; the scheduler asks again.
const PASS_BUDGET: Duration = Duration::from_secs(10);
/// Most endpoints one scheduler round asks jobs for.
const ASK_BATCH: i64 = 500;
/// Most passes (delivery jobs) one organization has open at once, across
/// every process: an organization whose receivers are all slow holds at
/// most this many of the `webhooks` queue's workers (and this many times
/// [`MAX_IN_FLIGHT`] requests), whatever its number of endpoints; its
/// endpoints take turns.
pub(super) const PASSES_PER_ORGANIZATION: i64 = 2;

/// The delay before the attempt after the `failures`-th failed one: 1 s
/// doubling up to 1 h, with jitter (a uniform draw in its upper half), so
/// many deliveries failing at once do not return at once.
pub(super) fn backoff_ms(failures: i32) -> i64 {
    let doublings = u32::try_from(failures.saturating_sub(1))
        .unwrap_or(0)
        .min(31);
    let full = BACKOFF_FIRST_MS
        .saturating_mul(1i64 << doublings)
        .min(BACKOFF_MAX_MS);
    full / 2 + rand::rng().random_range(0..=full / 2)
}

/// What passes did, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Deliveries a 2xx answered.
    pub delivered: usize,
    /// Attempts that failed and will be retried.
    pub failed_attempts: usize,
    /// Deliveries given up (`failed`).
    pub failed: usize,
    /// Endpoints disabled.
    pub disabled: usize,
}

impl std::ops::AddAssign for Pass {
    fn add_assign(&mut self, other: Pass) {
        self.delivered += other.delivered;
        self.failed_attempts += other.failed_attempts;
        self.failed += other.failed;
        self.disabled += other.disabled;
    }
}

/// One endpoint's pass at `now_ms`: fan-out, then its due deliveries, until
/// none is due, the endpoint is failing, or the pass has had its turn.
pub async fn run_endpoint(
    db: &Database,
    metrics: &Metrics,
    sealer: &Sealer,
    sender: &Sender,
    organization: &OrganizationId,
    endpoint: i64,
    now_ms: i64,
) -> crate::Result<Pass> {
    let started = Instant::now();
    let mut pass = Pass::default();
    while started.elapsed() < PASS_BUDGET {
        let Some(row) = deliveries::fan_out(db, organization, endpoint, now_ms).await? else {
            break; // deleted
        };
        if !row.enabled {
            break;
        }
        let failing = row.failing_since_ms.is_some();
        if failing && row.retry_at_ms.is_some_and(|at| at > now_ms) {
            break;
        }
        let taken = deliveries::take_due(
            db,
            organization,
            endpoint,
            TAKE_BATCH,
            failing,
            now_ms,
            LEASE_MS,
        )
        .await?;
        if taken.is_empty() {
            break;
        }
        let secrets = secrets_of(
            sealer,
            organization,
            row.id,
            &row.secret_sealed,
            row.previous.as_ref().map(|(s, until)| (s.as_str(), *until)),
            now_ms,
        );
        // The header's timestamp is the real time of the attempt, whatever
        // clock schedules it: receivers check it against theirs.
        let timestamp = chrono::Utc::now().timestamp();
        let attempts: Vec<Attempt> = match &secrets {
            Ok(secrets) => {
                use futures::StreamExt;
                // The attempts (not yet started), run MAX_IN_FLIGHT at a
                // time, their outcomes in event order.
                let sends: Vec<_> = taken
                    .iter()
                    .map(|t| sender.send(&row.url, &t.event_id, timestamp, &t.body, secrets))
                    .collect();
                futures::stream::iter(sends)
                    .buffered(MAX_IN_FLIGHT)
                    .collect::<Vec<Attempt>>()
                    .await
            }
            Err(_) => taken
                .iter()
                .map(|_| Attempt {
                    delivered: false,
                    status: None,
                    error: Some(
                        "Not sent: the endpoint's signing secret no longer opens \
                         (SESSION_SECRET changed?); rotate its secret."
                            .to_owned(),
                    ),
                    excerpt: None,
                })
                .collect(),
        };
        let mut outcomes = Vec::with_capacity(taken.len());
        let mut batch = Pass::default();
        for (t, attempt) in taken.iter().zip(attempts) {
            let first = t.first_attempt_ms.unwrap_or(now_ms);
            let next = if attempt.delivered {
                batch.delivered += 1;
                None
            } else if now_ms - first >= GIVE_UP_AFTER_MS {
                batch.failed += 1;
                None
            } else {
                batch.failed_attempts += 1;
                Some(now_ms + backoff_ms(t.attempts + 1))
            };
            if !attempt.delivered {
                tracing::info!(
                    endpoint,
                    delivery = t.id,
                    status = attempt.status,
                    error = attempt.error.as_deref().unwrap_or(""),
                    given_up = next.is_none(),
                    "a webhook delivery attempt failed"
                );
            }
            outcomes.push(Outcome {
                delivery: t.id,
                delivered: attempt.delivered,
                status: attempt.status.map(i32::from),
                error: attempt.error,
                excerpt: attempt.excerpt,
                next_attempt_ms: next,
                first_attempt_ms: first,
            });
        }
        let change = if batch.delivered > 0 {
            EndpointChange {
                failing_since_ms: None,
                failures: 0,
                retry_at_ms: None,
                disabled: None,
            }
        } else {
            let since = row.failing_since_ms.unwrap_or(now_ms);
            let failures = row.failures.saturating_add(1);
            let disabled = (now_ms - since >= DISABLE_AFTER_MS).then(|| {
                format!(
                    "Every delivery failed for {} days (since {}); the endpoint was disabled. \
                     Fix the receiver, then create a new endpoint.",
                    DISABLE_AFTER_MS / 86_400_000,
                    super::rfc3339(since)
                )
            });
            EndpointChange {
                failing_since_ms: Some(since),
                failures,
                retry_at_ms: Some(now_ms + backoff_ms(failures)),
                disabled,
            }
        };
        deliveries::record(db, organization, endpoint, &outcomes, &change, now_ms).await?;
        metrics.count_webhook_deliveries(batch.delivered, batch.failed_attempts, batch.failed);
        pass += batch;
        if change.disabled.is_some() {
            tracing::warn!(
                endpoint,
                "a webhook endpoint failed for 5 days and was disabled"
            );
            pass.disabled += 1;
            break;
        }
        if change.failing_since_ms.is_some() {
            break;
        }
    }
    Ok(pass)
}

/// The endpoints with work at `now`: enabled, not waiting out a failing
/// step, with events after their cursor or a due delivery (any pending one
/// when failing: its step has come). `$1` is now.
const WITH_WORK: &str = "e.status = 'enabled' \
     AND (e.failing_since_ms IS NULL OR e.retry_at_ms IS NULL OR e.retry_at_ms <= $1) \
     AND (EXISTS (SELECT 1 FROM events v WHERE v.organization_id = e.organization_id \
                  AND v.sequence > e.event_cursor) \
          OR EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id \
                  AND d.status = 'pending' \
                  AND (d.next_attempt_ms <= $1 OR e.failing_since_ms IS NOT NULL)))";

/// The unique key of an endpoint's job. Each endpoint has one job row,
/// asked for again once it has ended (as `POST /api/jobs/{id}/retry` does
/// for a dead one): a busy endpoint asks every second, and a row per
/// round would grow the jobs table by 86,400 rows a day per endpoint.
fn job_key(endpoint: i64) -> String {
    format!("webhooks:{endpoint}")
}

/// Asks for one delivery job per endpoint with work whose job is not open,
/// across organizations, and sets the age of the oldest undelivered
/// delivery. Answers the jobs asked for.
pub(crate) async fn ask_for_due(
    db: &Database,
    metrics: &Metrics,
    now_ms: i64,
) -> crate::Result<usize> {
    let (asked, oldest) = ask(db, None, now_ms).await?;
    metrics.set_webhook_oldest_undelivered(
        oldest.map_or(0, |created| (now_ms - created).max(0) / 1000),
    );
    Ok(asked)
}

/// Asks for a delivery job for one endpoint if it has work and no job open
/// (after a retry by hand). Answers whether one was asked for.
pub async fn ask_for_endpoint(
    db: &Database,
    organization: &OrganizationId,
    endpoint: i64,
    now_ms: i64,
) -> crate::Result<bool> {
    Ok(ask(db, Some((organization, endpoint)), now_ms).await?.0 > 0)
}

async fn ask(
    db: &Database,
    one: Option<(&OrganizationId, i64)>,
    now_ms: i64,
) -> crate::Result<(usize, Option<i64>)> {
    let one = one.map(|(o, e)| (o.to_owned(), e));
    db.run(|pool| async move {
        let open = "status IN ('pending', 'queued', 'running', 'failed')";
        let (filter, limit) = match &one {
            Some(_) => ("AND e.organization_id = $2 AND e.id = $3", 1),
            None => ("AND $2 = $2 AND $3 = $3", ASK_BATCH),
        };
        // Each organization's endpoints take turns (the one whose pass
        // ended longest ago first), and no organization has more than
        // PASSES_PER_ORGANIZATION passes open, its running ones included.
        let queue = QUEUE.as_str();
        let select = format!(
            "SELECT id, organization_id FROM ( \
               SELECT e.id, e.organization_id, \
                 ROW_NUMBER() OVER (PARTITION BY e.organization_id \
                   ORDER BY COALESCE(j.updated_ms, 0), e.id) AS turn, \
                 (SELECT COUNT(*) FROM jobs o WHERE o.queue = '{queue}' \
                   AND o.organization_id = e.organization_id AND o.{open}) AS open_passes \
               FROM webhook_endpoints e \
               LEFT JOIN jobs j ON j.organization_id = e.organization_id \
                 AND j.unique_key = 'webhooks:' || e.id \
               WHERE {WITH_WORK} {filter} AND (j.id IS NULL OR NOT (j.{open})) \
             ) t WHERE turn + open_passes <= {PASSES_PER_ORGANIZATION} \
             ORDER BY turn, id LIMIT {limit}"
        );
        on_pool!(pool, p => {
            let (organization, endpoint) = match &one {
                Some((organization, endpoint)) => (organization.as_str().to_owned(), *endpoint),
                None => (String::new(), 0),
            };
            // Most rounds find nothing to ask for: they only read, and
            // take no write lock (SQLite has one writer; the postings are
            // its other users).
            let mut read = match &one {
                Some((organization, _)) => p.begin_for(organization).await?,
                None => p.begin_for_worker().await?,
            };
            let any: Option<(i64, OrganizationId)> = sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                .bind(now_ms)
                .bind(&organization)
                .bind(endpoint)
                .fetch_optional(&mut *read)
                .await?;
            if any.is_none() {
                let oldest: Option<i64> = match one {
                    Some(_) => None,
                    None => sqlx::query_scalar(
                        "SELECT MIN(created_ms) FROM webhook_deliveries WHERE status = 'pending'",
                    )
                    .fetch_one(&mut *read)
                    .await?,
                };
                read.commit().await?;
                return Ok((0, oldest));
            }
            read.commit().await?;
            let mut tx = match &one {
                Some((organization, _)) => p.begin_writing_for(organization).await?,
                None => p.begin_for_worker_writing().await?,
            };
            let due: Vec<(i64, OrganizationId)> = sqlx::query_as(sqlx::AssertSqlSafe(select))
                .bind(now_ms)
                .bind(&organization)
                .bind(endpoint)
                .fetch_all(&mut *tx)
                .await?;
            let real_now = crate::clock::now_ms();
            for (id, organization) in &due {
                let again = sqlx::query(
                    "UPDATE jobs SET status = 'pending', attempts = 0, run_after_ms = $1, \
                     updated_ms = $1, error_code = NULL, error_kind = NULL, lease_owner = NULL, \
                     lease_until_ms = NULL \
                     WHERE organization_id = $2 AND unique_key = $3 AND status IN ('succeeded', 'dead')",
                )
                .bind(real_now)
                .bind(organization)
                .bind(job_key(*id))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if again == 0 {
                    let job = NewJob {
                        queue: QUEUE,
                        kind: JOB_KIND,
                        unique_key: job_key(*id),
                        payload: serde_json::json!({ "endpoint": id }),
                    };
                    insert_jobs!(tx, organization, std::slice::from_ref(&job), real_now)?;
                }
            }
            let oldest: Option<i64> = match one {
                Some(_) => None,
                None => sqlx::query_scalar(
                    "SELECT MIN(created_ms) FROM webhook_deliveries WHERE status = 'pending'",
                )
                .fetch_one(&mut *tx)
                .await?,
            };
            tx.commit().await?;
            Ok((due.len(), oldest))
        })
    })
    .await
}

/// Runs the pass of every endpoint with work at `now_ms`, one after the
/// other, without the queue: what the scheduler's jobs do, for tests (with
/// a clock days ahead) and benchmarks.
pub async fn deliver_due(
    db: &Database,
    metrics: &Metrics,
    sealer: &Sealer,
    sender: &Sender,
    now_ms: i64,
) -> crate::Result<Pass> {
    let endpoints: Vec<(i64, OrganizationId)> = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for_worker().await?;
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT e.id, e.organization_id FROM webhook_endpoints e WHERE {WITH_WORK} ORDER BY e.id"
                )))
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(rows)
            })
        })
        .await?;
    let mut pass = Pass::default();
    for (endpoint, organization) in endpoints {
        pass += run_endpoint(db, metrics, sealer, sender, &organization, endpoint, now_ms).await?;
    }
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_to_an_hour_with_jitter() {
        for (failures, full) in [
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (11, 1_024_000),
            (13, 3_600_000),
            (400, 3_600_000),
        ] {
            for _ in 0..50 {
                let delay = backoff_ms(failures);
                assert!((full / 2..=full).contains(&delay), "{failures}: {delay}");
            }
        }
    }
}
