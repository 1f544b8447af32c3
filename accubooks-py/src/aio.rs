//! The asyncio classes: `accubooks.aio.AsyncAccuBooks` and
//! `accubooks.aio.AsyncOrganization`.
//!
//! Every method that may wait returns an awaitable made with
//! `pyo3_async_runtimes::tokio::future_into_py`: the work runs on the shared
//! Tokio runtime and the result is converted where `pyo3-async-runtimes`
//! holds the GIL. Reading kept state (health, metrics, phase) never waits, so
//! those methods are plain functions, as in the blocking class.

use std::future::Future;
use std::sync::Arc;

use accubooks_core::Config;
use accubooks_core::ledger::{Credentials, Registration};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3_async_runtimes::tokio::future_into_py;
use serde_json::Value;

use crate::blocking::{config_from_args, start};
use crate::convert::{self, Mode, Payload, Reply, to_py};
use crate::error::Outcome;
use crate::instance::{Instance, Org, role_name};
use crate::server::{ServerTask, seconds};

/// Hands a book operation to the event loop.
fn books<'py, F>(py: Python<'py>, operation: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Outcome<Value>> + Send + 'static,
{
    future_into_py(py, async move { Ok(Reply::books(operation.await)) })
}

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

/// One organization's books, for asyncio code.
#[pyclass(frozen, module = "accubooks.aio")]
pub(crate) struct AsyncOrganization {
    instance: Arc<Instance>,
    org: Org,
}

impl AsyncOrganization {
    /// A handle on `org`.
    pub(crate) fn new(instance: Arc<Instance>, org: Org) -> Self {
        AsyncOrganization { instance, org }
    }

    fn parts(&self) -> (Arc<Instance>, Org) {
        (Arc::clone(&self.instance), self.org)
    }
}

#[pymethods]
impl AsyncOrganization {
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

    /// A bearer token of the user for the HTTP API (never waits).
    fn token(&self) -> PyResult<String> {
        Ok(self.instance.token(&self.org)?)
    }

    /// Adds a user (owners only).
    #[pyo3(signature = (email, password, role = "accountant".to_owned()))]
    fn create_user<'py>(
        &self,
        py: Python<'py>,
        email: String,
        password: String,
        role: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (instance, org) = self.parts();
        books(py, async move {
            instance.create_user(&org, email, password, &role).await
        })
    }

    /// Opens an account.
    #[pyo3(signature = (code, name, r#type, currency, parent = None))]
    fn create_account<'py>(
        &self,
        py: Python<'py>,
        code: String,
        name: String,
        r#type: String,
        currency: String,
        parent: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (instance, org) = self.parts();
        books(py, async move {
            instance
                .create_account(&org, code, name, &r#type, currency, parent)
                .await
        })
    }

    /// The accounts with their balances, by code.
    fn accounts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (instance, org) = self.parts();
        books(py, async move { instance.accounts(&org).await })
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
        let (instance, org) = self.parts();
        books(py, async move {
            instance.post_entry(&org, input, idempotency_key).await
        })
    }

    /// Posts many entries at once, all or none; their ids in order.
    #[pyo3(signature = (entries, *, idempotency_key = None))]
    fn post_entries<'py>(
        &self,
        py: Python<'py>,
        entries: &Bound<'py, PyAny>,
        idempotency_key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let inputs = convert::entries_arg(entries)?;
        let (instance, org) = self.parts();
        future_into_py(py, async move {
            let ids = instance.post_entries(&org, inputs, idempotency_key).await;
            Ok(Reply::new(ids.map(Payload::Ids)))
        })
    }

    /// One journal entry.
    fn entry<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        let (instance, org) = self.parts();
        books(py, async move { instance.entry(&org, id).await })
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
        let (instance, org) = self.parts();
        books(py, async move {
            instance
                .reverse_entry(&org, id, date, idempotency_key)
                .await
        })
    }

    /// The trial balance at the end of `as_of` (default: today, UTC).
    #[pyo3(signature = (as_of = None))]
    fn trial_balance<'py>(
        &self,
        py: Python<'py>,
        as_of: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let as_of = convert::optional_date(as_of, "as_of")?;
        let (instance, org) = self.parts();
        books(py, async move { instance.trial_balance(&org, as_of).await })
    }

    /// The balance sheet at the end of `as_of` (default: today, UTC).
    #[pyo3(signature = (as_of = None))]
    fn balance_sheet<'py>(
        &self,
        py: Python<'py>,
        as_of: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let as_of = convert::optional_date(as_of, "as_of")?;
        let (instance, org) = self.parts();
        books(py, async move { instance.balance_sheet(&org, as_of).await })
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
        let (instance, org) = self.parts();
        books(py, async move {
            instance.income_statement(&org, from, to).await
        })
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
        let (instance, org) = self.parts();
        books(py, async move {
            instance.general_ledger(&org, account, from, to).await
        })
    }

    /// The books up to `as_of` as an `hledger` or `beancount` journal.
    #[pyo3(signature = (format, as_of = None))]
    fn export_ledger<'py>(
        &self,
        py: Python<'py>,
        format: String,
        as_of: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let as_of = convert::optional_date(as_of, "as_of")?;
        let (instance, org) = self.parts();
        future_into_py(py, async move {
            let text = instance.export_ledger(&org, &format, as_of).await;
            Ok(Reply::new(text.map(Payload::Text)))
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "<accubooks.aio.AsyncOrganization id={} role={}>",
            self.org.id,
            role_name(self.org.role)
        )
    }
}
