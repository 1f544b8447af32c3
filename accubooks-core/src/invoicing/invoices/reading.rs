//! Invoices read back: one, or a page with their lines (at most
//! `INVOICE_LINES_PER_PAGE` lines a page).

use std::collections::HashMap;

use chrono::NaiveDate;
use sqlx::Row;

use super::*;
use crate::db::Database;
use crate::db::sql::{Backend, BeginScoped, has_metadata, on_pool};
use crate::ledger::{LedgerError, LedgerResult};
use crate::money::{self};
use crate::organization::OrganizationId;
use crate::paging::{Cursor, Page, PageRequest};

pub(super) const SELECT_INVOICE: &str = "SELECT id, kind, customer_id, credits_invoice, currency, status, due_date, issue_date, \
     void_date, tax_rounding, subtotal, tax, total, paid, credited, issue_entry_id, recurring_id, period, \
     number, CAST(metadata AS TEXT) AS metadata, (SELECT COUNT(*) FROM invoice_lines l WHERE l.invoice_id = invoices.id) AS line_count FROM invoices";

/// Most invoice lines one page of invoices carries. With at most 500 lines
/// of at most 500 characters per invoice, 500 invoices could otherwise make
/// an answer of hundreds of megabytes; a page stops before the invoice that
/// would take it past this budget (it always holds one invoice), and its
/// `Link` goes on from there.
pub const INVOICE_LINES_PER_PAGE: i64 = 5_000;

/// Filters of the invoice list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceFilter {
    /// Only invoices in this state.
    pub status: Option<InvoiceStatus>,
    /// Only this customer's invoices.
    pub customer_id: Option<i64>,
    /// Only invoices whose metadata holds every one of these pairs.
    pub metadata: Metadata,
}

/// The invoices [`read_invoices_in`] reads.
pub(super) enum InvoiceSelection {
    /// One invoice, by id.
    One(i64),
    /// A page of the organization's, newest first (by id, which never
    /// changes): those with an id below `before`.
    Page {
        before: i64,
        filter: InvoiceFilter,
        limit: crate::paging::Limit,
    },
}

impl InvoiceSelection {
    /// The header query on `backend`; its binds are the organization,
    /// [`Self::binds`] and, when there is one, [`Self::metadata`].
    pub(super) fn query(&self, backend: &impl Backend) -> String {
        let filter = match self {
            InvoiceSelection::One(_) => "WHERE organization_id = $1 AND id = $2",
            InvoiceSelection::Page { .. } => "WHERE organization_id = $1 AND id < $2",
        };
        let metadata = match self.metadata() {
            Some(_) => format!("AND {}", has_metadata(backend, "metadata", 6)),
            None => String::new(),
        };
        format!(
            "{SELECT_INVOICE} {filter} AND ($3 = '' OR status = $3) AND ($4 = 0 OR customer_id = $4) \
             {metadata} ORDER BY id DESC LIMIT $5"
        )
    }

    /// The metadata filter (its JSON object as text), if any.
    pub(super) fn metadata(&self) -> Option<String> {
        match self {
            InvoiceSelection::Page { filter, .. } => filter.metadata.to_stored(),
            InvoiceSelection::One(_) => None,
        }
    }

    /// The id, status, customer and row count binds of [`Self::query`].
    pub(super) fn binds(&self) -> (i64, &'static str, i64, i64) {
        match self {
            InvoiceSelection::One(id) => (*id, "", 0, 1),
            InvoiceSelection::Page {
                before,
                filter,
                limit,
            } => (
                *before,
                filter.status.map_or("", InvoiceStatus::as_str),
                filter.customer_id.unwrap_or(0),
                limit.fetch(),
            ),
        }
    }

    /// How many of the fetched invoices (with these line counts) the
    /// answer keeps: the page's limit, and no more lines than
    /// [`INVOICE_LINES_PER_PAGE`], but at least one invoice.
    pub(super) fn keep(&self, line_counts: &[i64]) -> usize {
        let InvoiceSelection::Page { limit, .. } = self else {
            return line_counts.len();
        };
        let mut lines = 0;
        let mut kept = 0;
        for count in line_counts.iter().take(limit.get() as usize) {
            lines += count;
            if kept > 0 && lines > INVOICE_LINES_PER_PAGE {
                break;
            }
            kept += 1;
        }
        kept
    }
}

/// The lines of `count` invoices (bound as `$1`…), by invoice.
pub(super) fn lines_query(count: usize) -> String {
    format!(
        "SELECT invoice_id, description, quantity, unit_price, tax_rate, amount, tax FROM invoice_lines \
         WHERE invoice_id IN ({}) ORDER BY invoice_id, id",
        crate::db::sql::placeholders(1, count)
    )
}

/// Reads an invoice or credit note of the organization, with its lines.
pub async fn get_invoice(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
) -> LedgerResult<Invoice> {
    let (found, _) = read_invoices(db, organization, InvoiceSelection::One(id)).await?;
    found
        .into_iter()
        .next()
        .ok_or_else(|| LedgerError::NotFound(format!("There is no invoice {id}.")))
}

/// A page of the organization's invoices and credit notes, newest first,
/// with lines: at most `page.limit` of them and at most
/// [`INVOICE_LINES_PER_PAGE`] lines.
pub async fn list_invoices(
    db: &Database,
    organization: &OrganizationId,
    filter: InvoiceFilter,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<Invoice>>> {
    let selection = InvoiceSelection::Page {
        before: page.after.unwrap_or(i64::MAX),
        filter,
        limit: page.limit,
    };
    let (invoices, more) = read_invoices(db, organization, selection).await?;
    let next = more
        .then(|| invoices.last().map(|last| Cursor::after(&last.id)))
        .flatten();
    Ok(Page {
        items: invoices,
        next,
        limit: page.limit,
    })
}

pub(super) async fn read_invoices(
    db: &Database,
    organization: &OrganizationId,
    selection: InvoiceSelection,
) -> LedgerResult<(Vec<Invoice>, bool)> {
    let organization = organization.to_owned();
    let today = chrono::Utc::now().date_naive();
    let selection = &selection;
    let invoices = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&organization).await?;
                let invoices = read_invoices_in!(tx, &p, &organization, selection, today);
                tx.commit().await?;
                Ok(invoices)
            })
        })
        .await?;
    Ok(invoices)
}
