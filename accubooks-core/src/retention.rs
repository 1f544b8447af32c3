//! Stored answers expire (contract section 11): finished jobs, report
//! results and idempotency answers older than `RETENTION_DAYS` are purged.
//!
//! Each kind is purged by one statement of at most [`BATCH`] rows, repeated
//! until none is left, each in its own short worker transaction: a purge of
//! months of history never holds a lock for long, and an interrupted purge
//! has still deleted whole batches.
//!
//! A report job goes in two steps. After the retention its result is
//! dropped (`expired_ms` set): the report job still shows, and its result
//! answers `410 REPORT_EXPIRED`, so a client learns to ask again rather
//! than wonder whether the id was wrong. One retention later the report
//! job itself is forgotten (`404`), and then its job. A payroll run's job is
//! kept as long as the run it records.

use std::time::Duration;

use crate::db::sql::{BeginScoped, on_pool};
use crate::db::{Database, Pool};
use crate::error::Result;

/// Most rows one statement purges.
pub const BATCH: i64 = 1000;

/// The least time an idempotency key is kept, whatever `RETENTION_DAYS`
/// says: a client retrying a request the next morning must still get its
/// first answer.
pub const IDEMPOTENCY_MINIMUM: Duration = Duration::from_secs(24 * 3600);

/// The least time an event is kept, whatever `RETENTION_DAYS` says: its
/// webhooks are retried for three days, and a client polling the feed
/// after a long weekend must still find it.
pub const EVENT_MINIMUM: Duration = Duration::from_secs(7 * 24 * 3600);

const DAY_MS: i64 = 24 * 3600 * 1000;

/// How many rows one purge removed, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Report results dropped (their report jobs answer `REPORT_EXPIRED`).
    pub report_results: u64,
    /// Report jobs forgotten, one retention after their results.
    pub report_jobs: u64,
    /// Finished jobs (succeeded or dead) deleted.
    pub jobs: u64,
    /// Idempotency answers deleted.
    pub idempotency_keys: u64,
    /// Events deleted (contract §10).
    pub events: u64,
}

impl Purged {
    /// The counts with their metric labels.
    pub fn by_kind(&self) -> [(&'static str, u64); 5] {
        let [report_results, report_jobs, jobs, idempotency_keys, events] =
            crate::metrics::PURGE_KINDS;
        [
            (report_results, self.report_results),
            (report_jobs, self.report_jobs),
            (jobs, self.jobs),
            (idempotency_keys, self.idempotency_keys),
            (events, self.events),
        ]
    }

    /// Whether anything was purged.
    pub fn is_empty(&self) -> bool {
        self.by_kind().iter().all(|(_, n)| *n == 0)
    }
}

/// Drops the results of report jobs finished (succeeded or dead, by their
/// job's last update) before `cutoff_ms`.
const EXPIRE_RESULTS: &str = "UPDATE report_jobs SET result = NULL, result_bytes = 0, \
     expired_ms = $1 WHERE id IN (SELECT r.id FROM report_jobs r JOIN jobs j ON j.id = r.job_id \
     WHERE r.expired_ms IS NULL AND j.status IN ('succeeded', 'dead') AND j.updated_ms < $2 \
     LIMIT $3)";

/// Forgets report jobs whose results expired before `cutoff_ms`.
const FORGET_REPORT_JOBS: &str = "DELETE FROM report_jobs WHERE id IN (SELECT id FROM report_jobs \
     WHERE expired_ms IS NOT NULL AND expired_ms < $1 LIMIT $2)";

/// Deletes jobs finished before `cutoff_ms` that no record refers to: a
/// report job's until it is forgotten; a payroll run's never (the run is
/// part of the books, and says which job made it).
const PURGE_JOBS: &str = "DELETE FROM jobs WHERE id IN (SELECT j.id FROM jobs j \
     WHERE j.status IN ('succeeded', 'dead') AND j.updated_ms < $1 \
     AND j.queue <> 'payroll-processing' \
     AND NOT EXISTS (SELECT 1 FROM report_jobs r WHERE r.job_id = j.id) LIMIT $2)";

/// Deletes idempotency answers stored before the cutoff. The column is a
/// timestamp on PostgreSQL and RFC 3339 text (which sorts as time) on
/// SQLite; the cutoff is bound as text on both.
const PURGE_KEYS_POSTGRES: &str = "DELETE FROM idempotency_keys WHERE (organization_id, key) IN \
     (SELECT organization_id, key FROM idempotency_keys \
      WHERE created_at < CAST($1 AS TIMESTAMPTZ) LIMIT $2)";
const PURGE_KEYS_SQLITE: &str = "DELETE FROM idempotency_keys WHERE (organization_id, key) IN \
     (SELECT organization_id, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)";

/// Deletes events written before `cutoff_ms`.
const PURGE_EVENTS: &str = "DELETE FROM events WHERE (organization_id, sequence) IN \
     (SELECT organization_id, sequence FROM events WHERE created_ms < $1 LIMIT $2)";

/// Runs one batch statement (`$1`…: `binds`, then the batch size) in its
/// own worker transaction; answers how many rows it touched.
async fn batch(db: &Database, sql: &'static str, binds: &[Bind]) -> Result<u64> {
    let binds = binds.to_vec();
    db.run(|pool| async move {
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker_writing().await?;
            let mut query = sqlx::query(sql);
            for bind in binds {
                query = match bind {
                    Bind::Int(value) => query.bind(value),
                    Bind::Text(value) => query.bind(value),
                };
            }
            let done = query.bind(BATCH).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        })
    })
    .await
}

