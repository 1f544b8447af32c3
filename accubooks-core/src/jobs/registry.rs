//! What the engine runs, as the features register it: queues, kinds of job
//! with their handlers, and periodic tasks. The engine names none of them:
//! each feature declares its queue and kinds next to its jobs and registers
//! them in one function, the way `crates_io_worker` leaves naming jobs to
//! the service.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Serialize, Serializer};

use super::{JobContext, JobFailure, Jobs};
use crate::db::Database;
use crate::deps::Registry;
use crate::jobs::redis_client::RedisClient;
use crate::metrics::Metrics;

/// A queue: a name that a feature declares next to its jobs
/// (`payroll::QUEUE`) and that becomes known once a kind on it is
/// registered. Each queue has its own workers, Redis stream, counts and
/// metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(value_type = String, example = "report-generation")]
pub struct Queue(&'static str);

/// The queues registered in this process, in registration order: what
/// [`Queue::parse`] knows.
static KNOWN: RwLock<Vec<Queue>> = RwLock::new(Vec::new());

impl Queue {
    /// The queue called `name` (declare it as a constant next to its jobs).
    pub const fn new(name: &'static str) -> Self {
        Queue(name)
    }

    /// The queue's name.
    pub const fn as_str(self) -> &'static str {
        self.0
    }

    /// The registered queue called `name` (a stored job's queue, a query
    /// filter); `None` for a name no kind of job is registered on.
    pub fn parse(name: &str) -> Option<Queue> {
        KNOWN
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .find(|q| q.0 == name)
    }

    fn make_known(self) {
        let mut known = KNOWN.write().unwrap_or_else(PoisonError::into_inner);
        if !known.contains(&self) {
            known.push(self);
        }
    }
}

impl Serialize for Queue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl std::fmt::Display for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// What the engine itself holds, handed to every handler and periodic
/// task. Anything a feature needs beyond it (its ledger, a provider's
/// client, a setting) its handler captures when the feature registers it.
/// Cheap to clone.
#[derive(Clone)]
pub struct JobEnv {
    inner: Arc<EnvInner>,
}

struct EnvInner {
    database: Database,
    jobs: Jobs,
    metrics: Metrics,
    registry: Arc<Registry>,
    redis: RedisClient,
}

impl JobEnv {
    /// The context of an instance's jobs.
    pub(crate) fn new(
        database: Database,
        jobs: Jobs,
        metrics: Metrics,
        registry: Arc<Registry>,
        redis: RedisClient,
    ) -> Self {
        JobEnv {
            inner: Arc::new(EnvInner {
                database,
                jobs,
                metrics,
                registry,
                redis,
            }),
        }
    }

    /// The database, where jobs are kept, through the jobs' own share of
    /// its connections (`DB_POOL_JOBS`): a handler's statements go here, so
    /// they never wait for the requests' connections nor make them wait.
    pub fn database(&self) -> &Database {
        &self.inner.database
    }

    /// The job machinery (to wake a queue after recording jobs).
    pub fn jobs(&self) -> &Jobs {
        &self.inner.jobs
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The dependency registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The Redis connection.
    pub fn redis(&self) -> &RedisClient {
        &self.inner.redis
    }
}

/// Runs the jobs of one kind. Must be idempotent: a job can run again after
/// its worker died, so its effect must be keyed by its unit of work.
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one job.
    fn run<'a>(
        &'a self,
        env: &'a JobEnv,
        job: &'a JobContext,
    ) -> BoxFuture<'a, Result<(), JobFailure>>;
}

impl<F> JobHandler for F
where
    F: for<'a> Fn(&'a JobEnv, &'a JobContext) -> BoxFuture<'a, Result<(), JobFailure>>
        + Send
        + Sync
        + 'static,
{
    fn run<'a>(
        &'a self,
        env: &'a JobEnv,
        job: &'a JobContext,
    ) -> BoxFuture<'a, Result<(), JobFailure>> {
        self(env, job)
    }
}

/// A handler from an async function of owned arguments (simpler to write
/// than a [`JobHandler`] with borrowed ones):
/// `jobs::from_fn(|env, job| async move { … })`.
pub fn from_fn<F, Fut>(f: F) -> impl JobHandler
where
    F: Fn(JobEnv, JobContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), JobFailure>> + Send + 'static,
{
    struct FromFn<F>(F);
    impl<F, Fut> JobHandler for FromFn<F>
    where
        F: Fn(JobEnv, JobContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), JobFailure>> + Send + 'static,
    {
        fn run<'a>(
            &'a self,
            env: &'a JobEnv,
            job: &'a JobContext,
        ) -> BoxFuture<'a, Result<(), JobFailure>> {
            Box::pin((self.0)(env.clone(), job.clone()))
        }
    }
    FromFn(f)
}

