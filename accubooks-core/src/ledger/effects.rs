//! Effects: changes to a feature's records that must commit in the same
//! transaction as a posting's entries.
//!
//! The [`Committer`](super::Committer) knows no feature's tables. A feature
//! hands it [`Effect`]s; each runs its own SQL inside the group's
//! transaction, through an [`EffectTx`] that speaks to PostgreSQL and SQLite
//! alike, and says whether it found the state its guard expects
//! ([`Guard`]). If not, the job fails with a conflict and nothing of it is
//! written. The common shape, one guarded statement that must change exactly
//! one row, is [`GuardedUpdate`]: a feature declares it as data (its SQL and
//! its binds) next to its other SQL.
//!
//! Every statement names the organization ([`Bind::Organization`]): SQLite
//! has no row-level security to scope it.

use std::fmt::Debug;

use crate::events::NewEvent;
use crate::organization::OrganizationId;
use chrono::NaiveDate;
use futures::future::BoxFuture;
use sqlx::query::Query;
use sqlx::{Encode, Row, Type};

pub(crate) use crate::db::sql::Connection;

/// A value bound to a `$n` placeholder of an effect's SQL, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// An integer (ids, minor units).
    I64(i64),
    /// An integer or NULL.
    OptI64(Option<i64>),
    /// Text.
    Text(String),
    /// A date.
    Date(NaiveDate),
    /// The id of the job's first entry, known only inside the transaction.
    EntryId,
    /// The date of the job's first entry as committed: an outside posting
    /// dated in a locked period is moved to the first open day, so effects
    /// that record "when" bind this rather than the date they asked for.
    EntryDate,
    /// The organization of the job's entries.
    Organization,
}

/// Whether an effect found the state its guard expects.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// It did, and its change is written.
    Held,
    /// The record changed meanwhile (or is not there): the job fails with a
    /// state conflict and its transaction rolls back.
    StateChanged,
    /// The change may not be dated before earliest: refused with code and message, unless the posting came from outside (then re-dated by the committer).
    TooEarly {
        /// The first date the change may have.
        earliest: NaiveDate,
        /// The error code the refusal answers.
        code: &'static str,
        /// What the user can do about it.
        message: String,
    },
}

/// A change to other records, committed with a job's entries.
pub trait Effect: Send + Sync + Debug {
    /// Runs the change in the group's transaction, for the job's
    /// organization and first entry ([`EffectTx::organization`],
    /// [`EffectTx::entry_id`]).
    fn apply<'a>(&'a self, tx: &'a mut EffectTx<'_>) -> BoxFuture<'a, Result<Guard, sqlx::Error>>;
}

/// One statement whose guard (in its `WHERE`) must match exactly one row,
/// say a draft invoice becoming issued. Any other count is
/// [`Guard::StateChanged`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedUpdate {
    sql: &'static str,
    binds: Vec<Bind>,
}

impl GuardedUpdate {
    /// `sql` with `binds` for its `$1…` placeholders, in order; they must
    /// include [`Bind::Organization`].
    pub fn new(sql: &'static str, binds: Vec<Bind>) -> Self {
        debug_assert!(
            binds.contains(&Bind::Organization),
            "an effect's statement must name the organization: {sql}"
        );
        GuardedUpdate { sql, binds }
    }
}

impl Effect for GuardedUpdate {
    fn apply<'a>(&'a self, tx: &'a mut EffectTx<'_>) -> BoxFuture<'a, Result<Guard, sqlx::Error>> {
        Box::pin(async move {
            Ok(match tx.execute(self.sql, &self.binds).await? {
                1 => Guard::Held,
                _ => Guard::StateChanged,
            })
        })
    }
}

/// The group's transaction as one job's effects see it: statements run in
/// it on either store, with [`Bind::EntryId`] and [`Bind::Organization`]
/// standing for the job's.
pub struct EffectTx<'t> {
    conn: Connection<'t>,
    organization: &'t OrganizationId,
    entry: (i64, NaiveDate),
    emitted: Vec<NewEvent>,
}

impl<'t> EffectTx<'t> {
    /// `entry` is the job's first entry: its id and date.
    pub(crate) fn new(
        conn: Connection<'t>,
        organization: &'t OrganizationId,
        entry: (i64, NaiveDate),
    ) -> Self {
        EffectTx {
            conn,
            organization,
            entry,
            emitted: Vec::new(),
        }
    }

    /// Records `event` (contract §10) with the job's changes: written in
    /// the same transaction, after the job's `entry.posted` events.
    pub fn emit(&mut self, event: NewEvent) {
        self.emitted.push(event);
    }

    /// The events emitted so far, taken out.
    pub(crate) fn take_emitted(&mut self) -> Vec<NewEvent> {
        std::mem::take(&mut self.emitted)
    }

