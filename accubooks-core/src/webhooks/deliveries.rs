//! Delivery rows: one per (endpoint, event) the endpoint subscribes to,
//! made by fan-out, updated by each attempt, listed newest first, retried
//! by hand.

use serde::Serialize;
use sqlx::Row;

use super::{NO_SUCH_DELIVERY, NO_SUCH_ENDPOINT, endpoints::wants, rfc3339};
use crate::db::Database;
use crate::db::sql::{BeginScoped, List, in_list, in_scope, on_pool};
use crate::ledger::{LedgerError, LedgerResult};
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not yet delivered; tried again at `next_attempt_at`.
    Pending,
    /// A 2xx answered it.
    Delivered,
    /// Still failing three days after its first attempt, or its endpoint
    /// was disabled: not tried again unless retried by hand.
    Failed,
}

impl DeliveryStatus {
    fn parse(text: &str) -> Self {
        match text {
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            _ => DeliveryStatus::Pending,
        }
    }
}

/// A delivery, as `GET /api/webhook-endpoints/{id}/deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The event's id (the `webhook-id` header of every attempt).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i32,
    /// The HTTP status of the last answer, or null (no answer: refused,
    /// timed out, unreachable).
    pub last_status: Option<i32>,
    /// Why the last attempt failed, in a sentence, or null.
    pub last_error: Option<String>,
    /// At most 256 bytes of the last answer's body.
    pub response_excerpt: Option<String>,
    /// When it is tried next (RFC 3339), while pending.
    pub next_attempt_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

const DELIVERY_COLUMNS: &str = "id, event_id, event_type, status, attempts, last_status, \
     last_error, last_response, next_attempt_ms, created_ms, updated_ms";

fn delivery_of<R>(row: &R) -> Result<Delivery, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i32: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> Option<String>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> Option<i32>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let status = DeliveryStatus::parse(&row.try_get::<String, _>("status")?);
    let next: i64 = row.try_get("next_attempt_ms")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        status,
        attempts: row.try_get("attempts")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        response_excerpt: row.try_get("last_response")?,
        next_attempt_at: (status == DeliveryStatus::Pending).then(|| rfc3339(next)),
        created_at: rfc3339(row.try_get("created_ms")?),
        updated_at: rfc3339(row.try_get("updated_ms")?),
    })
}

/// A page of an endpoint's deliveries, newest first (404 for an endpoint
/// that is not the organization's).
pub async fn list_deliveries(
    db: &Database,
    organization: &OrganizationId,
    endpoint: i64,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<Delivery>>> {
    let owned = organization.to_owned();
    let (before, fetch) = (page.after.unwrap_or(i64::MAX), page.limit.fetch());
    let found = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                let exists: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM webhook_endpoints WHERE organization_id = $1 AND id = $2",
                )
                .bind(&owned)
                .bind(endpoint)
                .fetch_optional(&mut *tx)
                .await?;
                match exists {
                    None => None,
                    Some(_) => Some(
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                             WHERE endpoint_id = $1 AND organization_id = $2 AND id < $3 \
                             ORDER BY id DESC LIMIT $4"
                        )))
                        .bind(endpoint)
                        .bind(&owned)
                        .bind(before)
                        .bind(fetch)
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(delivery_of)
                        .collect::<Result<Vec<_>, _>>()?,
                    ),
                }
            }))
        })
        .await?;
    let deliveries = found.ok_or_else(|| LedgerError::NotFound(NO_SUCH_ENDPOINT.to_owned()))?;
    Ok(page.page(deliveries, |d| d.id))
}

