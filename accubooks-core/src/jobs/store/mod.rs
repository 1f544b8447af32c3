//! The `jobs` table: the outbox (recording and reading jobs) and the
//! counts here; the claims (`claim`), how holds end (`finish`) and the
//! relay to Redis's streams (`relay`) each in a file.

use std::collections::HashMap;

use sqlx::Row;

use super::{Counts, Job, JobError, JobStatus, NewJob, Queue, QueueCounts};
use crate::db::Database;
use crate::db::sql::{BeginScoped, List, in_list, in_scope, on_pool};
use crate::error::Result;
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};

mod claim;
mod finish;
mod relay;

pub(crate) use claim::{Claimed, Turns, claim_due, claim_ids, renew};
pub(crate) use finish::{Ending, finish, give_back, hand_back};
pub(crate) use relay::{relay, requeue_lost, resend_stale};

pub(crate) use crate::clock::{now_ms, rfc3339};

/// Records `job` for `organization` in the transaction `tx` (an
/// `&mut *tx`-able transaction of either backend), unless a job with its
/// unique key exists: evaluates to `Result<i64, sqlx::Error>`, the id of the
/// new job or of the existing one.
macro_rules! insert_job {
    ($tx:expr, $organization:expr, $job:expr, $now:expr) => {{
        let job: &$crate::jobs::NewJob = $job;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO jobs (organization_id, queue, kind, unique_key, payload, status, \
             attempts, run_after_ms, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6) \
             ON CONFLICT (organization_id, unique_key) DO NOTHING RETURNING id",
        )
        .bind($organization)
        .bind(job.queue.as_str())
        .bind(job.kind)
        .bind(&job.unique_key)
        .bind(job.payload.to_string())
        .bind($now)
        .fetch_optional(&mut *$tx)
        .await?;
        match inserted {
            Some(id) => Ok::<i64, sqlx::Error>(id),
            None => {
                sqlx::query_scalar(
                    "SELECT id FROM jobs WHERE organization_id = $1 AND unique_key = $2",
                )
                .bind($organization)
                .bind(&job.unique_key)
                .fetch_one(&mut *$tx)
                .await
            }
        }
    }};
}
pub(crate) use insert_job;

/// Records `jobs` (a slice of [`NewJob`](crate::jobs::NewJob)) for
/// `organization` in the transaction `tx`, a hundred rows per statement,
/// skipping those whose unique key exists: evaluates to
/// `Result<u64, sqlx::Error>`, how many were new.
macro_rules! insert_jobs {
    ($tx:expr, $organization:expr, $jobs:expr, $now:expr) => {{
        let jobs: &[$crate::jobs::NewJob] = $jobs;
        let mut inserted: Result<u64, sqlx::Error> = Ok(0);
        for chunk in jobs.chunks($crate::jobs::store::INSERT_BATCH) {
            let sql = $crate::jobs::store::insert_rows(chunk.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for job in chunk {
                query = query
                    .bind($organization)
                    .bind(job.queue.as_str())
                    .bind(job.kind)
                    .bind(&job.unique_key)
                    .bind(job.payload.to_string())
                    .bind($now);
            }
            match query.execute(&mut *$tx).await {
                Ok(done) => {
                    if let Ok(total) = inserted.as_mut() {
                        *total += done.rows_affected();
                    }
                }
                Err(err) => {
                    inserted = Err(err);
                    break;
                }
            }
        }
        inserted
    }};
}
pub(crate) use insert_jobs;

/// Jobs per statement of [`insert_jobs!`]: 600 bound values, far below
/// either backend's limit.
pub(crate) const INSERT_BATCH: usize = 100;

/// The statement that inserts `rows` jobs of six bound values each.
pub(crate) fn insert_rows(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let p = |i: usize| format!("${}", r * 6 + i);
            format!(
                "({}, {}, {}, {}, {}, 'pending', 0, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(6),
                p(6)
            )
        })
        .collect();
    format!(
        "INSERT INTO jobs (organization_id, queue, kind, unique_key, payload, status, attempts, \
         run_after_ms, created_ms, updated_ms) VALUES {} \
         ON CONFLICT (organization_id, unique_key) DO NOTHING",
        values.join(", ")
    )
}

