//! Accepting client connections, with the bounds every host applies.
//!
//! A host adapter turns its framework's application into a service and
//! hands it to [`serve_connections`], which owns the accept loop: hyper
//! (HTTP/1 and HTTP/2) with a timer, so that
//!
//! - a client must send a request's headers within `HEADER_READ_TIMEOUT_MS`
//!   (on HTTP/1 also the next request's on a kept-alive connection): a
//!   client trickling one header line a second is disconnected;
//! - a connection on which no byte moves for `IDLE_TIMEOUT_MS`, with no
//!   request being handled, is asked to close; one still silent after
//!   another `IDLE_TIMEOUT_MS` (a client that stopped reading its answer)
//!   is dropped;
//! - at most `MAX_CONNECTIONS` are open at once; a client beyond it gets a
//!   `503` with `Retry-After` and is disconnected, so the limit is visible
//!   rather than a silent backlog;
//! - a graceful shutdown stops accepting and lets open connections finish
//!   their requests (the caller bounds how long, see
//!   [`AccuBooks::serve_until_drained`](crate::AccuBooks::serve_until_drained)).
//!
//! Each request carries the client's address as a [`ClientAddr`] extension.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::config::Limits;

/// The client's address, in the extensions of every request served by
/// [`serve_connections`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// A host's application as a service of hyper's requests: what an axum
/// `Router` (through `tower::service_fn`) and `warp::service` give.
pub trait HostService:
    tower_service::Service<
        http::Request<Incoming>,
        Response = http::Response<Self::Body>,
        Error = Self::Failure,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    /// The response body.
    type Body: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
    /// The error of the service (hosts' are `Infallible`).
    type Failure: Into<BoxError>;
}

impl<S, B> HostService for S
where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
{
    type Body = B;
    type Failure = S::Error;
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a client over `MAX_CONNECTIONS` is told before it is disconnected.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 98\r\n\r\n\
{\"error\":\"The server has too many open connections. Retry shortly.\",\"code\":\"TOO_MANY_CONNECTIONS\"}";

/// Serves `service` on every connection `listener` accepts, within
/// `limits`, until `shutdown` resolves; then stops accepting and returns
/// once every open connection has finished.
pub async fn serve_connections<S>(
    listener: TcpListener,
    limits: Limits,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: HostService,
{
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closing_seen) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&open).try_acquire_owned() else {
            refuse(&stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = Tracked {
            inner: service.clone(),
            peer,
            activity: Arc::new(Activity::new()),
        };
        let closing = closing_seen.clone();
        tokio::spawn(async move {
            serve_one(stream, service, limits, closing).await;
            drop(slot);
        });
    }
    drop(listener);
    drop(closing_seen);
    closing.send_replace(());
    // Resolves when the last connection task dropped its receiver.
    closing.closed().await;
}

async fn serve_one<S: HostService>(
    stream: TcpStream,
    service: Tracked<S>,
    limits: Limits,
    mut closing: watch::Receiver<()>,
) {
    let activity = Arc::clone(&service.activity);
    let io = TokioIo::new(Counted {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let mut connection = pin!(builder.serve_connection(io, service));
    let mut asked_to_close = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            changed = closing.changed(), if !asked_to_close => {
                // Either a shutdown began or the server is gone: finish up.
                let _ = changed;
                connection.as_mut().graceful_shutdown();
                asked_to_close = true;
            }
            () = activity.idle_for(limits.idle_timeout) => {
                if asked_to_close {
                    tracing::debug!("dropping a connection that stayed silent after being asked to close");
                    return;
                }
                connection.as_mut().graceful_shutdown();
                asked_to_close = true;
                activity.touch();
            }
        }
    }
}

/// Tells a client over capacity so, without waiting on it: the answer fits
/// an empty socket buffer, and whatever is not written is dropped.
fn refuse(stream: &TcpStream) {
    let _ = stream.try_write(OVER_CAPACITY);
    tracing::debug!("refused a connection over MAX_CONNECTIONS");
}

async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind;
    // Errors of the connection being accepted, not of the listener.
    if matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    // Out of file descriptors, most likely: wait for some to be freed.
    tracing::error!(error = %err, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// When bytes last moved on a connection, and how many of its requests are
/// being handled.
struct Activity {
    started: tokio::time::Instant,
    last_millis: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            started: tokio::time::Instant::now(),
            last_millis: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn now_millis(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_millis.store(self.now_millis(), Ordering::Relaxed);
    }

    /// Resolves once the connection has been idle (no byte moved, no
    /// request being handled) for `limit`.
    async fn idle_for(&self, limit: Duration) {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        loop {
            let since = self.now_millis()
                - self
                    .last_millis
                    .load(Ordering::Relaxed)
                    .min(self.now_millis());
            if self.busy.load(Ordering::Relaxed) == 0 && since >= limit_ms {
                return;
            }
            let wait = if self.busy.load(Ordering::Relaxed) > 0 {
                limit_ms
            } else {
                limit_ms - since
            };
            tokio::time::sleep(Duration::from_millis(wait.max(1))).await;
        }
    }
}

/// Marks a request as being handled until dropped.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The host's service, adapted to hyper: adds the client's address and
/// counts requests in progress.
struct Tracked<S> {
    inner: S,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl<S: HostService> hyper::service::Service<http::Request<Incoming>> for Tracked<S> {
    type Response = http::Response<S::Body>;
    type Error = S::Failure;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, mut request: http::Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(ClientAddr(self.peer));
        let busy = Busy::new(&self.activity);
        let mut service = self.inner.clone();
        Box::pin(async move {
            futures::future::poll_fn(|cx| service.poll_ready(cx)).await?;
            let answer = service.call(request).await;
            drop(busy);
            answer
        })
    }
}

/// A stream that records when bytes move.
struct Counted {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_over_capacity_answer_is_well_formed() {
        let text = std::str::from_utf8(OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], "TOO_MANY_CONNECTIONS");
    }

    #[tokio::test(start_paused = true)]
    async fn idleness_waits_for_requests_in_progress() {
        let activity = Arc::new(Activity::new());
        let busy = Busy::new(&activity);
        let limit = Duration::from_secs(60);
        let idle = tokio::time::timeout(Duration::from_secs(600), activity.idle_for(limit));
        let released = async {
            tokio::time::sleep(Duration::from_secs(300)).await;
            drop(busy);
        };
        let started = tokio::time::Instant::now();
        let (idle, ()) = tokio::join!(idle, released);
        idle.unwrap();
        // Idle only a full limit after the request finished.
        assert!(
            started.elapsed() >= Duration::from_secs(360),
            "{:?}",
            started.elapsed()
        );
    }
}
