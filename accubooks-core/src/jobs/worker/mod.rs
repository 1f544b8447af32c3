//! The background tasks of the job machinery: the relay, the worker of
//! each registered queue (its stream side in `redis`, its table side in
//! `database`), the finisher, the lease renewer, the monitor and the
//! periodic tasks the features registered.

mod database;
mod redis;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::registry::WOKEN_GAP;
use super::store::{self, Claimed, Ending};
use super::streams;
use super::{JobContext, JobEnv, JobFailure, Queue, backoff};
use crate::config::JobTransport;
use crate::deps;
use crate::error::Transience;

/// Most jobs the relay moves in one transaction.
const RELAY_BATCH: usize = 1000;
/// How many jobs of one organization may be on a queue's stream or running
/// at once (redis transport; see [`store::relay`]), per job each process
/// runs at once (`JOB_CONCURRENCY`): what another organization's job may
/// wait behind. Sixteen slots' worth keeps one organization alone busy on
/// every worker (the relay refills as jobs end), and another's job waits
/// behind a few rounds of work, not a backlog.
const ORGANIZATION_SHARE_PER_SLOT: usize = 16;
/// The least share, for small `JOB_CONCURRENCY` settings.
const ORGANIZATION_SHARE_MIN: usize = 128;
/// How long the relay sleeps between passes unless woken by new work, while
/// the last pass relayed something (an organization's share refills as its
/// jobs end) and while it did not.
const RELAY_FLOWING: Duration = Duration::from_millis(20);
const RELAY_IDLE: Duration = Duration::from_millis(250);
/// Most endings the finisher records in one transaction.
const FINISH_BATCH: usize = 500;
/// Most transactions of endings the finisher has in flight at once: while
/// one waits for its commit's disk flush, the next batch gathers and is
/// sent (PostgreSQL flushes concurrent commits together).
const FINISHERS: usize = 4;

/// An ending for the finisher: the attempt, how it ended, and where the
/// answer goes once recorded (a job read from a stream has its message
/// acknowledged only then), or `None` when nobody waits (a job claimed from
/// the table: the finisher then releases the job itself).
pub(crate) struct Finish {
    job: Attempt,
    ending: Ending,
    answer: Option<oneshot::Sender<bool>>,
    /// The table side's count of its jobs not yet recorded: freed with
    /// this when the ending has been.
    _unrecorded: Option<OwnedSemaphorePermit>,
}