/// Most jobs one statement of [`record`] carries (4 parameters each, far
/// below either backend's limit).
const RECORD_CHUNK: usize = 500;

/// Records `jobs` for `organization` in one transaction, as [`insert_job!`]
/// would one by one, but with one multi-row `INSERT` per [`RECORD_CHUNK`]
/// jobs (and one `SELECT` for the keys that were already used): answers
/// their ids, in order.
pub(crate) async fn record(
    db: &Database,
    organization: &OrganizationId,
    jobs: &[NewJob],
) -> Result<Vec<i64>> {
    let organization = organization.to_owned();
    let now = now_ms();
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &organization, tx => {
            let mut ids: HashMap<&str, i64> = HashMap::with_capacity(jobs.len());
            for chunk in jobs.chunks(RECORD_CHUNK) {
                // $1 the organization, $2 the time; then four per job.
                let rows = (0..chunk.len())
                    .map(|i| {
                        let n = 3 + 4 * i;
                        format!("($1, ${n}, ${}, ${}, ${}, 'pending', 0, $2, $2, $2)", n + 1, n + 2, n + 3)
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT INTO jobs (organization_id, queue, kind, unique_key, payload, status, \
                     attempts, run_after_ms, created_ms, updated_ms) VALUES {rows} \
                     ON CONFLICT (organization_id, unique_key) DO NOTHING RETURNING id, unique_key"
                );
                let mut query = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(sql)).bind(&organization).bind(now);
                for job in chunk {
                    query = query
                        .bind(job.queue.as_str())
                        .bind(job.kind)
                        .bind(&job.unique_key)
                        .bind(job.payload.to_string());
                }
                let inserted = query.fetch_all(&mut *tx).await?;
                let mut by_key: HashMap<String, i64> = inserted.into_iter().map(|(id, key)| (key, id)).collect();
                // A key used before (or twice in this call): the first job's id.
                let used: Vec<&str> = chunk
                    .iter()
                    .map(|job| job.unique_key.as_str())
                    .filter(|key| !by_key.contains_key(*key) && !ids.contains_key(*key))
                    .collect();
                if !used.is_empty() {
                    let sql = format!(
                        "SELECT id, unique_key FROM jobs WHERE organization_id = $1 AND {}",
                        in_list(&p, "unique_key", 2)
                    );
                    let query = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(sql))
                        .bind(&organization)
                        .bind(List(used));
                    by_key.extend(query.fetch_all(&mut *tx).await?.into_iter().map(|(id, key)| (key, id)));
                }
                for job in chunk {
                    let key = job.unique_key.as_str();
                    if !ids.contains_key(key) {
                        let id = by_key.get(key).copied().ok_or(sqlx::Error::RowNotFound)?;
                        ids.insert(key, id);
                    }
                }
            }
            jobs.iter().map(|job| ids[job.unique_key.as_str()]).collect::<Vec<i64>>()
        }))
    })
    .await
}

pub(super) const JOB_COLUMNS: &str =
    "id, queue, kind, status, attempts, created_ms, updated_ms, error_code, error_kind";

pub(super) fn job_from_row<R>(row: &R) -> Result<Job, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i32: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> Option<String>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let unknown = |column: &str, value: String| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("unknown value {value:?}").into(),
    };
    let queue: String = row.try_get("queue")?;
    let status: String = row.try_get("status")?;
    let attempts: i32 = row.try_get("attempts")?;
    let code: Option<String> = row.try_get("error_code")?;
    let kind: Option<String> = row.try_get("error_kind")?;
    Ok(Job {
        id: row.try_get("id")?,
        queue: Queue::parse(&queue).ok_or_else(|| unknown("queue", queue.clone()))?,
        kind: row.try_get("kind")?,
        status: JobStatus::parse(&status).ok_or_else(|| unknown("status", status.clone()))?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        created_at: rfc3339(row.try_get("created_ms")?),
        updated_at: rfc3339(row.try_get("updated_ms")?),
        error: code.map(|code| JobError {
            code,
            kind: kind.unwrap_or_else(|| "permanent".to_owned()),
        }),
    })
}

