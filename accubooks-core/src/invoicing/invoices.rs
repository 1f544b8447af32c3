//! Customers, invoices, payments and credit notes, and the AR aging report.
//!
//! Lifecycle: draft → issued → partially paid → paid, or void. Issuing posts
//! receivables against revenue and tax payable; a payment posts cash against
//! receivables; a credit note posts sales returns and tax back against
//! receivables; voiding reverses the issuing entry. Each posting commits in
//! the same transaction as the invoice's change of state, through the
//! committer's effects. "Overdue" is derived from the due date.

use crate::metadata::Metadata;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::totals::{self, TaxRounding};
use crate::db::Database;
use crate::db::sql::{in_scope, on_pool};
use crate::ledger::{LedgerError, LedgerResult};
use crate::money::{self, AmountText, Decimal};
use crate::organization::OrganizationId;

/// The accounts invoices post to (from the default chart).
pub const CASH: &str = "1000";
/// Accounts receivable.
pub const RECEIVABLE: &str = "1100";
/// Sales tax payable.
pub const TAX_PAYABLE: &str = "2100";
/// Sales revenue.
pub const REVENUE: &str = "4000";
/// Sales returns (credit notes).
pub const RETURNS: &str = "4900";

/// `POST /api/customers`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// Name.
    pub name: String,
    /// E-mail address, optional.
    #[serde(default)]
    pub email: Option<String>,
    /// String keys and values kept with the customer (contract §5).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Customer {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Its metadata (`{}` when none).
    pub metadata: Metadata,
}

/// An invoice line as a client sends it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLine {
    /// What was sold.
    pub description: String,
    /// Decimal string, positive, at most 4 fraction digits.
    pub quantity: AmountText,
    /// Decimal string in the invoice currency, not negative.
    pub unit_price: AmountText,
    /// Decimal fraction string from "0" to "1" (e.g. "0.0825"), at most 6 digits.
    #[serde(default = "zero_rate")]
    pub tax_rate: AmountText,
}

fn zero_rate() -> AmountText {
    AmountText("0".to_owned())
}

/// `POST /api/invoices`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvoice {
    /// The customer.
    pub customer_id: i64,
    /// `YYYY-MM-DD`.
    pub due_date: String,
    /// ISO 4217 code; defaults to the receivables account's currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// One or more lines.
    pub lines: Vec<NewLine>,
    /// String keys and values kept with the invoice (contract §5).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// `POST /api/invoices/{id}/credit-notes`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCreditNote {
    /// `YYYY-MM-DD`; defaults to today.
    #[serde(default)]
    pub date: Option<String>,
    /// What is credited.
    pub lines: Vec<NewLine>,
}

/// An invoice line as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InvoiceLine {
    /// Description.
    pub description: String,
    /// Quantity.
    #[schema(value_type = crate::money::AmountText)]
    pub quantity: String,
    /// Unit price.
    #[schema(value_type = crate::money::AmountText)]
    pub unit_price: String,
    /// Tax rate.
    #[schema(value_type = crate::money::AmountText)]
    pub tax_rate: String,
    /// Quantity × unit price.
    #[schema(value_type = crate::money::AmountText)]
    pub amount: String,
    /// The line's tax.
    #[schema(value_type = crate::money::AmountText)]
    pub tax: String,
}

/// Whether a document bills the customer or credits an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceKind {
    /// Bills the customer.
    Invoice,
    /// Credits an issued invoice.
    CreditNote,
}

/// Where a document is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Editable, posts nothing.
    Draft,
    /// Posted; nothing paid yet.
    Issued,
    /// Posted; partly paid or credited.
    PartiallyPaid,
    /// Settled by payments and credits.
    Paid,
    /// Cancelled (an issued one's posting reversed).
    Void,
}

impl InvoiceKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceKind::Invoice => "invoice",
            InvoiceKind::CreditNote => "credit_note",
        }
    }

    fn parse(name: &str) -> Result<Self, sqlx::Error> {
        match name {
            "invoice" => Ok(InvoiceKind::Invoice),
            "credit_note" => Ok(InvoiceKind::CreditNote),
            other => Err(unknown_value("kind", other)),
        }
    }
}

