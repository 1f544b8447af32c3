//! The asyncio classes: `accubooks.aio.AsyncAccuBooks` and
//! `accubooks.aio.AsyncOrganization`.
//!
//! Every method that may wait returns an awaitable made with
//! `pyo3_async_runtimes::tokio::future_into_py`: the work runs on the shared
//! Tokio runtime and the result is converted where `pyo3-async-runtimes`
//! holds the GIL. Reading kept state (health, metrics, phase) never waits, so
//! those methods are plain functions, as in the blocking class.

use std::sync::Arc;

use accubooks_core::Config;
use accubooks_core::identity::{Credentials, Registration};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3_async_runtimes::tokio::future_into_py;

use crate::blocking::{config_from_args, start};
use crate::convert::{Payload, Reply, to_py};
use crate::instance::{Instance, Org};
use crate::server::{ServerTask, seconds};

/// An AccuBooks instance for asyncio code.
#[pyclass(frozen, module = "accubooks.aio")]
pub(crate) struct AsyncAccuBooks {
    instance: Arc<Instance>,
}

#[pymethods]
impl AsyncAccuBooks {
    #[new]
    #[pyo3(signature = (database_url = None, **config))]
    fn new(
        py: Python<'_>,
        database_url: Option<String>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let config = config_from_args(database_url, config)?;
        Ok(AsyncAccuBooks {
            instance: start(py, config)?,
        })
    }

    /// An instance configured from the environment (and `.env`).
    #[staticmethod]
    fn from_env(py: Python<'_>) -> PyResult<Self> {
        Ok(AsyncAccuBooks {
            instance: start(py, Config::from_env())?,
        })
    }

    /// The body of `GET /api/monitoring/health` (never waits).
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.instance.health())
    }

    /// Whether `/ready` answers 200.
    fn ready(&self) -> bool {
        self.instance.ready()
    }

    /// Whether `/live` answers 200 (until `close()`).
    fn live(&self) -> bool {
        self.instance.live()
    }

    /// The Prometheus text exposition of `/metrics`.
    fn metrics(&self) -> String {
        self.instance.metrics()
    }

    /// `"starting"`, `"ready"` or `"draining"`.
    fn phase(&self) -> &'static str {
        self.instance.phase()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.instance.is_closed()
    }

    /// Waits until ready; `False` when `timeout` seconds pass first.
    #[pyo3(signature = (timeout = 5.0))]
    fn wait_ready<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        let limit = seconds(timeout)?;
        let instance = Arc::clone(&self.instance);
        future_into_py(py, async move {
            Ok(Reply::new(Ok(Payload::Flag(
                instance.wait_ready(limit).await,
            ))))
        })
    }

    /// Drains and stops its servers, stops the monitors, closes the pools.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let instance = Arc::clone(&self.instance);
        future_into_py(py, async move {
            instance.close().await;
            Ok(Reply::unit(Ok(())))
        })
    }

    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let handle = slf.unbind();
        future_into_py(py, async move { Ok(handle) })
    }

    #[pyo3(signature = (*_args))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let instance = Arc::clone(&self.instance);
        future_into_py(py, async move {
            instance.close().await;
            Ok(Reply::unit(Ok(())))
        })
    }

    /// Creates an organization, its owner and its default chart of accounts.
    #[pyo3(signature = (email, password, organization, currency = "USD"))]
    fn register<'py>(
        &self,
        py: Python<'py>,
        email: String,
        password: String,
        organization: String,
        currency: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let registration = Registration {
            email,
            password,
            organization,
            currency: Some(currency.to_owned()),
        };
        let instance = Arc::clone(&self.instance);
        future_into_py(py, async move {
            let org = instance.register(registration).await;
            Ok(Reply::new(org.map(|org| Payload::AsyncOrg(instance, org))))
        })
    }

    /// Logs a user in: their organization, with their role.
    fn login<'py>(
        &self,
        py: Python<'py>,
        email: String,
        password: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let instance = Arc::clone(&self.instance);
        future_into_py(py, async move {
            let org = instance.login(Credentials { email, password }).await;
            Ok(Reply::new(org.map(|org| Payload::AsyncOrg(instance, org))))
        })
    }

    /// An existing organization, by id, with owner rights.
    fn organization<'py>(&self, py: Python<'py>, id: String) -> PyResult<Bound<'py, PyAny>> {
        let instance = Arc::clone(&self.instance);
        future_into_py(py, async move {
            let org = instance.organization(&id).await;
            Ok(Reply::new(org.map(|org| Payload::AsyncOrg(instance, org))))
        })
    }

    /// Takes one of Stripe's webhook calls, as a Python web framework
    /// received it: the raw body and the `Stripe-Signature` header. Answers
    /// `{"event", "outcome", "job_id"}`; raises `INVALID_SIGNATURE` (400)
    /// for a missing, forged or stale signature. No failure budget per
    /// client address applies (the web framework in front sees the
    /// clients; the HTTP hosts budget them).
    #[pyo3(signature = (payload, signature = None))]
    fn stripe_webhook<'py>(
        &self,
        py: Python<'py>,
        payload: &[u8],
        signature: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let instance = Arc::clone(&self.instance);
        let payload = payload.to_vec();
        future_into_py(py, async move {
            let books = instance.books();
            let receipt = books
                .stripe_webhook(
                    &payload,
                    signature.as_deref(),
                    accubooks_core::usecases::Client::Host,
                )
                .await;
            Ok(Reply::books(crate::instance::json(receipt)))
        })
    }

    /// Serves the whole HTTP contract on `host:port` in the background.
    #[pyo3(signature = (host = "127.0.0.1".to_owned(), port = 0))]
    fn serve<'py>(&self, py: Python<'py>, host: String, port: u16) -> PyResult<Bound<'py, PyAny>> {
        let instance = Arc::clone(&self.instance);
        future_into_py(py, async move {
            let task = ServerTask::start(instance, &host, port).await;
            Ok(Reply::new(task.map(Payload::Server)))
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "<accubooks.aio.AsyncAccuBooks phase={}>",
            self.instance.phase()
        )
    }
}

/// One organization's books, for asyncio code; its methods are in
/// [`crate::organization`].
#[pyclass(frozen, module = "accubooks.aio")]
pub(crate) struct AsyncOrganization {
    pub(crate) instance: Arc<Instance>,
    pub(crate) org: Org,
}

impl AsyncOrganization {
    /// A handle on `org`.
    pub(crate) fn new(instance: Arc<Instance>, org: Org) -> Self {
        AsyncOrganization { instance, org }
    }
}
