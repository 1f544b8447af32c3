//! Helpers for writing one query for both backends, and the transactions
//! that PostgreSQL's row-level security scopes to an organization.

use std::future::Future;

/// Runs `$body` with `$pool` bound to the concrete sqlx pool of either
/// backend; the body is compiled once per backend, so it may use any API
/// both drivers share.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::db::Pool::Postgres($p) => $body,
            $crate::db::Pool::Sqlite($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs `$body` in a transaction of `$p` (a pool) scoped to `$organization`
/// and commits: `in_scope!(p, &org, tx => query.fetch_all(&mut *tx).await?)`
/// evaluates to `Ok(rows)`.
macro_rules! in_scope {
    ($p:ident, $organization:expr, $tx:ident => $body:expr) => {{
        let mut $tx = $crate::db::sql::BeginScoped::begin_for(&$p, $organization).await?;
        let value = $body;
        $tx.commit().await?;
        Ok(value)
    }};
}
pub(crate) use in_scope;

/// The connection of an open transaction, on either store: for code that
/// runs inside a transaction it did not open (the committer's effects,
/// events written with the change that made them).
pub(crate) enum Connection<'c> {
    /// PostgreSQL.
    Postgres(&'c mut sqlx::PgConnection),
    /// SQLite.
    Sqlite(&'c mut sqlx::SqliteConnection),
}

impl Connection<'_> {
    /// The same connection, for a shorter while.
    pub(crate) fn reborrow(&mut self) -> Connection<'_> {
        match self {
            Connection::Postgres(conn) => Connection::Postgres(conn),
            Connection::Sqlite(conn) => Connection::Sqlite(conn),
        }
    }
}

impl<'c> From<&'c mut sqlx::PgConnection> for Connection<'c> {
    fn from(conn: &'c mut sqlx::PgConnection) -> Self {
        Connection::Postgres(conn)
    }
}

impl<'c> From<&'c mut sqlx::SqliteConnection> for Connection<'c> {
    fn from(conn: &'c mut sqlx::SqliteConnection) -> Self {
        Connection::Sqlite(conn)
    }
}

/// The PostgreSQL setting the row-level security policies read: the
/// organization ids (comma-separated) a transaction may see and write.
const ORGANIZATION_SETTING: &str = "accubooks.organization";

/// The setting that lets a login transaction read the user rows of one
/// e-mail address, before the organization is known.
const LOGIN_SETTING: &str = "accubooks.login_email";

/// The setting of the job machinery's own transactions (the relay, the
/// workers' claims, the scheduler): they may see the jobs and recurring
/// templates of every organization, and nothing else of theirs.
const WORKER_SETTING: &str = "accubooks.worker";

/// How long PostgreSQL lets a (non-snapshot) transaction of ours wait on
/// the application between statements. Ours never wait on anything but
/// their own next statement, so only a hung or stopped process reaches it.
const IDLE_IN_TRANSACTION: &str = "10s";

/// Opens transactions scoped for row-level security. On PostgreSQL the
/// scope is a transaction-local setting (`set_config(…, true)`), so it ends
/// with the transaction and a pooled connection never carries it to another
/// request; a query outside such a transaction sees no organization's rows.
/// SQLite has no row-level security: there the scope is only the `WHERE
/// organization_id = …` every query carries anyway.
pub(crate) trait BeginScoped {
    /// The backend.
    type Db: sqlx::Database;