/// Makes a delivery pending and due at `now_ms`, with three more days
/// before it is given up, and lets its endpoint be tried at once (404 for
/// another organization's or endpoint's delivery; 409 on a disabled
/// endpoint).
pub async fn retry_delivery(
    db: &Database,
    organization: &OrganizationId,
    endpoint: i64,
    delivery: i64,
    now_ms: i64,
) -> LedgerResult<Delivery> {
    let owned = organization.to_owned();
    let outcome = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_writing_for(&owned).await?;
                let status: Option<String> = sqlx::query_scalar(
                    "SELECT status FROM webhook_endpoints WHERE organization_id = $1 AND id = $2",
                )
                .bind(&owned)
                .bind(endpoint)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(status) = status else { return Ok(Err(NO_SUCH_ENDPOINT)) };
                if status == "disabled" {
                    return Ok(Err("disabled"));
                }
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE webhook_deliveries SET status = 'pending', next_attempt_ms = $1, \
                     first_attempt_ms = NULL, updated_ms = $1 \
                     WHERE organization_id = $2 AND endpoint_id = $3 AND id = $4 \
                     RETURNING {DELIVERY_COLUMNS}"
                )))
                .bind(now_ms)
                .bind(&owned)
                .bind(endpoint)
                .bind(delivery)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else { return Ok(Err(NO_SUCH_DELIVERY)) };
                let delivery = delivery_of(&row)?;
                sqlx::query(
                    "UPDATE webhook_endpoints SET retry_at_ms = $1 WHERE organization_id = $2 AND id = $3",
                )
                .bind(now_ms)
                .bind(&owned)
                .bind(endpoint)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Ok(delivery))
            })
        })
        .await?;
    match outcome {
        Ok(delivery) => Ok(delivery),
        Err("disabled") => Err(LedgerError::Conflict {
            code: "ENDPOINT_DISABLED",
            message: "The endpoint is disabled and gets no deliveries; create a new endpoint \
                      for the receiver once it answers again."
                .to_owned(),
        }),
        Err(missing) => Err(LedgerError::NotFound(missing.to_owned())),
    }
}

/// What an endpoint's pass works with: its row as the pass read it.
#[derive(Debug, Clone)]
pub(super) struct EndpointRow {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub secret_sealed: String,
    pub previous: Option<(String, i64)>,
    pub enabled: bool,
    pub failing_since_ms: Option<i64>,
    pub failures: i32,
    pub retry_at_ms: Option<i64>,
}

/// Most events one fan-out reads.
const FAN_OUT_BATCH: i64 = 500;

/// Fan-out: inserts a pending delivery (due at `now_ms`) for each event
/// after the endpoint's cursor that it subscribes to, and moves its cursor
/// past every event read, in one transaction with the endpoint's row
/// locked. Answers the endpoint as it is after it (`None`: deleted).
pub(super) async fn fan_out(
    db: &Database,
    organization: &OrganizationId,
    endpoint: i64,
    now_ms: i64,
) -> crate::Result<Option<EndpointRow>> {
    let owned = organization.to_owned();
    db.run(|pool| async move {
        let lock = match pool {
            crate::db::Pool::Postgres(_) => " FOR UPDATE",
            crate::db::Pool::Sqlite(_) => "",
        };
        on_pool!(pool, p => {
            let mut tx = p.begin_writing_for(&owned).await?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id, url, event_types, secret_sealed, previous_secret_sealed, \
                 previous_until_ms, status, failing_since_ms, failures, retry_at_ms, event_cursor \
                 FROM webhook_endpoints WHERE organization_id = $1 AND id = $2{lock}"
            )))
            .bind(&owned)
            .bind(endpoint)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let types: String = row.try_get("event_types")?;
            let previous: Option<String> = row.try_get("previous_secret_sealed")?;
            let until: Option<i64> = row.try_get("previous_until_ms")?;
            let status: String = row.try_get("status")?;
            let endpoint_row = EndpointRow {
                id: row.try_get("id")?,
                url: row.try_get("url")?,
                events: serde_json::from_str(&types).unwrap_or_default(),
                secret_sealed: row.try_get("secret_sealed")?,
                previous: previous.zip(until),
                enabled: status == "enabled",
                failing_since_ms: row.try_get("failing_since_ms")?,
                failures: row.try_get("failures")?,
                retry_at_ms: row.try_get("retry_at_ms")?,
            };
            let cursor: i64 = row.try_get("event_cursor")?;
            if !endpoint_row.enabled {
                return Ok(Some(endpoint_row));
            }
            let events: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT sequence, id, type FROM events WHERE organization_id = $1 \
                 AND sequence > $2 ORDER BY sequence LIMIT $3",
            )
            .bind(&owned)
            .bind(cursor)
            .bind(FAN_OUT_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = events.last().map(|e| e.0) else {
                return Ok(Some(endpoint_row));
            };
            // The subscribed events read, in one statement.
            let wanted: Vec<i64> = events
                .iter()
                .filter(|e| wants(&endpoint_row.events, &e.2))
                .map(|e| e.0)
                .collect();
            if !wanted.is_empty() {
                let sql = format!(
                    "INSERT INTO webhook_deliveries (organization_id, endpoint_id, event_sequence, \
                     event_id, event_type, status, attempts, next_attempt_ms, created_ms, updated_ms) \
                     SELECT organization_id, $2, sequence, id, type, 'pending', 0, $3, $3, $3 \
                     FROM events WHERE organization_id = $1 AND {} \
                     ON CONFLICT (endpoint_id, event_sequence) DO NOTHING",
                    in_list(&p, "sequence", 4)
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&owned)
                    .bind(endpoint)
                    .bind(now_ms)
                    .bind(List(wanted))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE webhook_endpoints SET event_cursor = $1 WHERE id = $2")
                .bind(last)
                .bind(endpoint)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(endpoint_row))
        })
    })
    .await
}

