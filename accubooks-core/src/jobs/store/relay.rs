//! The outbox relayed to Redis's streams in turns across organizations,
//! and jobs whose messages were lost put back.

use std::collections::HashMap;

use super::claim::OPEN;
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
///
/// A pass reads what it relays, not the backlog: the jobs in flight are
/// counted (`jobs_open`, by status), the (queue, organization) pairs with
/// open jobs found by skipping through `jobs_claim_by_organization` (one
/// probe per pair on PostgreSQL), and each pair's oldest due jobs read from
/// that index up to its room. (Numbering every open job in one window, a
/// pass cost a sort of the whole outbox: a backlog of 50,000 relayed 384
/// at a time ran at 1,020 jobs/s, against 3,097 for 10,000.)
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
        let postgres = matches!(pool, Pool::Postgres(_));
        let (lock, pin, pairs_sql) = if postgres {
            (
                " FOR UPDATE SKIP LOCKED",
                // Index walks whatever the statistics say (see `claim_due`).
                Some(
                    "SELECT set_config('enable_seqscan', 'off', true), \
                 set_config('enable_bitmapscan', 'off', true), \
                 set_config('plan_cache_mode', 'force_custom_plan', true)",
                ),
                format!(
                    "WITH RECURSIVE pairs(queue, organization_id) AS ( \
                         (SELECT queue, organization_id FROM jobs WHERE {OPEN} \
                          ORDER BY queue, organization_id LIMIT 1) \
                         UNION ALL \
                         SELECT n.queue, n.organization_id FROM pairs p CROSS JOIN LATERAL \
                             (SELECT queue, organization_id FROM jobs WHERE {OPEN} \
                              AND (queue, organization_id) > (p.queue, p.organization_id) \
                              ORDER BY queue, organization_id LIMIT 1) n) \
                     SELECT queue, organization_id FROM pairs"
                ),
            )
        } else {
            (
                "",
                None,
                format!("SELECT DISTINCT queue, organization_id FROM jobs WHERE {OPEN}"),
            )
        };
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker_writing().await?;
            if let Some(pin) = pin {
                sqlx::query(pin).execute(&mut *tx).await?;
            }
            // Through `jobs_open` (queue, status): the rows in flight only.
            let names: Vec<&str> = queues.iter().map(|q| q.as_str()).collect();
            let in_flight_sql = format!(
                "SELECT queue, organization_id, count(*) FROM jobs \
                 WHERE {} AND status IN ('queued', 'running') AND status <> 'succeeded' \
                 GROUP BY queue, organization_id",
                in_list(&p, "queue", 1)
            );
            let in_flight: HashMap<(String, String), i64> =
                sqlx::query_as::<_, (String, String, i64)>(sqlx::AssertSqlSafe(in_flight_sql))
            .bind(List(names))
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(queue, organization, n)| ((queue, organization), n))
            .collect();
            let share = i64::try_from(share).unwrap_or(i64::MAX);
            // The pairs with room, those with the least in flight first.
            let mut pairs: Vec<(String, String, i64)> =
                sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(pairs_sql.as_str()))
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .filter(|(queue, _)| queues.iter().any(|q| q.as_str() == queue))
                    .filter_map(|pair| {
                        let room = share - in_flight.get(&pair).copied().unwrap_or(0);
                        (room > 0).then_some((pair.0, pair.1, room))
                    })
                    .collect();
            pairs.sort_by_key(|(_, _, room)| std::cmp::Reverse(*room));
            pairs.truncate(limit.min(RELAY_PAIRS_MAX));
            if pairs.is_empty() {
                return Ok(Ok(0));
            }
            // Each pair's oldest due jobs, up to its room and its part of
            // `limit`, numbered in turns.
            let part = i64::try_from(limit.div_ceil(pairs.len())).unwrap_or(i64::MAX);
            let select = pairs
                .iter()
                .enumerate()
                .map(|(n, _)| {
                    let (q, o, l) = (3 * n + 2, 3 * n + 3, 3 * n + 4);
                    format!(
                        "SELECT * FROM (SELECT id, CAST({n} AS BIGINT) AS pair FROM jobs WHERE queue = ${q} \
                         AND organization_id = ${o} AND {OPEN} AND {DUE} \
                         ORDER BY run_after_ms, id LIMIT ${l}) p{n}"
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let mut query = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(select)).bind(now);
            for (queue, organization, room) in &pairs {
                query = query.bind(queue.as_str()).bind(organization.as_str()).bind((*room).min(part));
            }
            let mut turn: HashMap<i64, usize> = HashMap::new();
            let mut chosen: Vec<(usize, i64, i64)> = query
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(id, pair)| {
                    let next = turn.entry(pair).or_default();
                    *next += 1;
                    (*next, id, pair)
                })
                .collect();
            chosen.sort_unstable();
            chosen.truncate(limit);
            if chosen.is_empty() {
                return Ok(Ok(0));
            }
            // Locked (skipping what another process relays) and checked
            // still due.
            let ids: Vec<i64> = chosen.iter().map(|(_, id, _)| *id).collect();
            let lock_sql = format!(
                "SELECT id, queue FROM jobs WHERE {DUE} AND {} ORDER BY id{lock}",
                in_list(&p, "id", 2)
            );
            let rows: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(lock_sql))
                .bind(now)
                .bind(List(ids))
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

/// Jobs that may be relayed: pending, or failed and due again (`$1` is now).
const DUE: &str = "(status = 'pending' OR (status = 'failed' AND run_after_ms <= $1))";
/// Most (queue, organization) pairs one pass reads from (the statement's
/// bound values, three per pair, stay far below either backend's limit);
/// the others come in the next passes, those with the most room first.
const RELAY_PAIRS_MAX: usize = 500;

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