/// What the finisher logs and counts of an attempt.
struct Attempt {
    id: i64,
    queue: Queue,
    kind: String,
    attempt: u32,
    elapsed_ms: u64,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Starts every task of the job machinery.
pub(crate) fn spawn(env: &JobEnv, stopped: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let queues = env.jobs().queues().to_vec();
    let names: Vec<&str> = queues.iter().map(|q| q.as_str()).collect();
    env.metrics().init_job_queues(&names);
    let endings = env
        .jobs()
        .inner
        .endings_rx
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let mut tasks = vec![
        tokio::spawn(monitor(env.clone(), stopped.clone())),
        tokio::spawn(renewer(env.clone(), stopped.clone())),
    ];
    for task in 0..env.jobs().inner.periodic.len() {
        tasks.push(tokio::spawn(periodic(env.clone(), task, stopped.clone())));
    }
    if let Some(endings) = endings {
        tasks.push(tokio::spawn(finisher(env.clone(), endings)));
    }
    if env.jobs().config().transport == JobTransport::Redis {
        tasks.push(tokio::spawn(relay(env.clone(), stopped.clone())));
    }
    for &queue in &queues {
        tasks.push(tokio::spawn(queue_worker(
            env.clone(),
            queue,
            stopped.clone(),
        )));
    }
    tasks
}

fn available(env: &JobEnv, dependency: &str) -> bool {
    env.registry()
        .get(dependency)
        .is_some_and(|d| d.is_available())
}

/// What carries jobs now: Redis on the redis transport while it is
/// available, the table otherwise (the database transport, or Redis down:
/// the workers then claim due jobs straight from the outbox); `None` while
/// the database is down (nothing runs).
pub(crate) fn carrier(env: &JobEnv) -> Option<JobTransport> {
    if !available(env, deps::DATABASE) {
        return None;
    }
    match env.jobs().config().transport {
        JobTransport::Redis if available(env, deps::REDIS) => Some(JobTransport::Redis),
        _ => Some(JobTransport::Database),
    }
}

/// Whether anything carries jobs now (the database is connected).
pub(crate) fn carrier_up(env: &JobEnv) -> bool {
    carrier(env).is_some()
}

/// The worker of one queue: one loop that, at each round, takes jobs from
/// what carries them now ([`carrier`]): the queue's stream while Redis is
/// available on the redis transport, the table otherwise. Both modes share
/// one semaphore of `JOB_CONCURRENCY` slots, so jobs started in one mode
/// and still running count against the other. Leaving the table (Redis
/// back, the database lost, a stop) gives back the jobs claimed and not
/// started; leaving Redis makes the group checked again on return. No job
/// runs twice across a switch: a message whose job the table already ran
/// (or runs) misses its claim and is acknowledged and dropped.
async fn queue_worker(env: JobEnv, queue: Queue, mut stopped: watch::Receiver<bool>) {
    let jobs = env.jobs().clone();
    let Some(mut table) = database::Table::new(&env, queue) else {
        return;
    };
    let mut streams = match jobs.config().transport {
        JobTransport::Redis => redis::Streams::new(&env, queue),
        JobTransport::Database => None,
    };
    let slots = Arc::new(Semaphore::new(jobs.config().concurrency));
    loop {
        if *stopped.borrow() || jobs.is_draining() {
            jobs.set_carrier(queue, None);
            table.give_back(&env).await;
            return;
        }
        let carrier = match carrier(&env) {
            // No stream reader: the table carries this queue's jobs.
            Some(JobTransport::Redis) if streams.is_none() => Some(JobTransport::Database),
            carrier => carrier,
        };
        if carrier != Some(JobTransport::Database) {
            table.give_back(&env).await;
        }
        if carrier != Some(JobTransport::Redis)
            && let Some(streams) = streams.as_mut()
        {
            streams.lost();
        }
        jobs.set_carrier(queue, carrier);
        let stop = match (carrier, streams.as_mut()) {
            (Some(JobTransport::Redis), Some(streams)) => {
                streams.step(&env, &slots, &mut stopped).await
            }
            (Some(_), _) => table.step(&env, &slots, &mut stopped).await,
            (None, _) => pause(Duration::from_millis(250), &mut stopped).await,
        };
        if stop {
            jobs.set_carrier(queue, None);
            table.give_back(&env).await;
            return;
        }
    }
}

/// Sleeps `duration`, or less when the instance stops. Answers whether it
/// stopped.
async fn pause(duration: Duration, stopped: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => *stopped.borrow(),
        _ = stopped.changed() => true,
    }
}