/// A delivery taken for an attempt, with its event's wire form.
#[derive(Debug, Clone)]
pub(super) struct Taken {
    pub id: i64,
    pub event_id: String,
    pub attempts: i32,
    pub first_attempt_ms: Option<i64>,
    pub body: String,
}

/// Takes up to `limit` due pending deliveries of an endpoint, in event
/// order; for a failing endpoint (whose own step has come), the one pending
/// delivery tried longest ago, due or not, so that one step is one attempt
/// and a delivery the receiver keeps refusing does not block the others.
/// Takes them by pushing their next attempt past the attempt's time limit (a
/// lease: another pass skips them; a process that dies mid-attempt leaves
/// them due again soon after). Answers them with their events' bodies.
pub(super) async fn take_due(
    db: &Database,
    organization: &OrganizationId,
    endpoint: i64,
    limit: usize,
    failing: bool,
    now_ms: i64,
    lease_ms: i64,
) -> crate::Result<Vec<Taken>> {
    let owned = organization.to_owned();
    let (limit, due_by, order) = if failing {
        (1, i64::MAX, "next_attempt_ms, event_sequence")
    } else {
        (i64::try_from(limit).unwrap_or(1), now_ms, "event_sequence")
    };
    db.run(|pool| async move {
        let lock = match pool {
            crate::db::Pool::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            crate::db::Pool::Sqlite(_) => "",
        };
        on_pool!(pool, p => {
            let mut tx = p.begin_writing_for(&owned).await?;
            let rows: Vec<(i64, i64, String, i32, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, event_sequence, event_id, attempts, first_attempt_ms FROM webhook_deliveries \
                 WHERE endpoint_id = $1 AND organization_id = $2 AND status = 'pending' \
                 AND next_attempt_ms <= $3 ORDER BY {order} LIMIT $4{lock}"
            )))
            .bind(endpoint)
            .bind(&owned)
            .bind(due_by)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                tx.commit().await?;
                return Ok(Vec::new());
            }
            let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let sql = format!(
                "UPDATE webhook_deliveries SET next_attempt_ms = $1 WHERE {}",
                in_list(&p, "id", 2)
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now_ms + lease_ms)
                .bind(List(ids))
                .execute(&mut *tx)
                .await?;
            let sql = format!(
                "SELECT sequence, type, created_ms, data FROM events \
                 WHERE organization_id = $1 AND {}",
                in_list(&p, "sequence", 2)
            );
            let mut found: std::collections::HashMap<i64, (String, i64, String)> =
                sqlx::query_as::<_, (i64, String, i64, String)>(sqlx::AssertSqlSafe(sql))
                    .bind(&owned)
                    .bind(List(rows.iter().map(|r| r.1).collect::<Vec<i64>>()))
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|(sequence, kind, created_ms, data)| (sequence, (kind, created_ms, data)))
                    .collect();
            let mut taken = Vec::with_capacity(rows.len());
            let mut purged = Vec::new();
            for (id, sequence, event_id, attempts, first_attempt_ms) in rows {
                // An event purged before its delivery: nothing left to send.
                let Some((kind, created_ms, data)) = found.remove(&sequence) else {
                    purged.push(id);
                    continue;
                };
                taken.push(Taken {
                    id,
                    body: crate::events::Event::stored(
                        owned.as_str(),
                        sequence,
                        event_id.clone(),
                        kind,
                        created_ms,
                        data,
                    )?
                    .to_json(),
                    event_id,
                    attempts,
                    first_attempt_ms,
                });
            }
            if !purged.is_empty() {
                let sql = format!(
                    "UPDATE webhook_deliveries SET status = 'failed', \
                     last_error = 'The event was purged before it could be delivered.', \
                     updated_ms = $1 WHERE {}",
                    in_list(&p, "id", 2)
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(now_ms)
                    .bind(List(purged))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(taken)
        })
    })
    .await
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub delivery: i64,
    pub delivered: bool,
    pub status: Option<i32>,
    pub error: Option<String>,
    pub excerpt: Option<String>,
    /// For a failure: the next attempt's time, or `None` to give up.
    pub next_attempt_ms: Option<i64>,
    /// When the delivery was first tried.
    pub first_attempt_ms: i64,
}

