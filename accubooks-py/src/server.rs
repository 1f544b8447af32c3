//! `AccuBooks.serve()`: the full HTTP contract, served by the axum host on
//! the shared runtime, in the background of the Python process.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::error::{Failure, Outcome};
use crate::instance::Instance;
use crate::runtime::block_on;

/// A running server task.
pub(crate) struct ServerTask {
    instance: Arc<Instance>,
    addr: SocketAddr,
    task: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
}

impl ServerTask {
    /// Binds `host:port` and starts serving; must run on the shared runtime.
    pub(crate) async fn start(
        instance: Arc<Instance>,
        host: &str,
        port: u16,
    ) -> Outcome<Arc<ServerTask>> {
        if instance.is_closed() {
            return Err(crate::instance::closed());
        }
        let listener = TcpListener::bind((host, port)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accubooks_axum::serve(instance.app().clone(), listener));
        let server = Arc::new(ServerTask {
            instance: Arc::clone(&instance),
            addr,
            task: Mutex::new(Some(task)),
        });
        // The instance keeps its servers (to stop them on close) and a server
        // keeps its instance: a server left running is never dropped with a
        // forgotten handle, and the cycle ends at stop() or close().
        instance.track(Arc::clone(&server));
        Ok(server)
    }

    /// Whether the server has stopped.
    pub(crate) fn is_finished(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
    }

    /// Begins the graceful shutdown and waits for the server to drain, at
    /// most `limit`; then abandons it. Idempotent.
    pub(crate) async fn stop(&self, limit: Duration) -> Outcome<()> {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut task) = task else { return Ok(()) };
        self.instance.app().begin_drain();
        match tokio::time::timeout(limit, &mut task).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(_)) => Err(Failure::Io(std::io::Error::other("the server task failed"))),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

/// An HTTP server of an `AccuBooks` handle, serving the whole contract.
///
/// Stopping it begins the graceful shutdown of the handle itself (`/ready`
/// answers `draining`), drains in-flight requests and closes the handle: a
/// server is the host of its instance.
#[pyclass(frozen, module = "accubooks")]
pub(crate) struct Server {
    task: Arc<ServerTask>,
}

impl Server {
    /// Wraps a started server.
    pub(crate) fn new(task: Arc<ServerTask>) -> Self {
        Server { task }
    }

    fn default_limit(&self) -> Duration {
        self.task.instance.app().config().drain_timeout + Duration::from_secs(1)
    }
}

/// A timeout in seconds from Python: finite and not negative.
pub(crate) fn seconds(timeout: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(timeout).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "timeout must be a finite number of seconds, at least 0 (got {timeout})"
        ))
    })
}

#[pymethods]
impl Server {
    /// The port it listens on.
    #[getter]
    fn port(&self) -> u16 {
        self.task.addr.port()
    }

    /// The address it listens on.
    #[getter]
    fn host(&self) -> String {
        self.task.addr.ip().to_string()
    }

    /// `http://host:port`, without a trailing slash.
    #[getter]
    fn url(&self) -> String {
        match self.task.addr {
            SocketAddr::V4(addr) => format!("http://{addr}"),
            SocketAddr::V6(addr) => format!("http://[{}]:{}", addr.ip(), addr.port()),
        }
    }

    /// Whether it is still serving.
    #[getter]
    fn running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Drains and stops the server (and so its handle); waits at most
    /// `timeout` seconds (default: `DRAIN_TIMEOUT_MS` plus one second).
    #[pyo3(signature = (timeout = None))]
    fn stop(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let limit = timeout
            .map(seconds)
            .transpose()?
            .unwrap_or(self.default_limit());
        let task = Arc::clone(&self.task);
        block_on(py, async move {
            let result = task.stop(limit).await;
            // The server closed the instance; mark the handle closed too.
            task.instance.close().await;
            result
        })?;
        Ok(())
    }

    /// `stop()` as a coroutine, for asyncio code.
    #[pyo3(signature = (timeout = None))]
    fn astop<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let limit = timeout
            .map(seconds)
            .transpose()?
            .unwrap_or(self.default_limit());
        let task = Arc::clone(&self.task);
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let result = task.stop(limit).await;
            task.instance.close().await;
            Ok(crate::convert::Reply::unit(result))
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.stop(py, None)
    }

    fn __repr__(&self) -> String {
        format!(
            "<accubooks.Server {} running={}>",
            self.url(),
            self.running()
        )
    }
}

/// Starts a server for `instance` from a blocking call.
pub(crate) fn serve_blocking(
    py: Python<'_>,
    instance: &Arc<Instance>,
    host: String,
    port: u16,
) -> PyResult<Server> {
    let instance = Arc::clone(instance);
    let task = block_on(
        py,
        async move { ServerTask::start(instance, &host, port).await },
    )?;
    Ok(Server::new(task))
}
