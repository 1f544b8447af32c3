//! Events (contract §10): what happened in an organization's books, for the
//! products built on them, one row per change.
//!
//! An event is written in the transaction of the change that makes it
//! ([`write`]), so it exists if and only if its change committed. Each
//! organization numbers its events 1, 2, 3… in commit order: a writer takes
//! the next numbers from its organization's counter row, whose row lock it
//! holds until it commits, so a reader that keeps the last number it has
//! seen ([`Event::cursor`]) never misses an event committed later, and
//! never sees one twice (migration 0023). The committer takes the counter
//! after the account locks it holds anyway; other writers (a lock date, a
//! bank import, a dead job) take it last.
//!
//! Webhooks deliver the same events ([`Event`] is their body).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::Row;

use crate::clock::rfc3339;
use crate::db::Database;
use crate::db::sql::{Connection, List, in_list, in_scope, on_pool, value_rows};
use crate::error::Result;
use crate::organization::OrganizationId;
use crate::paging::{Cursor, Page, PageRequest};

/// A journal entry was posted (every entry, whatever posted it).
pub const ENTRY_POSTED: &str = "entry.posted";
/// A journal entry was reversed: the entry, now with `reversed_by`.
pub const ENTRY_REVERSED: &str = "entry.reversed";
/// An invoice was issued.
pub const INVOICE_ISSUED: &str = "invoice.issued";
/// An invoice was paid in full.
pub const INVOICE_PAID: &str = "invoice.paid";
/// An invoice was voided.
pub const INVOICE_VOIDED: &str = "invoice.voided";
/// A credit note was issued against an invoice.
pub const CREDIT_NOTE_ISSUED: &str = "credit_note.issued";
/// A card payment succeeded and was posted.
pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";
/// A card payment was refunded (in part or in full).
pub const PAYMENT_REFUNDED: &str = "payment.refunded";
/// A pay run was posted.
pub const PAYROLL_RUN_POSTED: &str = "payroll_run.posted";
/// A bank feed brought a new line.
pub const BANK_TRANSACTION_IMPORTED: &str = "bank_transaction.imported";
/// A bank line was matched to the books.
pub const BANK_TRANSACTION_MATCHED: &str = "bank_transaction.matched";
/// A report job's result is ready.
pub const REPORT_READY: &str = "report.ready";
/// A job used up its attempts and is dead.
pub const JOB_DEAD: &str = "job.dead";
/// The lock date changed (`data.lock_date` null: unlocked).
pub const PERIOD_LOCKED: &str = "period.locked";

/// Every event type, as contract §10 lists them.
pub const TYPES: &[&str] = &[
    ENTRY_POSTED,
    ENTRY_REVERSED,
    INVOICE_ISSUED,
    INVOICE_PAID,
    INVOICE_VOIDED,
    CREDIT_NOTE_ISSUED,
    PAYMENT_SUCCEEDED,
    PAYMENT_REFUNDED,
    PAYROLL_RUN_POSTED,
    BANK_TRANSACTION_IMPORTED,
    BANK_TRANSACTION_MATCHED,
    REPORT_READY,
    JOB_DEAD,
    PERIOD_LOCKED,
];

/// The known type called `name`.
pub fn parse_type(name: &str) -> Option<&'static str> {
    TYPES.iter().copied().find(|t| *t == name)
}

/// An event to write with the change that makes it: its type and the
/// object after the change, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    kind: &'static str,
    data: String,
}

impl NewEvent {
    /// An event of type `kind` (one of [`TYPES`]) about `data`.
    pub fn new(kind: &'static str, data: &impl Serialize) -> Self {
        debug_assert!(TYPES.contains(&kind), "unknown event type {kind}");
        NewEvent {
            kind,
            data: serde_json::to_string(data).expect("API answers serialize"),
        }
    }

    /// Its type.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

/// An event as `GET /api/events` lists it and a webhook delivers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    /// `evt_` and 32 hex digits; a webhook's `webhook-id`.
    pub id: String,
    /// One of the types of contract §10.
    #[serde(rename = "type")]
    pub kind: String,
    /// When its change committed (RFC 3339, UTC, milliseconds).
    pub timestamp: String,
    /// The organization.
    pub organization: String,
    /// Its number among the organization's events: 1, 2, 3… in commit order.
    pub sequence: i64,
    /// Give it as `after` to list the events that follow this one.
    pub cursor: String,
    /// The object after the change, as the API answers it.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

impl Event {
    /// The event as stored: its organization, number, id, type, time
    /// (ms since the epoch) and data (JSON text, kept verbatim).
    pub(crate) fn stored(
        organization: &str,
        sequence: i64,
        id: String,
        kind: String,
        created_ms: i64,
        data: String,
    ) -> std::result::Result<Event, sqlx::Error> {
        Ok(Event {
            id,
            kind,
            timestamp: rfc3339(created_ms),
            organization: organization.to_owned(),
            sequence,
            cursor: Cursor::after(&sequence).as_str().to_owned(),
            data: RawValue::from_string(data).map_err(|err| sqlx::Error::Decode(Box::new(err)))?,
        })
    }

    /// Its JSON: the body a webhook delivers, the item the feed lists.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialize")
    }
}

/// Filters of the event list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events of these types (all when empty).
    pub types: Vec<&'static str>,
}

