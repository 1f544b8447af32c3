//! The `jobs` table: the outbox, the claims and the counts.

use std::collections::HashMap;

use sqlx::Row;

use super::{Counts, Job, JobError, JobFailure, JobStatus, NewJob, Queue, QueueCounts};
use crate::db::sql::{BeginScoped, Connection, List, in_list, in_scope, on_pool};
use crate::db::{Database, Pool};
use crate::error::{Result, Transience};
use crate::events::{self, NewEvent};
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};

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

const JOB_COLUMNS: &str =
    "id, queue, kind, status, attempts, created_ms, updated_ms, error_code, error_kind";

fn job_from_row<R>(row: &R) -> Result<Job, sqlx::Error>
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

/// A job a worker has claimed.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub id: i64,
    pub organization: OrganizationId,
    pub queue: Queue,
    pub kind: String,
    pub payload: String,
    pub attempts: u32,
}

/// The jobs that may still run, word for word the predicate of the partial
/// indexes `jobs_claim` and `jobs_claim_by_organization` (migration 0011),
/// so that both PostgreSQL and SQLite read only those: succeeded and dead
/// jobs, however many the table keeps, cost a claim nothing.
macro_rules! open {
    () => {
        "status IN ('pending', 'queued', 'running', 'failed')"
    };
}
const OPEN: &str = open!();

/// What a claim may take: a job not yet taken whose time has come, or one
/// whose holder's lease has passed; of the rows named `$t` (`""` or `"j."`).
macro_rules! claimable {
    ($t:literal) => {
        concat!(
            $t,
            "status IN ('pending', 'queued', 'running', 'failed')",
            " AND (",
            $t,
            "status IN ('pending', 'queued') \
             OR (",
            $t,
            "status = 'failed' AND ",
            $t,
            "run_after_ms <= $3) \
             OR (",
            $t,
            "status = 'running' AND ",
            $t,
            "lease_until_ms < $3))"
        )
    };
}
const CLAIMABLE: &str = claimable!("");
const CLAIMABLE_J: &str = claimable!("j.");

/// Whether the open jobs of the queue `q.name` belong to more than one
/// organization: whether one is of an organization below the greatest, two
/// descents of the index `jobs_claim_by_organization` (one sub-select each,
/// as SQLite answers a lone `max` from an index). Not `min <> max`: the
/// least entries of an organization are its oldest jobs, which on
/// PostgreSQL are the claimed and finished ones whose dead index entries
/// wait for a vacuum, and a `min` walked through all of them at every
/// claim (18 ms a claim, most of the claim's time, in a drain of 50,000).
const SEVERAL_ORGANIZATIONS: &str = concat!(
    "EXISTS (SELECT 1 FROM jobs WHERE queue = q.name AND ",
    open!(),
    " AND organization_id < (SELECT max(organization_id) FROM jobs WHERE queue = q.name AND ",
    open!(),
    "))"
);

const CLAIMED_COLUMNS: &str = "id, organization_id, queue, kind, payload, attempts";

fn claimed_from_row<R>(row: &R) -> Result<Claimed, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i32: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let queue: String = row.try_get("queue")?;
    let attempts: i32 = row.try_get("attempts")?;
    Ok(Claimed {
        id: row.try_get("id")?,
        organization: row.try_get("organization_id")?,
        queue: Queue::parse(&queue).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "queue".to_owned(),
            source: format!("unknown queue {queue:?}").into(),
        })?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        attempts: u32::try_from(attempts).unwrap_or(0),
    })
}

/// Claims those of `ids` that may be taken (the jobs of stream messages):
/// each becomes `running`, held by `owner` until `now + lease_ms`.
pub(crate) async fn claim_ids(
    db: &Database,
    ids: &[i64],
    owner: &str,
    lease_ms: i64,
) -> Result<Vec<Claimed>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    db.run(|pool| async move {
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $1, \
             lease_until_ms = $2, updated_ms = $3 \
             WHERE {} AND {CLAIMABLE} RETURNING {CLAIMED_COLUMNS}",
            in_list(&pool, "id", 4)
        );
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker().await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(owner)
                .bind(now + lease_ms)
                .bind(now)
                .bind(List(ids.to_vec()))
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows.iter().map(claimed_from_row).collect::<Result<Vec<_>, _>>()
        })
    })
    .await
}