impl InvoiceStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Issued => "issued",
            InvoiceStatus::PartiallyPaid => "partially_paid",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Void => "void",
        }
    }

    /// Issued and not settled: payments and credit notes apply.
    pub fn is_open(self) -> bool {
        matches!(self, InvoiceStatus::Issued | InvoiceStatus::PartiallyPaid)
    }

    /// The state a name (as [`Self::as_str`] gives it) stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::parse(name).ok()
    }

    fn parse(name: &str) -> Result<Self, sqlx::Error> {
        match name {
            "draft" => Ok(InvoiceStatus::Draft),
            "issued" => Ok(InvoiceStatus::Issued),
            "partially_paid" => Ok(InvoiceStatus::PartiallyPaid),
            "paid" => Ok(InvoiceStatus::Paid),
            "void" => Ok(InvoiceStatus::Void),
            other => Err(unknown_value("status", other)),
        }
    }
}

impl std::fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored value the schema's CHECK constraint should have refused.
fn unknown_value(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("unknown invoice {column} {value:?}").into(),
    }
}

/// An invoice or credit note as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Invoice {
    /// Id.
    pub id: i64,
    /// `INV-000001` or `CN-000001`: consecutive per organization and kind in
    /// the order of issue dates, given at issue; null for a draft.
    pub number: Option<String>,
    /// `invoice` or `credit_note`.
    pub kind: InvoiceKind,
    /// The customer.
    pub customer_id: i64,
    /// For a credit note, the invoice it credits.
    pub credits_invoice: Option<i64>,
    /// Currency.
    pub currency: String,
    /// `draft`, `issued`, `partially_paid`, `paid` or `void`.
    pub status: InvoiceStatus,
    /// Whether it is open and past its due date (today, UTC).
    pub overdue: bool,
    /// Due date.
    pub due_date: NaiveDate,
    /// Issue date.
    pub issue_date: Option<NaiveDate>,
    /// Void date.
    pub void_date: Option<NaiveDate>,
    /// `line` or `document`.
    pub tax_rounding: String,
    /// Sum of line amounts.
    #[schema(value_type = crate::money::AmountText)]
    pub subtotal: String,
    /// Tax.
    #[schema(value_type = crate::money::AmountText)]
    pub tax: String,
    /// Subtotal + tax.
    #[schema(value_type = crate::money::AmountText)]
    pub total: String,
    /// Paid so far.
    #[schema(value_type = crate::money::AmountText)]
    pub paid: String,
    /// Credited by credit notes.
    #[schema(value_type = crate::money::AmountText)]
    pub credited: String,
    /// Still owed.
    #[schema(value_type = crate::money::AmountText)]
    pub outstanding: String,
    /// The entry that issued it.
    pub issue_entry_id: Option<i64>,
    /// The recurring invoice it is an occurrence of.
    pub recurring_id: Option<i64>,
    /// For an occurrence of a recurring invoice: the occurrence's date.
    pub period: Option<NaiveDate>,
    /// Lines.
    pub lines: Vec<InvoiceLine>,
    /// Its metadata (`{}` when none; credit notes have none).
    pub metadata: Metadata,
    #[serde(skip)]
    pub(crate) total_minor: i64,
    #[serde(skip)]
    pub(crate) outstanding_minor: i64,
    #[serde(skip)]
    subtotal_minor: i64,
    #[serde(skip)]
    tax_minor: i64,
}

impl Invoice {
    /// Its number, or `invoice <id>` for a draft (which has none).
    pub fn name(&self) -> String {
        self.number
            .clone()
            .unwrap_or_else(|| format!("invoice {}", self.id))
    }
}

pub(crate) fn digits(currency: &str) -> u32 {
    money::minor_digits(currency).unwrap_or(2)
}

fn invalid(code: &'static str, message: impl Into<String>) -> LedgerError {
    LedgerError::invalid(code, message)
}

struct ParsedLine {
    description: String,
    quantity: Decimal,
    unit_price: i64,
    tax_rate: Decimal,
}

