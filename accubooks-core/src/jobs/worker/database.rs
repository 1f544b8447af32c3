//! A queue's worker while it takes its jobs straight from the table: the
//! database transport, and the redis transport while Redis is down.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::{execute, millis};
use crate::jobs::store::{self, Claimed};
use crate::jobs::{JobEnv, Queue};

/// How many claimed jobs a worker keeps in its local queue, per job it runs
/// at once (`JOB_CONCURRENCY`), and at most: one claim takes a batch
/// (graphile-worker's `localQueue`), and the next is made when fewer than
/// `JOB_CONCURRENCY` are left, so the slots never wait for a claim.
const LOCAL_QUEUE_PER_SLOT: usize = 20;
const LOCAL_QUEUE_MAX: usize = 500;
/// How soon the jobs of one claim must have (nearly) all started for the
/// next claim to fill the local queue rather than the free slots alone.
const FAST_BATCH: Duration = Duration::from_millis(500);

/// A job of a worker's local queue, and its place among the worker's jobs
/// not yet recorded.
type Local = (Claimed, OwnedSemaphorePermit);

/// The table side of one queue's worker: claims batches of due jobs into a
/// local queue and runs them as slots free up; a slot is free again as soon
/// as its handler returns, while the finisher records the ending with
/// others. Every job in the local queue is already `running` under this
/// process's lease (renewed like those that run); a worker that stops
/// taking jobs from the table (a drain, the database lost, Redis back) gives
/// back those it has not started. At most two local queues and a round of
/// slots of its jobs are claimed and not yet recorded: a claim waits for the
/// finisher (on SQLite the two take turns at the one write lock, and claims
/// back to back would starve it).
pub(super) struct Table {
    queue: Queue,
    position: usize,
    size: usize,
    unrecorded: Arc<Semaphore>,
    local: VecDeque<Local>,
    turns: store::Turns,
    /// Whether the last claim took all it asked for (more may be due), and
    /// when it was made.
    more: bool,
    last_claim: Instant,
}

impl Table {
    /// The table side of `queue`'s worker; `None` for a queue not
    /// registered.
    pub(super) fn new(env: &JobEnv, queue: Queue) -> Option<Self> {
        let position = env.jobs().position(queue)?;
        let concurrency = env.jobs().config().concurrency;
        let size = (concurrency * LOCAL_QUEUE_PER_SLOT)
            .clamp(concurrency, LOCAL_QUEUE_MAX.max(concurrency));
        Some(Table {
            queue,
            position,
            size,
            unrecorded: Arc::new(Semaphore::new(2 * size + concurrency)),
            local: VecDeque::with_capacity(size),
            turns: store::Turns::default(),
            more: true,
            last_claim: Instant::now(),
        })
    }

    /// One round: starts what the free slots of `slots` allow, claims more
    /// when the local queue runs low, and waits (a quarter or half of a
    /// second at most) for a slot, new work or a stop. Answers whether the
    /// instance stopped.
    pub(super) async fn step(
        &mut self,
        env: &JobEnv,
        slots: &Arc<Semaphore>,
        stopped: &mut watch::Receiver<bool>,
    ) -> bool {
        let jobs = env.jobs();
        let concurrency = jobs.config().concurrency;
        // Whether the jobs of the last claim went quickly: then the next
        // claim fills the local queue.
        let fast = self.last_claim.elapsed() < FAST_BATCH;
        // Start what the free slots allow.
        while !self.local.is_empty() {
            let Ok(permit) = Arc::clone(slots).try_acquire_owned() else {
                break;
            };
            if let Some(job) = self.local.pop_front() {
                run_claimed(env, job, permit);
            }
        }
        let woken = jobs.inner.wake[self.position].notified();
        let free = slots.available_permits();
        let room = self.unrecorded.available_permits();
        if self.local.len() < concurrency
            && (self.more || self.local.is_empty())
            && (free > 0 || fast)
            && room > 0
        {
            // Jobs that run in a blink (the last batch went within
            // `FAST_BATCH`) are claimed a local queue at a time; slow ones
            // only for the free slots, so that another process with free
            // slots can take the rest.
            let want = if fast {
                self.size - self.local.len()
            } else {
                free
            }
            .min(room);
            self.claim(env, want).await;
            if !self.local.is_empty() {
                return false;
            }
        }
        if self.local.is_empty() {
            // Nothing due, or every slot or place taken: new work, a free
            // slot or place, a poll or a stop.
            tokio::select! {
                () = woken => {}
                _ = slots.acquire(), if free == 0 => {}
                _ = self.unrecorded.acquire(), if room == 0 => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stopped.changed() => {}
            }
            self.more = true;
            return *stopped.borrow();
        }
        // Wait for a slot (a stop, a drain or a switch is seen by the
        // caller).
        tokio::select! {
            permit = Arc::clone(slots).acquire_owned() => {
                if let (Ok(permit), Some(job)) = (permit, self.local.pop_front()) {
                    run_claimed(env, job, permit);
                }
            }
            _ = stopped.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        *stopped.borrow()
    }

    /// Claims up to `want` due jobs into the local queue.
    async fn claim(&mut self, env: &JobEnv, want: usize) {
        let jobs = env.jobs();
        let lease_ms = millis(jobs.config().lease);
        self.last_claim = Instant::now();
        let claimed = store::claim_due(
            env.database(),
            self.queue,
            jobs.owner(),
            lease_ms,
            want,
            &mut self.turns,
        )
        .await;
        match claimed {
            Ok(claimed) => {
                self.more = claimed.len() == want;
                for job in claimed {
                    jobs.hold(job.id);
                    match Arc::clone(&self.unrecorded).try_acquire_owned() {
                        Ok(place) => self.local.push_back((job, place)),
                        // Not reached: this worker alone takes places, at
                        // most `room`.
                        Err(_) => {
                            let _ = store::give_back(env.database(), jobs.owner(), &[job.id]).await;
                            jobs.release(job.id);
                        }
                    }
                }
            }
            Err(err) => {
                tracing::debug!(queue = self.queue.as_str(), error = %err, "claim failed");
                self.more = false;
            }
        }
    }

    /// Gives back the jobs of the local queue (claimed, never started):
    /// `pending` again, their attempt not counted.
    pub(super) async fn give_back(&mut self, env: &JobEnv) {
        if self.local.is_empty() {
            return;
        }
        let ids: Vec<i64> = self.local.drain(..).map(|(job, _)| job.id).collect();
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
