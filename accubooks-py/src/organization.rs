//! The methods of `accubooks.Organization` and
//! `accubooks.aio.AsyncOrganization`, written once.
//!
//! [`organization_classes!`] takes one list of book methods and expands it
//! twice: into the blocking class (the call runs on the shared runtime with
//! the GIL released) and into the asyncio class (the call is handed to the
//! event loop). Each method's body converts its Python arguments while it
//! holds the GIL, then gives a `Send` future that calls one use case of the
//! core and answers its JSON. `python/stubgen.py` writes the asyncio stub
//! from the blocking one in the same way.

use std::sync::Arc;

use accubooks_core::banking::{AccountMapping, LineStatus, LinkTokenRequest, MatchInput, NewLink};
use accubooks_core::http::ApiError;
use accubooks_core::identity::NewUser;
use accubooks_core::invoicing::recurring::NewRecurringInvoice;
use accubooks_core::invoicing::totals::TaxRounding;
use accubooks_core::invoicing::{NewCreditNote, NewCustomer, NewInvoice};
use accubooks_core::jobs::{JobStatus, Queue};
use accubooks_core::ledger::ExportFormat;
use accubooks_core::paging::PageRequest;
use accubooks_core::payroll::{NewEmployee, NewPayrollRun, PayrollRule};
use accubooks_core::reporting::NewReportJob;
use accubooks_core::usecases::{Batch, Close, Dated, Payment, SettingsChange};
use accubooks_core::webhooks::NewEndpoint;
use pyo3::prelude::*;
use pyo3_async_runtimes::tokio::future_into_py;
use serde_json::Value;

use crate::convert::{self, Payload, Reply};
use crate::error::invalid;
use crate::instance::{json, key, paged, parse_role, report_page, role_name};

