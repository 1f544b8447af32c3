//! The database: a lazily connected sqlx pool (PostgreSQL or SQLite, chosen by
//! `DATABASE_URL`), its probe, its migrations and the guard every query goes
//! through.
//!
//! Creating a [`Database`] performs no I/O. Migrations run the first time the
//! probe reaches the server. [`Database::run`] is the guard: it refuses at
//! once while the outage is known, bounds every operation by the statement
//! timeout, and feeds connection-class failures back into the registry.
//!
//! A PostgreSQL `DATABASE_URL` may list several hosts, as libpq's do
//! (`postgres://u:p@h1:5432,h2:5432/db`): a primary and its standbys. sqlx
//! connects to one host, so while the database is down the probe looks for
//! the host that accepts writes (`pg_is_in_recovery()` false), in the
//! listed order from the current one, and points the pool's new connections
//! there; connections opened before the switch are discarded as they come
//! back. A write that reaches a read-only server counts as a fault, so a
//! demoted primary is left the same way.
//!
//! Jobs have their own share of the connections (`DB_POOL_JOBS` of
//! `DB_POOL_MAX`): [`Database::jobs`] is a handle on the same database, with
//! the same guard, hosts and switch, whose operations take connections from
//! a sibling pool, so a flood of jobs waits for its own connections and
//! never for the requests'. A job's operation takes a turn (one per
//! connection of the share) before its time limit starts, so jobs queue
//! rather than time out; the jobs' pool timing out is a reason to probe,
//! not an outage in itself.
//!
//! A second [`Database`], made by [`Database::reports`], is the standby
//! that reports read from (`DATABASE_REPORTS_URL`): no migrations (the
//! primary's reach it by replication), any listed host that answers will
//! do, and its probe fails while it replays more than `REPORTS_MAX_LAG_MS`
//! behind what it has received, so reports go to the primary meanwhile.

pub mod sql;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use secrecy::ExposeSecret;
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use tokio::task::JoinHandle;

use crate::config::{DatabaseUrl, PoolConfig, ReportsDatabase};
use crate::deps::{Dependency, Probe};
use crate::error::{Error, Fault, Result};
use crate::health::Event;

/// A pool of either backend. Cloning is cheap.
#[derive(Clone, Debug)]
pub enum Pool {
    /// PostgreSQL, the production store.
    Postgres(PgPool),
    /// SQLite, the embedded default.
    Sqlite(SqlitePool),
}

impl Pool {
    /// Closes every connection and refuses new ones.
    pub async fn close(&self) {
        match self {
            Pool::Postgres(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }

    /// Which backend this is, for logs and health.
    pub fn backend(&self) -> &'static str {
        match self {
            Pool::Postgres(_) => "postgres",
            Pool::Sqlite(_) => "sqlite",
        }
    }
}

/// The database and its guard, through one of its shares of connections.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
    share: Share,
}

/// Whose connections a [`Database`] handle's operations take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    /// The requests' (and the committer's, the probe's, the migrations').
    Requests,
    /// The jobs' own: their engine's statements and their handlers'.
    Jobs,
}

impl Share {
    /// Its name, as the metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Share::Requests => "requests",
            Share::Jobs => "jobs",
        }
    }
}

/// A share's connections at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSize {
    /// Whose they are.
    pub share: Share,
    /// Connections open, in use or idle.
    pub open: u32,
    /// Of those, idle in the pool.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

struct Inner {
    /// The requests' connections: the probe and the migrations use them.
    pool: Pool,
    /// The jobs' connections (`None` when `DB_POOL_JOBS` is 0: then they
    /// take the requests').
    jobs_pool: Option<Pool>,
    /// One turn per connection of the jobs' pool: an operation of theirs
    /// takes one before its time limit starts.
    jobs_turns: Option<tokio::sync::Semaphore>,
    config: PoolConfig,
    migrated: AtomicBool,
    migration: tokio::sync::Mutex<Option<JoinHandle<Result<(), Fault>>>>,
    dependency: std::sync::OnceLock<Arc<Dependency>>,
    /// PostgreSQL: the hosts of `DATABASE_URL`, in order (one when a single
    /// host is given), and the index of the one new connections go to.
    hosts: Vec<PgConnectOptions>,
    primary: AtomicUsize,
    /// When the probe last found a host after an outage: connections
    /// opened before are discarded.
    switched: Arc<std::sync::Mutex<Option<Instant>>>,
    role: Role,
}

