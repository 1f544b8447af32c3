//! The blocking classes: `accubooks.AccuBooks` and `accubooks.Organization`.
//!
//! Every call that may wait runs on the shared runtime with the GIL
//! released. The classes are frozen and hold only `Arc`s, so any number of
//! Python threads may share one handle.

use std::sync::Arc;

use accubooks_core::Config;
use accubooks_core::identity::{Credentials, Registration};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::convert::{self, to_py};
use crate::error::Failure;
use crate::instance::{Instance, Org};
use crate::runtime::block_on;
use crate::server::{Server, seconds, serve_blocking};

/// Builds an instance from a configuration, on the shared runtime.
pub(crate) fn start(
    py: Python<'_>,
    config: Result<Config, accubooks_core::ConfigError>,
) -> PyResult<Arc<Instance>> {
    let config = config.map_err(Failure::from)?;
    Ok(block_on(py, Instance::start(config))?)
}

/// The configuration of `AccuBooks(database_url, **config)`.
pub(crate) fn config_from_args(
    database_url: Option<String>,
    config: Option<&Bound<'_, PyDict>>,
) -> PyResult<Result<Config, accubooks_core::ConfigError>> {
    Ok(Config::from_vars(convert::config_vars(
        database_url,
        config,
    )?))
}

/// An AccuBooks instance: its books, its health and its HTTP server.
#[pyclass(frozen, module = "accubooks", name = "AccuBooks")]
pub(crate) struct AccuBooks {
    instance: Arc<Instance>,
}

#[pymethods]
impl AccuBooks {
    #[new]
    #[pyo3(signature = (database_url = None, **config))]
    fn new(
        py: Python<'_>,
        database_url: Option<String>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let config = config_from_args(database_url, config)?;
        Ok(AccuBooks {
            instance: start(py, config)?,
        })
    }

    /// An instance configured from the environment (and `.env`), like the
    /// standalone server.
    #[staticmethod]
    fn from_env(py: Python<'_>) -> PyResult<Self> {
        Ok(AccuBooks {
            instance: start(py, Config::from_env())?,
        })
    }

    /// The body of `GET /api/monitoring/health`.
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

    /// Waits until ready; `False` when `timeout` seconds pass first.
    #[pyo3(signature = (timeout = 5.0))]
    fn wait_ready(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let limit = seconds(timeout)?;
        Ok(block_on(py, self.instance.wait_ready(limit)))
    }

    /// Drains and stops its servers, stops the monitors, closes the pools.
    fn close(&self, py: Python<'_>) {
        block_on(py, self.instance.close());
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.instance.is_closed()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) {
        self.close(py);
    }

    /// Creates an organization, its owner and its default chart of accounts.
    #[pyo3(signature = (email, password, organization, currency = "USD"))]
    fn register(
        &self,
        py: Python<'_>,
        email: String,
        password: String,
        organization: String,
        currency: &str,
    ) -> PyResult<Organization> {
        let registration = Registration {
            email,
            password,
            organization,
            currency: Some(currency.to_owned()),
        };
        let org = block_on(py, self.instance.register(registration))?;
        Ok(Organization::new(Arc::clone(&self.instance), org))
    }

    /// Logs a user in: their organization, with their role.
    fn login(&self, py: Python<'_>, email: String, password: String) -> PyResult<Organization> {
        let org = block_on(py, self.instance.login(Credentials { email, password }))?;
        Ok(Organization::new(Arc::clone(&self.instance), org))
    }

    /// An existing organization, by id, with owner rights.
    fn organization(&self, py: Python<'_>, id: &str) -> PyResult<Organization> {
        let org = block_on(py, self.instance.organization(id))?;
        Ok(Organization::new(Arc::clone(&self.instance), org))
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
        let books = self.instance.books();
        let receipt = block_on(py, async {
            crate::instance::json(
                books
                    .stripe_webhook(
                        payload,
                        signature.as_deref(),
                        accubooks_core::usecases::Client::Host,
                    )
                    .await,
            )
        })?;
        to_py(py, &receipt.value)
    }

    /// Serves the whole HTTP contract on `host:port` (0: a free port) in the
    /// background.
    #[pyo3(signature = (host = "127.0.0.1".to_owned(), port = 0))]
    fn serve(&self, py: Python<'_>, host: String, port: u16) -> PyResult<Server> {
        serve_blocking(py, &self.instance, host, port)
    }

    fn __repr__(&self) -> String {
        format!("<accubooks.AccuBooks phase={}>", self.instance.phase())
    }
}

/// One organization's books; its methods are in [`crate::organization`].
#[pyclass(frozen, module = "accubooks")]
pub(crate) struct Organization {
    pub(crate) instance: Arc<Instance>,
    pub(crate) org: Org,
}

impl Organization {
    fn new(instance: Arc<Instance>, org: Org) -> Self {
        Organization { instance, org }
    }
}