    /// Opens a transaction with this scope.
    fn begin_scoped(
        &self,
        scope: Scope<'_>,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;

    /// A transaction that sees the rows of `organizations` (one id, or
    /// several joined by commas).
    fn begin_for(
        &self,
        organizations: &str,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send
    {
        self.begin_scoped(Scope::Organizations(organizations))
    }

    /// A transaction of `organizations` that reads, then writes on what it
    /// read; on SQLite it takes the write lock up front, as
    /// [`BeginScoped::begin_for_worker_writing`] does.
    fn begin_writing_for(
        &self,
        organizations: &str,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send
    {
        self.begin_scoped(Scope::OrganizationsWriting(organizations))
    }

    /// A read-only transaction over one consistent snapshot of the rows of
    /// `organization`, for reads made of several queries (an export).
    fn begin_snapshot_for(
        &self,
        organization: &str,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send
    {
        self.begin_scoped(Scope::Snapshot(organization))
    }

    /// A transaction of the job machinery, which sees the jobs and recurring
    /// templates of every organization.
    fn begin_for_worker(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send
    {
        self.begin_scoped(Scope::Worker)
    }

    /// A worker transaction that reads, then writes on what it read. On
    /// SQLite it takes the write lock up front (`BEGIN IMMEDIATE`): a
    /// deferred one would fail at its first write (`SQLITE_BUSY`) whenever
    /// another connection wrote after its first read.
    fn begin_for_worker_writing(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send
    {
        self.begin_scoped(Scope::WorkerWriting)
    }

    /// A transaction that sees the user rows of one e-mail address.
    fn begin_for_login(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send
    {
        self.begin_scoped(Scope::Login(email))
    }
}

/// What a transaction may see.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// The rows of these organizations (ids joined by commas).
    Organizations(&'a str),
    /// The same, for a read followed by a write.
    OrganizationsWriting(&'a str),
    /// One organization's rows, read-only, on one snapshot.
    Snapshot(&'a str),
    /// The user rows of one e-mail address.
    Login(&'a str),
    /// The job machinery's view: jobs and templates of every organization.
    Worker,
    /// The same view, for a read followed by a write.
    WorkerWriting,
}

impl BeginScoped for sqlx::PgPool {
    type Db = sqlx::Postgres;

    fn begin_scoped(
        &self,
        scope: Scope<'_>,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        let (setting, value, snapshot) = match scope {
            Scope::Organizations(ids) | Scope::OrganizationsWriting(ids) => {
                (ORGANIZATION_SETTING, ids, false)
            }
            Scope::Snapshot(id) => (ORGANIZATION_SETTING, id, true),
            Scope::Login(email) => (LOGIN_SETTING, email, false),
            Scope::Worker | Scope::WorkerWriting => (WORKER_SETTING, "on", false),
        };
        let (pool, value) = (self.clone(), value.to_owned());
        async move {
            let mut tx = pool.begin().await?;
            if snapshot {
                // Must precede every query of the transaction, set_config's too.
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
            }
            // A writing transaction that waits on its client longer than this
            // is ended by PostgreSQL: a process that hangs or is stopped
            // mid-transaction (it then rolls back) cannot hold its row locks
            // against every other instance. Not for snapshots: an export's
            // transaction waits on its slow reader by design.
            let idle = if snapshot { "0" } else { IDLE_IN_TRANSACTION };
            sqlx::query(
                "SELECT set_config($1, $2, true), \
                 set_config('idle_in_transaction_session_timeout', $3, true)",
            )
            .bind(setting)
            .bind(value)
            .bind(idle)
            .execute(&mut *tx)
            .await?;
            Ok(tx)
        }
    }
}

impl BeginScoped for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;

    /// Every scope is a plain transaction (the queries' own conditions are
    /// the scope, and in WAL mode a read transaction keeps the snapshot of
    /// its first read), but a worker's read-then-write takes the write lock
    /// at once.
    fn begin_scoped(
        &self,
        scope: Scope<'_>,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        let pool = self.clone();
        async move {
            match scope {
                Scope::WorkerWriting | Scope::OrganizationsWriting(_) => {
                    pool.begin_with("BEGIN IMMEDIATE").await
                }
                _ => pool.begin().await,
            }
        }
    }
}

/// A list of values bound as ONE parameter, however long: an array on
/// PostgreSQL, JSON text on SQLite (read back with `json_each`). A list of
/// one placeholder per value stops at 65,535 bound values on PostgreSQL
/// (a protocol error) and 32,766 on SQLite, so lists whose length a client
/// decides are always bound this way, with [`in_list`] in the SQL.
#[derive(Debug, Clone)]
pub(crate) struct List<T>(pub Vec<T>);

impl<T> sqlx::Type<sqlx::Postgres> for List<T>
where
    Vec<T>: sqlx::Type<sqlx::Postgres>,
{
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <Vec<T> as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl<'q, T> sqlx::Encode<'q, sqlx::Postgres> for List<T>
where
    Vec<T>: sqlx::Encode<'q, sqlx::Postgres>,
{
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        self.0.encode_by_ref(buf)
    }
}

impl<T> sqlx::Type<sqlx::Sqlite> for List<T> {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

impl<T: serde::Serialize> sqlx::Encode<'_, sqlx::Sqlite> for List<T> {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Sqlite as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'_, sqlx::Sqlite>>::encode(serde_json::to_string(&self.0)?, buf)
    }
}

/// `column` is one of the values of the [`List`] bound as `$n`:
/// `column = ANY($n)` on PostgreSQL, a `json_each` sub-select on SQLite.
/// `pool` is a [`crate::db::Pool`] or either backend's own pool.
pub(crate) fn in_list(pool: &impl Backend, column: &str, n: usize) -> String {
    if pool.is_postgres() {
        format!("{column} = ANY(${n})")
    } else {
        format!("{column} IN (SELECT value FROM json_each(${n}))")
    }
}

/// Which backend a pool talks to, for the few statements written for each.
pub(crate) trait Backend {
    /// PostgreSQL rather than SQLite.
    fn is_postgres(&self) -> bool;
}

impl Backend for crate::db::Pool {
    fn is_postgres(&self) -> bool {
        matches!(self, crate::db::Pool::Postgres(_))
    }
}

impl Backend for Connection<'_> {
    fn is_postgres(&self) -> bool {
        matches!(self, Connection::Postgres(_))
    }
}

impl Backend for sqlx::PgConnection {
    fn is_postgres(&self) -> bool {
        true
    }
}

impl Backend for sqlx::SqliteConnection {
    fn is_postgres(&self) -> bool {
        false
    }
}

impl Backend for sqlx::PgPool {
    fn is_postgres(&self) -> bool {
        true
    }
}

impl Backend for sqlx::SqlitePool {
    fn is_postgres(&self) -> bool {
        false
    }
}

/// `$first, $first+1, …` placeholders for `count` values.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows of `width` placeholders each, numbered from `first`:
/// `($1, $2), ($3, $4)`.
pub(crate) fn value_rows(first: usize, rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(first + r * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The unique constraints the books rely on to refuse a second write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unique {
    /// An `Idempotency-Key` of the organization, already taken.
    IdempotencyKey,
    /// A second reversal of one entry.
    Reversal,
    /// An e-mail address of another user.
    Email,
    /// An account code of the organization.
    AccountCode,
    /// Any other.
    Other,
}

/// Which unique constraint a query error violated, if it is such a
/// violation. PostgreSQL names the constraint; SQLite names only the
/// columns, in its message (`UNIQUE constraint failed: table.column, …`),
/// which is all it offers.
pub(crate) fn unique_violation(err: &sqlx::Error) -> Option<Unique> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    if db.kind() != sqlx::error::ErrorKind::UniqueViolation {
        return None;
    }
    let target = match db.constraint() {
        Some(constraint) => constraint.to_owned(),
        None => db
            .message()
            .strip_prefix("UNIQUE constraint failed: ")
            .unwrap_or_default()
            .replace('.', "_"),
    };
    Some(if target.starts_with("idempotency_keys") {
        Unique::IdempotencyKey
    } else if target.starts_with("journal_entries_revers") {
        Unique::Reversal
    } else if target.starts_with("users_email") {
        Unique::Email
    } else if target.starts_with("accounts_organization_id") {
        Unique::AccountCode
    } else {
        Unique::Other
    })
}

/// `column` (a record's metadata) holds every key and value of the
/// metadata bound as `$n` (its JSON object as text): containment on
/// PostgreSQL (which a GIN index on the column answers), each pair of the
/// object compared with `json_extract` on SQLite. Keys are
/// `[a-z0-9_.-]` (`crate::metadata`), so they quote safely in a JSON path.
pub(crate) fn has_metadata(pool: &impl Backend, column: &str, n: usize) -> String {
    if pool.is_postgres() {
        format!("{column} @> CAST(${n} AS JSONB)")
    } else {
        format!(
            "NOT EXISTS (SELECT 1 FROM json_each(${n}) f \
             WHERE json_extract({column}, '$.\"' || f.key || '\"') IS NOT f.value)"
        )
    }
}

/// The placeholder `$n` of a JSON value stored in a metadata column: cast
/// to `JSONB` on PostgreSQL, as it is (text) on SQLite.
pub(crate) fn json_param(pool: &impl Backend, n: usize) -> String {
    if pool.is_postgres() {
        format!("CAST(${n} AS JSONB)")
    } else {
        format!("${n}")
    }
}

/// The organization a record belongs to, looked up across organizations
/// (a provider's webhook names only its own id, and arrives with no
/// caller): `sql` selects `organization_id` by the record's key `$1`.
/// `None` when no such record is there.
pub(crate) async fn owner_of(
    db: &crate::db::Database,
    sql: &'static str,
    key: &str,
) -> crate::error::Result<Option<crate::organization::OrganizationId>> {
    let key = key.to_owned();
    db.run(|pool| async move {
        on_pool!(pool, p => {
            let mut tx = p.begin_for_worker().await?;
            let owner = sqlx::query_scalar(sql)
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(owner)
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list far longer than SQLite's 32,766 bound values is one value.
    #[tokio::test]
    async fn a_list_of_any_length_is_one_bound_value() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let ids: Vec<i64> = (1..=70_000).collect();
        let sql = format!(
            "SELECT count(*), sum(value) FROM json_each($1) WHERE {}",
            in_list(&pool, "value", 1)
        );
        let (count, sum): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(List(ids))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((count, sum), (70_000, 70_000 * 70_001 / 2));
        assert_eq!(
            in_list(&crate::db::Pool::Sqlite(pool), "id", 3),
            "id IN (SELECT value FROM json_each($3))"
        );
    }

    #[test]
    fn placeholder_lists() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
        assert_eq!(value_rows(1, 2, 2), "($1, $2), ($3, $4)");
    }
}