/// What a database is for.
#[derive(Clone, Copy)]
enum Role {
    /// The books: writes go here, migrations run here.
    Primary,
    /// A standby that reports read from, unless it lags by more than this.
    Reports { max_lag: Duration },
}

impl Database {
    /// Creates the pool without connecting.
    pub fn new(url: &DatabaseUrl, config: PoolConfig) -> Result<Self> {
        Self::open(url, config, Role::Primary)
    }

    /// The standby that reports read from, created without connecting.
    pub fn reports(standby: &ReportsDatabase, config: PoolConfig) -> Result<Self> {
        let url = DatabaseUrl::Postgres(standby.url.clone());
        let role = Role::Reports {
            max_lag: standby.max_lag,
        };
        let database = Self::open(&url, config, role)?;
        // Its schema is the primary's, replicated.
        database.inner.migrated.store(true, Ordering::Release);
        Ok(database)
    }

    fn open(url: &DatabaseUrl, config: PoolConfig, role: Role) -> Result<Self> {
        let hosts = match url {
            DatabaseUrl::Postgres(url) => crate::config::postgres_hosts(url.expose_secret())
                .ok_or_else(|| {
                    Error::Setup("DATABASE_URL is not a valid PostgreSQL URL".to_owned())
                })?,
            DatabaseUrl::Sqlite(_) => Vec::new(),
        };
        let switched = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let (requests, jobs) = config.shares();
        // Both shares are built alike: the same hosts, the same discard of
        // connections older than the last switch, the same SQLite settings
        // (WAL, one writer at a time, waiting `busy_timeout` for the lock).
        let open_share = |share: (u32, u32)| -> Result<Pool> {
            Ok(match url {
                DatabaseUrl::Postgres(_) => {
                    let since = switched.clone();
                    let options = pool_options(&config, share).before_acquire(move |_, meta| {
                        // A connection opened before the last switch of hosts
                        // may lead to the old primary: drop it.
                        let stale = since
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .is_some_and(|at| meta.age > at.elapsed());
                        Box::pin(async move { Ok(!stale) })
                    });
                    Pool::Postgres(options.connect_lazy_with(hosts[0].clone()))
                }
                DatabaseUrl::Sqlite(url) => {
                    let connect = SqliteConnectOptions::from_str(url)
                        .map_err(|_| {
                            Error::Setup("DATABASE_URL is not a valid SQLite URL".to_owned())
                        })?
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        // WAL with NORMAL is durable against process crashes; FULL
                        // also survives power loss, which acknowledged writes need.
                        .synchronous(SqliteSynchronous::Full)
                        .foreign_keys(true)
                        .busy_timeout(config.statement_timeout);
                    Pool::Sqlite(pool_options(&config, share).connect_lazy_with(connect))
                }
            })
        };
        let pool = open_share(requests)?;
        let jobs_pool = jobs.map(open_share).transpose()?;
        let jobs_turns = jobs.map(|(_, max)| tokio::sync::Semaphore::new(max as usize));
        Ok(Database {
            share: Share::Requests,
            inner: Arc::new(Inner {
                pool,
                jobs_pool,
                jobs_turns,
                config,
                migrated: AtomicBool::new(false),
                migration: tokio::sync::Mutex::new(None),
                dependency: std::sync::OnceLock::new(),
                hosts,
                primary: AtomicUsize::new(0),
                switched,
                role,
            }),
        })
    }

    /// Connects the guard to the registry entry it reports to. Called once
    /// by the application builder.
    pub(crate) fn attach(&self, dependency: Arc<Dependency>) {
        let _ = self.inner.dependency.set(dependency);
    }

    /// The same database, whose operations take the jobs' connections
    /// (`DB_POOL_JOBS`; the requests' when it is 0). Everything else is
    /// shared: the guard and its registry entry, the hosts and the switch
    /// between them, the migrations.
    pub fn jobs(&self) -> Database {
        Database {
            inner: Arc::clone(&self.inner),
            share: Share::Jobs,
        }
    }

    /// The same database through the requests' connections: for the few
    /// small statements that must not wait behind jobs (the renewal of the
    /// jobs' leases).
    pub(crate) fn requests(&self) -> Database {
        Database {
            inner: Arc::clone(&self.inner),
            share: Share::Requests,
        }
    }