/// The methods both organization classes share: `fn name [instance, org]
/// (arguments) { conversions; async move { the call } }`. `instance` and
/// `org` name the handle's parts inside the body.
macro_rules! organization_classes {
    (
        $(
            $(#[doc = $doc:literal])*
            #[pyo3(signature = $signature:tt)]
            fn $name:ident [$instance:ident, $org:ident] ($($arg:ident : $ty:ty),* $(,)?) $body:block
        )*
    ) => {
        organization_classes!(@class crate::blocking::Organization, "accubooks.Organization",
            |py, call| {
                let answer = crate::runtime::block_on(py, call)?;
                Reply::new(Ok(Payload::from(answer))).into_pyobject(py)
            };
            $( $(#[doc = $doc])* #[pyo3(signature = $signature)]
               fn $name [$instance, $org] ($($arg : $ty),*) $body )*);
        organization_classes!(@class crate::aio::AsyncOrganization, "accubooks.aio.AsyncOrganization",
            |py, call| future_into_py(py, async move { Ok(Reply::new(call.await.map(Payload::from))) });
            $( $(#[doc = $doc])* #[pyo3(signature = $signature)]
               fn $name [$instance, $org] ($($arg : $ty),*) $body )*);
    };
    (
        @class $class:path, $python_name:literal, |$py:ident, $call:ident| $finish:expr;
        $(
            $(#[doc = $doc:literal])*
            #[pyo3(signature = $signature:tt)]
            fn $name:ident [$instance:ident, $org:ident] ($($arg:ident : $ty:ty),*) $body:block
        )*
    ) => {
        #[pymethods]
        impl $class {
            $(
                $(#[doc = $doc])*
                #[pyo3(signature = $signature)]
                // The Python signature decides the arguments (create_account's seven).
                #[allow(clippy::too_many_arguments)]
                fn $name<'py>(&self, $py: Python<'py>, $($arg: $ty),*) -> PyResult<Bound<'py, PyAny>> {
                    let ($instance, $org) = (Arc::clone(&self.instance), self.org);
                    let $call = $body;
                    $finish
                }
            )*

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

            /// `"owner"`, `"accountant"` or `"viewer"`: the role it was opened with.
            #[getter]
            fn role(&self) -> &'static str {
                role_name(self.org.role)
            }

            /// A bearer token of the user for the HTTP API, valid for 12 hours
            /// (never waits).
            fn token(&self) -> PyResult<String> {
                Ok(self.instance.token(&self.org)?)
            }

            fn __repr__(&self) -> String {
                format!("<{} id={} role={}>", $python_name, self.org.id, role_name(self.org.role))
            }
        }
    };
}

/// A user id argument.
fn user_arg(text: &str) -> PyResult<uuid::Uuid> {
    text.trim().parse().map_err(|_| {
        invalid(
            "INVALID_FIELD",
            format!("{text:?} is not a user id (a UUID)."),
        )
        .into()
    })
}

/// The page a list method asks for: `limit` 1 to 500 (default 100), and
/// `after`, the `next_cursor` of the page before.
fn page<K: serde::de::DeserializeOwned>(
    limit: Option<i64>,
    after: Option<&str>,
) -> PyResult<PageRequest<K>> {
    PageRequest::new(limit, after)
        .map_err(|err| crate::error::Failure::from(ApiError::from(err)).into())
}

fn dated(date: Option<&Bound<'_, PyAny>>) -> PyResult<Dated> {
    Ok(Dated {
        date: convert::optional_date(date, "date")?,
    })
}

fn date_value(text: &str) -> PyResult<chrono::NaiveDate> {
    accubooks_core::ledger::parse_date(text).map_err(|err| crate::error::Failure::from(err).into())
}

fn optional_date_value(
    value: Option<&Bound<'_, PyAny>>,
    what: &str,
) -> PyResult<Option<chrono::NaiveDate>> {
    convert::optional_date(value, what)?
        .as_deref()
        .map(date_value)
        .transpose()
}

organization_classes! {
    /// Adds a user (owners only).
    #[pyo3(signature = (email, password, role = "accountant"))]
    fn create_user [instance, org] (email: String, password: String, role: &str) {
        let new = NewUser { email, password, role: parse_role(role)? };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().create_user(&caller, new).await)
        }
    }

    /// The organization's users (owners only), by e-mail address.
    ///
    /// One page: at most `limit` (1 to 500, default 100) items after the
    /// cursor `after`; the answer's `next_cursor` names the next page
    /// (`None` on the last). `accubooks.iterate` follows it.
    #[pyo3(signature = (*, limit = None, after = None))]
    fn users [instance, org] (limit: Option<i64>, after: Option<String>) {
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().users(&caller, page).await)
        }
    }

    /// Changes a user's role (owners only); it applies to their tokens at once.
    #[pyo3(signature = (user_id, role))]
    fn set_role [instance, org] (user_id: &str, role: &str) {
        let (user, role) = (user_arg(user_id)?, parse_role(role)?);
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().set_role(&caller, user, role).await)
        }
    }

    /// Removes a user (owners only); their tokens stop working at once.
    #[pyo3(signature = (user_id))]
    fn remove_user [instance, org] (user_id: &str) {
        let user = user_arg(user_id)?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().remove_user(&caller, user).await)
        }
    }

    /// Opens an account.
    #[pyo3(signature = (code, name, r#type, currency, parent = None, *, metadata = None, idempotency_key = None))]
    fn create_account [instance, org] (
        code: String,
        name: String,
        r#type: &str,
        currency: String,
        parent: Option<String>,
        metadata: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) {
        let kind = accubooks_core::ledger::AccountType::parse(r#type).ok_or_else(|| {
            invalid(
                "INVALID_FIELD",
                format!("{type:?} is not an account type: use asset, liability, equity, revenue or expense.", type = r#type),
            )
        })?;
        let metadata = convert::metadata_arg(metadata, "metadata")?;
        let new = accubooks_core::ledger::NewAccount { code, name, kind, currency, parent, metadata };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().create_account(&caller, new, key(idempotency_key)).await)
        }
    }

    /// The accounts with their balances, by code.
    ///
    /// One page: at most `limit` (1 to 500, default 100) items after the
    /// cursor `after`; the answer's `next_cursor` names the next page
    /// (`None` on the last). `accubooks.iterate` follows it.
    #[pyo3(signature = (*, metadata = None, limit = None, after = None))]
    fn accounts [instance, org] (metadata: Option<&Bound<'_, PyAny>>, limit: Option<i64>, after: Option<String>) {
        let metadata = convert::metadata_arg(metadata, "metadata")?;
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().accounts(&caller, metadata, page).await)
        }
    }

    /// Replaces an account's metadata (`{}` removes it); answers the account.
    #[pyo3(signature = (code, metadata))]
    fn set_account_metadata [instance, org] (code: String, metadata: &Bound<'_, PyAny>) {
        let metadata = convert::metadata_arg(Some(metadata), "metadata")?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().replace_account_metadata(&caller, &code, metadata).await)
        }
    }

    /// Posts one balanced entry.
    #[pyo3(signature = (date, lines, memo = "", *, metadata = None, idempotency_key = None))]
    fn post_entry [instance, org] (
        date: &Bound<'_, PyAny>,
        lines: &Bound<'_, PyAny>,
        memo: &str,
        metadata: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) {
        let input = convert::entry_input(date, lines, memo.to_owned(), metadata, "")?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().post_entry(&caller, input, key(idempotency_key)).await)
        }
    }

    /// Posts many entries at once, all or none; their ids in order.
    #[pyo3(signature = (entries, *, idempotency_key = None))]
    fn post_entries [instance, org] (entries: &Bound<'_, PyAny>, idempotency_key: Option<String>) {
        let batch = Batch { entries: convert::entries_arg(entries)? };
        async move {
            let caller = instance.caller(&org).await?;
            let posted = json(instance.books().post_batch(&caller, batch, key(idempotency_key)).await)?;
            Ok::<_, crate::error::Failure>(posted.value.get("ids").cloned().unwrap_or(Value::Null))
        }
    }

    /// One journal entry.
    #[pyo3(signature = (id))]
    fn entry [instance, org] (id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().entry(&caller, id).await)
        }
    }

    /// Posts the mirror of an entry, dated `date` (default: the entry's date).
    #[pyo3(signature = (id, date = None, *, idempotency_key = None))]
    fn reverse_entry [instance, org] (
        id: i64,
        date: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) {
        let input = dated(date)?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().reverse_entry(&caller, id, input, key(idempotency_key)).await)
        }
    }

    /// The journal: entries with their lines, in date order (`order="date"`)
    /// or newest first (`order="newest"`), dated from `from_` to `to`, with a
    /// line on `account`, reversed since (`reversed=True`) or not, with each
    /// of the `metadata` keys set to its value.
    ///
    /// One page: at most `limit` (1 to 500, default 100) items after the
    /// cursor `after`; the answer's `next_cursor` names the next page
    /// (`None` on the last). `accubooks.iterate` follows it.
    #[pyo3(signature = (*, from_ = None, to = None, account = None, reversed = None, metadata = None, order = "date", limit = None, after = None))]
    fn entries [instance, org] (
        from_: Option<&Bound<'_, PyAny>>,
        to: Option<&Bound<'_, PyAny>>,
        account: Option<String>,
        reversed: Option<bool>,
        metadata: Option<&Bound<'_, PyAny>>,
        order: &str,
        limit: Option<i64>,
        after: Option<String>,
    ) {
        let filter = accubooks_core::ledger::EntryFilter {
            from: optional_date_value(from_, "from_")?,
            to: optional_date_value(to, "to")?,
            account,
            reversed,
            metadata: convert::metadata_arg(metadata, "metadata")?,
            order: accubooks_core::ledger::EntryOrder::from_name(order)
                .map_err(|err| invalid("INVALID_QUERY", err.to_string()))?,
        };
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().entries(&caller, filter, page).await)
        }
    }

    /// An account's postings in date order, each with the account's balance
    /// after it, from `from_` to `to` (default: all of them).
    ///
    /// One page: at most `limit` (1 to 500, default 100) items after the
    /// cursor `after`; the answer's `next_cursor` names the next page
    /// (`None` on the last). `accubooks.iterate` follows it.
    #[pyo3(signature = (code, *, from_ = None, to = None, limit = None, after = None))]
    fn account_history [instance, org] (
        code: String,
        from_: Option<&Bound<'_, PyAny>>,
        to: Option<&Bound<'_, PyAny>>,
        limit: Option<i64>,
        after: Option<String>,
    ) {
        let from = optional_date_value(from_, "from_")?;
        let to = optional_date_value(to, "to")?;
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().account_history(&caller, &code, from, to, page).await)
        }
    }

    /// An account's balance at the end of `as_of` (default: today, UTC).
    #[pyo3(signature = (code, as_of = None))]
    fn account_balance [instance, org] (code: String, as_of: Option<&Bound<'_, PyAny>>) {
        let as_of = optional_date_value(as_of, "as_of")?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().account_balance(&caller, &code, as_of).await)
        }
    }

    /// The trial balance at the end of `as_of` (default: today, UTC).
    #[pyo3(signature = (as_of = None))]
    fn trial_balance [instance, org] (as_of: Option<&Bound<'_, PyAny>>) {
        let as_of = optional_date_value(as_of, "as_of")?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().trial_balance(&caller, as_of).await)
        }
    }

    /// The balance sheet at the end of `as_of` (default: today, UTC).
    #[pyo3(signature = (as_of = None))]
    fn balance_sheet [instance, org] (as_of: Option<&Bound<'_, PyAny>>) {
        let as_of = optional_date_value(as_of, "as_of")?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().balance_sheet(&caller, as_of).await)
        }
    }

    /// Revenue and expenses from `from_` to `to`, inclusive.
    #[pyo3(signature = (from_, to))]
    fn income_statement [instance, org] (from_: &Bound<'_, PyAny>, to: &Bound<'_, PyAny>) {
        let from = date_value(&convert::date_arg(from_, "from_")?)?;
        let to = date_value(&convert::date_arg(to, "to")?)?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().income_statement(&caller, from, to).await)
        }
    }

    /// Cash in and out from `from_` to `to`, inclusive, by counterpart
    /// account, with opening and closing cash (direct method).
    #[pyo3(signature = (from_, to))]
    fn cash_flow [instance, org] (from_: &Bound<'_, PyAny>, to: &Bound<'_, PyAny>) {
        let from = date_value(&convert::date_arg(from_, "from_")?)?;
        let to = date_value(&convert::date_arg(to, "to")?)?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().cash_flow(&caller, from, to).await)
        }
    }

    /// One account's postings from `from_` to `to`, with running balances.
    ///
    /// One page of rows: at most `limit` (1 to 500, default 100) after the
    /// cursor `after`; the report's `next_cursor` names the next page
    /// (`None` on the last, where `truncated` is false).
    #[pyo3(signature = (account, from_, to, *, limit = None, after = None))]
    fn general_ledger [instance, org] (account: String, from_: &Bound<'_, PyAny>, to: &Bound<'_, PyAny>, limit: Option<i64>, after: Option<String>) {
        let from = date_value(&convert::date_arg(from_, "from_")?)?;
        let to = date_value(&convert::date_arg(to, "to")?)?;
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            report_page(instance.books().general_ledger(&caller, &account, from, to, page).await)
        }
    }

    /// Receivables outstanding at the end of `as_of` (default: today, UTC), by days past due.
    #[pyo3(signature = (as_of = None))]
    fn ar_aging [instance, org] (as_of: Option<&Bound<'_, PyAny>>) {
        let as_of = optional_date_value(as_of, "as_of")?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().ar_aging(&caller, as_of).await)
        }
    }

    /// The books up to `as_of` as an `hledger` or `beancount` journal (a `str`).
    #[pyo3(signature = (format, as_of = None))]
    fn export_ledger [instance, org] (format: &str, as_of: Option<&Bound<'_, PyAny>>) {
        let format = ExportFormat::from_name(format).map_err(crate::error::Failure::from)?;
        let as_of = optional_date_value(as_of, "as_of")?;
        async move {
            let caller = instance.caller(&org).await?;
            let export = instance.books().export_ledger(&caller, format, as_of).await;
            let text = export.map_err(ApiError::from)?.into_text().await?;
            Ok::<_, crate::error::Failure>(Value::String(text))
        }
    }

    /// Adds a customer.
    #[pyo3(signature = (name, email = None, *, metadata = None, idempotency_key = None))]
    fn create_customer [instance, org] (name: String, email: Option<String>, metadata: Option<&Bound<'_, PyAny>>, idempotency_key: Option<String>) {
        let metadata = convert::metadata_arg(metadata, "metadata")?;
        let new = NewCustomer { name, email, metadata };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().create_customer(&caller, new, key(idempotency_key)).await)
        }
    }

    /// The organization's customers, oldest first.
    ///
    /// One page: at most `limit` (1 to 500, default 100) items after the
    /// cursor `after`; the answer's `next_cursor` names the next page
    /// (`None` on the last). `accubooks.iterate` follows it.
    #[pyo3(signature = (*, metadata = None, limit = None, after = None))]
    fn customers [instance, org] (metadata: Option<&Bound<'_, PyAny>>, limit: Option<i64>, after: Option<String>) {
        let metadata = convert::metadata_arg(metadata, "metadata")?;
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().customers(&caller, metadata, page).await)
        }
    }

    /// Replaces a customer's metadata (`{}` removes it); answers the customer.
    #[pyo3(signature = (id, metadata))]
    fn set_customer_metadata [instance, org] (id: i64, metadata: &Bound<'_, PyAny>) {
        let metadata = convert::metadata_arg(Some(metadata), "metadata")?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().replace_customer_metadata(&caller, id, metadata).await)
        }
    }

    /// Creates a draft invoice from lines of `description`, `quantity`, `unit_price` and `tax_rate`.
    /// `metadata` (a dict of strings) is kept with the invoice.
    #[pyo3(signature = (customer_id, due_date, lines, currency = None, *, metadata = None, idempotency_key = None))]
    fn create_invoice [instance, org] (
        customer_id: i64,
        due_date: &Bound<'_, PyAny>,
        lines: &Bound<'_, PyAny>,
        currency: Option<String>,
        metadata: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) {
        let new = NewInvoice {
            customer_id,
            due_date: convert::date_arg(due_date, "due_date")?,
            currency,
            lines: convert::invoice_lines_arg(lines)?,
            metadata: convert::metadata_arg(metadata, "metadata")?,
        };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().create_invoice(&caller, new, key(idempotency_key)).await)
        }
    }

    /// Invoices and credit notes with their lines, newest first; `status`
    /// (`"draft"`, `"issued"`, `"partially_paid"`, `"paid"`, `"void"`) and
    /// `customer_id` filter them, and `metadata` (a dict: every pair must
    /// match). A page holds at most 5000 lines.
    ///
    /// One page: at most `limit` (1 to 500, default 100) items after the
    /// cursor `after`; the answer's `next_cursor` names the next page
    /// (`None` on the last). `accubooks.iterate` follows it.
    #[pyo3(signature = (*, status = None, customer_id = None, metadata = None, limit = None, after = None))]
    fn invoices [instance, org] (status: Option<String>, customer_id: Option<i64>, metadata: Option<&Bound<'_, PyAny>>, limit: Option<i64>, after: Option<String>) {
        let status = status
            .map(|name| accubooks_core::invoicing::InvoiceStatus::from_name(&name).ok_or_else(|| invalid("INVALID_FIELD", format!("{name:?} is not an invoice status."))))
            .transpose()?;
        let metadata = convert::metadata_arg(metadata, "metadata")?;
        let filter = accubooks_core::invoicing::InvoiceFilter { status, customer_id, metadata };
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().invoices(&caller, filter, page).await)
        }
    }

    /// An invoice or credit note.
    #[pyo3(signature = (id))]
    fn invoice [instance, org] (id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().invoice(&caller, id).await)
        }
    }

    /// Issues a draft: posts receivables, revenue and tax payable.
    #[pyo3(signature = (id, date = None, *, idempotency_key = None))]
    fn issue_invoice [instance, org] (id: i64, date: Option<&Bound<'_, PyAny>>, idempotency_key: Option<String>) {
        let input = dated(date)?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().issue_invoice(&caller, id, input, key(idempotency_key)).await)
        }
    }

    /// Voids a draft, or an issued invoice without payments (reversing its posting).
    #[pyo3(signature = (id, date = None, *, idempotency_key = None))]
    fn void_invoice [instance, org] (id: i64, date: Option<&Bound<'_, PyAny>>, idempotency_key: Option<String>) {
        let input = dated(date)?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().void_invoice(&caller, id, input, key(idempotency_key)).await)
        }
    }

    /// Asks Stripe for a PaymentIntent of an issued invoice's open amount:
    /// `{"payment_intent_id", "client_secret", "amount", "currency"}`.
    /// Asked again for the same open amount, the same intent. Raises
    /// `PAYMENTS_UNAVAILABLE` (503) while Stripe is down,
    /// `PAYMENTS_NOT_CONFIGURED` (503) when it is not configured.
    #[pyo3(signature = (id))]
    fn payment_intent [instance, org] (id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().payment_intent(&caller, id).await)
        }
    }

    /// Links a bank through Plaid: exchanges Plaid Link's public token (the
    /// access token is kept sealed, never answered) and answers the item's
    /// accounts. Raises `BANK_INTEGRATION_UNAVAILABLE` (503) while Plaid is
    /// down, `BANK_INTEGRATION_NOT_CONFIGURED` (503) when it is not
    /// configured.
    #[pyo3(signature = (public_token, *, idempotency_key = None))]
    fn link_bank [instance, org] (public_token: String, idempotency_key: Option<String>) {
        let link = NewLink { public_token };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().link_bank(&caller, link, key(idempotency_key)).await)
        }
    }

    /// A Plaid Link token, made server side: for a new bank (`item_id`
    /// `None`), or for update mode of a linked item (the user logs in to
    /// it again; it keeps its accounts, mappings and lines):
    /// `{"link_token", "expiration"}`.
    #[pyo3(signature = (item_id = None))]
    fn bank_link_token [instance, org] (item_id: Option<String>) {
        let request = LinkTokenRequest { item_id };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().bank_link_token(&caller, request).await)
        }
    }

    /// The linked bank items with their status (`active`,
    /// `login_required`, `error`) and when each last synced, oldest first.
    ///
    /// One page: at most `limit` (1 to 500, default 100) items after the
    /// cursor `after`; the answer's `next_cursor` names the next page
    /// (`None` on the last). `accubooks.iterate` follows it.
    #[pyo3(signature = (*, limit = None, after = None))]
    fn bank_items [instance, org] (limit: Option<i64>, after: Option<String>) {
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().bank_items(&caller, page).await)
        }
    }

    /// Removes a bank item at Plaid and stops its sync; its accounts and
    /// lines (matched or not) stay.
    #[pyo3(signature = (item_id))]
    fn remove_bank_item [instance, org] (item_id: String) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().remove_bank_item(&caller, &item_id).await)
        }
    }

    /// After Plaid Link in update mode: checks with Plaid that the item
    /// works again, makes it `active` and asks for a sync. Answers the item.
    #[pyo3(signature = (item_id))]
    fn bank_item_reconnected [instance, org] (item_id: String) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().bank_item_reconnected(&caller, &item_id).await)
        }
    }

    /// The linked bank accounts, by id.
    ///
    /// One page: at most `limit` (1 to 500, default 100) items after the
    /// cursor `after`; the answer's `next_cursor` names the next page
    /// (`None` on the last). `accubooks.iterate` follows it.
    #[pyo3(signature = (*, limit = None, after = None))]
    fn bank_accounts [instance, org] (limit: Option<i64>, after: Option<String>) {
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().bank_accounts(&caller, page).await)
        }
    }

    /// Maps a bank account to a ledger account (an asset or liability
    /// account code in the bank account's currency, e.g. `"1000"`).
    #[pyo3(signature = (id, ledger_account))]
    fn map_bank_account [instance, org] (id: i64, ledger_account: String) {
        let mapping = AccountMapping { ledger_account };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().map_bank_account(&caller, id, mapping).await)
        }
    }

    /// Asks for a sync of every linked bank, as a `bank-feeds` job:
    /// `{"job_id", "status"}`.
    #[pyo3(signature = (*, idempotency_key = None))]
    fn sync_banks [instance, org] (idempotency_key: Option<String>) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().sync_banks(&caller, key(idempotency_key)).await)
        }
    }

    /// Imported bank lines, `"unmatched"` (with match suggestions),
    /// `"matched"`, `"review"` (set aside: they cannot be booked as the bank
    /// sent them) or `"dismissed"`, newest imported first.
    ///
    /// One page: at most `limit` (1 to 500, default 100) items after the
    /// cursor `after`; the answer's `next_cursor` names the next page
    /// (`None` on the last). `accubooks.iterate` follows it.
    #[pyo3(signature = (status = "unmatched", *, limit = None, after = None))]
    fn bank_transactions [instance, org] (status: &str, limit: Option<i64>, after: Option<String>) {
        let page = page(limit, after.as_deref())?;
        let status = LineStatus::parse(status).ok_or_else(|| {
            invalid(
                "INVALID_FIELD",
                format!("{status:?} is not \"unmatched\", \"matched\", \"review\" or \"dismissed\"."),
            )
        })?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().bank_transactions(&caller, status, page).await)
        }
    }

    /// Reconciles a bank line once: with `invoice_id`, as a payment of that
    /// open invoice; with `account`, by posting it against that account.
    #[pyo3(signature = (id, *, invoice_id = None, account = None, idempotency_key = None))]
    fn match_bank_transaction [instance, org] (id: i64, invoice_id: Option<i64>, account: Option<String>, idempotency_key: Option<String>) {
        let input = MatchInput { invoice_id, account };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().match_bank_transaction(&caller, id, input, key(idempotency_key)).await)
        }
    }

    /// Dismisses a bank line that is not matched (one set aside for review,
    /// a zero amount): it is kept under `"dismissed"`, never booked.
    #[pyo3(signature = (id))]
    fn dismiss_bank_transaction [instance, org] (id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().dismiss_bank_transaction(&caller, id).await)
        }
    }

    /// Records a (partial) payment: posts cash against receivables.
    #[pyo3(signature = (id, amount, date = None, *, idempotency_key = None))]
    fn pay_invoice [instance, org] (
        id: i64,
        amount: &Bound<'_, PyAny>,
        date: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) {
        let payment = Payment {
            amount: convert::amount_arg(amount, || "amount".to_owned())?,
            date: convert::optional_date(date, "date")?,
        };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().pay_invoice(&caller, id, payment, key(idempotency_key)).await)
        }
    }

    /// Credits part of an open invoice; answers the credit note.
    #[pyo3(signature = (id, lines, date = None, *, idempotency_key = None))]
    fn credit_note [instance, org] (
        id: i64,
        lines: &Bound<'_, PyAny>,
        date: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) {
        let new = NewCreditNote {
            date: convert::optional_date(date, "date")?,
            lines: convert::invoice_lines_arg(lines)?,
        };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().credit_note(&caller, id, new, key(idempotency_key)).await)
        }
    }

    /// Background jobs, newest first: `queue` is
    /// `"recurring-invoices"`, `"payroll-processing"` or `"report-generation"`,
    /// `status` one of `pending`, `queued`, `running`, `succeeded`, `failed`, `dead`.
    ///
    /// One page: at most `limit` (1 to 500, default 100) items after the
    /// cursor `after`; the answer's `next_cursor` names the next page
    /// (`None` on the last). `accubooks.iterate` follows it.
    #[pyo3(signature = (queue = None, status = None, *, limit = None, after = None))]
    fn jobs [instance, org] (queue: Option<String>, status: Option<String>, limit: Option<i64>, after: Option<String>) {
        let page = page(limit, after.as_deref())?;
        let queue = queue
            .map(|name| Queue::parse(&name).ok_or_else(|| invalid("INVALID_FIELD", format!("{name:?} is not a queue."))))
            .transpose()?;
        let status = status
            .map(|name| JobStatus::parse(&name).ok_or_else(|| invalid("INVALID_FIELD", format!("{name:?} is not a job status."))))
            .transpose()?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().jobs(&caller, queue, status, page).await)
        }
    }

    /// The organization's events in commit order (contract §10;
    /// accountants and owners): `types` a list of event types (all when
    /// `None`). Give the `cursor` of the last event you processed as
    /// `after` to read only what followed. An event's `data` is the object
    /// as the HTTP API answers it, as plain JSON (money and dates as
    /// strings). One page, as `entries` pages.
    #[pyo3(signature = (types = None, *, limit = None, after = None))]
    fn events [instance, org] (types: Option<Vec<String>>, limit: Option<i64>, after: Option<String>) {
        let page = page(limit, after.as_deref())?;
        let types = types.map(|types| types.join(","));
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().events(&caller, types.as_deref(), page).await)
        }
    }

    /// A background job.
    #[pyo3(signature = (id))]
    fn job [instance, org] (id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().job(&caller, id).await)
        }
    }

    /// Queues a dead job again.
    #[pyo3(signature = (id))]
    fn retry_job [instance, org] (id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().retry_job(&caller, id).await)
        }
    }

    /// Creates a recurring invoice: `schedule` is a dict of `frequency`
    /// (`"weekly"`, `"monthly"`, `"quarterly"`, `"yearly"`), `interval`, `start`,
    /// `end` and `count`; every occurrence on or before today (in the
    /// organization's time zone) becomes one invoice, with `metadata` (a
    /// dict of strings) copied onto it.
    #[pyo3(signature = (customer_id, lines, schedule, due_days = 30, auto_issue = false, currency = None, *, metadata = None, idempotency_key = None))]
    fn create_recurring_invoice [instance, org] (
        customer_id: i64,
        lines: &Bound<'_, PyAny>,
        schedule: &Bound<'_, PyAny>,
        due_days: u32,
        auto_issue: bool,
        currency: Option<String>,
        metadata: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) {
        let new = NewRecurringInvoice {
            customer_id,
            currency,
            lines: convert::invoice_lines_arg(lines)?,
            schedule: convert::json_arg(schedule, "schedule")?,
            due_days,
            auto_issue,
            metadata: convert::metadata_arg(metadata, "metadata")?,
        };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().create_recurring_invoice(&caller, new, key(idempotency_key)).await)
        }
    }

    /// The organization's recurring invoices, oldest first.
    ///
    /// One page: at most `limit` (1 to 500, default 100) items after the
    /// cursor `after`; the answer's `next_cursor` names the next page
    /// (`None` on the last). `accubooks.iterate` follows it.
    #[pyo3(signature = (*, limit = None, after = None))]
    fn recurring_invoices [instance, org] (limit: Option<i64>, after: Option<String>) {
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().recurring_invoices(&caller, page).await)
        }
    }

    /// A recurring invoice.
    #[pyo3(signature = (id))]
    fn recurring_invoice [instance, org] (id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().recurring_invoice(&caller, id).await)
        }
    }

    /// The next `count` occurrences of a recurring invoice not yet generated.
    #[pyo3(signature = (id, count = 12))]
    fn preview_recurring_invoice [instance, org] (id: i64, count: usize) {
        async move {
            let caller = instance.caller(&org).await?;
            let preview = json(instance.books().preview_recurring_invoice(&caller, id, count).await)?;
            // Untyped on purpose: `accubooks.types.Preview` has promised its
            // dates as "YYYY-MM-DD" strings since before answers were typed
            // by their schema (which says dates).
            Ok::<_, crate::error::Failure>(preview.value)
        }
    }

    /// Asks for a report as a job (`"trial-balance"`, `"balance-sheet"`,
    /// `"income-statement"`, `"general-ledger"`, `"ar-aging"`, `"cash-flow"`) with the
    /// report's query as `params`, in `"json"` or `"csv"`.
    #[pyo3(signature = (report, params = None, format = "json", *, idempotency_key = None))]
    fn create_report_job [instance, org] (report: &str, params: Option<&Bound<'_, PyAny>>, format: &str, idempotency_key: Option<String>) {
        let params: serde_json::Map<String, Value> = match params {
            Some(params) if !params.is_none() => convert::json_arg(params, "params")?,
            _ => serde_json::Map::new(),
        };
        let new: NewReportJob = serde_json::from_value(serde_json::json!({
            "report": report, "params": params, "format": format,
        }))
        .map_err(|_| invalid("INVALID_FIELD", format!("{report:?} in {format:?} is not a report job: see the report and format names.")))?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().create_report_job(&caller, new, key(idempotency_key)).await)
        }
    }

    /// A report job and its status.
    #[pyo3(signature = (id))]
    fn report_job [instance, org] (id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().report_job(&caller, id).await)
        }
    }

    /// The stored result of a report job, as text (JSON or CSV); raises
    /// `REPORT_NOT_READY` (409) until it exists.
    #[pyo3(signature = (id))]
    fn report_result [instance, org] (id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            let (_, text) = instance.books().report_result(&caller, id).await.map_err(ApiError::from)?;
            Ok::<_, crate::error::Failure>(Value::String(text))
        }
    }

    /// Adds an employee: `pay` is `{"type": "salary", "annual": "60000.00"}`
    /// or `{"type": "hourly", "rate": "25.00"}`; `frequency` is `"weekly"`,
    /// `"biweekly"`, `"semimonthly"` or `"monthly"`.
    #[pyo3(signature = (name, pay, frequency, start_date, end_date = None, *, idempotency_key = None))]
    fn create_employee [instance, org] (
        name: String,
        pay: &Bound<'_, PyAny>,
        frequency: &Bound<'_, PyAny>,
        start_date: &Bound<'_, PyAny>,
        end_date: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) {
        let new = NewEmployee {
            name,
            pay: convert::json_arg(pay, "pay")?,
            frequency: convert::json_arg(frequency, "frequency")?,
            start_date: convert::date_arg(start_date, "start_date")?,
            end_date: convert::optional_date(end_date, "end_date")?,
        };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().create_employee(&caller, new, key(idempotency_key)).await)
        }
    }

    /// The organization's employees, by id.
    ///
    /// One page: at most `limit` (1 to 500, default 100) items after the
    /// cursor `after`; the answer's `next_cursor` names the next page
    /// (`None` on the last). `accubooks.iterate` follows it.
    #[pyo3(signature = (*, limit = None, after = None))]
    fn employees [instance, org] (limit: Option<i64>, after: Option<String>) {
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().employees(&caller, page).await)
        }
    }

    /// The payroll rules.
    #[pyo3(signature = ())]
    fn payroll_rules [instance, org] () {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().payroll_rules(&caller).await)
        }
    }

    /// Replaces the payroll rules: a list of dicts of `name`, `kind`
    /// (`"deduction"` or `"employer"`), `rate` or `amount`, `annual_cap` and
    /// `account`.
    #[pyo3(signature = (rules))]
    fn put_payroll_rules [instance, org] (rules: &Bound<'_, PyAny>) {
        let rules: Vec<PayrollRule> = convert::json_arg(rules, "rules")?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().put_payroll_rules(&caller, rules).await)
        }
    }

    /// Asks for a pay run of every employee employed in the period; `hours`
    /// maps hourly employees' ids to the hours they worked. Answers the run,
    /// `pending` until its job has posted it.
    #[pyo3(signature = (period_start, period_end, pay_date, hours = None, *, idempotency_key = None))]
    fn create_payroll_run [instance, org] (
        period_start: &Bound<'_, PyAny>,
        period_end: &Bound<'_, PyAny>,
        pay_date: &Bound<'_, PyAny>,
        hours: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) {
        let hours: std::collections::BTreeMap<String, Value> = match hours {
            Some(hours) if !hours.is_none() => convert::json_arg(hours, "hours")?,
            _ => std::collections::BTreeMap::new(),
        };
        let new: NewPayrollRun = serde_json::from_value(serde_json::json!({
            "period_start": convert::date_arg(period_start, "period_start")?,
            "period_end": convert::date_arg(period_end, "period_end")?,
            "pay_date": convert::date_arg(pay_date, "pay_date")?,
            "hours": hours,
        }))
        .map_err(|_| invalid("INVALID_FIELD", "hours maps employee ids to decimal strings such as \"80.00\"."))?;
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().create_payroll_run(&caller, new, key(idempotency_key)).await)
        }
    }

    /// A pay run, with its payslips and entry once posted.
    #[pyo3(signature = (id))]
    fn payroll_run [instance, org] (id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().payroll_run(&caller, id).await)
        }
    }

    /// The organization's settings.
    #[pyo3(signature = ())]
    fn settings [instance, org] () {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().settings(&caller).await)
        }
    }

    /// Changes the settings (owners only): `tax_rounding` is `"line"` or
    /// `"document"`, `timezone` an IANA time zone name; those left out keep
    /// their value.
    #[pyo3(signature = (tax_rounding=None, timezone=None))]
    fn put_settings [instance, org] (tax_rounding: Option<&str>, timezone: Option<String>) {
        let tax_rounding = tax_rounding
            .map(|name| {
                TaxRounding::parse(name).ok_or_else(|| invalid("INVALID_FIELD", format!("{name:?} is not a tax rounding: use \"line\" or \"document\".")))
            })
            .transpose()?;
        let settings = SettingsChange { tax_rounding, timezone, lock_date: None };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().put_settings(&caller, settings).await)
        }
    }

    /// Locks the books through `lock_date` (a `datetime.date`; owners only):
    /// no change dated on or before it is posted. `None` unlocks them; an
    /// earlier date reopens the days between. Answers the settings.
    #[pyo3(signature = (lock_date))]
    fn set_lock_date [instance, org] (lock_date: Option<&Bound<'_, PyAny>>) {
        let lock_date = optional_date_value(lock_date, "lock_date")?;
        let settings = SettingsChange { lock_date: Some(lock_date), ..SettingsChange::default() };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().put_settings(&caller, settings).await)
        }
    }

    /// The changes of the lock date, oldest first: who, when, from, to and
    /// why (`locked`, `reopened`, `unlocked`, `closed`). One page, as
    /// `entries` pages.
    #[pyo3(signature = (*, limit = None, after = None))]
    fn settings_history [instance, org] (limit: Option<i64>, after: Option<String>) {
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().settings_history(&caller, page).await)
        }
    }

    /// Closes the books through `through` (a `datetime.date`; owners only):
    /// posts the closing entry (revenue and expense balances into retained
    /// earnings 3900) and sets the lock date. Answers the closing entry.
    #[pyo3(signature = (through, *, idempotency_key = None))]
    fn close_period [instance, org] (through: &Bound<'_, PyAny>, idempotency_key: Option<String>) {
        let through = convert::optional_date(Some(through), "through")?.unwrap_or_default();
        let input = Close { through };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().close_period(&caller, input, key(idempotency_key)).await)
        }
    }

    /// Registers an outgoing webhook endpoint (owners only): `events` are
    /// event types or `["*"]`. The answer's `secret` (`whsec_…`) is shown
    /// only here and by `rotate_webhook_secret`.
    #[pyo3(signature = (url, events, description = String::new(), *, idempotency_key = None))]
    fn create_webhook_endpoint [instance, org] (url: String, events: Vec<String>, description: String, idempotency_key: Option<String>) {
        let input = NewEndpoint { url, events, description };
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().create_webhook_endpoint(&caller, input, key(idempotency_key)).await)
        }
    }

    /// The organization's webhook endpoints, oldest first (owners only; never
    /// their secrets). One page, as `entries` pages.
    #[pyo3(signature = (*, limit = None, after = None))]
    fn webhook_endpoints [instance, org] (limit: Option<i64>, after: Option<String>) {
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().webhook_endpoints(&caller, page).await)
        }
    }

    /// Deletes a webhook endpoint and its deliveries (owners only).
    #[pyo3(signature = (id))]
    fn delete_webhook_endpoint [instance, org] (id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().delete_webhook_endpoint(&caller, id).await)
        }
    }

    /// Gives an endpoint a new secret, answered once (owners only); the
    /// previous one keeps signing beside it for 24 hours.
    #[pyo3(signature = (id))]
    fn rotate_webhook_secret [instance, org] (id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().rotate_webhook_secret(&caller, id).await)
        }
    }

    /// An endpoint's deliveries, newest first (owners only). One page, as
    /// `entries` pages.
    #[pyo3(signature = (endpoint_id, *, limit = None, after = None))]
    fn webhook_deliveries [instance, org] (endpoint_id: i64, limit: Option<i64>, after: Option<String>) {
        let page = page(limit, after.as_deref())?;
        async move {
            let caller = instance.caller(&org).await?;
            paged(instance.books().webhook_deliveries(&caller, endpoint_id, page).await)
        }
    }

    /// Makes a delivery pending and due now (owners only).
    #[pyo3(signature = (endpoint_id, delivery_id))]
    fn retry_webhook_delivery [instance, org] (endpoint_id: i64, delivery_id: i64) {
        async move {
            let caller = instance.caller(&org).await?;
            json(instance.books().retry_webhook_delivery(&caller, endpoint_id, delivery_id).await)
        }
    }
}