/// Runs one claimed job and hands how it ended to the finisher. With
/// `wait`, answers once the ending is recorded (whether it was); without,
/// at once, and the finisher releases the job when it has recorded it.
async fn execute(
    env: &JobEnv,
    job: Claimed,
    wait: bool,
    unrecorded: Option<OwnedSemaphorePermit>,
) -> bool {
    let jobs = env.jobs();
    let started = Instant::now();
    let result = match jobs.handler(&job.kind) {
        None => Err(JobFailure::permanent("UNKNOWN_JOB_KIND")),
        Some(handler) => {
            let context = JobContext {
                id: job.id,
                organization: job.organization.clone(),
                kind: job.kind.clone(),
                payload: serde_json::from_str(&job.payload).unwrap_or_default(),
                attempt: job.attempts,
            };
            AssertUnwindSafe(handler.run(env, &context))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    tracing::error!(job = job.id, kind = %job.kind, "job handler panicked");
                    Err(JobFailure::temporary("JOB_PANICKED"))
                })
        }
    };
    let config = jobs.config();
    let ending = match result {
        Ok(()) => Ending::Succeeded,
        Err(failure)
            if failure.transience == Transience::Temporary
                && job.attempts < config.max_attempts =>
        {
            let delay = backoff(job.attempts, config.retry_base, config.retry_max);
            Ending::Retry(failure, store::now_ms() + millis(delay))
        }
        Err(failure) => Ending::Dead(failure),
    };
    let attempt = Attempt {
        id: job.id,
        queue: job.queue,
        kind: job.kind,
        attempt: job.attempts,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let (answer, answered) = if wait {
        let (answer, answered) = oneshot::channel();
        (Some(answer), Some(answered))
    } else {
        (None, None)
    };
    let finish = Finish {
        job: attempt,
        ending,
        answer,
        _unrecorded: unrecorded,
    };
    if let Err(mpsc::error::SendError(finish)) = jobs.inner.endings.send(finish) {
        tracing::warn!(
            job = finish.job.id,
            "the job finisher has stopped; the job runs again after its lease"
        );
        if finish.answer.is_none() {
            jobs.release(finish.job.id);
        }
        return false;
    }
    match answered {
        Some(answered) => answered.await.unwrap_or(false),
        None => true,
    }
}

/// Records the endings of attempts: those that arrived while the previous
/// transactions were committing go together in the next one (one
/// statement), with up to [`FINISHERS`] transactions in flight, so under
/// load a commit (and its disk flush) serves many jobs, and a lone ending
/// waits no longer than its own transaction. An ending counts (the
/// metrics, the log, the answer, the release of the job) only once its
/// transaction has committed, so a job's message is acknowledged only after
/// its ending is durable. A short outage while recording: the batch is
/// tried again briefly; if it cannot be recorded, the leases pass and the
/// jobs run again (their effects are idempotent).
async fn finisher(env: JobEnv, mut endings: mpsc::UnboundedReceiver<Finish>) {
    let mut recording = tokio::task::JoinSet::new();
    loop {
        while recording.len() >= FINISHERS {
            let _ = recording.join_next().await;
        }
        let mut batch = Vec::with_capacity(FINISH_BATCH);
        tokio::select! {
            received = endings.recv_many(&mut batch, FINISH_BATCH) => {
                if received == 0 {
                    break;
                }
                recording.spawn(record(env.clone(), batch));
            }
            Some(_) = recording.join_next(), if !recording.is_empty() => {}
        }
    }
    while recording.join_next().await.is_some() {}
}

/// Records one batch of endings (see [`finisher`]).
async fn record(env: JobEnv, mut batch: Vec<Finish>) {
    let rows: Vec<(i64, Ending)> = batch.iter().map(|f| (f.job.id, f.ending)).collect();
    let mut tries = 0;
    let recorded = loop {
        match store::finish(env.database(), env.jobs().owner(), &rows).await {
            Ok(recorded) => break Some(recorded),
            Err(_) if tries < 2 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => {
                tracing::warn!(
                    jobs = rows.len(), error = %err,
                    "job endings could not be recorded; the jobs run again after their lease"
                );
                break None;
            }
        }
    };
    let answered = recorded.is_some();
    let recorded = recorded.unwrap_or_else(|| vec![false; batch.len()]);
    for (finish, recorded) in batch.drain(..).zip(recorded) {
        if recorded {
            count(&env, &finish);
        } else if answered {
            tracing::warn!(
                job = finish.job.id,
                "job finished after its lease passed; another worker has it"
            );
        }
        match finish.answer {
            Some(answer) => {
                let _ = answer.send(recorded);
            }
            None => env.jobs().release(finish.job.id),
        }
    }
}