/// Claims up to `limit` due jobs of `queue` straight from the table (the
/// database transport), in the order they fell due, taking turns between
/// organizations: the oldest due job of each organization first, then the
/// second of each, and so on, so
/// one organization's backlog of thousands delays another's due job by one
/// claim, not by the whole backlog.
pub(crate) async fn claim_due(
    db: &Database,
    queue: Queue,
    owner: &str,
    lease_ms: i64,
    limit: usize,
    turns: &mut Turns,
) -> Result<Vec<Claimed>> {
    let now = now_ms();
    let after = turns.after.clone();
    let claimed = db.run(|pool| async move {
        let rotating = matches!(pool, Pool::Postgres(_));
        // PostgreSQL: several processes may claim at once; each skips the
        // rows another is claiming. SQLite has one writer at a time.
        let lock = match pool {
            Pool::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Pool::Sqlite(_) => "",
        };
        // PostgreSQL: the chosen ids are gathered into an array first (an
        // init plan), then updated through the primary key, so the update
        // is never planned as a join of the whole table against them (a
        // semi-join over every row, 52 ms a claim at 1,000 rows).
        let (ids_in, ids_end) = match pool {
            Pool::Postgres(_) => ("id = ANY(ARRAY(", "))"),
            Pool::Sqlite(_) => ("id IN (", ")"),
        };
        let oldest_first = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $1, \
             lease_until_ms = $2, updated_ms = $3 \
             WHERE {ids_in}SELECT id FROM jobs WHERE queue = $4 AND {CLAIMABLE} \
             ORDER BY run_after_ms, id LIMIT $5{lock}{ids_end} RETURNING {CLAIMED_COLUMNS}"
        );
        // Window functions cannot be locked, so the turns are chosen first
        // and locked (skipping those another claim holds) one by one by id
        // (a lateral look-up through the primary key, never a join of the
        // table against them).
        let in_turns = match pool {
            // The organizations with open jobs are found by skipping
            // through the index (one probe each), starting after the last
            // organization the previous claim served and wrapping around,
            // until `limit` of them have a job to take. A claim reads
            // `limit + k` rows at most, however long the backlog, and every organization
            // gets its turn however many have open jobs. Each of the `k`
            // organizations served gives its `limit / k` (rounded up)
            // oldest due jobs, so a claim of a few hundred reads about as
            // many rows, not `limit × limit`.
            Pool::Postgres(_) => format!(
                "WITH RECURSIVE later(organization_id) AS ( \
                     (SELECT organization_id FROM jobs WHERE queue = $4 AND {OPEN} \
                      AND organization_id > $6 ORDER BY organization_id LIMIT 1) \
                     UNION ALL \
                     SELECT (SELECT organization_id FROM jobs WHERE queue = $4 AND {OPEN} \
                             AND organization_id > l.organization_id \
                             ORDER BY organization_id LIMIT 1) \
                     FROM later l WHERE l.organization_id IS NOT NULL), \
                 earlier(organization_id) AS ( \
                     (SELECT organization_id FROM jobs WHERE queue = $4 AND {OPEN} \
                      AND organization_id <= $6 ORDER BY organization_id LIMIT 1) \
                     UNION ALL \
                     SELECT (SELECT organization_id FROM jobs WHERE queue = $4 AND {OPEN} \
                             AND organization_id > e.organization_id AND organization_id <= $6 \
                             ORDER BY organization_id LIMIT 1) \
                     FROM earlier e WHERE e.organization_id IS NOT NULL), \
                 walk(organization_id) AS ( \
                     SELECT organization_id FROM later WHERE organization_id IS NOT NULL \
                     UNION ALL \
                     SELECT organization_id FROM earlier WHERE organization_id IS NOT NULL), \
                 served AS (SELECT w.organization_id FROM walk w CROSS JOIN LATERAL \
                     (SELECT id FROM jobs WHERE queue = $4 \
                      AND organization_id = w.organization_id AND {CLAIMABLE} \
                      ORDER BY run_after_ms, id LIMIT 1) due LIMIT $5), \
                 turns AS (SELECT due.id, due.run_after_ms, due.turn \
                     FROM served o \
                     CROSS JOIN LATERAL (SELECT id, run_after_ms, \
                             row_number() OVER (ORDER BY run_after_ms, id) AS turn \
                         FROM (SELECT id, run_after_ms FROM jobs WHERE queue = $4 \
                               AND organization_id = o.organization_id AND {CLAIMABLE} \
                               ORDER BY run_after_ms, id \
                               LIMIT (SELECT ($5 + count(*) - 1) / count(*) FROM served)) \
                         oldest) due) \
                 UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $1, \
                 lease_until_ms = $2, updated_ms = $3 \
                 WHERE id = ANY(ARRAY(SELECT l.id FROM \
                     (SELECT id FROM turns ORDER BY turn, run_after_ms, id LIMIT $5) t \
                     CROSS JOIN LATERAL (SELECT j.id FROM jobs j WHERE j.id = t.id \
                         AND j.queue = $4 AND {CLAIMABLE_J} FOR UPDATE SKIP LOCKED) l)) \
                 RETURNING {CLAIMED_COLUMNS}"
            ),
            // One process writes at a time; the window reads the queue's
            // open jobs from the partial index, in organization and id order.
            Pool::Sqlite(_) => format!(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $1, \
                 lease_until_ms = $2, updated_ms = $3 \
                 WHERE id IN (SELECT id FROM jobs WHERE queue = $4 AND {CLAIMABLE} AND id IN \
                     (SELECT id FROM (SELECT id, run_after_ms, row_number() OVER \
                         (PARTITION BY organization_id ORDER BY run_after_ms, id) AS turn \
                         FROM jobs WHERE queue = $4 AND {CLAIMABLE}) due \
                      ORDER BY turn, run_after_ms, id LIMIT $5){lock}) \
                 RETURNING {CLAIMED_COLUMNS}"
            ),
        };
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker_writing().await?;
            // Turns cost a sort of the queue's open jobs. With one
            // organization (the embedded default, a bulk import) there is
            // no one to take turns with, and the claim is oldest first.
            //
            // On PostgreSQL the same round trip pins the claim's plans to
            // the partial indexes, whatever the statistics say: a plan made
            // while the table was nearly empty (a sequential scan and a
            // sort, the cheapest at 1,000 rows) must not be reused once it
            // holds 500,000 (so no cached generic plan either), and each
            // organization's few oldest jobs are a short walk down
            // `jobs_claim_by_organization`, where the planner would rather
            // gather all of its open rows in a bitmap and sort (50 ms
            // instead of 2 ms a claim at 500,000 rows, 50 organizations).
            //
            // The claim's commit does not wait for its disk flush
            // (`synchronous_commit = off`): a claim lost in a crash leaves
            // its jobs to run again, and whatever a job's handler commits
            // (synchronously) flushes the claim's earlier commit with it,
            // so no effect can outlive its claim.
            let pin = if rotating {
                "set_config('synchronous_commit', 'off', true) IS NOT NULL \
                 AND set_config('enable_seqscan', 'off', true) IS NOT NULL \
                 AND set_config('enable_bitmapscan', 'off', true) IS NOT NULL \
                 AND set_config('plan_cache_mode', 'force_custom_plan', true) IS NOT NULL AND "
            } else {
                ""
            };
            let many: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {pin}{SEVERAL_ORGANIZATIONS} FROM (SELECT $1 AS name) q"
            )))
            .bind(queue.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let sql = if many { &in_turns } else { &oldest_first };
            let mut claim = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(owner)
                .bind(now + lease_ms)
                .bind(now)
                .bind(queue.as_str())
                .bind(i64::try_from(limit).unwrap_or(i64::MAX));
            if many && rotating {
                claim = claim.bind(after.clone());
            }
            let rows = claim.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            rows.iter().map(claimed_from_row).collect::<Result<Vec<_>, _>>()
        })
    })
    .await?;
    turns.advance(&claimed);
    Ok(claimed)
}

