//! The Redis side of the redis transport: one stream per queue, read by one
//! consumer group that every process joins.
//!
//! A stream's key carries a hash tag (`{accubooks:<queue>}`), so on Redis
//! Cluster all of one queue's commands go to one slot. A message holds only
//! the job's id (field `job`): the job itself stays in the database.

use redis::AsyncCommands;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};

use super::Queue;
use crate::error::Fault;
use crate::jobs::redis_client::{Connection, RedisClient, classify};

/// The consumer group of every AccuBooks process.
pub(crate) const GROUP: &str = "accubooks";

/// The stream of a queue.
pub(crate) fn stream_key(queue: Queue) -> String {
    format!("{{accubooks:{}}}:jobs", queue.as_str())
}

/// A message read from a stream: its id and the job it names (`None` for a
/// message that names none, which is dropped).
pub(crate) struct Message {
    pub id: String,
    pub job: Option<i64>,
}

fn message(entry: StreamId) -> Message {
    let job = entry.get::<String>("job").and_then(|id| id.parse().ok());
    Message { id: entry.id, job }
}

/// Appends one message per job: one round trip per queue, as each queue's
/// stream may live on another cluster node. With `REDIS_WAIT_REPLICAS` set,
/// each round trip ends with a `WAIT` for that many replicas, and fewer
/// answers fail the append: the jobs stay in the outbox and are sent again
/// (a duplicate message is harmless, the claim runs a job once). `queues`:
/// the registered queues, in the order they are sent to.
pub(crate) async fn append(
    redis: &RedisClient,
    queues: &[Queue],
    jobs: &[(i64, Queue)],
) -> Result<(), Fault> {
    let wanted = redis.wait_replicas();
    for &queue in queues {
        let key = stream_key(queue);
        let mut pipe = redis::pipe();
        for (id, _) in jobs.iter().filter(|(_, q)| *q == queue) {
            pipe.xadd(&key, "*", &[("job", id)]).ignore();
        }
        if pipe.is_empty() {
            continue;
        }
        let mut connection = redis.connection();
        if wanted == 0 {
            pipe.query_async::<()>(&mut connection)
                .await
                .map_err(|e| classify(&e))?;
            continue;
        }
        let wait_ms = u64::try_from(redis.timeout().as_millis() / 2).unwrap_or(u64::MAX);
        pipe.cmd("WAIT").arg(wanted).arg(wait_ms);
        let (acknowledged,): (u32,) = pipe
            .query_async(&mut connection)
            .await
            .map_err(|e| classify(&e))?;
        if acknowledged < wanted {
            return Err(Fault::temporary("REPLICAS_BEHIND"));
        }
    }
    Ok(())
}

/// Creates the queue's group (and its stream) if it does not exist.
/// Answers whether it had to be created: then the stream was new, or Redis
/// lost it (a restart without persistence), and jobs it held must be sent
/// again.
pub(crate) async fn ensure_group(connection: &mut Connection, queue: Queue) -> Result<bool, Fault> {
    let created: redis::RedisResult<()> = connection
        .xgroup_create_mkstream(stream_key(queue), GROUP, "0")
        .await;
    match created {
        Ok(()) => Ok(true),
        Err(err) if err.code() == Some("BUSYGROUP") => Ok(false),
        Err(err) => Err(classify(&err)),
    }
}

/// Why a read failed.
pub(crate) enum ReadError {
    /// The group (or the stream) is gone: Redis lost it.
    NoGroup,
    /// Any other failure.
    Failed(Fault),
}

fn read_error(err: &redis::RedisError) -> ReadError {
    if err.code() == Some("NOGROUP") {
        ReadError::NoGroup
    } else {
        ReadError::Failed(classify(err))
    }
}

/// Reads up to `count` new messages for `consumer`, waiting at most
/// `block_ms` for the first.
pub(crate) async fn read(
    connection: &mut Connection,
    queue: Queue,
    consumer: &str,
    count: usize,
    block_ms: usize,
) -> Result<Vec<Message>, ReadError> {
    let options = StreamReadOptions::default()
        .group(GROUP, consumer)
        .count(count)
        .block(block_ms);
    let reply: Option<StreamReadReply> = connection
        .xread_options(&[stream_key(queue)], &[">"], &options)
        .await
        .map_err(|e| read_error(&e))?;
    Ok(reply
        .into_iter()
        .flat_map(|reply| reply.keys)
        .flat_map(|key| key.ids)
        .map(message)
        .collect())
}

/// Takes over up to `count` messages that another consumer read more than
/// `min_idle_ms` ago without acknowledging them (its process died, or is
/// still running the job: the claim in the database tells which).
pub(crate) async fn take_over(
    connection: &mut Connection,
    queue: Queue,
    consumer: &str,
    min_idle_ms: u64,
    count: usize,
) -> Result<Vec<Message>, ReadError> {
    let reply: StreamAutoClaimReply = connection
        .xautoclaim_options(
            stream_key(queue),
            GROUP,
            consumer,
            min_idle_ms,
            "0-0",
            StreamAutoClaimOptions::default().count(count),
        )
        .await
        .map_err(|e| read_error(&e))?;
    Ok(reply.claimed.into_iter().map(message).collect())
}

/// Acknowledges and deletes messages that are done with (so the stream
/// holds only work not yet finished).
pub(crate) async fn done(
    connection: &mut Connection,
    queue: Queue,
    ids: &[String],
) -> Result<(), Fault> {
    if ids.is_empty() {
        return Ok(());
    }
    let key = stream_key(queue);
    let mut pipe = redis::pipe();
    pipe.xack(&key, GROUP, ids)
        .ignore()
        .xdel(&key, ids)
        .ignore();
    pipe.query_async::<()>(connection)
        .await
        .map_err(|e| classify(&e))
}