fn parse_lines(lines: &[NewLine], currency_digits: u32) -> LedgerResult<Vec<ParsedLine>> {
    if lines.is_empty() || lines.len() > 500 {
        return Err(invalid("INVALID_LINES", "An invoice has 1 to 500 lines."));
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let n = i + 1;
            let description = line.description.trim();
            if description.is_empty() || description.chars().count() > 500 || description.chars().any(char::is_control) {
                return Err(invalid("INVALID_LINE", format!("Line {n}: a description has 1 to 500 characters.")));
            }
            let quantity = Decimal::parse(&line.quantity.0, 4)
                .ok()
                .filter(|q| q.mantissa > 0 && q.mantissa <= 1_000_000_000 * 10i128.pow(q.scale))
                .ok_or_else(|| invalid("INVALID_QUANTITY", format!("Line {n}: a quantity is positive, at most 1000000000, with up to 4 fraction digits.")))?;
            let unit_price = money::parse_minor(&line.unit_price.0, currency_digits)
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| invalid("INVALID_AMOUNT", format!("Line {n}: a unit price is a non-negative amount with at most {currency_digits} fraction digits.")))?;
            let tax_rate = Decimal::parse(&line.tax_rate.0, 6)
                .ok()
                .filter(|r| r.mantissa >= 0 && r.mantissa <= 10i128.pow(r.scale))
                .ok_or_else(|| invalid("INVALID_TAX_RATE", format!("Line {n}: a tax rate is a fraction from \"0\" to \"1\" (\"0.0825\" for 8.25 %), with up to 6 digits.")))?;
            Ok(ParsedLine { description: description.to_owned(), quantity, unit_price, tax_rate })
        })
        .collect()
}

async fn customer_exists(
    db: &Database,
    organization: &OrganizationId,
    customer_id: i64,
) -> LedgerResult<bool> {
    let organization = organization.to_owned();
    let found: Option<i64> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_scalar("SELECT id FROM customers WHERE id = $1 AND organization_id = $2")
                    .bind(customer_id)
                    .bind(&organization)
                    .fetch_optional(&mut *tx)
                    .await?
            }))
        })
        .await?;
    Ok(found.is_some())
}

/// What a new draft invoice holds.
struct Draft {
    organization: OrganizationId,
    customer_id: i64,
    currency: String,
    due_date: NaiveDate,
    rounding: TaxRounding,
    lines: Vec<ParsedLine>,
    /// For an occurrence of a recurring invoice: the template and the
    /// occurrence's date, of which there is one invoice at most.
    recurring: Option<(i64, NaiveDate)>,
    metadata: Metadata,
}