/// Where the next claim of a queue starts its turns across organizations
/// (PostgreSQL): after the last organization the previous claim served, so
/// that with more organizations holding open jobs than one claim takes,
/// each comes round in turn rather than those of the lowest ids only.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    after: String,
}

impl Turns {
    /// Moves past the organizations `claimed` served: the walk went upwards
    /// from `after` and then, wrapping round, from the lowest id; the last
    /// organization served is the highest of the wrapped part if there is
    /// one, the highest of all otherwise.
    fn advance(&mut self, claimed: &[Claimed]) {
        let served = |wrapped: bool| {
            claimed
                .iter()
                .map(|job| job.organization.as_str())
                .filter(|organization| (*organization <= self.after.as_str()) == wrapped)
                .max()
        };
        if let Some(last) = served(true).or_else(|| served(false)) {
            self.after = last.to_owned();
        }
    }
}

/// Extends the leases `owner` holds on `ids`.
pub(crate) async fn renew(db: &Database, ids: &[i64], owner: &str, lease_ms: i64) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    db.run(|pool| async move {
        let sql = format!(
            "UPDATE jobs SET lease_until_ms = $1 WHERE lease_owner = $2 AND status = 'running' \
             AND {}",
            in_list(&pool, "id", 3)
        );
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker().await?;
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(now + lease_ms)
                .bind(owner)
                .bind(List(ids.to_vec()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
    })
    .await
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ending {
    Succeeded,
    /// Retried at this time (ms).
    Retry(JobFailure, i64),
    Dead(JobFailure),
}

/// Records how attempts of `owner` ended: one statement for all of them,
/// whatever their endings (PostgreSQL joins the `unnest` of one array per
/// column, SQLite a `json_each` of one JSON array), so the statement's text
/// is the same for every batch and stays prepared. Answers, for each of
/// `endings` in order, whether it was recorded: `false` when the job was no
/// longer `owner`'s (its lease had passed and another worker took it), or
/// for an id given twice, its second ending.
pub(crate) async fn finish(
    db: &Database,
    owner: &str,
    endings: &[(i64, Ending)],
) -> Result<Vec<bool>> {
    if endings.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let kind = |failure: JobFailure| match failure.transience {
        Transience::Temporary => "temporary",
        Transience::Permanent => "permanent",
    };
    // Each ending as the row's new status, run_after_ms and error.
    type Row = (
        i64,
        &'static str,
        i64,
        Option<&'static str>,
        Option<&'static str>,
    );
    let rows: Vec<Row> = endings
        .iter()
        .map(|(id, ending)| match *ending {
            Ending::Succeeded => (*id, "succeeded", now, None, None),
            Ending::Retry(failure, at) => {
                (*id, "failed", at, Some(failure.code), Some(kind(failure)))
            }
            Ending::Dead(failure) => (*id, "dead", now, Some(failure.code), Some(kind(failure))),
        })
        .collect();
    const SET: &str = "UPDATE jobs SET status = v.status, run_after_ms = v.run_after, \
         updated_ms = $1, error_code = v.code, error_kind = v.kind, lease_owner = NULL, \
         lease_until_ms = NULL FROM ";
    const WHERE: &str = " WHERE jobs.id = v.id AND jobs.lease_owner = $2 AND jobs.status = 'running' \
         RETURNING jobs.id, jobs.status";
    let changed: std::collections::HashSet<i64> = db
        .run(|pool| async move {
            match pool {
                Pool::Postgres(p) => {
                    let mut tx = p.begin_for_worker().await?;
                    let sql = format!(
                        "{SET}unnest($3::bigint[], $4::text[], $5::bigint[], $6::text[], \
                         $7::text[]) AS v(id, status, run_after, code, kind){WHERE}"
                    );
                    let changed = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(sql))
                        .bind(now)
                        .bind(owner)
                        .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
                        .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
                        .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
                        .bind(rows.iter().map(|r| r.3).collect::<Vec<_>>())
                        .bind(rows.iter().map(|r| r.4).collect::<Vec<_>>())
                        .fetch_all(&mut *tx)
                        .await?;
                    announce_dead((&mut *tx).into(), &changed, now).await?;
                    tx.commit().await?;
                    Ok(changed.into_iter().map(|(id, _)| id).collect())
                }
                Pool::Sqlite(p) => {
                    let mut tx = p.begin_for_worker().await?;
                    let sql = format!(
                        "{SET}(SELECT json_extract(value, '$[0]') AS id, \
                         json_extract(value, '$[1]') AS status, \
                         json_extract(value, '$[2]') AS run_after, \
                         json_extract(value, '$[3]') AS code, \
                         json_extract(value, '$[4]') AS kind FROM json_each($3)) AS v{WHERE}"
                    );
                    let changed = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(sql))
                        .bind(now)
                        .bind(owner)
                        .bind(List(rows))
                        .fetch_all(&mut *tx)
                        .await?;
                    announce_dead((&mut *tx).into(), &changed, now).await?;
                    tx.commit().await?;
                    Ok(changed.into_iter().map(|(id, _)| id).collect())
                }
            }
        })
        .await?;
    let mut answered = std::collections::HashSet::new();
    Ok(endings
        .iter()
        .map(|(id, _)| changed.contains(id) && answered.insert(*id))
        .collect())
}