/// What the endpoint becomes after a batch of attempts.
#[derive(Debug, Clone)]
pub(super) struct EndpointChange {
    pub failing_since_ms: Option<i64>,
    pub failures: i32,
    pub retry_at_ms: Option<i64>,
    /// Why it is disabled now, if it is.
    pub disabled: Option<String>,
}

/// Records a batch of attempts and the endpoint's state, in one
/// transaction. A disabled endpoint's pending deliveries become `failed`.
pub(super) async fn record(
    db: &Database,
    organization: &OrganizationId,
    endpoint: i64,
    outcomes: &[Outcome],
    change: &EndpointChange,
    now_ms: i64,
) -> crate::Result<()> {
    let owned = organization.to_owned();
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &owned, tx => {
            for outcome in outcomes {
                let status = match (outcome.delivered, outcome.next_attempt_ms) {
                    (true, _) => "delivered",
                    (false, Some(_)) => "pending",
                    (false, None) => "failed",
                };
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, \
                     next_attempt_ms = $2, first_attempt_ms = $3, last_status = $4, \
                     last_error = $5, last_response = $6, updated_ms = $7 \
                     WHERE id = $8 AND organization_id = $9",
                )
                .bind(status)
                .bind(outcome.next_attempt_ms.unwrap_or(now_ms))
                .bind(outcome.first_attempt_ms)
                .bind(outcome.status)
                .bind(&outcome.error)
                .bind(&outcome.excerpt)
                .bind(now_ms)
                .bind(outcome.delivery)
                .bind(&owned)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE webhook_endpoints SET failing_since_ms = $1, failures = $2, retry_at_ms = $3, \
                 status = CASE WHEN CAST($4 AS TEXT) IS NULL THEN status ELSE 'disabled' END, \
                 disabled_reason = COALESCE(CAST($4 AS TEXT), disabled_reason) \
                 WHERE id = $5 AND organization_id = $6",
            )
            .bind(change.failing_since_ms)
            .bind(change.failures)
            .bind(change.retry_at_ms)
            .bind(&change.disabled)
            .bind(endpoint)
            .bind(&owned)
            .execute(&mut *tx)
            .await?;
            if let Some(reason) = &change.disabled {
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'failed', last_error = $1, updated_ms = $2 \
                     WHERE endpoint_id = $3 AND organization_id = $4 AND status = 'pending'",
                )
                .bind(reason)
                .bind(now_ms)
                .bind(endpoint)
                .bind(&owned)
                .execute(&mut *tx)
                .await?;
            }
        }))
    })
    .await
}