/// A handler that keeps `state` (what its feature captured when it
/// registered: its ledger, a provider's client, a setting) and runs `run`
/// on it, without a clone per job: `run` is a function such as
/// `fn run<'a>(ledger: &'a Ledger, env: &'a JobEnv, job: &'a JobContext)
/// -> BoxFuture<'a, Result<(), JobFailure>>`.
pub fn with_state<S, F>(state: S, run: F) -> impl JobHandler
where
    S: Send + Sync + 'static,
    F: for<'a> Fn(&'a S, &'a JobEnv, &'a JobContext) -> BoxFuture<'a, Result<(), JobFailure>>
        + Send
        + Sync
        + 'static,
{
    struct WithState<S, F>(S, F);
    impl<S, F> JobHandler for WithState<S, F>
    where
        S: Send + Sync + 'static,
        F: for<'a> Fn(&'a S, &'a JobEnv, &'a JobContext) -> BoxFuture<'a, Result<(), JobFailure>>
            + Send
            + Sync
            + 'static,
    {
        fn run<'a>(
            &'a self,
            env: &'a JobEnv,
            job: &'a JobContext,
        ) -> BoxFuture<'a, Result<(), JobFailure>> {
            (self.1)(&self.0, env, job)
        }
    }
    WithState(state, run)
}

/// A task the engine runs now and then while the instance lives, once the
/// database is available and migrated (a scheduler, a purge).
pub(crate) struct Periodic {
    pub name: &'static str,
    /// The wait before the first run (zero: at start).
    pub first: Duration,
    /// The wait between the end of a run and the next.
    pub every: Duration,
    /// A signal that runs the task before `every` has passed (not sooner
    /// than [`WOKEN_GAP`] after the last run).
    pub woken_by: Option<tokio::sync::watch::Receiver<u64>>,
    pub task: Box<dyn Fn(JobEnv) -> BoxFuture<'static, ()> + Send + Sync>,
}

/// The least time between two runs of a periodic task that a signal woke:
/// under a stream of signals the task runs about this often, not once per
/// signal.
pub(crate) const WOKEN_GAP: Duration = Duration::from_millis(20);

/// The kinds of job, their queues and the periodic tasks of an instance,
/// as the features and the host register them.
#[derive(Default)]
pub struct JobRegistry {
    queues: Vec<Queue>,
    kinds: HashMap<&'static str, (Queue, Arc<dyn JobHandler>)>,
    periodic: Vec<Periodic>,
}

impl JobRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        JobRegistry::default()
    }

    /// Registers the handler of the jobs of `kind`, worked on `queue` (which
    /// becomes known, after those registered before it). A kind registered
    /// again gets the later handler.
    pub fn kind(&mut self, kind: &'static str, queue: Queue, handler: impl JobHandler) {
        self.kind_arc(kind, queue, Arc::new(handler));
    }

    pub(crate) fn kind_arc(
        &mut self,
        kind: &'static str,
        queue: Queue,
        handler: Arc<dyn JobHandler>,
    ) {
        if !self.queues.contains(&queue) {
            self.queues.push(queue);
        }
        queue.make_known();
        self.kinds.insert(kind, (queue, handler));
    }

    /// Registers a task run `first` after start, then again `every` after
    /// each run ended, while the database is available and migrated, until
    /// the instance stops. The task reports its own failures.
    pub fn periodic<F, Fut>(
        &mut self,
        name: &'static str,
        first: Duration,
        every: Duration,
        task: F,
    ) where
        F: Fn(JobEnv) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.push_periodic(name, first, every, None, task);
    }

    /// Like [`JobRegistry::periodic`], also run soon after each change of
    /// `woken_by` (say, the committer's [`commits`](crate::ledger::Committer::commits)).
    pub fn periodic_woken<F, Fut>(
        &mut self,
        name: &'static str,
        every: Duration,
        woken_by: tokio::sync::watch::Receiver<u64>,
        task: F,
    ) where
        F: Fn(JobEnv) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.push_periodic(name, Duration::ZERO, every, Some(woken_by), task);
    }

    fn push_periodic<F, Fut>(
        &mut self,
        name: &'static str,
        first: Duration,
        every: Duration,
        woken_by: Option<tokio::sync::watch::Receiver<u64>>,
        task: F,
    ) where
        F: Fn(JobEnv) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.periodic.push(Periodic {
            name,
            first,
            every,
            woken_by,
            task: Box::new(move |env| Box::pin(task(env))),
        });
    }

    /// The registered queues, in registration order.
    pub fn queues(&self) -> &[Queue] {
        &self.queues
    }

    pub(crate) fn into_parts(self) -> (Vec<Queue>, Kinds, Vec<Periodic>) {
        (self.queues, self.kinds, self.periodic)
    }
}

/// The handler and queue of each kind.
pub(crate) type Kinds = HashMap<&'static str, (Queue, Arc<dyn JobHandler>)>;
