//! The outbox relayed to Redis's streams in turns across organizations,
//! and jobs whose messages were lost put back.

use super::now_ms;
use crate::db::sql::{BeginScoped, List, in_list, on_pool};
use crate::db::{Database, Pool};
use crate::error::Result;
use crate::jobs::Queue;

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
