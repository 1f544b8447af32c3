//! The blocking classes: `accubooks.AccuBooks` and `accubooks.Organization`.
//!
//! Every call that may wait runs on the shared runtime with the GIL
//! released. The classes are frozen and hold only `Arc`s, so any number of
//! Python threads may share one handle.

use std::future::Future;
use std::sync::Arc;

use accubooks_core::Config;
use accubooks_core::ledger::{Credentials, Registration};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use serde_json::Value;

use crate::convert::{self, Mode, to_py};
use crate::error::{Failure, Outcome};
use crate::instance::{Instance, Org, role_name};
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

/// Runs a book operation and converts its answer.
fn books<'py, F>(py: Python<'py>, operation: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Outcome<Value>> + Send,
{
    let value = block_on(py, operation)?;
    to_py(py, &value, Mode::Books)
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
        to_py(py, &self.instance.health(), Mode::Plain)
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

/// One organization's books.
#[pyclass(frozen, module = "accubooks")]
pub(crate) struct Organization {
    instance: Arc<Instance>,
    org: Org,
}

impl Organization {
    fn new(instance: Arc<Instance>, org: Org) -> Self {
        Organization { instance, org }
    }
}

#[pymethods]
impl Organization {
    /// The organization's id (a UUID).
    #[getter]
    fn id(&self) -> String {
        self.org.id.to_string()
    }

    /// The user who registered or logged in; `None` when opened by id.
    #[getter]
    fn user_id(&self) -> Option<String> {
        self.org.user.map(|u| u.to_string())
    }

    /// `"owner"`, `"accountant"` or `"viewer"`.
    #[getter]
    fn role(&self) -> &'static str {
        role_name(self.org.role)
    }

    /// A bearer token of the user for the HTTP API, valid for 12 hours.
    fn token(&self) -> PyResult<String> {
        Ok(self.instance.token(&self.org)?)
    }

    /// Adds a user (owners only).
    #[pyo3(signature = (email, password, role = "accountant"))]
    fn create_user<'py>(
        &self,
        py: Python<'py>,
        email: String,
        password: String,
        role: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        books(
            py,
            self.instance.create_user(&self.org, email, password, role),
        )
    }

    /// Opens an account.
    #[pyo3(signature = (code, name, r#type, currency, parent = None))]
    fn create_account<'py>(
        &self,
        py: Python<'py>,
        code: String,
        name: String,
        r#type: &str,
        currency: String,
        parent: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let org = &self.org;
        books(
            py,
            self.instance
                .create_account(org, code, name, r#type, currency, parent),
        )
    }

    /// The accounts with their balances, by code.
    fn accounts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        books(py, self.instance.accounts(&self.org))
    }

    /// Posts one balanced entry.
    #[pyo3(signature = (date, lines, memo = "", *, idempotency_key = None))]
    fn post_entry<'py>(
        &self,
        py: Python<'py>,
        date: &Bound<'py, PyAny>,
        lines: &Bound<'py, PyAny>,
        memo: &str,
        idempotency_key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let input = convert::entry_input(date, lines, memo.to_owned(), "")?;
        books(
            py,
            self.instance.post_entry(&self.org, input, idempotency_key),
        )
    }

    /// Posts many entries at once, all or none; their ids in order.
    #[pyo3(signature = (entries, *, idempotency_key = None))]
    fn post_entries(
        &self,
        py: Python<'_>,
        entries: &Bound<'_, PyAny>,
        idempotency_key: Option<String>,
    ) -> PyResult<Vec<i64>> {
        let inputs = convert::entries_arg(entries)?;
        Ok(block_on(
            py,
            self.instance
                .post_entries(&self.org, inputs, idempotency_key),
        )?)
    }

    /// One journal entry.
    fn entry<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        books(py, self.instance.entry(&self.org, id))
    }

    /// Posts the mirror of an entry, dated `date` (default: the entry's date).
    #[pyo3(signature = (id, date = None, *, idempotency_key = None))]
    fn reverse_entry<'py>(
        &self,
        py: Python<'py>,
        id: i64,
        date: Option<&Bound<'py, PyAny>>,
        idempotency_key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let date = convert::optional_date(date, "date")?;
        books(
            py,
            self.instance
                .reverse_entry(&self.org, id, date, idempotency_key),
        )
    }

    /// The trial balance at the end of `as_of` (default: today, UTC).
    #[pyo3(signature = (as_of = None))]
    fn trial_balance<'py>(
        &self,
        py: Python<'py>,
        as_of: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let as_of = convert::optional_date(as_of, "as_of")?;
        books(py, self.instance.trial_balance(&self.org, as_of))
    }

    /// The balance sheet at the end of `as_of` (default: today, UTC).
    #[pyo3(signature = (as_of = None))]
    fn balance_sheet<'py>(
        &self,
        py: Python<'py>,
        as_of: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let as_of = convert::optional_date(as_of, "as_of")?;
        books(py, self.instance.balance_sheet(&self.org, as_of))
    }

    /// Revenue and expenses from `from_` to `to`, inclusive.
    fn income_statement<'py>(
        &self,
        py: Python<'py>,
        from_: &Bound<'py, PyAny>,
        to: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let from = convert::date_arg(from_, "from_")?;
        let to = convert::date_arg(to, "to")?;
        books(py, self.instance.income_statement(&self.org, from, to))
    }

    /// One account's postings from `from_` to `to`, with running balances.
    fn general_ledger<'py>(
        &self,
        py: Python<'py>,
        account: String,
        from_: &Bound<'py, PyAny>,
        to: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let from = convert::date_arg(from_, "from_")?;
        let to = convert::date_arg(to, "to")?;
        books(
            py,
            self.instance.general_ledger(&self.org, account, from, to),
        )
    }

    /// The books up to `as_of` as an `hledger` or `beancount` journal.
    #[pyo3(signature = (format, as_of = None))]
    fn export_ledger(
        &self,
        py: Python<'_>,
        format: &str,
        as_of: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let as_of = convert::optional_date(as_of, "as_of")?;
        Ok(block_on(
            py,
            self.instance.export_ledger(&self.org, format, as_of),
        )?)
    }

    fn __repr__(&self) -> String {
        format!(
            "<accubooks.Organization id={} role={}>",
            self.org.id,
            role_name(self.org.role)
        )
    }
}
