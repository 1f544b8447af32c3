//! Background jobs that are never lost (contract section 6).
//!
//! A job is a row of the `jobs` table, inserted in the same transaction as
//! the change that asks for it (the outbox), and kept until it is done. How
//! it reaches a worker is the transport (`JOB_TRANSPORT`):
//!
//! - **redis**: a relay moves due rows to one Redis stream per queue, and
//!   every process reads its queues through one consumer group, so several
//!   processes share the work. A message whose reader died is taken over
//!   with `XAUTOCLAIM`; a stream lost with a Redis restart is refilled from
//!   the table. While Redis is down, the workers take due jobs straight
//!   from the table (as on the database transport) and go back to the
//!   streams when it returns.
//! - **database**: the workers take due rows straight from the table (the
//!   embedded default: one process on SQLite, no Redis).
//!
//! Either way a worker *claims* a job in the database before running it: a
//! lease (`JOB_LEASE_MS`, renewed while the job runs) that only one worker
//! can hold, so a message delivered twice runs once, and a job whose worker
//! died is run again once its lease has passed. Handlers make their effect
//! idempotent with a key of their unit of work (one invoice per template and
//! period, one entry per pay run), so a job run again never posts twice.
//! Failures are retried with exponential backoff when they are temporary and
//! end `dead` when they are not, or after `JOB_MAX_ATTEMPTS`; a dead job is
//! queued again by `POST /api/jobs/{id}/retry`.

pub mod redis_client;
mod registry;
pub(crate) mod store;
pub(crate) mod streams;
mod worker;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::config::{JobTransport, JobsConfig};
use crate::error::Transience;
use crate::health::report::{JobQueuesView, QueueView, QueuesStatus};
use crate::organization::OrganizationId;

pub use registry::{JobEnv, JobHandler, JobRegistry, Queue, from_fn, with_state};
pub(crate) use store::{
    get_job, hand_back, insert_job, insert_jobs, list_jobs, now_ms, record, retry_job,
};
pub(crate) use worker::{carrier_up, spawn};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Recorded in the outbox, not yet relayed (or, on the database
    /// transport, not yet taken).
    Pending,
    /// Relayed to its Redis stream.
    Queued,
    /// Held by a worker.
    Running,
    /// Done.
    Succeeded,
    /// Failed; will be retried.
    Failed,
    /// Gave up; `POST /api/jobs/{id}/retry` queues it again.
    Dead,
}