/// Counts and logs a recorded ending.
fn count(env: &JobEnv, finish: &Finish) {
    let job = &finish.job;
    let outcome = match finish.ending {
        Ending::Succeeded => "succeeded",
        Ending::Retry(..) => "failed",
        Ending::Dead(_) => "dead",
    };
    env.metrics().count_job(job.queue.as_str(), outcome);
    match finish.ending {
        Ending::Succeeded => tracing::debug!(
            job = job.id, queue = job.queue.as_str(), kind = %job.kind,
            attempt = job.attempt, elapsed_ms = job.elapsed_ms, "job succeeded"
        ),
        Ending::Retry(failure, _) | Ending::Dead(failure) => tracing::warn!(
            job = job.id, queue = job.queue.as_str(), kind = %job.kind,
            attempt = job.attempt, code = failure.code, outcome,
            "job attempt failed"
        ),
    }
}

/// Moves due jobs from the outbox to their streams (redis transport, while
/// Redis is available), and now and then puts back into the outbox the jobs
/// whose messages were lost.
async fn relay(env: JobEnv, mut stopped: watch::Receiver<bool>) {
    let jobs = env.jobs().clone();
    let lease_ms = millis(jobs.config().lease);
    let resend_ms = millis(jobs.config().resend_after);
    let share =
        (jobs.config().concurrency * ORGANIZATION_SHARE_PER_SLOT).max(ORGANIZATION_SHARE_MIN);
    let mut last_sweep = Instant::now();
    // The queues whose group is known to exist, and those whose jobs queued
    // on a lost stream are still to be put back into the outbox.
    let count = jobs.queues().len();
    let mut ready = vec![false; count];
    let mut owed = vec![false; count];
    // Whether the last pass relayed anything: an organization with a
    // backlog gets its share refilled as its jobs end, so the relay looks
    // again soon while there is traffic (never while Redis refuses: a
    // relay that keeps re-sending holds the rows workers want to claim).
    let mut flowing = false;
    loop {
        let idle = if flowing { RELAY_FLOWING } else { RELAY_IDLE };
        tokio::select! {
            () = jobs.inner.wake_relay.notified() => {}
            () = tokio::time::sleep(idle) => {}
            _ = stopped.changed() => return,
        }
        flowing = false;
        // Nothing is relayed while the table carries the jobs (Redis down):
        // the workers claim them from the outbox meanwhile.
        if carrier(&env) != Some(JobTransport::Redis) {
            ready.fill(false);
            continue;
        }
        if !make_groups(&env, lease_ms, &mut ready, &mut owed).await {
            continue;
        }
        loop {
            let redis = env.redis().clone();
            let queues = jobs.queues();
            let relayed = store::relay(
                env.database(),
                queues,
                RELAY_BATCH,
                share,
                |batch| async move { streams::append(&redis, queues, &batch).await },
            )
            .await;
            if let Ok(Ok(n)) = relayed {
                flowing |= n > 0;
            }
            match relayed {
                Ok(Ok(n)) if n == RELAY_BATCH => continue,
                Ok(Err(fault)) => {
                    tracing::debug!(
                        code = fault.code,
                        "relay: Redis refused; jobs stay in the outbox"
                    );
                    ready.fill(false);
                    break;
                }
                _ => break,
            }
        }
        if last_sweep.elapsed() >= jobs.config().lease {
            last_sweep = Instant::now();
            if let Ok(requeued) = store::requeue_lost(env.database(), None, lease_ms).await
                && requeued > 0
            {
                tracing::info!(jobs = requeued, "jobs whose worker died are sent again");
            }
            if let Ok(resent) = store::resend_stale(env.database(), resend_ms).await
                && resent > 0
            {
                tracing::warn!(
                    jobs = resent,
                    "jobs queued on Redis for longer than JOB_RESEND_AFTER_MS are sent again \
                     (their messages may have been lost)"
                );
            }
        }
    }
}

