//! The Redis connection behind the job queues: one server, or a Redis
//! Cluster.
//!
//! Connections are created without connecting and reconnect by themselves
//! after an outage, so Redis can come and go without a restart. On a cluster
//! the client learns the slots from the nodes it was given, and follows a
//! failover (a replica promoted in a master's place) when the old master
//! stops answering or a node answers `MOVED`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use secrecy::ExposeSecret;

use crate::config::RedisConfig;
use crate::deps::Probe;
use crate::error::{Error, Fault, Result};
use crate::jobs::Queue;
use crate::jobs::streams::stream_key;

/// A self-healing connection to Redis.
#[derive(Clone)]
pub struct RedisClient {
    target: Target,
    timeout: Duration,
    shared: Connection,
    wait_replicas: u32,
    /// The registered queues, whose streams the cluster check looks at
    /// (set once the jobs are registered, before the first probe).
    queues: Arc<OnceLock<Vec<Queue>>>,
}

/// What the client connects to.
#[derive(Clone)]
enum Target {
    Server(redis::Client),
    // Boxed: the cluster client is twice the size of the other.
    Cluster(Box<ClusterClient>),
}

/// A handle for issuing commands, to one server or to a cluster. Cheap to
/// clone: clones share the connection.
#[derive(Clone)]
pub enum Connection {
    /// One server.
    Server(ConnectionManager),
    /// A Redis Cluster: each command goes to the master of its key's slot.
    Cluster(ClusterConnection),
}

impl RedisClient {
    /// Prepares the connection without connecting. `timeout` bounds each
    /// connection attempt and each command.
    pub fn new(config: &RedisConfig, timeout: Duration) -> Result<Self> {
        let invalid = || Error::Setup("REDIS_URL is not a valid Redis URL".to_owned());
        let target = if config.cluster {
            Target::Cluster(Box::new(
                ClusterClient::builder(config.nodes())
                    // A command meets at most one failover or resharding
                    // step; the monitor and the next command do the rest.
                    .retries(2)
                    .build()
                    .map_err(|_| invalid())?,
            ))
        } else {
            Target::Server(redis::Client::open(config.url.expose_secret()).map_err(|_| invalid())?)
        };
        let shared = lazy(&target, timeout, timeout)?;
        Ok(RedisClient {
            target,
            timeout,
            shared,
            wait_replicas: config.wait_replicas,
            queues: Arc::default(),
        })
    }

    /// Sets the queues whose streams the health check of a cluster looks
    /// at: the registered ones. Only the first call counts.
    pub(crate) fn check_queues(&self, queues: &[Queue]) {
        let _ = self.queues.set(queues.to_vec());
    }

    /// A connection of its own, for a command that blocks (a stream read
    /// waiting `block` for messages) and must not hold up the shared one.
    pub fn dedicated(&self, block: Duration) -> Result<Connection> {
        lazy(&self.target, self.timeout, block + self.timeout)
    }

    /// A handle for issuing commands.
    pub fn connection(&self) -> Connection {
        self.shared.clone()
    }

    /// How many replicas must hold a write before it counts (`WAIT`).
    pub fn wait_replicas(&self) -> u32 {
        self.wait_replicas
    }

    /// How long a command may take, `WAIT` included.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

fn lazy(target: &Target, connect: Duration, response: Duration) -> Result<Connection> {
    match target {
        Target::Server(client) => {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(connect))
                .set_response_timeout(Some(response))
                // Reconnection is driven by our monitor and by each
                // command, not by long retry loops inside one call.
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(200));
            ConnectionManager::new_lazy_with_config(client.clone(), config)
                .map(Connection::Server)
                .map_err(|_| Error::Setup("the Redis connection cannot be configured".to_owned()))
        }
        Target::Cluster(client) => {
            let config = ClusterConfig::new()
                .set_connection_timeout(connect)
                .set_response_timeout(response);
            Ok(Connection::Cluster(
                client.get_pending_async_connection_with_config(config),
            ))
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Server(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Server(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// Sorts a Redis error into a safe code with its transience.
pub fn classify(err: &redis::RedisError) -> Fault {
    if err.is_timeout() {
        Fault::TIMEOUT
    } else if err.is_connection_refusal() {
        Fault::temporary("CONNECTION_REFUSED")
    } else if err.is_connection_dropped() || err.is_io_error() {
        Fault::temporary("CONNECTION_RESET")
    } else if matches!(
        err.kind(),
        redis::ErrorKind::AuthenticationFailed | redis::ErrorKind::InvalidClientConfig
    ) {
        Fault::permanent("AUTHENTICATION_FAILED")
    } else if err.is_cluster_error() {
        Fault::temporary("CLUSTER_DOWN")
    } else {
        Fault::temporary("REDIS_ERROR")
    }
}

impl Probe for RedisClient {
    fn check(&self) -> BoxFuture<'_, Result<(), Fault>> {
        Box::pin(async move {
            match &self.shared {
                Connection::Server(_) => {
                    let mut connection = self.shared.clone();
                    let pong: String = redis::cmd("PING")
                        .query_async(&mut connection)
                        .await
                        .map_err(|e| classify(&e))?;
                    if pong == "PONG" {
                        Ok(())
                    } else {
                        Err(Fault::temporary("UNEXPECTED_REPLY"))
                    }
                }
                // A cluster is up for the queues when the master of every
                // queue's slot answers (a PING would go to every node,
                // replicas and failed masters included).
                Connection::Cluster(_) => {
                    let queues = self.queues.get().map_or(&[][..], Vec::as_slice);
                    let checks = queues.iter().map(|&queue| {
                        let mut connection = self.shared.clone();
                        async move {
                            redis::cmd("EXISTS")
                                .arg(stream_key(queue))
                                .query_async::<i64>(&mut connection)
                                .await
                        }
                    });
                    for answer in futures::future::join_all(checks).await {
                        answer.map_err(|e| classify(&e))?;
                    }
                    Ok(())
                }
            }
        })
    }
}