/// Writes `events` (each with its organization) in the open transaction
/// `conn`, numbered after the last of their organizations', in order.
pub(crate) async fn write(
    mut conn: Connection<'_>,
    events: &[(&str, &NewEvent)],
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    // Counters in organization order, so two writers of the same
    // organizations take them in the same order.
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for (organization, _) in events {
        *counts.entry(organization).or_default() += 1;
    }
    let organizations: Vec<&str> = counts.keys().copied().collect();
    let added: Vec<i64> = counts.values().copied().collect();
    let last: Vec<(String, i64)> = match &mut conn {
        Connection::Postgres(conn) => {
            sqlx::query_as(
                "INSERT INTO event_counters (organization_id, last_sequence) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
                 ON CONFLICT (organization_id) DO UPDATE \
                 SET last_sequence = event_counters.last_sequence + EXCLUDED.last_sequence \
                 RETURNING organization_id, last_sequence",
            )
            .bind(&organizations)
            .bind(&added)
            .fetch_all(&mut **conn)
            .await?
        }
        Connection::Sqlite(conn) => {
            let mut last = Vec::with_capacity(organizations.len());
            for (organization, count) in organizations.iter().zip(&added) {
                let sequence: i64 = sqlx::query_scalar(
                    "INSERT INTO event_counters (organization_id, last_sequence) VALUES ($1, $2) \
                     ON CONFLICT (organization_id) DO UPDATE \
                     SET last_sequence = last_sequence + excluded.last_sequence \
                     RETURNING last_sequence",
                )
                .bind(organization)
                .bind(count)
                .fetch_one(&mut **conn)
                .await?;
                last.push(((*organization).to_owned(), sequence));
            }
            last
        }
    };
    // The first new number of each organization.
    let mut next = counts.clone();
    for (organization, last) in &last {
        if let Some(count) = next.get_mut(organization.as_str()) {
            *count = last - *count + 1;
        }
    }
    let mut rows = Vec::with_capacity(events.len());
    for (organization, event) in events {
        let sequence = next.get_mut(organization).ok_or(sqlx::Error::RowNotFound)?;
        rows.push(Written {
            organization,
            sequence: *sequence,
            id: format!("evt_{}", uuid::Uuid::new_v4().simple()),
            event,
        });
        *sequence += 1;
    }
    match conn {
        Connection::Postgres(conn) => {
            sqlx::query(
                "INSERT INTO events (organization_id, sequence, id, type, created_ms, data) \
                 SELECT o, s, i, t, $5, d FROM UNNEST($1::text[], $2::bigint[], $3::text[], \
                 $4::text[], $6::text[]) AS u(o, s, i, t, d)",
            )
            .bind(rows.iter().map(|r| r.organization).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.sequence).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.event.kind).collect::<Vec<_>>())
            .bind(now_ms)
            .bind(
                rows.iter()
                    .map(|r| r.event.data.as_str())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *conn)
            .await?;
        }
        Connection::Sqlite(conn) => {
            for chunk in rows.chunks(SQLITE_ROWS) {
                let sql = format!(
                    "INSERT INTO events (organization_id, sequence, id, type, created_ms, data) VALUES {}",
                    value_rows(1, chunk.len(), 6)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for row in chunk {
                    query = query
                        .bind(row.organization)
                        .bind(row.sequence)
                        .bind(row.id.as_str())
                        .bind(row.event.kind)
                        .bind(now_ms)
                        .bind(row.event.data.as_str());
                }
                query.execute(&mut *conn).await?;
            }
        }
    }
    Ok(())
}

/// Rows per multi-row INSERT on SQLite, below its limit of 32,766 bound values.
const SQLITE_ROWS: usize = 2000;

/// One event as [`write`] inserts it.
struct Written<'a> {
    organization: &'a str,
    sequence: i64,
    id: String,
    event: &'a NewEvent,
}

/// A page of the organization's events in commit order (by sequence),
/// after `page.after` (a sequence), of the types `filter` names.
pub async fn list(
    db: &Database,
    organization: &OrganizationId,
    filter: &EventFilter,
    page: &PageRequest<i64>,
) -> Result<Page<Vec<Event>>> {
    let organization = organization.to_owned();
    let after = page.after.unwrap_or(0);
    let fetch = page.limit.fetch();
    let types: Vec<String> = filter.types.iter().map(|t| (*t).to_owned()).collect();
    let rows = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                let sql = format!(
                    "SELECT sequence, id, type, created_ms, data FROM events \
                     WHERE organization_id = $1 AND sequence > $2 AND ($3 OR {}) \
                     ORDER BY sequence LIMIT $4",
                    in_list(&p, "type", 5)
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&organization)
                    .bind(after)
                    .bind(types.is_empty())
                    .bind(fetch)
                    .bind(List(types))
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|row| {
                        Event::stored(
                            organization.as_str(),
                            row.try_get("sequence")?,
                            row.try_get("id")?,
                            row.try_get("type")?,
                            row.try_get("created_ms")?,
                            row.try_get("data")?,
                        )
                    })
                    .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?
            }))
        })
        .await?;
    Ok(page.page(rows, |event| event.sequence))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_carries_the_data_verbatim() {
        let event = Event::stored(
            "org",
            7,
            "evt_1".to_owned(),
            ENTRY_POSTED.to_owned(),
            1_796_673_600_123,
            r#"{"id":7, "memo":"x"}"#.to_owned(),
        )
        .unwrap();
        let cursor = Cursor::after(&7_i64);
        assert_eq!(
            event.to_json(),
            format!(
                r#"{{"id":"evt_1","type":"entry.posted","timestamp":"2026-12-07T20:00:00.123Z","organization":"org","sequence":7,"cursor":"{cursor}","data":{{"id":7, "memo":"x"}}}}"#
            )
        );
        assert_eq!(Cursor::key::<i64>(&event.cursor).unwrap(), 7);
        assert!(Event::stored("org", 1, "e".into(), "t".into(), 0, "{".into()).is_err());
    }
}
