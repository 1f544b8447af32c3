//! Customers, invoices, payments, credit notes and settings.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::idempotent::{Keyed, stored};
use super::{Answer, Books, ClientKey, Result, org};
use crate::identity::{Principal, Role};
use crate::invoicing;
use crate::invoicing::{
    ArAging, Customer, Invoice, InvoiceFilter, NewCreditNote, NewCustomer, NewInvoice, Settings,
    SettingsChange,
};
use crate::ledger::{self};
use crate::money::AmountText;
use crate::paging::{Page, PageRequest};

/// An action that may carry a date (default: today, UTC).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dated {
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub date: Option<String>,
}

/// A payment received against an invoice.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// Decimal string in the invoice's currency, positive.
    pub amount: AmountText,
    /// `YYYY-MM-DD`; default today (UTC).
    #[serde(default)]
    pub date: Option<String>,
}

/// Which action on an existing invoice.
#[derive(Clone, Copy)]
enum Action {
    Issue,
    Void,
}

impl Books<'_> {
    /// A page of the organization's customers, oldest first.
    pub async fn customers(
        &self,
        caller: &Principal,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<Customer>>> {
        self.run("customers", Some(caller), Role::Viewer, async {
            Ok(invoicing::list_customers(self.app.database(), &org(caller), &page).await?)
        })
        .await
    }

    /// Adds a customer.
    pub async fn create_customer(
        &self,
        caller: &Principal,
        new: NewCustomer,
        key: Option<ClientKey>,
    ) -> Result<Answer<Customer>> {
        let keyed = Keyed {
            operation: "create_customer",
            target: None,
            input: &new,
        };
        let new = &new;
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async move {
            let render = |customer: &Customer| stored(customer);
            let key = key
                .as_ref()
                .map(|k| (k, &render as ledger::RenderRecord<'_, _>));
            let db = self.app.database();
            Ok(invoicing::create_customer(db, &org(caller), new.clone(), key).await?)
        })
        .await
    }

    /// A page of the invoices and credit notes, newest first, with their
    /// lines (at most [`invoicing::INVOICE_LINES_PER_PAGE`] lines a page).
    pub async fn invoices(
        &self,
        caller: &Principal,
        filter: InvoiceFilter,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<Invoice>>> {
        self.run("invoices", Some(caller), Role::Viewer, async {
            Ok(invoicing::list_invoices(self.app.database(), &org(caller), filter, &page).await?)
        })
        .await
    }

    /// An invoice or credit note.
    pub async fn invoice(&self, caller: &Principal, id: i64) -> Result<Invoice> {
        self.run("invoice", Some(caller), Role::Viewer, async {
            Ok(invoicing::get_invoice(self.app.database(), &org(caller), id).await?)
        })
        .await
    }

    /// Creates a draft invoice; its totals are computed once, here.
    pub async fn create_invoice(
        &self,
        caller: &Principal,
        new: NewInvoice,
        key: Option<ClientKey>,
    ) -> Result<Answer<Invoice>> {
        let keyed = Keyed {
            operation: "create_invoice",
            target: None,
            input: &new,
        };
        let new = &new;
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async move {
            let render = |invoice: &Invoice| stored(invoice);
            let key = key
                .as_ref()
                .map(|k| (k, &render as ledger::RenderRecord<'_, _>));
            let books = self.app.ledger();
            Ok(invoicing::create_invoice(books, &org(caller), new.clone(), key).await?)
        })
        .await
    }

    /// Issues a draft: posts receivables against revenue and tax payable.
    pub async fn issue_invoice(
        &self,
        caller: &Principal,
        id: i64,
        input: Dated,
        key: Option<ClientKey>,
    ) -> Result<Answer<Invoice>> {
        self.act("issue_invoice", Action::Issue, caller, id, input, key)
            .await
    }

    /// Voids a draft, or an issued invoice without payments or credits (by
    /// reversing its posting).
    pub async fn void_invoice(
        &self,
        caller: &Principal,
        id: i64,
        input: Dated,
        key: Option<ClientKey>,
    ) -> Result<Answer<Invoice>> {
        self.act("void_invoice", Action::Void, caller, id, input, key)
            .await
    }

    async fn act(
        &self,
        operation: &'static str,
        action: Action,
        caller: &Principal,
        id: i64,
        input: Dated,
        key: Option<ClientKey>,
    ) -> Result<Answer<Invoice>> {
        let keyed = Keyed {
            operation,
            target: Some(id),
            input: &input,
        };
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async {
            let (books, date) = (self.app.ledger(), input.date.as_deref());
            let organization = org(caller);
            Ok(match action {
                Action::Issue => {
                    invoicing::issue_invoice(books, &organization, id, date, key).await?
                }
                Action::Void => {
                    invoicing::void_invoice(books, &organization, id, date, key).await?
                }
            })
        })
        .await
    }

    /// Records a (partial) payment: posts cash against receivables.
    pub async fn pay_invoice(
        &self,
        caller: &Principal,
        id: i64,
        payment: Payment,
        key: Option<ClientKey>,
    ) -> Result<Answer<Invoice>> {
        let keyed = Keyed {
            operation: "pay_invoice",
            target: Some(id),
            input: &payment,
        };
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async {
            Ok(invoicing::record_payment(
                self.app.ledger(),
                &org(caller),
                id,
                &payment.amount.0,
                payment.date.as_deref(),
                key,
            )
            .await?)
        })
        .await
    }

    /// Credits part of an open invoice: posts returns and tax against
    /// receivables. Answers the credit note.
    pub async fn credit_note(
        &self,
        caller: &Principal,
        id: i64,
        new: NewCreditNote,
        key: Option<ClientKey>,
    ) -> Result<Answer<Invoice>> {
        let keyed = Keyed {
            operation: "credit_note",
            target: Some(id),
            input: &new,
        };
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async {
            let books = self.app.ledger();
            Ok(invoicing::credit_note(books, &org(caller), id, new.clone(), key).await?)
        })
        .await
    }

    /// Receivables outstanding at the end of `as_of` (default: today, UTC),
    /// by days past due.
    pub async fn ar_aging(&self, caller: &Principal, as_of: Option<NaiveDate>) -> Result<ArAging> {
        self.run("ar_aging", Some(caller), Role::Viewer, async {
            let as_of = super::reports::or_today(as_of);
            Ok(invoicing::ar_aging(self.app.reports_database(), &org(caller), as_of).await?)
        })
        .await
    }

    /// The organization's settings.
    pub async fn settings(&self, caller: &Principal) -> Result<Settings> {
        self.run("settings", Some(caller), Role::Viewer, async {
            Ok(invoicing::get_settings(self.app.database(), &org(caller)).await?)
        })
        .await
    }

    /// Replaces the organization's settings (owners only).
    pub async fn put_settings(
        &self,
        caller: &Principal,
        settings: SettingsChange,
    ) -> Result<Settings> {
        self.run("put_settings", Some(caller), Role::Owner, async {
            Ok(invoicing::put_settings(self.app.database(), &org(caller), settings).await?)
        })
        .await
    }
}