    /// Whose connections this handle takes.
    pub fn share(&self) -> Share {
        self.share
    }

    /// The pool of this handle's share, for code that has already passed
    /// the guard.
    pub fn pool(&self) -> &Pool {
        match (self.share, &self.inner.jobs_pool) {
            (Share::Jobs, Some(jobs)) => jobs,
            _ => &self.inner.pool,
        }
    }

    /// Each share's connections now, the requests' first (only theirs
    /// when jobs take the requests').
    pub fn pool_sizes(&self) -> Vec<PoolSize> {
        let (requests, jobs) = self.inner.config.shares();
        let size = |share, pool: &Pool, max| {
            let (open, idle) = match pool {
                Pool::Postgres(pool) => (pool.size(), pool.num_idle()),
                Pool::Sqlite(pool) => (pool.size(), pool.num_idle()),
            };
            PoolSize {
                share,
                open,
                idle: u32::try_from(idle).unwrap_or(u32::MAX),
                max,
            }
        };
        let mut sizes = vec![size(Share::Requests, &self.inner.pool, requests.1)];
        if let (Some(pool), Some((_, max))) = (&self.inner.jobs_pool, jobs) {
            sizes.push(size(Share::Jobs, pool, max));
        }
        sizes
    }

    /// Whether the probe last found the database available (false before
    /// it is attached to its registry entry).
    pub fn is_available(&self) -> bool {
        self.inner
            .dependency
            .get()
            .is_some_and(|dependency| dependency.is_available())
    }

    /// Whether migrations have been applied.
    pub fn is_migrated(&self) -> bool {
        self.inner.migrated.load(Ordering::Acquire)
    }

