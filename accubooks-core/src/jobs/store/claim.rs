//! Claims: a worker takes jobs (by id from stream messages, or due ones
//! straight from the table in turns across organizations) and renews its
//! leases.

use sqlx::Row;

use super::now_ms;
use crate::db::sql::{BeginScoped, List, in_list, on_pool};
use crate::db::{Database, Pool};
use crate::error::Result;
use crate::jobs::Queue;
use crate::organization::OrganizationId;

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
pub(super) const OPEN: &str = open!();

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