#[derive(Debug, Clone)]
enum Bind {
    Int(i64),
    Text(String),
}

/// Repeats one batch statement until it touches fewer than [`BATCH`] rows.
async fn drain(db: &Database, sql: &'static str, binds: &[Bind]) -> Result<u64> {
    let mut total = 0;
    loop {
        let done = batch(db, sql, binds).await?;
        total += done;
        if done < BATCH.unsigned_abs() {
            return Ok(total);
        }
    }
}

/// Purges what is older than `retention_days` at `now_ms` (milliseconds
/// since the Unix epoch), kind by kind.
pub async fn purge(db: &Database, retention_days: u32, now_ms: i64) -> Result<Purged> {
    let cutoff = now_ms - i64::from(retention_days.max(1)) * DAY_MS;
    let key_age = i64::from(retention_days.max(1))
        .saturating_mul(DAY_MS)
        .max(i64::try_from(IDEMPOTENCY_MINIMUM.as_millis()).unwrap_or(DAY_MS));
    let event_age = i64::from(retention_days.max(1))
        .saturating_mul(DAY_MS)
        .max(i64::try_from(EVENT_MINIMUM.as_millis()).unwrap_or(DAY_MS));
    let key_cutoff = chrono::DateTime::from_timestamp_millis(now_ms - key_age)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let keys_sql = match db.pool() {
        Pool::Postgres(_) => PURGE_KEYS_POSTGRES,
        Pool::Sqlite(_) => PURGE_KEYS_SQLITE,
    };
    // Results first: a report job's job is purged only once the report job
    // is forgotten, so the order keeps every step's foreign keys whole.
    Ok(Purged {
        report_results: drain(db, EXPIRE_RESULTS, &[Bind::Int(now_ms), Bind::Int(cutoff)]).await?,
        report_jobs: drain(db, FORGET_REPORT_JOBS, &[Bind::Int(cutoff)]).await?,
        jobs: drain(db, PURGE_JOBS, &[Bind::Int(cutoff)]).await?,
        idempotency_keys: drain(db, keys_sql, &[Bind::Text(key_cutoff)]).await?,
        events: drain(db, PURGE_EVENTS, &[Bind::Int(now_ms - event_age)]).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counts_name_every_kind() {
        let purged = Purged {
            jobs: 2,
            ..Purged::default()
        };
        assert!(!purged.is_empty());
        assert!(Purged::default().is_empty());
        let labels: Vec<_> = purged.by_kind().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            labels,
            [
                "report_results",
                "report_jobs",
                "jobs",
                "idempotency_keys",
                "events"
            ]
        );
    }
}
