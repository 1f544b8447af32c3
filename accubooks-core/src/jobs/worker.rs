//! The background tasks of the job machinery: the relay, the workers of
//! each registered queue, the lease renewer, the monitor and the periodic
//! tasks the features registered.

use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::store::{self, Claimed, Ending};
use super::streams::{self, ReadError};
use super::{JobContext, JobEnv, JobFailure, Queue, backoff};
use crate::config::JobTransport;
use crate::deps;
use crate::error::Transience;

/// How long a stream read waits for messages before looking around again
/// (shutdown, take-overs).
const BLOCK: Duration = Duration::from_millis(1000);
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
/// answer goes once recorded (the redis transport acknowledges the job's
/// message only then), or `None` when nobody waits (the database transport:
/// the finisher then releases the job itself).
pub(crate) struct Finish {
    job: Attempt,
    ending: Ending,
    answer: Option<oneshot::Sender<bool>>,
    /// The database worker's count of its jobs not yet recorded: freed
    /// with this when the ending has been.
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
    match env.jobs().config().transport {
        JobTransport::Redis => {
            tasks.push(tokio::spawn(relay(env.clone(), stopped.clone())));
            for &queue in &queues {
                tasks.push(tokio::spawn(redis_worker(
                    env.clone(),
                    queue,
                    stopped.clone(),
                )));
            }
        }
        JobTransport::Database => {
            for &queue in &queues {
                tasks.push(tokio::spawn(database_worker(
                    env.clone(),
                    queue,
                    stopped.clone(),
                )));
            }
        }
    }
    tasks
}

fn available(env: &JobEnv, dependency: &str) -> bool {
    env.registry()
        .get(dependency)
        .is_some_and(|d| d.is_available())
}

/// Whether what the transport needs is connected now.
pub(crate) fn carrier_up(env: &JobEnv) -> bool {
    available(env, deps::DATABASE)
        && (env.jobs().config().transport == JobTransport::Database || available(env, deps::REDIS))
}

/// Sleeps `duration`, or less when the instance stops. Answers whether it
/// stopped.
async fn pause(duration: Duration, stopped: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => *stopped.borrow(),
        _ = stopped.changed() => true,
    }
}

