//! The group's transaction on each backend: its entries and lines, the
//! balances (accounts locked in id order), the lock dates, the jobs'
//! effects and the events, and the idempotent answers.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::clock::now_ms;
use crate::db::Database;
use crate::db::sql::{BeginScoped, value_rows};
use crate::events::{self, NewEvent};
use crate::idempotency;
use crate::ledger::effects::{Connection, EffectTx, Guard};
use crate::ledger::entries::read_entry;

use super::{Job, Plan, Refused, answers, check_locks, split_ids};

/// Applies the jobs' effects inside the group's open transaction, each for
/// the organization and first entry of its job. A guard that does not hold
/// fails the transaction with [`Refused::StateChanged`], a state conflict.
/// Answers the events each job's effects emitted.
async fn apply_effects(
    mut conn: Connection<'_>,
    jobs: &[&Job],
    per_job: &[Vec<i64>],
) -> Result<Vec<Vec<NewEvent>>, Refused> {
    let mut emitted = Vec::with_capacity(jobs.len());
    for (job, ids) in jobs.iter().zip(per_job) {
        let (Some(&entry_id), Some(entry)) = (ids.first(), job.entries.first()) else {
            emitted.push(Vec::new());
            continue;
        };
        let mut tx = EffectTx::new(conn.reborrow(), &entry.organization, (entry_id, entry.date));
        for effect in &job.effects {
            match effect.apply(&mut tx).await? {
                Guard::Held => {}
                Guard::StateChanged => return Err(Refused::StateChanged),
                Guard::TooEarly {
                    earliest,
                    code,
                    message,
                } => {
                    return Err(Refused::TooEarly {
                        earliest,
                        code,
                        message,
                    });
                }
            }
        }
        emitted.push(tx.take_emitted());
    }
    Ok(emitted)
}

/// Writes the group's events (contract §10) in its open transaction, job
/// by job: `entry.posted` for each entry, `entry.reversed` for each entry
/// it reverses (read back as it now stands, reversed), then the events its
/// effects emitted.
async fn write_events(
    mut conn: Connection<'_>,
    jobs: &[&Job],
    per_job: &[Vec<i64>],
    emitted: Vec<Vec<NewEvent>>,
) -> Result<(), sqlx::Error> {
    let mut events: Vec<(&str, NewEvent)> = Vec::new();
    for ((job, ids), emitted) in jobs.iter().zip(per_job).zip(emitted) {
        for (entry, id) in job.entries.iter().zip(ids) {
            let organization = entry.organization.as_str();
            events.push((
                organization,
                NewEvent::new(events::ENTRY_POSTED, &entry.posted(*id)),
            ));
            if let Some(reversed) = entry.reverses {
                let reversed = read_entry(conn.reborrow(), &entry.organization, reversed)
                    .await?
                    .ok_or(sqlx::Error::RowNotFound)?;
                events.push((
                    organization,
                    NewEvent::new(events::ENTRY_REVERSED, &reversed),
                ));
            }
        }
        if let Some(entry) = job.entries.first() {
            events.extend(
                emitted
                    .into_iter()
                    .map(|e| (entry.organization.as_str(), e)),
            );
        }
    }
    let events: Vec<(&str, &NewEvent)> = events.iter().map(|(o, e)| (*o, e)).collect();
    events::write(conn, &events, now_ms()).await
}