/// Reads invoices with their lines inside the open transaction `$tx`: the
/// ones `$selection` (an [`InvoiceSelection`]) names, in two queries
/// whatever their number (`$backend`: the pool, for the SQL dialect).
/// Evaluates to `(Vec<Invoice>, bool)`: the invoices
/// in the selection's order, and whether more follow them (a page cut by
/// its limit or its line budget). `?` on query errors. (A macro: each
/// backend's transaction is its own type.)
macro_rules! read_invoices_in {
    ($tx:expr, $backend:expr, $organization:expr, $selection:expr, $today:expr) => {{
        let selection: &InvoiceSelection = $selection;
        let (id, status, customer, fetch) = selection.binds();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(selection.query($backend)))
            .bind($organization)
            .bind(id)
            .bind(status)
            .bind(customer)
            .bind(fetch);
        if let Some(metadata) = selection.metadata() {
            query = query.bind(metadata);
        }
        let mut rows = query.fetch_all(&mut *$tx).await?;
        let kept = selection.keep(
            &rows
                .iter()
                .map(|row| row.try_get::<i64, _>("line_count"))
                .collect::<Result<Vec<i64>, _>>()?,
        );
        let more = kept < rows.len();
        rows.truncate(kept);
        let ids = rows
            .iter()
            .map(|row| row.try_get::<i64, _>("id"))
            .collect::<Result<Vec<i64>, _>>()?;
        // Every line of those invoices in one query, not one per invoice.
        let line_rows: Vec<(i64, String, String, i64, String, i64, i64)> = if ids.is_empty() {
            Vec::new()
        } else {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(lines_query(ids.len())));
            for id in &ids {
                query = query.bind(*id);
            }
            query.fetch_all(&mut *$tx).await?
        };
        let mut lines_of: HashMap<i64, Vec<(String, String, i64, String, i64, i64)>> =
            HashMap::new();
        for (invoice_id, description, quantity, unit_price, tax_rate, amount, tax) in line_rows {
            lines_of.entry(invoice_id).or_default().push((
                description,
                quantity,
                unit_price,
                tax_rate,
                amount,
                tax,
            ));
        }
        let mut invoices = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let currency: String = row.try_get("currency")?;
            let d = digits(&currency);
            let kind = InvoiceKind::parse(row.try_get("kind")?)?;
            let status = InvoiceStatus::parse(row.try_get("status")?)?;
            let due_date: NaiveDate = row.try_get("due_date")?;
            let (subtotal, tax, total, paid, credited): (i64, i64, i64, i64, i64) = (
                row.try_get("subtotal")?,
                row.try_get("tax")?,
                row.try_get("total")?,
                row.try_get("paid")?,
                row.try_get("credited")?,
            );
            let outstanding = if status.is_open() && kind == InvoiceKind::Invoice {
                total - paid - credited
            } else {
                0
            };
            let lines = lines_of.remove(&id).unwrap_or_default();
            invoices.push(Invoice {
                id,
                number: row
                    .try_get::<Option<i64>, _>("number")?
                    .map(|n| numbering::label(kind, n)),
                metadata: Metadata::from_stored(
                    row.try_get::<Option<String>, _>("metadata")?.as_deref(),
                ),
                overdue: outstanding > 0 && due_date < $today,
                kind,
                customer_id: row.try_get("customer_id")?,
                credits_invoice: row.try_get("credits_invoice")?,
                status,
                due_date,
                issue_date: row.try_get("issue_date")?,
                void_date: row.try_get("void_date")?,
                tax_rounding: row.try_get("tax_rounding")?,
                subtotal: money::format_minor(subtotal, d),
                tax: money::format_minor(tax, d),
                total: money::format_minor(total, d),
                paid: money::format_minor(paid, d),
                credited: money::format_minor(credited, d),
                outstanding: money::format_minor(outstanding, d),
                issue_entry_id: row.try_get("issue_entry_id")?,
                recurring_id: row.try_get("recurring_id")?,
                period: row.try_get("period")?,
                lines: lines
                    .into_iter()
                    .map(
                        |(description, quantity, unit_price, tax_rate, amount, tax)| InvoiceLine {
                            description,
                            quantity,
                            unit_price: money::format_minor(unit_price, d),
                            tax_rate,
                            amount: money::format_minor(amount, d),
                            tax: money::format_minor(tax, d),
                        },
                    )
                    .collect(),
                currency,
                total_minor: total,
                outstanding_minor: outstanding,
                subtotal_minor: subtotal,
                tax_minor: tax,
            });
        }
        (invoices, more)
    }};
}

// The rooms of invoices, after the macro they share (macros are textually
// scoped).
mod aging;
mod announce;
mod customers;
mod drafts;
mod numbering;
mod posting;
mod reading;
mod settings;

pub use aging::*;
pub(crate) use announce::{Announce, When, read_in};
pub use customers::*;
pub use drafts::*;
pub(crate) use numbering::DATE_ORDER as INVOICE_DATE_ORDER;
pub(crate) use numbering::label as number_label;
pub use posting::*;
pub use reading::*;
pub use settings::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::Limit;

    fn page(limit: i64) -> InvoiceSelection {
        InvoiceSelection::Page {
            before: i64::MAX,
            filter: InvoiceFilter::default(),
            limit: Limit::new(limit).unwrap(),
        }
    }

    #[test]
    fn a_page_keeps_its_limit_and_its_line_budget_but_always_one_invoice() {
        // Fetched one more than the limit: the extra one is never kept.
        assert_eq!(page(3).keep(&[1, 1, 1, 1]), 3);
        assert_eq!(page(500).keep(&[500; 11]), 10);
        assert_eq!(page(500).keep(&[4_999, 2]), 1);
        assert_eq!(page(500).keep(&[4_999, 1, 1]), 2);
        // One invoice is kept whatever its lines, or the list could not go on.
        assert_eq!(page(2).keep(&[9_000, 1]), 1);
        assert_eq!(page(2).keep(&[]), 0);
        assert_eq!(InvoiceSelection::One(7).keep(&[500]), 1);
    }
}