/// Writes `job.dead` (contract §10) for the jobs of `ended` (id, new
/// status) that died, with their endings, in the open transaction `conn`.
async fn announce_dead(
    mut conn: Connection<'_>,
    ended: &[(i64, String)],
    now: i64,
) -> std::result::Result<(), sqlx::Error> {
    let dead: Vec<i64> = ended
        .iter()
        .filter(|(_, status)| status == "dead")
        .map(|(id, _)| *id)
        .collect();
    if dead.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT organization_id, {JOB_COLUMNS} FROM jobs WHERE {} ORDER BY id",
        in_list(&conn, "id", 1)
    );
    let mut died: Vec<(String, NewEvent)> = Vec::with_capacity(dead.len());
    macro_rules! read {
        ($conn:expr) => {
            for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(List(dead))
                .fetch_all(&mut **$conn)
                .await?
            {
                let organization: String = row.try_get("organization_id")?;
                died.push((
                    organization,
                    NewEvent::new(events::JOB_DEAD, &job_from_row(&row)?),
                ));
            }
        };
    }
    match &mut conn {
        Connection::Postgres(conn) => read!(conn),
        Connection::Sqlite(conn) => read!(conn),
    }
    let died: Vec<(&str, &NewEvent)> = died.iter().map(|(o, e)| (o.as_str(), e)).collect();
    events::write(conn, &died, now).await
}