/// Makes each queue's consumer group (and stream) before the relay sends to
/// it. Otherwise, after Redis lost its streams, the relay's first `XADD`
/// would re-create a stream without a group, and the worker that then makes
/// the group would put every job already relayed to it back into the outbox
/// as lost: sent twice (harmless, the claim runs each once, but after an
/// outage that was most of the backlog). Whoever makes a group (the relay
/// here, or a worker that finds it gone) puts the jobs queued on the lost
/// stream back into the outbox, and the relay sends nothing to that queue
/// until that has succeeded. Answers whether every queue is ready.
async fn make_groups(env: &JobEnv, lease_ms: i64, ready: &mut [bool], owed: &mut [bool]) -> bool {
    let mut connection = env.redis().connection();
    for (i, &queue) in env.jobs().queues().iter().enumerate() {
        if !ready[i] {
            match streams::ensure_group(&mut connection, queue).await {
                Ok(created) => {
                    owed[i] |= created;
                    ready[i] = true;
                }
                Err(_) => return false,
            }
        }
        if owed[i] {
            match store::requeue_lost(env.database(), Some(queue), lease_ms).await {
                Ok(requeued) => {
                    owed[i] = false;
                    if requeued > 0 {
                        tracing::info!(
                            queue = queue.as_str(),
                            jobs = requeued,
                            "the queue's stream was new or lost; its queued jobs are sent again"
                        );
                    }
                }
                Err(_) => return false,
            }
        }
    }
    true
}

/// Extends the leases of the jobs this process runs.
async fn renewer(env: JobEnv, mut stopped: watch::Receiver<bool>) {
    let jobs = env.jobs().clone();
    let lease = jobs.config().lease;
    // One small statement every third of a lease, on the requests'
    // connections: behind a queue of jobs waiting for their turn at their
    // own, a renewal could come after the leases it keeps had passed.
    let database = env.database().requests();
    loop {
        if pause(lease / 3, &mut stopped).await {
            return;
        }
        let held = jobs.held_ids();
        if !held.is_empty() {
            let _ = store::renew(&database, &held, jobs.owner(), millis(lease)).await;
        }
    }
}

/// Counts every queue once a second (every tenth of one until the first
/// count is in), for health and metrics, and tells the metrics what
/// carries the jobs.
async fn monitor(env: JobEnv, mut stopped: watch::Receiver<bool>) {
    let mut counted = false;
    loop {
        if available(&env, deps::DATABASE)
            && env.database().is_migrated()
            && let Ok(counts) = store::counts(env.database(), env.jobs().queues()).await
        {
            counted = true;
            for (queue, c) in env.jobs().queues().iter().zip(&counts.queues) {
                env.metrics()
                    .set_job_queue(queue.as_str(), c.waiting, c.running, c.dead);
            }
            env.metrics().set_job_outbox(counts.outbox);
            env.jobs().set_counts(counts);
        }
        env.metrics()
            .set_job_transport(env.jobs().transport_now().as_str());
        let every = if counted {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        };
        if pause(every, &mut stopped).await {
            return;
        }
    }
}

/// Runs the periodic task at `task` (by registration): its first wait,
/// then a run whenever the database is available and migrated, then its
/// interval; it stops with the instance.
async fn periodic(env: JobEnv, task: usize, mut stopped: watch::Receiver<bool>) {
    let periodic = &env.jobs().inner.periodic[task];
    let mut woken_by = periodic.woken_by.clone();
    let mut wait = periodic.first;
    let mut last_run = Instant::now();
    loop {
        let woken = async {
            match woken_by.as_mut() {
                Some(signal) => signal.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            stop = pause(wait, &mut stopped) => if stop { return },
            alive = woken => {
                if !alive {
                    // The signal's sender is gone: the period alone from now.
                    woken_by = None;
                }
                let since = last_run.elapsed();
                if since < WOKEN_GAP && pause(WOKEN_GAP - since, &mut stopped).await {
                    return;
                }
            }
        }
        wait = periodic.every;
        last_run = Instant::now();
        if available(&env, deps::DATABASE) && env.database().is_migrated() {
            tracing::trace!(task = periodic.name, "periodic task runs");
            (periodic.task)(env.clone()).await;
        }
    }
}
