//! The Redis connection behind the job queues.
//!
//! The connection manager is created without connecting and reconnects by
//! itself after an outage, so Redis can come and go without a restart.

use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};

use crate::deps::Probe;
use crate::error::{Error, Fault, Result};

/// A self-healing Redis connection.
#[derive(Clone)]
pub struct RedisClient {
    client: redis::Client,
    timeout: Duration,
    manager: ConnectionManager,
}

impl RedisClient {
    /// Prepares the connection without connecting. `timeout` bounds each
    /// connection attempt and each command.
    pub fn new(url: &SecretString, timeout: Duration) -> Result<Self> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|_| Error::Setup("REDIS_URL is not a valid Redis URL".to_owned()))?;
        let manager = lazy_manager(&client, timeout, timeout)?;
        Ok(RedisClient {
            client,
            timeout,
            manager,
        })
    }

    /// A connection of its own, for a command that blocks (a stream read
    /// waiting `block` for messages) and must not hold up the shared one.
    pub fn dedicated(&self, block: Duration) -> Result<ConnectionManager> {
        lazy_manager(&self.client, self.timeout, block + self.timeout)
    }

    /// A handle for issuing commands.
    pub fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }
}

fn lazy_manager(
    client: &redis::Client,
    connect: Duration,
    response: Duration,
) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect))
        .set_response_timeout(Some(response))
        // Reconnection is driven by our monitor and by each command, not by
        // long retry loops inside one call.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|_| Error::Setup("the Redis connection cannot be configured".to_owned()))
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
    } else {
        Fault::temporary("REDIS_ERROR")
    }
}

impl Probe for RedisClient {
    fn check(&self) -> BoxFuture<'_, Result<(), Fault>> {
        Box::pin(async move {
            let mut connection = self.manager.clone();
            let pong: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(|e| classify(&e))?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(Fault::temporary("UNEXPECTED_REPLY"))
            }
        })
    }
}