/// Hands back jobs `owner` claimed but never started (the local queue of a
/// draining or disconnected worker): pending again, their attempt not
/// counted.
pub(crate) async fn give_back(db: &Database, owner: &str, ids: &[i64]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let now = now_ms();
    db.run(|pool| async move {
        let sql = format!(
            "UPDATE jobs SET status = 'pending', attempts = attempts - 1, run_after_ms = $1, \
             updated_ms = $1, lease_owner = NULL, lease_until_ms = NULL \
             WHERE lease_owner = $2 AND status = 'running' AND {}",
            in_list(&pool, "id", 3)
        );
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker().await?;
            let changed = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(now)
                .bind(owner)
                .bind(List(ids.to_vec()))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(changed)
        })
    })
    .await
}

/// Hands the jobs `owner` still holds back to the outbox (a shutdown whose
/// drain budget ran out): they run again elsewhere, idempotently.
pub(crate) async fn hand_back(db: &Database, owner: &str) -> Result<u64> {
    let now = now_ms();
    db.run(|pool| async move {
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker().await?;
            let changed = sqlx::query(
                "UPDATE jobs SET status = 'pending', run_after_ms = $1, updated_ms = $1, \
                 lease_owner = NULL, lease_until_ms = NULL \
                 WHERE lease_owner = $2 AND status = 'running'",
            )
            .bind(now)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(changed)
        })
    })
    .await
}

