//! A queue's worker while Redis carries its jobs: it reads the queue's
//! stream through the consumer group, claims the jobs of the messages in the
//! database and runs them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::{execute, millis, pause};
use crate::jobs::redis_client::Connection;
use crate::jobs::store::{self, Claimed};
use crate::jobs::streams::{self, ReadError};
use crate::jobs::{JobEnv, Queue};

/// How long a stream read waits for messages before looking around again
/// (shutdown, take-overs, a switch of carrier).
pub(super) const BLOCK: Duration = Duration::from_millis(1000);

/// The stream side of one queue's worker.
pub(super) struct Streams {
    queue: Queue,
    reader: Connection,
    /// Whether the consumer group is known to exist since Redis was last
    /// reached.
    group_ready: bool,
    last_take_over: Instant,
}

impl Streams {
    /// The stream side of `queue`'s worker, with its own blocking
    /// connection; `None` (logged) when no Redis connection can be
    /// configured.
    pub(super) fn new(env: &JobEnv, queue: Queue) -> Option<Self> {
        match env.redis().dedicated(BLOCK) {
            Ok(reader) => Some(Streams {
                queue,
                reader,
                group_ready: false,
                last_take_over: Instant::now(),
            }),
            Err(_) => {
                tracing::error!(
                    queue = queue.as_str(),
                    "no Redis connection could be configured; the queue's jobs are taken \
                     from the database"
                );
                None
            }
        }
    }

    /// Redis is out of use (down, or the worker took jobs from the
    /// database meanwhile): the group is checked again before the next read,
    /// in case Redis came back without its streams.
    pub(super) fn lost(&mut self) {
        self.group_ready = false;
    }

    /// One round: makes sure of the group, then waits for free slots of
    /// `slots`, reads (or takes over) as many messages, claims their jobs
    /// and starts them. Answers whether the instance stopped.
    pub(super) async fn step(
        &mut self,
        env: &JobEnv,
        slots: &Arc<Semaphore>,
        stopped: &mut watch::Receiver<bool>,
    ) -> bool {
        let queue = self.queue;
        let jobs = env.jobs();
        let config = jobs.config();
        let lease_ms = millis(config.lease);
        if !self.group_ready {
            match streams::ensure_group(&mut self.reader, queue).await {
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
                    self.group_ready = true;
                }
                Err(_) => return pause(Duration::from_millis(250), stopped).await,
            }
        }
        let mut permits = permits(slots, config.concurrency).await;
        let read = if self.last_take_over.elapsed() >= config.lease / 2 {
            self.last_take_over = Instant::now();
            let idle = u64::try_from(lease_ms).unwrap_or(u64::MAX);
            streams::take_over(&mut self.reader, queue, jobs.owner(), idle, permits.len()).await
        } else {
            let block = usize::try_from(BLOCK.as_millis()).unwrap_or(1000);
            streams::read(&mut self.reader, queue, jobs.owner(), permits.len(), block).await
        };
        let messages = match read {
            Ok(messages) => messages,
            Err(ReadError::NoGroup) => {
                self.group_ready = false;
                return false;
            }
            Err(ReadError::Failed(fault)) => {
                tracing::debug!(
                    queue = queue.as_str(),
                    code = fault.code,
                    "stream read failed"
                );
                return pause(Duration::from_millis(250), stopped).await;
            }
        };
        if messages.is_empty() {
            return false;
        }
        let ids: Vec<i64> = messages.iter().filter_map(|m| m.job).collect();
        let claimed = match store::claim_ids(env.database(), &ids, jobs.owner(), lease_ms).await {
            Ok(claimed) => claimed,
            // The messages stay pending: taken over once their idle time
            // passes the lease.
            Err(_) => return false,
        };
        let mut claimed_ids: HashSet<i64> = claimed.iter().map(|job| job.id).collect();
        let mut message_of = HashMap::new();
        let mut unclaimed = Vec::new();
        for message in messages {
            match message.job {
                Some(job) if claimed_ids.remove(&job) => {
                    message_of.insert(job, message.id);
                }
                // Another worker holds or finished the job (one of this
                // process's own while Redis was down, from the database), or
                // the message is a duplicate: done with.
                _ => unclaimed.push(message.id),
            }
        }
        let mut shared = env.redis().connection();
        let _ = streams::done(&mut shared, queue, &unclaimed).await;
        for job in claimed {
            let Some(permit) = permits.pop() else { break };
            let message = message_of.remove(&job.id).unwrap_or_default();
            let mut connection = env.redis().connection();
            run_in_task(env, job, permit, async move {
                let _ = streams::done(&mut connection, queue, &[message]).await;
            });
        }
        false
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