impl JobStatus {
    /// Every status.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Dead,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
        }
    }

    /// The status of a stored name.
    pub fn parse(name: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A job, as `GET /api/jobs/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Job {
    /// The job's id.
    pub id: i64,
    /// Its queue.
    pub queue: Queue,
    /// What it does, e.g. `recurring-invoice`.
    pub kind: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Why the last attempt failed, if it did.
    pub error: Option<JobError>,
}

/// Why a job's last attempt failed: a safe code, never a driver's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JobError {
    /// A stable upper-case code.
    pub code: String,
    /// `temporary` (retried) or `permanent`.
    pub kind: String,
}

/// A job to record, in the transaction of the change that asks for it.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its queue.
    pub queue: Queue,
    /// Its handler's kind.
    pub kind: &'static str,
    /// The unit of work: within an organization, a second job with the same
    /// key is the first one.
    pub unique_key: String,
    /// The handler's input.
    pub payload: serde_json::Value,
}

/// What a handler reports when a job cannot finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the job failed: {code} ({transience})")]
pub struct JobFailure {
    /// A stable upper-case code, shown in the job's `error`.
    pub code: &'static str,
    /// Temporary failures are retried; permanent ones end the job `dead`.
    pub transience: Transience,
}

impl JobFailure {
    /// A failure that a later attempt may not meet.
    pub const fn temporary(code: &'static str) -> Self {
        JobFailure {
            code,
            transience: Transience::Temporary,
        }
    }

    /// A failure no retry can fix.
    pub const fn permanent(code: &'static str) -> Self {
        JobFailure {
            code,
            transience: Transience::Permanent,
        }
    }
}

impl From<crate::Error> for JobFailure {
    fn from(err: crate::Error) -> Self {
        match err {
            crate::Error::DatabaseUnavailable(fault) => JobFailure {
                code: fault.code,
                transience: Transience::Temporary,
            },
            crate::Error::StatementTimedOut { .. } => JobFailure::temporary("STATEMENT_TIMEOUT"),
            // A query error may be a serialization conflict or a deadlock:
            // worth the bounded retries. Its text is for the log only.
            err => {
                tracing::warn!(error = %err, "a job's query failed");
                JobFailure::temporary("STORAGE_FAILED")
            }
        }
    }
}

/// A job as its handler gets it.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job's id.
    pub id: i64,
    /// The organization it works for.
    pub organization: OrganizationId,
    /// Its kind.
    pub kind: String,
    /// Its input.
    pub payload: serde_json::Value,
    /// This attempt's number, from 1.
    pub attempt: u32,
}

/// The counts of one queue, as the monitor last read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct QueueCounts {
    pub waiting: i64,
    pub running: i64,
    pub dead: i64,
    pub oldest_waiting_seconds: u64,
}

/// The counts of every queue (by registered position) and of the outbox.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts {
    pub queues: Vec<QueueCounts>,
    pub outbox: i64,
}

/// The job machinery of one instance: its handlers, its workers' state and
/// the monitor's counts. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    config: JobsConfig,
    /// This process's name as a job holder and stream consumer.
    owner: String,
    /// The registered queues, in registration order: per-queue state below
    /// is indexed by position in it.
    queues: Vec<Queue>,
    handlers: registry::Kinds,
    periodic: Vec<registry::Periodic>,
    /// Nudges the queue's worker while it takes jobs from the table (the
    /// database transport, or Redis down), and the relay (redis).
    wake: Vec<Notify>,
    wake_relay: Notify,
    /// What each queue's worker takes jobs from now (see [`Carried`]).
    working: Vec<AtomicU8>,
    /// The jobs this process holds.
    held: Mutex<std::collections::HashSet<i64>>,
    in_flight: AtomicUsize,
    idle: Notify,
    counts: Mutex<Option<Counts>>,
    draining_since: OnceLock<Instant>,
    /// Endings on their way to the finisher, which records those waiting
    /// together in one transaction (the receiver, until the finisher takes it).
    endings: tokio::sync::mpsc::UnboundedSender<worker::Finish>,
    endings_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<worker::Finish>>>,
}

impl Jobs {
    pub(crate) fn new(config: JobsConfig, registry: JobRegistry) -> Self {
        let (queues, handlers, periodic) = registry.into_parts();
        let owner = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let (endings, endings_rx) = tokio::sync::mpsc::unbounded_channel();
        Jobs {
            inner: Arc::new(Inner {
                config,
                owner,
                wake: queues.iter().map(|_| Notify::new()).collect(),
                wake_relay: Notify::new(),
                working: queues
                    .iter()
                    .map(|_| AtomicU8::new(Carried::NOTHING))
                    .collect(),
                queues,
                handlers,
                periodic,
                held: Mutex::default(),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                counts: Mutex::new(None),
                draining_since: OnceLock::new(),
                endings,
                endings_rx: Mutex::new(Some(endings_rx)),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &JobsConfig {
        &self.inner.config
    }

    /// This process's name as a job holder.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// The registered queues, in registration order.
    pub fn queues(&self) -> &[Queue] {
        &self.inner.queues
    }

    /// Where `queue` is among the registered queues.
    fn position(&self, queue: Queue) -> Option<usize> {
        self.inner.queues.iter().position(|q| *q == queue)
    }

    /// Tells the relay or the workers that `queue` has new work (call after
    /// the transaction that recorded it has committed).
    pub fn wake(&self, queue: Queue) {
        if self.inner.config.transport == JobTransport::Redis {
            self.inner.wake_relay.notify_one();
        }
        // The queue's worker too: on the redis transport it takes jobs from
        // the table while Redis is down (otherwise the nudge costs it one
        // look round).
        if let Some(i) = self.position(queue) {
            self.inner.wake[i].notify_one();
        }
    }

    /// The handler of a kind.
    fn handler(&self, kind: &str) -> Option<&Arc<dyn JobHandler>> {
        self.inner.handlers.get(kind).map(|(_, handler)| handler)
    }

    /// Jobs running in this process now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Marks the start of a graceful shutdown: the workers take no more jobs.
    pub(crate) fn begin_drain(&self) {
        let _ = self.inner.draining_since.set(Instant::now());
        for wake in &self.inner.wake {
            wake.notify_waiters();
        }
    }

    fn is_draining(&self) -> bool {
        self.inner.draining_since.get().is_some()
    }

    /// Waits, until `deadline` at most, for the jobs this process runs to
    /// finish. Answers whether they all did.
    pub(crate) async fn wait_idle(&self, budget: Duration) -> bool {
        let deadline = self
            .inner
            .draining_since
            .get()
            .copied()
            .unwrap_or_else(Instant::now)
            + budget;
        loop {
            let idle = self.inner.idle.notified();
            if self.in_flight() == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, idle).await.is_err() {
                return self.in_flight() == 0;
            }
        }
    }

    fn held_ids(&self) -> Vec<i64> {
        let held = self
            .inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.iter().copied().collect()
    }

    fn hold(&self, id: i64) {
        self.inner.in_flight.fetch_add(1, Ordering::AcqRel);
        let mut held = self
            .inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.insert(id);
    }

    fn release(&self, id: i64) {
        {
            let mut held = self
                .inner
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            held.remove(&id);
        }
        if self.inner.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }

    /// Records what `queue`'s worker takes jobs from now (`None`: it does
    /// not run).
    fn set_carrier(&self, queue: Queue, carrier: Option<JobTransport>) {
        if let Some(i) = self.position(queue) {
            self.inner.working[i].store(Carried::of(carrier), Ordering::Release);
        }
    }

    /// What carries the jobs now: `database` while any queue's worker takes
    /// its jobs from the table (the database transport, or Redis down on
    /// the redis transport), `redis` while they read their streams, and the
    /// configured transport while none runs.
    pub(crate) fn transport_now(&self) -> JobTransport {
        let carried: Vec<u8> = self
            .inner
            .working
            .iter()
            .map(|w| w.load(Ordering::Acquire))
            .collect();
        if carried.contains(&Carried::DATABASE) {
            JobTransport::Database
        } else if carried.contains(&Carried::REDIS) {
            JobTransport::Redis
        } else {
            self.inner.config.transport
        }
    }

    fn set_counts(&self, counts: Counts) {
        *self
            .inner
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(counts);
    }

    /// The job queues for the health report. `carrier_up`: whether anything
    /// carries jobs now (the database is connected: on the redis transport
    /// the table carries them while Redis is down).
    pub(crate) fn view(&self, carrier_up: bool, draining: bool) -> JobQueuesView {
        let counts = self
            .inner
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let backlog = self.inner.config.backlog.as_secs();
        let queues: Vec<QueueView> = self
            .inner
            .queues
            .iter()
            .enumerate()
            .map(|(i, queue)| {
                let c = counts
                    .as_ref()
                    .and_then(|c| c.queues.get(i).copied())
                    .unwrap_or_default();
                let working = self.inner.working[i].load(Ordering::Acquire) != Carried::NOTHING;
                QueueView {
                    name: queue.as_str(),
                    accepting: carrier_up && working && !draining,
                    waiting: c.waiting,
                    running: c.running,
                    dead: c.dead,
                    oldest_waiting_seconds: c.oldest_waiting_seconds,
                }
            })
            .collect();
        let status = match &counts {
            None if carrier_up => QueuesStatus::Initializing,
            _ if !carrier_up => QueuesStatus::Degraded,
            _ if queues
                .iter()
                .any(|q| !q.accepting || q.oldest_waiting_seconds > backlog) =>
            {
                QueuesStatus::Degraded
            }
            _ => QueuesStatus::Healthy,
        };
        JobQueuesView {
            status,
            transport: self.transport_now().as_str(),
            queues,
            outbox: counts.as_ref().map_or(0, |c| c.outbox),
        }
    }
}

/// What a queue's worker takes jobs from, as kept in an atomic.
struct Carried;

impl Carried {
    const NOTHING: u8 = 0;
    const REDIS: u8 = 1;
    const DATABASE: u8 = 2;

    fn of(carrier: Option<JobTransport>) -> u8 {
        match carrier {
            None => Carried::NOTHING,
            Some(JobTransport::Redis) => Carried::REDIS,
            Some(JobTransport::Database) => Carried::DATABASE,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "accubooks".to_owned())
}

/// The delay before attempt `attempts + 1`: `base × 2^(attempts − 1)`, at
/// most `max`, with up to a quarter of jitter so that jobs failed together
/// do not retry together.
pub(crate) fn backoff(attempts: u32, base: Duration, max: Duration) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let delay = base.saturating_mul(1 << exponent).min(max);
    let jitter_ms = u64::try_from(delay.as_millis() / 4).unwrap_or(0);
    let jitter = if jitter_ms == 0 {
        0
    } else {
        rand::random_range(0..=jitter_ms)
    };
    delay.saturating_add(Duration::from_millis(jitter)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(60));
        for attempts in 1..40 {
            let delay = backoff(attempts, base, max);
            let floor = base.saturating_mul(1 << (attempts - 1).min(30)).min(max);
            assert!(delay >= floor && delay <= max, "{attempts}: {delay:?}");
            assert!(delay <= floor + floor / 4);
        }
    }

    const QUEUES: [Queue; 3] = [
        Queue::new("first"),
        Queue::new("second"),
        Queue::new("third"),
    ];

    fn noop<'a>(
        _: &'a JobEnv,
        _: &'a JobContext,
    ) -> futures::future::BoxFuture<'a, Result<(), JobFailure>> {
        Box::pin(async { Ok(()) })
    }

    fn jobs(backlog_seconds: u64) -> Jobs {
        let config = crate::Config::from_vars([
            (
                "JOB_BACKLOG_SECONDS".to_owned(),
                backlog_seconds.to_string(),
            ),
            ("JOB_TRANSPORT".to_owned(), "redis".to_owned()),
        ])
        .unwrap();
        let mut registry = JobRegistry::new();
        for queue in QUEUES {
            registry.kind(queue.as_str(), queue, noop);
        }
        let jobs = Jobs::new(config.jobs, registry);
        for queue in QUEUES {
            jobs.set_carrier(queue, Some(JobTransport::Redis));
        }
        jobs
    }

    #[test]
    fn a_growing_backlog_or_a_stopped_worker_degrades_the_queues() {
        let jobs = jobs(60);
        assert_eq!(jobs.view(true, false).status, QueuesStatus::Initializing);
        let mut counts = Counts {
            queues: vec![QueueCounts::default(); QUEUES.len()],
            outbox: 0,
        };
        counts.queues[1].waiting = 40;
        counts.queues[1].oldest_waiting_seconds = 60;
        jobs.set_counts(counts.clone());
        let view = jobs.view(true, false);
        assert_eq!(view.status, QueuesStatus::Healthy);
        assert_eq!(view.queues[1].waiting, 40);
        counts.queues[1].oldest_waiting_seconds = 61;
        jobs.set_counts(counts.clone());
        assert_eq!(jobs.view(true, false).status, QueuesStatus::Degraded);
        // Still accepting work: a backlog is late, not refused.
        assert!(jobs.view(true, false).queues.iter().all(|q| q.accepting));
        counts.queues[1].oldest_waiting_seconds = 0;
        jobs.set_counts(counts.clone());
        jobs.set_carrier(QUEUES[2], None);
        let view = jobs.view(true, false);
        assert_eq!(view.status, QueuesStatus::Degraded);
        assert!(!view.queues[2].accepting && view.queues[0].accepting);
        // The carrier down, or draining: nothing is accepted.
        assert!(jobs.view(false, false).queues.iter().all(|q| !q.accepting));
        assert!(jobs.view(true, true).queues.iter().all(|q| !q.accepting));
    }

    #[test]
    fn the_transport_is_what_the_workers_take_jobs_from() {
        let jobs = jobs(60);
        jobs.set_counts(Counts {
            queues: vec![QueueCounts::default(); QUEUES.len()],
            outbox: 0,
        });
        assert_eq!(jobs.view(true, false).transport, "redis");
        // Redis down: the queues run from the table, and are healthy.
        for queue in QUEUES {
            jobs.set_carrier(queue, Some(JobTransport::Database));
        }
        let view = jobs.view(true, false);
        assert_eq!(view.transport, "database");
        assert_eq!(view.status, QueuesStatus::Healthy);
        assert!(view.queues.iter().all(|q| q.accepting));
        // While one queue has not switched yet, the table carries some jobs.
        jobs.set_carrier(QUEUES[0], Some(JobTransport::Redis));
        assert_eq!(jobs.view(true, false).transport, "database");
        // Nothing runs: the configured transport, degraded.
        for queue in QUEUES {
            jobs.set_carrier(queue, None);
        }
        let view = jobs.view(true, false);
        assert_eq!(view.transport, "redis");
        assert_eq!(view.status, QueuesStatus::Degraded);
    }

    #[test]
    fn names_round_trip() {
        let view = jobs(60).view(true, false);
        let names: Vec<&str> = view.queues.iter().map(|q| q.name).collect();
        assert_eq!(names, ["first", "second", "third"], "in registration order");
        for queue in QUEUES {
            assert_eq!(Queue::parse(queue.as_str()), Some(queue));
        }
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(Queue::parse("default"), None);
    }
}