    /// Runs `operation` against the pool, guarded:
    ///
    /// - while the database is known to be down, fails at once with
    ///   [`Error::DatabaseUnavailable`] without touching the pool;
    /// - an operation that takes longer than `DB_STATEMENT_TIMEOUT_MS` is
    ///   abandoned with [`Error::StatementTimedOut`]; it asks for a probe
    ///   but is not itself an outage (only connection-class errors and
    ///   probes are);
    /// - a connection-class error marks the database unavailable at once and
    ///   becomes [`Error::DatabaseUnavailable`];
    /// - an operation still running (or waiting for a pooled connection)
    ///   when the database becomes known to be down is abandoned at once
    ///   with [`Error::DatabaseUnavailable`];
    /// - any other database error is returned as [`Error::Query`].
    pub async fn run<T, F, Fut>(&self, operation: F) -> Result<T>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.run_within(self.inner.config.statement_timeout, operation)
            .await
    }

    /// [`Database::run`] with another time limit, for operations that are
    /// long by nature (exports of whole books).
    pub async fn run_within<T, F, Fut>(&self, limit: Duration, operation: F) -> Result<T>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.guarded(limit, true, operation).await
    }

    /// [`Database::run`] for the committer's group transactions, which are
    /// not abandoned when an outage is declared meanwhile: their answer
    /// acknowledges a commit, so they end only by committing or by failing
    /// (a connection error, the time limit).
    pub(crate) async fn run_to_completion<T, F, Fut>(&self, operation: F) -> Result<T>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.guarded(self.inner.config.statement_timeout, false, operation)
            .await
    }

    /// Waits for `begin` (taking a pooled connection and opening a
    /// transaction, so nothing is written yet) unless an outage is declared
    /// meanwhile: then fails at once, as a pool timeout would after
    /// `DB_CONNECT_TIMEOUT_MS`. For operations that are not abandoned
    /// otherwise ([`Database::run_to_completion`]).
    pub(crate) async fn begin_unless_down<T>(
        &self,
        begin: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        match self.inner.dependency.get() {
            Some(dep) => tokio::select! {
                biased;
                begun = begin => begun,
                () = dep.until_unavailable() => Err(sqlx::Error::PoolTimedOut),
            },
            None => begin.await,
        }
    }

    async fn guarded<T, F, Fut>(
        &self,
        limit: Duration,
        abandon_on_outage: bool,
        operation: F,
    ) -> Result<T>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let dependency = self.inner.dependency.get();
        if let Some(dep) = dependency
            && !dep.is_available()
        {
            let fault = dep
                .state()
                .last_error
                .unwrap_or(Fault::temporary("NOT_CONNECTED"));
            return Err(Error::DatabaseUnavailable(fault));
        }
        // Jobs wait for their turn at their own connections before their
        // time limit starts: however many run at once, a job's statement is
        // not abandoned for the queue in front of it, only for itself.
        let _turn = match (&self.inner.jobs_turns, self.share) {
            (Some(turns), Share::Jobs) => match dependency {
                Some(dep) => tokio::select! {
                    biased;
                    turn = turns.acquire() => turn.ok(),
                    () = dep.until_unavailable() => {
                        let fault = dep.state().last_error.unwrap_or(Fault::temporary("NOT_CONNECTED"));
                        return Err(Error::DatabaseUnavailable(fault));
                    }
                },
                None => turns.acquire().await.ok(),
            },
            _ => None,
        };
        let work = tokio::time::timeout(limit, operation(self.pool().clone()));
        let outcome = match dependency.filter(|_| abandon_on_outage) {
            Some(dep) => tokio::select! {
                biased;
                outcome = work => outcome,
                () = dep.until_unavailable() => {
                    let fault = dep.state().last_error.unwrap_or(Fault::temporary("NOT_CONNECTED"));
                    return Err(Error::DatabaseUnavailable(fault));
                }
            },
            None => work.await,
        };
        match outcome {
            Ok(Ok(value)) => {
                if let Some(dep) = dependency {
                    dep.report_success();
                }
                Ok(value)
            }
            Ok(Err(sqlx::Error::PoolTimedOut)) if self.pool_is_the_jobs() => {
                // Even with a turn, the jobs' pool gave no connection within
                // DB_CONNECT_TIMEOUT_MS: they cannot be opened (an outage?)
                // or are held outside the guard. The probe, on the
                // requests' connections, tells which: requests are not
                // refused on the jobs' word.
                if let Some(dep) = dependency {
                    dep.report(Event::TrafficSuspect);
                }
                Err(Error::DatabaseUnavailable(Fault::TIMEOUT))
            }
            Ok(Err(err)) => match classify(&err) {
                Some(fault) => {
                    if let Some(dep) = dependency {
                        dep.report(Event::TrafficFailed(fault));
                    }
                    Err(Error::DatabaseUnavailable(fault))
                }
                None => {
                    // A protocol error is usually the statement's own (sqlx
                    // refuses more than 65,535 bound values this way), and
                    // a broken connection shows in the probe it asks for.
                    if let (Some(dep), sqlx::Error::Protocol(_)) = (dependency, &err) {
                        dep.report(Event::TrafficSuspect);
                    }
                    Err(Error::Query(err))
                }
            },
            Err(_elapsed) => {
                if let Some(dep) = dependency {
                    dep.report(Event::TrafficSuspect);
                }
                Err(Error::StatementTimedOut {
                    limit_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                })
            }
        }
    }

    /// Whether this handle's operations take a pool of their own, apart
    /// from the requests'.
    fn pool_is_the_jobs(&self) -> bool {
        self.share == Share::Jobs && self.inner.jobs_pool.is_some()
    }

    /// Closes the pools of every share.
    pub async fn close(&self) {
        self.inner.pool.close().await;
        if let Some(jobs) = &self.inner.jobs_pool {
            jobs.close().await;
        }
    }

    /// Checks the server without waiting inside the pool: an idle pooled
    /// connection is pinged when there is one; otherwise a fresh connection
    /// is opened. (The pool itself retries refused connections until its
    /// acquire timeout, which would turn "refused" into a slow "timeout".)
    async fn ping(&self) -> Result<(), Fault> {
        // During an outage the pooled connections are dead: check with a
        // fresh one, so the return is seen on the first probe after it.
        let fresh = !self
            .inner
            .dependency
            .get()
            .is_some_and(|dependency| dependency.is_available());
        let result = match &self.inner.pool {
            Pool::Postgres(pool) if fresh => return self.find_host(pool).await,
            Pool::Postgres(pool) => ping_one(pool, false).await,
            Pool::Sqlite(pool) => ping_one(pool, fresh).await,
        };
        result.map_err(|err| fault_of(&err))
    }

    /// Finds the host to send new connections to, from the current one on:
    /// for the books the one that accepts writes, for reports any that
    /// answers.
    async fn find_host(&self, pool: &PgPool) -> Result<(), Fault> {
        let hosts = &self.inner.hosts;
        let current = self.inner.primary.load(Ordering::Acquire);
        let mut first_fault = None;
        for offset in 0..hosts.len() {
            let index = (current + offset) % hosts.len();
            let answer = writable(&hosts[index], self.inner.config.connect_timeout).await;
            let fault = match (answer, self.inner.role) {
                (Ok(true), _) | (Ok(false), Role::Reports { .. }) => {
                    // Coming out of an outage, the pooled connections are
                    // dropped as they come back: they may lead to a server
                    // that died or was demoted, even under the same name (a
                    // managed service's writer endpoint moves by DNS).
                    *self
                        .inner
                        .switched
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                    if index != current {
                        self.inner.primary.store(index, Ordering::Release);
                        pool.set_connect_options(hosts[index].clone());
                        if let Some(Pool::Postgres(jobs)) = &self.inner.jobs_pool {
                            jobs.set_connect_options(hosts[index].clone());
                        }
                        tracing::warn!(
                            host = index + 1,
                            hosts = hosts.len(),
                            reports = matches!(self.inner.role, Role::Reports { .. }),
                            "the database answers on another host of its URL; \
                             new connections go there"
                        );
                    }
                    return Ok(());
                }
                (Ok(false), Role::Primary) => Fault::temporary("READ_ONLY"),
                (Err(err), _) => fault_of(&err),
            };
            first_fault.get_or_insert(fault);
        }
        Err(first_fault.unwrap_or(Fault::temporary("NO_HOST")))
    }

    /// Fails while a standby replays further behind than `max_lag`: what
    /// it received but has not applied yet is that old. (A standby with
    /// nothing left to replay is not behind, however long ago the last
    /// write was.)
    async fn check_lag(&self, max_lag: Duration) -> Result<(), Fault> {
        let Pool::Postgres(pool) = &self.inner.pool else {
            return Ok(());
        };
        let lag = sqlx::query_scalar::<_, i64>(
            "SELECT CAST(CASE WHEN NOT pg_is_in_recovery() \
                  OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
             ELSE COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()) \
                  * 1000, 0) END AS BIGINT)",
        )
        .fetch_one(pool);
        match tokio::time::timeout(self.inner.config.connect_timeout, lag).await {
            Ok(Ok(lag)) if u128::try_from(lag).unwrap_or(0) > max_lag.as_millis() => {
                Err(Fault::temporary("REPLICA_LAGGING"))
            }
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(fault_of(&err)),
            Err(_) => Err(Fault::TIMEOUT),
        }
    }

    async fn ensure_migrated(&self) -> Result<(), Fault> {
        if self.is_migrated() {
            return Ok(());
        }
        let mut slot = self.inner.migration.lock().await;
        if self.is_migrated() {
            return Ok(());
        }
        // The migration runs in its own task so that a probe timing out
        // while waiting does not abort it half-way; the next probe waits on
        // the same task.
        let pool = self.inner.pool.clone();
        let task = slot.get_or_insert_with(|| tokio::spawn(migrate(pool)));
        let result = task.await;
        *slot = None;
        match result {
            Ok(Ok(())) => {
                self.inner.migrated.store(true, Ordering::Release);
                tracing::info!(
                    backend = self.inner.pool.backend(),
                    "database migrations applied"
                );
                Ok(())
            }
            Ok(Err(fault)) => Err(fault),
            Err(_) => Err(Fault::permanent("MIGRATION_FAILED")),
        }
    }
}