    /// The transaction's connection, for reading back (in the state the
    /// job's changes left) what an event shows.
    pub(crate) fn connection(&mut self) -> Connection<'_> {
        self.conn.reborrow()
    }

    /// The organization of the job's entries.
    pub fn organization(&self) -> &OrganizationId {
        self.organization
    }

    /// The id of the job's first entry.
    pub fn entry_id(&self) -> i64 {
        self.entry.0
    }

    /// The date of the job's first entry as committed.
    pub fn entry_date(&self) -> NaiveDate {
        self.entry.1
    }

    /// Makes the rest of the transaction wait for, and then exclude, any
    /// other transaction that serializes on the same `topic` for the same
    /// organization (a PostgreSQL advisory lock held until commit). SQLite
    /// has one writer: there, transactions never overlap anyway.
    pub async fn serialize(&mut self, topic: &'static str) -> Result<(), sqlx::Error> {
        if let Connection::Postgres(conn) = &mut self.conn {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))")
                .bind(topic)
                .bind(self.organization.as_str())
                .execute(&mut **conn)
                .await?;
        }
        Ok(())
    }

    /// Runs `sql` with `binds`; returns the number of rows it affected.
    pub async fn execute(&mut self, sql: &'static str, binds: &[Bind]) -> Result<u64, sqlx::Error> {
        let (organization, entry) = (self.organization, self.entry);
        Ok(match &mut self.conn {
            Connection::Postgres(conn) => bound(sqlx::query(sql), binds, organization, entry)
                .execute(&mut **conn)
                .await?
                .rows_affected(),
            Connection::Sqlite(conn) => bound(sqlx::query(sql), binds, organization, entry)
                .execute(&mut **conn)
                .await?
                .rows_affected(),
        })
    }

    /// Runs `sql` (an `INSERT … RETURNING id`, say) with `binds`; returns
    /// the integer in the first column of its one row.
    pub async fn fetch_id(
        &mut self,
        sql: &'static str,
        binds: &[Bind],
    ) -> Result<i64, sqlx::Error> {
        let (organization, entry) = (self.organization, self.entry);
        match &mut self.conn {
            Connection::Postgres(conn) => bound(sqlx::query(sql), binds, organization, entry)
                .fetch_one(&mut **conn)
                .await?
                .try_get(0),
            Connection::Sqlite(conn) => bound(sqlx::query(sql), binds, organization, entry)
                .fetch_one(&mut **conn)
                .await?
                .try_get(0),
        }
    }
}

impl EffectTx<'_> {
    /// Runs `sql` (a `SELECT` of one date column) with `binds`; returns the
    /// date of its first row, if there is one.
    pub async fn fetch_date(
        &mut self,
        sql: &'static str,
        binds: &[Bind],
    ) -> Result<Option<NaiveDate>, sqlx::Error> {
        let (organization, entry) = (self.organization, self.entry);
        let row = match &mut self.conn {
            Connection::Postgres(conn) => bound(sqlx::query(sql), binds, organization, entry)
                .fetch_optional(&mut **conn)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?,
            Connection::Sqlite(conn) => bound(sqlx::query(sql), binds, organization, entry)
                .fetch_optional(&mut **conn)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?,
        };
        Ok(row)
    }
}

/// Binds `binds` to `query` in order, the job's entry and organization in
/// place of [`Bind::EntryId`], [`Bind::EntryDate`] and [`Bind::Organization`].
fn bound<'q, DB>(
    mut query: Query<'q, DB, DB::Arguments>,
    binds: &[Bind],
    organization: &OrganizationId,
    (entry_id, entry_date): (i64, NaiveDate),
) -> Query<'q, DB, DB::Arguments>
where
    DB: sqlx::Database,
    for<'e> i64: Encode<'e, DB> + Type<DB>,
    for<'e> Option<i64>: Encode<'e, DB> + Type<DB>,
    for<'e> &'e str: Encode<'e, DB> + Type<DB>,
    for<'e> NaiveDate: Encode<'e, DB> + Type<DB>,
{
    for bind in binds {
        query = match bind {
            Bind::I64(value) => query.bind(*value),
            Bind::OptI64(value) => query.bind(*value),
            Bind::Text(value) => query.bind(value.as_str()),
            Bind::Date(value) => query.bind(*value),
            Bind::EntryId => query.bind(entry_id),
            Bind::EntryDate => query.bind(entry_date),
            Bind::Organization => query.bind(organization.as_str()),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_guarded_update_holds_once_with_the_job_s_entry_and_organization() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, organization_id TEXT, status TEXT, \
             entry_id INTEGER, other INTEGER, note TEXT, day TEXT)",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        let (first, second) = (OrganizationId::nth(1), OrganizationId::nth(2));
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let mut tx = EffectTx::new(Connection::Sqlite(&mut conn), &first, (42, day));
        let id = tx
            .fetch_id(
                "INSERT INTO t (organization_id, status) VALUES ($1, 'open') RETURNING id",
                &[Bind::Organization],
            )
            .await
            .unwrap();
        let close = GuardedUpdate::new(
            "UPDATE t SET status = 'closed', entry_id = $1, other = $2, note = $3, day = $4 \
             WHERE id = $5 AND organization_id = $6 AND status = 'open'",
            vec![
                Bind::EntryId,
                Bind::OptI64(None),
                Bind::Text("n".to_owned()),
                Bind::EntryDate,
                Bind::I64(id),
                Bind::Organization,
            ],
        );
        assert_eq!(close.apply(&mut tx).await.unwrap(), Guard::Held);
        // The state it guards is gone: a second application is refused.
        assert_eq!(close.apply(&mut tx).await.unwrap(), Guard::StateChanged);
        // Another organization's row is never matched.
        let mut other = EffectTx::new(Connection::Sqlite(&mut conn), &second, (43, day));
        let reopen = GuardedUpdate::new(
            "UPDATE t SET status = 'open' WHERE id = $1 AND organization_id = $2",
            vec![Bind::I64(id), Bind::Organization],
        );
        assert_eq!(reopen.apply(&mut other).await.unwrap(), Guard::StateChanged);
        let row: (String, i64, Option<i64>, String, String) =
            sqlx::query_as("SELECT status, entry_id, other, note, day FROM t")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!(
            row,
            ("closed".into(), 42, None, "n".into(), "2026-03-01".into())
        );
    }
}