/// One job of the organization.
pub(crate) async fn get_job(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
) -> Result<Option<Job>> {
    let organization = organization.to_owned();
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &organization, tx => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE organization_id = $1 AND id = $2"
            )))
            .bind(&organization)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            row.as_ref().map(job_from_row).transpose()?
        }))
    })
    .await
}

/// A page of the organization's jobs, newest first (by id), optionally of
/// one queue and one status.
pub(crate) async fn list_jobs(
    db: &Database,
    organization: &OrganizationId,
    queue: Option<Queue>,
    status: Option<JobStatus>,
    page: &PageRequest<i64>,
) -> Result<Page<Vec<Job>>> {
    let organization = organization.to_owned();
    let (before, fetch) = (page.after.unwrap_or(i64::MAX), page.limit.fetch());
    let jobs: Vec<Job> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE organization_id = $1 \
                     AND ($2 = '' OR queue = $2) AND ($3 = '' OR status = $3) AND id < $4 \
                     ORDER BY id DESC LIMIT $5"
                )))
                .bind(&organization)
                .bind(queue.map_or("", Queue::as_str))
                .bind(status.map_or("", JobStatus::as_str))
                .bind(before)
                .bind(fetch)
                .fetch_all(&mut *tx)
                .await?;
                rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?
            }))
        })
        .await?;
    Ok(page.page(jobs, |job| job.id))
}

/// Queues a dead job again, its attempts counted afresh. `None` when the
/// organization has no such job; the job as it is when it is not dead.
pub(crate) async fn retry_job(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
) -> Result<Option<(Job, bool)>> {
    let organization = organization.to_owned();
    let now = now_ms();
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &organization, tx => {
            let changed = sqlx::query(
                "UPDATE jobs SET status = 'pending', attempts = 0, run_after_ms = $1, \
                 updated_ms = $1, error_code = NULL, error_kind = NULL \
                 WHERE organization_id = $2 AND id = $3 AND status = 'dead'",
            )
            .bind(now)
            .bind(&organization)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE organization_id = $1 AND id = $2"
            )))
            .bind(&organization)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            row.as_ref()
                .map(job_from_row)
                .transpose()?
                .map(|job| (job, changed == 1))
        }))
    })
    .await
}

/// The counts of every queue of `queues` (in their order), for health and
/// metrics.
pub(crate) async fn counts(db: &Database, queues: &[Queue]) -> Result<Counts> {
    let now = now_ms();
    db.run(|pool| async move {
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker().await?;
            let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
                "SELECT queue, status, COUNT(*), MIN(CASE WHEN run_after_ms <= $1 \
                 THEN run_after_ms END) FROM jobs \
                 WHERE status <> 'succeeded' GROUP BY queue, status",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut counts = Counts {
                queues: vec![QueueCounts::default(); queues.len()],
                outbox: 0,
            };
            for (queue, status, count, oldest) in rows {
                let Some(i) = queues.iter().position(|q| q.as_str() == queue) else {
                    continue;
                };
                let c: &mut QueueCounts = &mut counts.queues[i];
                match status.as_str() {
                    "running" => c.running += count,
                    "dead" => c.dead += count,
                    _ => {
                        c.waiting += count;
                        if status == "pending" {
                            counts.outbox += count;
                        }
                        if let Some(oldest) = oldest {
                            let waited = u64::try_from((now - oldest) / 1000).unwrap_or(0);
                            c.oldest_waiting_seconds = c.oldest_waiting_seconds.max(waited);
                        }
                    }
                }
            }
            Ok(counts)
        })
    })
    .await
}