impl Probe for Database {
    fn check(&self) -> BoxFuture<'_, Result<(), Fault>> {
        Box::pin(async move {
            self.ping().await?;
            match self.inner.role {
                Role::Primary => self.ensure_migrated().await,
                Role::Reports { max_lag } => self.check_lag(max_lag).await,
            }
        })
    }
}

async fn ping_one<DB>(pool: &sqlx::Pool<DB>, fresh: bool) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    use sqlx::Connection;
    match pool.try_acquire().filter(|_| !fresh) {
        Some(mut pooled) => pooled.ping().await,
        None => {
            let mut fresh = DB::Connection::connect_with(&*pool.connect_options()).await?;
            let result = fresh.ping().await;
            // Closing politely is best effort; the check already has its answer.
            let _ = fresh.close().await;
            result
        }
    }
}

/// Whether the server at `options` accepts writes (is not in recovery).
async fn writable(options: &PgConnectOptions, limit: Duration) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    let attempt = async {
        let mut connection = PgConnection::connect_with(options).await?;
        let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut connection)
            .await?;
        // Closing politely is best effort; the check already has its answer.
        let _ = connection.close().await;
        Ok(!in_recovery)
    };
    tokio::time::timeout(limit, attempt)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

fn fault_of(err: &sqlx::Error) -> Fault {
    classify(err).unwrap_or(Fault::temporary("QUERY_FAILED"))
}