/// Moves up to `limit` due jobs from the outbox to their streams: `send`
/// gets `(id, queue)` pairs and appends them to Redis; only once it has
/// succeeded are the jobs marked `queued` (if it fails, they stay in the
/// outbox). Only jobs of `queues` (those registered) are relayed.
/// Answers how many were relayed, or why Redis refused them.
///
/// A stream is first come, first served, so the relay is where turns are
/// taken: each organization has at most `share` jobs of a queue on its
/// stream or running, and the outbox is relayed in turns (the oldest of
/// each organization, then the second of each, …). Another organization's
/// job then waits behind at most `share` jobs of one with a backlog.
pub(crate) async fn relay<F, Fut>(
    db: &Database,
    queues: &[Queue],
    limit: usize,
    share: usize,
    send: F,
) -> Result<Result<usize, crate::error::Fault>>
where
    F: FnOnce(Vec<(i64, Queue)>) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::error::Fault>>,
{
    let now = now_ms();
    db.run(|pool| async move {
        let lock = match pool {
            Pool::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Pool::Sqlite(_) => "",
        };
        const DUE: &str = "(status = 'pending' OR (status = 'failed' AND run_after_ms <= $1))";
        let select = format!(
            "SELECT id, queue FROM jobs WHERE {DUE} AND id IN \
                 (SELECT id FROM (SELECT id, status, run_after_ms, \
                     row_number() OVER (PARTITION BY organization_id, queue, \
                         CASE WHEN {DUE} THEN 0 ELSE 1 END ORDER BY id) AS turn, \
                     sum(CASE WHEN status IN ('queued', 'running') THEN 1 ELSE 0 END) \
                         OVER (PARTITION BY organization_id, queue) AS in_flight \
                     FROM jobs WHERE status <> 'succeeded') open \
                  WHERE {DUE} AND turn + in_flight <= $3 ORDER BY turn, id LIMIT $2) \
             ORDER BY id{lock}"
        );
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker_writing().await?;
            let rows: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                .bind(now)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .bind(i64::try_from(share).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await?;
            let jobs: Vec<(i64, Queue)> = rows
                .into_iter()
                .filter_map(|(id, name)| {
                    let queue = queues.iter().find(|q| q.as_str() == name)?;
                    Some((id, *queue))
                })
                .collect();
            if jobs.is_empty() {
                return Ok(Ok(0));
            }
            let ids: Vec<i64> = jobs.iter().map(|(id, _)| *id).collect();
            if let Err(fault) = send(jobs).await {
                // Release the rows now: a dropped transaction rolls back only
                // when its connection is next used, and until then a worker
                // that read one of these messages waits on the row to claim it.
                tx.rollback().await?;
                return Ok(Err(fault));
            }
            let update = format!(
                "UPDATE jobs SET status = 'queued', updated_ms = $1 \
                 WHERE status IN ('pending', 'failed') AND {}",
                in_list(&p, "id", 2)
            );
            sqlx::query(sqlx::AssertSqlSafe(update.as_str()))
                .bind(now)
                .bind(List(ids.clone()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Ok(ids.len()))
        })
    })
    .await
}

/// Puts jobs whose messages may be lost back into the outbox: those queued
/// on a stream that Redis no longer has (`queue`, after a Redis restart
/// emptied it), and on any queue those whose holder's lease passed more
/// than `grace_ms` ago (a worker died and its message is gone).
pub(crate) async fn requeue_lost(
    db: &Database,
    queue: Option<Queue>,
    grace_ms: i64,
) -> Result<u64> {
    let now = now_ms();
    db.run(|pool| async move {
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker().await?;
            let mut changed = sqlx::query(
                "UPDATE jobs SET status = 'pending', updated_ms = $1, lease_owner = NULL, \
                 lease_until_ms = NULL WHERE status = 'running' AND lease_until_ms < $2",
            )
            .bind(now)
            .bind(now - grace_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if let Some(queue) = queue {
                changed += sqlx::query(
                    "UPDATE jobs SET status = 'pending', updated_ms = $1 \
                     WHERE status = 'queued' AND queue = $2",
                )
                .bind(now)
                .bind(queue.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(changed)
        })
    })
    .await
}

/// Puts back into the outbox the jobs that have been `queued` (their
/// message on a stream) for longer than `after_ms`: their message may be
/// lost while its stream was kept (an asynchronous Redis failover, an
/// append-only file missing its last second). Sent again, a job whose first
/// message was not lost after all has two; the claim runs it once.
pub(crate) async fn resend_stale(db: &Database, after_ms: i64) -> Result<u64> {
    let now = now_ms();
    db.run(|pool| async move {
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker().await?;
            let changed = sqlx::query(
                "UPDATE jobs SET status = 'pending', updated_ms = $1 \
                 WHERE status = 'queued' AND updated_ms < $2",
            )
            .bind(now)
            .bind(now - after_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(changed)
        })
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