pub(super) async fn write_postgres(
    db: &Database,
    pool: &sqlx::PgPool,
    plan: &Plan<'_>,
    jobs: &[&Job],
) -> Result<Vec<Vec<i64>>, Refused> {
    // Row-level security scopes every statement below to the group's
    // organizations (a group may hold several): `begin_for` runs
    // `set_config('accubooks.organization', …, true)` right after BEGIN.
    let organizations: Vec<&str> = plan.organizations.iter().copied().collect();
    let mut tx = db
        .begin_unless_down(pool.begin_for(&organizations.join(",")))
        .await?;
    let count = i64::try_from(plan.entries.len()).unwrap_or(i64::MAX);
    let ids: Vec<i64> = sqlx::query_scalar(
        // The sequence is looked up once: pg_get_serial_sequence is only
        // stable, so in the select list it ran (with catalog scans) per id.
        "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('journal_entries', 'id')::regclass AS seq) \
         SELECT nextval(s.seq) FROM s, generate_series(1, $1)",
    )
    .bind(count)
    .fetch_all(&mut *tx)
    .await?;
    let orgs: Vec<&str> = plan
        .entries
        .iter()
        .map(|e| e.organization.as_str())
        .collect();
    let dates: Vec<NaiveDate> = plan.entries.iter().map(|e| e.date).collect();
    let memos: Vec<&str> = plan.entries.iter().map(|e| e.memo.as_str()).collect();
    let reverses: Vec<Option<i64>> = plan.entries.iter().map(|e| e.reverses).collect();
    let metadata: Vec<Option<String>> = plan
        .entries
        .iter()
        .map(|e| e.metadata.to_stored())
        .collect();
    let kinds: Vec<Option<&str>> = plan.entries.iter().map(|e| e.kind.to_stored()).collect();
    sqlx::query(
        "INSERT INTO journal_entries (id, organization_id, entry_date, memo, reverses, metadata, kind) \
         SELECT id, org, day, memo, reverses, CAST(metadata AS JSONB), kind FROM UNNEST($1::bigint[], \
         $2::text[], $3::date[], $4::text[], $5::bigint[], $6::text[], $7::text[]) \
         AS u(id, org, day, memo, reverses, metadata, kind)",
    )
    .bind(&ids)
    .bind(&orgs)
    .bind(&dates)
    .bind(&memos)
    .bind(&reverses)
    .bind(&metadata)
    .bind(&kinds)
    .execute(&mut *tx)
    .await?;
    let line_entries: Vec<i64> = plan.lines.iter().map(|l| ids[l.0]).collect();
    let line_numbers: Vec<i32> = plan.lines.iter().map(|l| l.1).collect();
    let line_accounts: Vec<i64> = plan.lines.iter().map(|l| l.2).collect();
    let line_amounts: Vec<i64> = plan.lines.iter().map(|l| l.3).collect();
    let line_dates: Vec<NaiveDate> = plan.lines.iter().map(|l| dates[l.0]).collect();
    sqlx::query(
        "INSERT INTO journal_lines (entry_id, line_no, account_id, amount, entry_date) \
         SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bigint[], $4::bigint[], $5::date[])",
    )
    .bind(&line_entries)
    .bind(&line_numbers)
    .bind(&line_accounts)
    .bind(&line_amounts)
    .bind(&line_dates)
    .execute(&mut *tx)
    .await?;
    // Lock the accounts in id order: concurrent committers then queue instead
    // of deadlocking. Locking only now, after the inserts above, keeps the
    // locks for just the balance updates and the commit, so the next group's
    // inserts overlap this one's flush. Every named account is locked, also
    // those whose movements cancel out, because this stands in for
    // journal_lines' foreign key to accounts (dropped by migration 0003).
    // Each locked row is answered in its latest committed version, with
    // the lock date of its organization (see ledger::periods).
    let locked: Vec<(i64, Option<NaiveDate>)> = sqlx::query_as(
        "SELECT id, lock_date FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&plan.accounts)
    .fetch_all(&mut *tx)
    .await?;
    if locked.len() != plan.accounts.len() {
        return Err(Refused::AccountMissing);
    }
    // An account's lock date is its organization's: one per organization.
    let lock_of: HashMap<i64, NaiveDate> = locked
        .iter()
        .filter_map(|&(id, lock)| Some((id, lock?)))
        .collect();
    if !lock_of.is_empty() {
        let mut locks: HashMap<&str, NaiveDate> = HashMap::new();
        for entry in &plan.entries {
            if let Some(lock) = entry.lines.iter().find_map(|l| lock_of.get(&l.account_id)) {
                locks.insert(entry.organization.as_str(), *lock);
            }
        }
        let locks: Vec<(String, NaiveDate)> =
            locks.into_iter().map(|(o, d)| (o.to_owned(), d)).collect();
        check_locks(jobs, &locks)?;
    }
    let balance_accounts: Vec<i64> = plan.balances.keys().copied().collect();
    let deltas: Vec<i64> = plan.balances.values().copied().collect();
    sqlx::query(
        "UPDATE accounts AS a SET balance = a.balance + d.delta \
         FROM UNNEST($1::bigint[], $2::bigint[]) AS d(id, delta) WHERE a.id = d.id",
    )
    .bind(&balance_accounts)
    .bind(&deltas)
    .execute(&mut *tx)
    .await?;
    let day_accounts: Vec<i64> = plan.days.keys().map(|(a, _)| *a).collect();
    let day_dates: Vec<NaiveDate> = plan.days.keys().map(|(_, d)| *d).collect();
    let day_deltas: Vec<i64> = plan.days.values().copied().collect();
    sqlx::query(
        "INSERT INTO account_days (account_id, day, delta) \
         SELECT * FROM UNNEST($1::bigint[], $2::date[], $3::bigint[]) \
         ON CONFLICT (account_id, day) DO UPDATE SET delta = account_days.delta + EXCLUDED.delta",
    )
    .bind(&day_accounts)
    .bind(&day_dates)
    .bind(&day_deltas)
    .execute(&mut *tx)
    .await?;
    let per_job = split_ids(jobs, &ids);
    let emitted = apply_effects(Connection::Postgres(&mut tx), jobs, &per_job).await?;
    write_events(Connection::Postgres(&mut tx), jobs, &per_job, emitted).await?;
    for (key, status, body) in answers(jobs, &per_job) {
        idempotency::store_answer!(&mut *tx, key, status, body)?;
    }
    tx.commit().await?;
    Ok(per_job)
}

/// Rows per multi-row INSERT on SQLite, below its limit of 32,766 bound values.
const SQLITE_ROWS: usize = 2000;

pub(super) async fn write_sqlite(
    db: &Database,
    pool: &sqlx::SqlitePool,
    plan: &Plan<'_>,
    jobs: &[&Job],
) -> Result<Vec<Vec<i64>>, Refused> {
    // IMMEDIATE takes the write lock up front: the ids below are then ours.
    let mut tx = db
        .begin_unless_down(pool.begin_with("BEGIN IMMEDIATE"))
        .await?;
    let organizations: Vec<&str> = plan.organizations.iter().copied().collect();
    let locks: Vec<(String, NaiveDate)> = sqlx::query_as(
        "SELECT id, lock_date FROM organizations \
         WHERE id IN (SELECT value FROM json_each($1)) AND lock_date IS NOT NULL",
    )
    .bind(serde_json::to_string(&organizations).expect("names serialize"))
    .fetch_all(&mut *tx)
    .await?;
    check_locks(jobs, &locks)?;
    // Stands in for journal_lines' foreign key to accounts, as on PostgreSQL.
    let accounts = serde_json::to_string(&plan.accounts).expect("ids serialize");
    let found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM accounts WHERE id IN (SELECT value FROM json_each($1))",
    )
    .bind(&accounts)
    .fetch_one(&mut *tx)
    .await?;
    if usize::try_from(found).ok() != Some(plan.accounts.len()) {
        return Err(Refused::AccountMissing);
    }
    let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM journal_entries")
        .fetch_one(&mut *tx)
        .await?;
    let ids: Vec<i64> = (1..=plan.entries.len() as i64).map(|i| last + i).collect();
    for (chunk_index, chunk) in plan.entries.chunks(SQLITE_ROWS).enumerate() {
        let sql = format!(
            "INSERT INTO journal_entries (id, organization_id, entry_date, memo, reverses, metadata, kind) \
             VALUES {}",
            value_rows(1, chunk.len(), 7)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (offset, entry) in chunk.iter().enumerate() {
            query = query
                .bind(ids[chunk_index * SQLITE_ROWS + offset])
                .bind(&entry.organization)
                .bind(entry.date)
                .bind(&entry.memo)
                .bind(entry.reverses)
                .bind(entry.metadata.to_stored())
                .bind(entry.kind.to_stored());
        }
        query.execute(&mut *tx).await?;
    }
    for chunk in plan.lines.chunks(SQLITE_ROWS) {
        let sql = format!(
            "INSERT INTO journal_lines (entry_id, line_no, account_id, amount, entry_date) \
             VALUES {}",
            value_rows(1, chunk.len(), 5)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (entry, number, account, amount) in chunk {
            query = query
                .bind(ids[*entry])
                .bind(number)
                .bind(account)
                .bind(amount)
                .bind(plan.entries[*entry].date);
        }
        query.execute(&mut *tx).await?;
    }
    for (account, delta) in &plan.balances {
        sqlx::query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
            .bind(delta)
            .bind(account)
            .execute(&mut *tx)
            .await?;
    }
    let days: Vec<(&(i64, NaiveDate), &i64)> = plan.days.iter().collect();
    for chunk in days.chunks(SQLITE_ROWS) {
        let sql = format!(
            "INSERT INTO account_days (account_id, day, delta) VALUES {} \
             ON CONFLICT (account_id, day) DO UPDATE SET delta = delta + excluded.delta",
            value_rows(1, chunk.len(), 3)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((account, day), delta) in chunk {
            query = query.bind(account).bind(day).bind(*delta);
        }
        query.execute(&mut *tx).await?;
    }
    // SQLite turns an integer sum that overflows into a float, silently;
    // PostgreSQL's bigint refuses it (22003). Refuse it here the same way.
    if let (Some(first), Some(last)) = (
        plan.days.keys().map(|k| k.1).min(),
        plan.days.keys().map(|k| k.1).max(),
    ) {
        let overflowed: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM accounts WHERE id IN (SELECT value FROM json_each($1)) \
                 AND typeof(balance) <> 'integer') \
             + (SELECT count(*) FROM account_days WHERE account_id IN (SELECT value FROM json_each($1)) \
                 AND day >= $2 AND day <= $3 AND typeof(delta) <> 'integer')",
        )
        .bind(&accounts)
        .bind(first)
        .bind(last)
        .fetch_one(&mut *tx)
        .await?;
        if overflowed > 0 {
            return Err(Refused::OutOfRange);
        }
    }
    let per_job = split_ids(jobs, &ids);
    let emitted = apply_effects(Connection::Sqlite(&mut tx), jobs, &per_job).await?;
    write_events(Connection::Sqlite(&mut tx), jobs, &per_job, emitted).await?;
    for (key, status, body) in answers(jobs, &per_job) {
        idempotency::store_answer!(&mut *tx, key, status, body)?;
    }
    tx.commit().await?;
    Ok(per_job)
}
