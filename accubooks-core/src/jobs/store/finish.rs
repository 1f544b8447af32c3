//! How holds end: attempts recorded in batches (with `job.dead` events),
//! and claimed jobs given or handed back.

use sqlx::Row;

use super::{JOB_COLUMNS, job_from_row, now_ms};
use crate::db::sql::{BeginScoped, Connection, List, in_list, on_pool};
use crate::db::{Database, Pool};
use crate::error::{Result, Transience};
use crate::events::{self, NewEvent};
use crate::jobs::JobFailure;

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