/// The options of one share's pool, `(min, max)` connections.
fn pool_options<DB: sqlx::Database>(
    config: &PoolConfig,
    (min, max): (u32, u32),
) -> PoolOptions<DB> {
    PoolOptions::new()
        .min_connections(min)
        .max_connections(max)
        .acquire_timeout(config.connect_timeout)
        .idle_timeout(config.idle_timeout)
}

async fn migrate(pool: Pool) -> Result<(), Fault> {
    let result = match &pool {
        Pool::Postgres(pool) => {
            let result = sqlx::migrate!("migrations/postgres").run(pool).await;
            if result.is_ok() {
                warn_if_policies_are_bypassed(pool).await;
            }
            result
        }
        Pool::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await,
    };
    result.map_err(|err| {
        match &err {
            sqlx::migrate::MigrateError::Execute(inner) => {
                if let Some(fault) = classify(inner) {
                    return fault;
                }
                tracing::error!(error = %err, "a database migration failed");
            }
            _ => tracing::error!(error = %err, "database migrations cannot be applied"),
        }
        Fault::permanent("MIGRATION_FAILED")
    })
}

/// Row-level security keeps organizations apart only for roles it binds:
/// superusers and BYPASSRLS roles see every row. Say so once, at start-up.
async fn warn_if_policies_are_bypassed(pool: &PgPool) {
    let bypassed: Result<(String, bool), _> = sqlx::query_as(
        "SELECT current_user::text, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await;
    if let Ok((role, true)) = bypassed {
        tracing::warn!(
            %role,
            "the database role is a superuser or has BYPASSRLS, so PostgreSQL row-level security \
             does not separate organizations; connect as an ordinary role that owns the tables"
        );
    }
}

/// Sorts a sqlx error into "the database cannot be reached" (with a safe
/// code and its transience) or `None` for an error of the query itself.
pub fn classify(err: &sqlx::Error) -> Option<Fault> {
    match err {
        sqlx::Error::Io(io) => Some(Fault::from_io(io)),
        sqlx::Error::PoolTimedOut => Some(Fault::TIMEOUT),
        sqlx::Error::PoolClosed => Some(Fault::temporary("POOL_CLOSED")),
        sqlx::Error::WorkerCrashed => Some(Fault::temporary("CONNECTION_RESET")),
        sqlx::Error::Tls(_) => Some(Fault::permanent("TLS_FAILED")),
        sqlx::Error::Configuration(_) => Some(Fault::permanent("BAD_CONFIGURATION")),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            classify_sqlstate(&code)
        }
        _ => None,
    }
}