/// Waits for one free slot of `semaphore`, then takes every other free one
/// (up to `most`): how many jobs the next read may ask for.
async fn permits(semaphore: &Arc<Semaphore>, most: usize) -> Vec<OwnedSemaphorePermit> {
    let Ok(first) = Arc::clone(semaphore).acquire_owned().await else {
        return Vec::new();
    };
    let mut permits = vec![first];
    while permits.len() < most {
        match Arc::clone(semaphore).try_acquire_owned() {
            Ok(permit) => permits.push(permit),
            Err(_) => break,
        }
    }
    permits
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

/// Runs `job` in a task of its own, holding `permit` until it has ended;
/// `then` runs after (the acknowledgement of its message).
fn run_in_task<F>(env: &JobEnv, job: Claimed, permit: OwnedSemaphorePermit, then: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let env = env.clone();
    env.jobs().hold(job.id);
    tokio::spawn(async move {
        let id = job.id;
        execute(&env, job, true, None).await;
        env.jobs().release(id);
        then.await;
        drop(permit);
    });
}

/// Runs `job`, claimed from the table (and held since), in a task of its
/// own, holding `permit` until its handler has returned: the slot is free
/// while the finisher records the ending with others.
fn run_claimed(env: &JobEnv, (job, unrecorded): Local, permit: OwnedSemaphorePermit) {
    let env = env.clone();
    tokio::spawn(async move {
        execute(&env, job, false, Some(unrecorded)).await;
        drop(permit);
    });
}

/// A job of a worker's local queue, and its place among the worker's jobs
/// not yet recorded.
type Local = (Claimed, OwnedSemaphorePermit);

/// The worker of one queue on the redis transport.
async fn redis_worker(env: JobEnv, queue: Queue, mut stopped: watch::Receiver<bool>) {
    let jobs = env.jobs().clone();
    let config = jobs.config().clone();
    let Ok(mut reader) = env.redis().dedicated(BLOCK) else {
        tracing::error!(
            queue = queue.as_str(),
            "no Redis connection could be configured"
        );
        return;
    };
    let lease_ms = millis(config.lease);
    let semaphore = Arc::new(Semaphore::new(config.concurrency));
    let mut group_ready = false;
    let mut last_take_over = Instant::now();
    loop {
        if *stopped.borrow() || jobs.is_draining() {
            jobs.set_working(queue, false);
            return;
        }
        if !carrier_up(&env) {
            jobs.set_working(queue, false);
            group_ready = false;
            if pause(Duration::from_millis(250), &mut stopped).await {
                return;
            }
            continue;
        }
        if !group_ready {
            match streams::ensure_group(&mut reader, queue).await {
                Ok(created) => {
                    if created
                        && let Ok(requeued) =
                            store::requeue_lost(env.database(), Some(queue), lease_ms).await
                        && requeued > 0
                    {
                        tracing::info!(
                            queue = queue.as_str(),
                            jobs = requeued,
                            "the queue's stream was new or lost; its queued jobs are sent again"
                        );
                        jobs.wake(queue);
                    }
                    group_ready = true;
                }
                Err(_) => {
                    if pause(Duration::from_millis(250), &mut stopped).await {
                        return;
                    }
                    continue;
                }
            }
        }
        jobs.set_working(queue, true);
        let mut permits = permits(&semaphore, config.concurrency).await;
        let read = if last_take_over.elapsed() >= config.lease / 2 {
            last_take_over = Instant::now();
            let idle = u64::try_from(lease_ms).unwrap_or(u64::MAX);
            streams::take_over(&mut reader, queue, jobs.owner(), idle, permits.len()).await
        } else {
            let block = usize::try_from(BLOCK.as_millis()).unwrap_or(1000);
            streams::read(&mut reader, queue, jobs.owner(), permits.len(), block).await
        };
        let messages = match read {
            Ok(messages) => messages,
            Err(ReadError::NoGroup) => {
                group_ready = false;
                continue;
            }
            Err(ReadError::Failed(fault)) => {
                tracing::debug!(
                    queue = queue.as_str(),
                    code = fault.code,
                    "stream read failed"
                );
                if pause(Duration::from_millis(250), &mut stopped).await {
                    return;
                }
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let ids: Vec<i64> = messages.iter().filter_map(|m| m.job).collect();
        let claimed = match store::claim_ids(env.database(), &ids, jobs.owner(), lease_ms).await {
            Ok(claimed) => claimed,
            // The messages stay pending: taken over once their idle time
            // passes the lease.
            Err(_) => continue,
        };
        let mut claimed_ids: HashSet<i64> = claimed.iter().map(|job| job.id).collect();
        let mut message_of = std::collections::HashMap::new();
        let mut unclaimed = Vec::new();
        for message in messages {
            match message.job {
                Some(job) if claimed_ids.remove(&job) => {
                    message_of.insert(job, message.id);
                }
                // Another worker holds or finished the job, or the message
                // is a duplicate: done with.
                _ => unclaimed.push(message.id),
            }
        }
        let mut shared = env.redis().connection();
        let _ = streams::done(&mut shared, queue, &unclaimed).await;
        for job in claimed {
            let Some(permit) = permits.pop() else { break };
            let message = message_of.remove(&job.id).unwrap_or_default();
            let mut connection = env.redis().connection();
            run_in_task(&env, job, permit, async move {
                let _ = streams::done(&mut connection, queue, &[message]).await;
            });
        }
    }
}

/// How many claimed jobs a worker of the database transport keeps in its
/// local queue, per job it runs at once (`JOB_CONCURRENCY`), and at most:
/// one claim takes a batch (graphile-worker's `localQueue`), and the next
/// is made when fewer than `JOB_CONCURRENCY` are left, so the slots never
/// wait for a claim.
const LOCAL_QUEUE_PER_SLOT: usize = 20;
const LOCAL_QUEUE_MAX: usize = 500;
/// How soon the jobs of one claim must have (nearly) all started for the
/// next claim to fill the local queue rather than the free slots alone.
const FAST_BATCH: Duration = Duration::from_millis(500);

/// The worker of one queue on the database transport: claims batches of due
/// jobs into a local queue and runs them as slots free up; a slot is free
/// again as soon as its handler returns, while the finisher records the
/// ending with others. Every job in the local queue is already `running`
/// under this process's lease (renewed like those that run); a draining or
/// disconnected worker gives back those it has not started. At most two
/// local queues and a round of slots of its jobs are claimed and not yet
/// recorded: a claim waits for the finisher (on SQLite the two take turns
/// at the one write lock, and claims back to back would starve it).
async fn database_worker(env: JobEnv, queue: Queue, mut stopped: watch::Receiver<bool>) {
    let jobs = env.jobs().clone();
    let Some(position) = jobs.position(queue) else {
        return;
    };
    let config = jobs.config().clone();
    let lease_ms = millis(config.lease);
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let size = (config.concurrency * LOCAL_QUEUE_PER_SLOT)
        .clamp(config.concurrency, LOCAL_QUEUE_MAX.max(config.concurrency));
    let unrecorded = Arc::new(Semaphore::new(2 * size + config.concurrency));
    let mut local: VecDeque<Local> = VecDeque::with_capacity(size);
    let mut turns = store::Turns::default();
    // Whether the last claim took all it asked for (more may be due), and
    // when it was made.
    let mut more = true;
    let mut last_claim = Instant::now();
    loop {
        if *stopped.borrow() || jobs.is_draining() {
            jobs.set_working(queue, false);
            give_back(&env, &mut local).await;
            return;
        }
        if !carrier_up(&env) {
            jobs.set_working(queue, false);
            give_back(&env, &mut local).await;
            if pause(Duration::from_millis(250), &mut stopped).await {
                return;
            }
            continue;
        }
        jobs.set_working(queue, true);
        // Whether the jobs of the last claim went quickly: then the next
        // claim fills the local queue.
        let fast = last_claim.elapsed() < FAST_BATCH;
        // Start what the free slots allow.
        while !local.is_empty() {
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                break;
            };
            if let Some(job) = local.pop_front() {
                run_claimed(&env, job, permit);
            }
        }
        let woken = jobs.inner.wake[position].notified();
        let free = slots.available_permits();
        let room = unrecorded.available_permits();
        if local.len() < config.concurrency
            && (more || local.is_empty())
            && (free > 0 || fast)
            && room > 0
        {
            // Jobs that run in a blink (the last batch went within
            // `FAST_BATCH`) are claimed a local queue at a time; slow ones
            // only for the free slots, so that another process with free
            // slots can take the rest.
            let want = if fast { size - local.len() } else { free }.min(room);
            last_claim = Instant::now();
            match store::claim_due(
                env.database(),
                queue,
                jobs.owner(),
                lease_ms,
                want,
                &mut turns,
            )
            .await
            {
                Ok(claimed) => {
                    more = claimed.len() == want;
                    for job in claimed {
                        jobs.hold(job.id);
                        match Arc::clone(&unrecorded).try_acquire_owned() {
                            Ok(place) => local.push_back((job, place)),
                            // Not reached: this loop alone takes places, at
                            // most `room`.
                            Err(_) => {
                                let _ =
                                    store::give_back(env.database(), jobs.owner(), &[job.id]).await;
                                jobs.release(job.id);
                            }
                        }
                    }
                }
                Err(err) => {
                    tracing::debug!(queue = queue.as_str(), error = %err, "claim failed");
                    more = false;
                }
            }
            if !local.is_empty() {
                continue;
            }
        }
        if local.is_empty() {
            // Nothing due, or every slot or place taken: new work, a free
            // slot or place, a poll or a stop.
            tokio::select! {
                () = woken => {}
                _ = slots.acquire(), if free == 0 => {}
                _ = unrecorded.acquire(), if room == 0 => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stopped.changed() => {}
            }
            more = true;
            continue;
        }
        // Wait for a slot (a stop or a drain is seen at the top).
        tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => {
                if let (Ok(permit), Some(job)) = (permit, local.pop_front()) {
                    run_claimed(&env, job, permit);
                }
            }
            _ = stopped.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Gives back the jobs of a worker's local queue (claimed, never started).
async fn give_back(env: &JobEnv, local: &mut VecDeque<Local>) {
    if local.is_empty() {
        return;
    }
    let ids: Vec<i64> = local.drain(..).map(|(job, _)| job.id).collect();
    let jobs = env.jobs();
    if let Err(err) = store::give_back(env.database(), jobs.owner(), &ids).await {
        tracing::warn!(
            jobs = ids.len(), error = %err,
            "claimed jobs could not be given back; they run again when their lease passes"
        );
    }
    for id in ids {
        jobs.release(id);
    }
}

/// Moves due jobs from the outbox to their streams (redis transport), and
/// now and then puts back into the outbox the jobs whose messages were lost.
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
        if !carrier_up(&env) {
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
    loop {
        if pause(lease / 3, &mut stopped).await {
            return;
        }
        let held = jobs.held_ids();
        if !held.is_empty() {
            let _ = store::renew(env.database(), &held, jobs.owner(), millis(lease)).await;
        }
    }
}

/// Counts every queue once a second (every tenth of one until the first
/// count is in), for health and metrics.
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
    let mut wait = periodic.first;
    loop {
        if pause(wait, &mut stopped).await {
            return;
        }
        wait = periodic.every;
        if available(&env, deps::DATABASE) && env.database().is_migrated() {
            tracing::trace!(task = periodic.name, "periodic task runs");
            (periodic.task)(env.clone()).await;
        }
    }
}