/// PostgreSQL SQLSTATEs that mean the connection, not the statement, failed.
/// SQLite's codes are numeric and never connection-class.
fn classify_sqlstate(code: &str) -> Option<Fault> {
    match code {
        "28P01" | "28000" => Some(Fault::permanent("AUTHENTICATION_FAILED")),
        "3D000" => Some(Fault::permanent("UNKNOWN_DATABASE")),
        "53300" => Some(Fault::temporary("TOO_MANY_CONNECTIONS")),
        "57P01" | "57P02" | "57P03" => Some(Fault::temporary("SERVER_SHUTTING_DOWN")),
        // A write reached a server in recovery (a standby, or a demoted
        // primary): the probe then looks for the host that accepts writes.
        "25006" => Some(Fault::temporary("READ_ONLY")),
        // SQLite: SQLITE_CANTOPEN (14) and SQLITE_IOERR (10) mean the file is gone.
        "14" => Some(Fault::permanent("CANNOT_OPEN")),
        "10" => Some(Fault::temporary("IO_ERROR")),
        _ if code.starts_with("08") => Some(Fault::temporary("CONNECTION_FAILURE")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Transience;

    #[test]
    fn connection_errors_are_classified_with_transience() {
        let refused = sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(
            classify(&refused),
            Some(Fault::temporary("CONNECTION_REFUSED"))
        );
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Some(Fault::TIMEOUT));
        assert_eq!(
            classify_sqlstate("28P01").map(|f| f.transience),
            Some(Transience::Permanent)
        );
        assert_eq!(
            classify_sqlstate("08006").map(|f| f.transience),
            Some(Transience::Temporary)
        );
        // Constraint violations are the query's fault, not the connection's.
        assert_eq!(classify_sqlstate("23505"), None);
        assert_eq!(classify(&sqlx::Error::RowNotFound), None);
    }

    /// The jobs' connections are taken out of `DB_POOL_MAX`: with all of
    /// them held outside the guard, a job's statement waits (and gives up
    /// after the connect timeout) while a request's is answered at once;
    /// jobs beyond the share wait for their turn without being abandoned.
    #[tokio::test]
    async fn jobs_wait_for_their_own_share_and_requests_do_not() {
        let dir = std::env::temp_dir().join(format!("accubooks-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = DatabaseUrl::Sqlite(format!("sqlite://{}/books.db", dir.display()));
        let vars = [
            ("DB_POOL_MAX", "3"),
            ("DB_CONNECT_TIMEOUT_MS", "300"),
            ("DB_STATEMENT_TIMEOUT_MS", "300"),
        ];
        let config = crate::Config::from_vars(vars.map(|(k, v)| (k.to_owned(), v.to_owned())))
            .unwrap()
            .pool;
        let db = Database::new(&url, config).unwrap();
        db.check().await.unwrap();
        let jobs = db.jobs();
        assert_eq!((db.share(), jobs.share()), (Share::Requests, Share::Jobs));
        let Pool::Sqlite(jobs_pool) = jobs.pool().clone() else {
            unreachable!()
        };
        let held = [
            jobs_pool.acquire().await.unwrap(),
            jobs_pool.acquire().await.unwrap(),
        ];
        let sizes: Vec<_> = db
            .pool_sizes()
            .iter()
            .map(|p| (p.share, p.open - p.idle, p.max))
            .collect();
        assert_eq!(
            sizes,
            [(Share::Requests, 0, 1), (Share::Jobs, 2, 2)],
            "(share, in use, max)"
        );
        let count = |pool: Pool| async move {
            let Pool::Sqlite(pool) = pool else {
                unreachable!()
            };
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM accounts")
                .fetch_one(&pool)
                .await
        };
        let started = Instant::now();
        assert_eq!(db.run(count).await.unwrap(), 0);
        assert!(started.elapsed() < Duration::from_millis(300));
        let waited = jobs.run(count).await.unwrap_err();
        assert!(
            matches!(waited, Error::DatabaseUnavailable(fault) if fault == Fault::TIMEOUT),
            "{waited:?}"
        );
        drop(held);
        assert_eq!(jobs.run(count).await.unwrap(), 0);
        // Eight jobs' operations of 200 ms each on two connections: the last
        // waits 600 ms for its turn, beyond the connect timeout and the
        // statement timeout, and none is abandoned for it.
        let slow = |pool: Pool| async move {
            let Pool::Sqlite(pool) = pool else {
                unreachable!()
            };
            let mut connection = pool.acquire().await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM accounts")
                .fetch_one(&mut *connection)
                .await
        };
        let started = Instant::now();
        let all = futures::future::join_all((0..8).map(|_| jobs.run(slow))).await;
        assert!(all.iter().all(|r| matches!(r, Ok(0))), "{all:?}");
        assert!(started.elapsed() >= Duration::from_millis(800));
        db.close().await;
        assert!(
            jobs_pool.is_closed(),
            "closing the database closes every share"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn sqlite_probe_migrates_once_and_guard_reports() {
        let dir = std::env::temp_dir().join(format!("accubooks-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = DatabaseUrl::Sqlite(format!("sqlite://{}/books.db", dir.display()));
        let config = crate::Config::from_vars(Vec::<(String, String)>::new())
            .unwrap()
            .pool;
        let db = Database::new(&url, config).unwrap();
        assert!(
            !db.is_migrated(),
            "creating the pool must not touch the database"
        );
        db.check().await.unwrap();
        assert!(db.is_migrated());
        db.check().await.unwrap();
        let tables: i64 = db
            .run(|pool| async move {
                let Pool::Sqlite(pool) = pool else {
                    unreachable!()
                };
                sqlx::query_scalar("SELECT count(*) FROM accounts")
                    .fetch_one(&pool)
                    .await
            })
            .await
            .unwrap();
        assert_eq!(tables, 0);
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
