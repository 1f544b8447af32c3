//! Customers, invoices, payments and credit notes, and the AR aging report.
//!
//! Lifecycle: draft → issued → partially paid → paid, or void. Issuing posts
//! receivables against revenue and tax payable; a payment posts cash against
//! receivables; a credit note posts sales returns and tax back against
//! receivables; voiding reverses the issuing entry. Each posting commits in
//! the same transaction as the invoice's change of state, through the
//! committer's effects. "Overdue" is derived from the due date.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::totals::{self, LineFigures, TaxRounding};
use crate::db::Database;
use crate::db::sql::{BeginScoped, in_scope, on_pool};
use crate::idempotency::{self, IdempotencyKey};
use crate::ledger::Ledger;
use crate::ledger::accounts::{Account, RenderRecord, accounts_for_posting, validate_name};
use crate::ledger::committer::{CreditNoteRows, Effect};
use crate::ledger::entries::{
    EntryInput, LineInput, ValidEntry, parse_date, validate, validate_memo,
};
use crate::ledger::{LedgerError, LedgerResult};
use crate::money::{self, AmountText, Decimal};
use crate::paging::{Cursor, Page, PageRequest};

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
    /// `INV-000001` or `CN-000002`.
    pub number: String,
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
    #[serde(skip)]
    pub(crate) total_minor: i64,
    #[serde(skip)]
    pub(crate) outstanding_minor: i64,
    #[serde(skip)]
    subtotal_minor: i64,
    #[serde(skip)]
    tax_minor: i64,
}

pub(crate) fn digits(currency: &str) -> u32 {
    money::minor_digits(currency).unwrap_or(2)
}

fn invalid(code: &'static str, message: impl Into<String>) -> LedgerError {
    LedgerError::invalid(code, message)
}

/// Adds a customer. With `idempotency`, the rendered answer is stored in
/// the same transaction.
pub async fn create_customer(
    db: &Database,
    organization: &str,
    new: NewCustomer,
    idempotency: Option<(&IdempotencyKey, RenderRecord<'_, Customer>)>,
) -> LedgerResult<Customer> {
    validate_name(&new.name)?;
    if let Some(email) = &new.email
        && (email.len() > 254 || !email.contains('@') || email.chars().any(char::is_whitespace))
    {
        return Err(invalid(
            "INVALID_EMAIL",
            "Give a valid e-mail address or none.",
        ));
    }
    let organization = organization.to_owned();
    let new = &new;
    db.run(|pool| async move {
        let created: Result<Customer, sqlx::Error> = async {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                let id = sqlx::query_scalar("INSERT INTO customers (organization_id, name, email) VALUES ($1, $2, $3) RETURNING id")
                    .bind(&organization)
                    .bind(&new.name)
                    .bind(&new.email)
                    .fetch_one(&mut *tx)
                    .await?;
                let customer = Customer {
                    id,
                    name: new.name.clone(),
                    email: new.email.clone(),
                };
                if let Some((key, render)) = idempotency {
                    let (status, body) = render(&customer);
                    idempotency::store_answer!(&mut *tx, key, status, body)?;
                }
                customer
            }))
        }
        .await;
        idempotency::settle(created)
    })
    .await?
}

/// A page of the organization's customers, oldest first (by id).
pub async fn list_customers(
    db: &Database,
    organization: &str,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<Customer>>> {
    let organization = organization.to_owned();
    let (after, fetch) = (page.after.unwrap_or(0), page.limit.fetch());
    let rows: Vec<(i64, String, Option<String>)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as("SELECT id, name, email FROM customers WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3")
                    .bind(&organization)
                    .bind(after)
                    .bind(fetch)
                    .fetch_all(&mut *tx)
                    .await?
            }))
        })
        .await?;
    let customers = rows
        .into_iter()
        .map(|(id, name, email)| Customer { id, name, email })
        .collect();
    Ok(page.page(customers, |customer| customer.id))
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

/// The organization's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Settings {
    /// How invoice tax is rounded.
    pub tax_rounding: TaxRounding,
    /// The IANA time zone whose calendar decides which day it is for the
    /// organization (when recurring invoices fall due), e.g.
    /// `America/New_York`; default `UTC`.
    pub timezone: String,
}

/// `PUT /api/settings`: the settings to change; those left out keep their
/// value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// How invoice tax is rounded.
    #[serde(default)]
    pub tax_rounding: Option<TaxRounding>,
    /// An IANA time zone name, e.g. `Europe/Paris`.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// The time zone of a name from the IANA database (`422 INVALID_TIMEZONE`
/// otherwise).
pub fn parse_timezone(name: &str) -> LedgerResult<chrono_tz::Tz> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        invalid(
            "INVALID_TIMEZONE",
            format!(
                "{:?} is not a time zone of the IANA database; use a name such as \
                 \"America/New_York\" or \"UTC\".",
                name.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// Reads the organization's settings.
pub async fn get_settings(db: &Database, organization: &str) -> LedgerResult<Settings> {
    let organization = organization.to_owned();
    let row: Option<(String, String)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as("SELECT tax_rounding, timezone FROM organizations WHERE id = $1")
                    .bind(&organization)
                    .fetch_optional(&mut *tx)
                    .await?
            }))
        })
        .await?;
    let (rounding, timezone) = row.unwrap_or_else(|| ("line".to_owned(), "UTC".to_owned()));
    Ok(Settings {
        tax_rounding: TaxRounding::parse(&rounding).unwrap_or(TaxRounding::Line),
        timezone,
    })
}

/// Changes the organization's settings. Existing invoices keep the rounding
/// they were computed with.
pub async fn put_settings(
    db: &Database,
    organization: &str,
    change: SettingsChange,
) -> LedgerResult<Settings> {
    if let Some(name) = &change.timezone {
        parse_timezone(name)?;
    }
    let owned = organization.to_owned();
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &owned, tx => {
            sqlx::query(
                "UPDATE organizations SET tax_rounding = COALESCE($1, tax_rounding), \
                 timezone = COALESCE($2, timezone) WHERE id = $3",
            )
            .bind(change.tax_rounding.map(TaxRounding::as_str))
            .bind(change.timezone.as_deref())
            .bind(&owned)
            .execute(&mut *tx)
            .await?;
        }))
    })
    .await?;
    get_settings(db, organization).await
}

async fn customer_exists(
    db: &Database,
    organization: &str,
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
    organization: String,
    customer_id: i64,
    currency: String,
    due_date: NaiveDate,
    rounding: TaxRounding,
    lines: Vec<ParsedLine>,
    /// For an occurrence of a recurring invoice: the template and the
    /// occurrence's date, of which there is one invoice at most.
    recurring: Option<(i64, NaiveDate)>,
}

/// Reads invoices with their lines inside the open transaction `$tx`: the
/// ones `$selection` (an [`InvoiceSelection`]) names, in two queries
/// whatever their number. Evaluates to `(Vec<Invoice>, bool)`: the invoices
/// in the selection's order, and whether more follow them (a page cut by
/// its limit or its line budget). `?` on query errors. (A macro: each
/// backend's transaction is its own type.)
macro_rules! read_invoices_in {
    ($tx:expr, $organization:expr, $selection:expr, $today:expr) => {{
        let selection: &InvoiceSelection = $selection;
        let (id, status, customer, fetch) = selection.binds();
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(selection.query()))
            .bind($organization)
            .bind(id)
            .bind(status)
            .bind(customer)
            .bind(fetch)
            .fetch_all(&mut *$tx)
            .await?;
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
                number: format!(
                    "{}-{id:06}",
                    match kind {
                        InvoiceKind::Invoice => "INV",
                        InvoiceKind::CreditNote => "CN",
                    }
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

/// Inserts a draft and reads it back; with `idempotency`, stores the
/// rendered answer in the same transaction.
async fn insert_draft(
    db: &Database,
    draft: Draft,
    idempotency: Option<(&IdempotencyKey, RenderRecord<'_, Invoice>)>,
) -> LedgerResult<Invoice> {
    let figures: Vec<LineFigures> = draft
        .lines
        .iter()
        .map(|l| LineFigures {
            quantity: l.quantity,
            unit_price: l.unit_price,
            tax_rate: l.tax_rate,
        })
        .collect();
    let totals = totals::compute(&figures, draft.rounding)
        .map_err(|_| invalid("AMOUNT_TOO_LARGE", "The invoice amounts are too large."))?;
    let draft = &draft;
    let totals = &totals;
    let today = chrono::Utc::now().date_naive();
    db.run(|pool| async move {
        let inserted: Result<Invoice, sqlx::Error> = async {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&draft.organization).await?;
                let (recurring_id, period) = draft.recurring.unzip();
                let inserted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO invoices (organization_id, customer_id, kind, currency, status, \
                     due_date, tax_rounding, subtotal, tax, total, recurring_id, period) \
                     VALUES ($1, $2, 'invoice', $3, 'draft', $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (recurring_id, period) WHERE recurring_id IS NOT NULL DO NOTHING \
                     RETURNING id",
                )
                .bind(&draft.organization)
                .bind(draft.customer_id)
                .bind(&draft.currency)
                .bind(draft.due_date)
                .bind(draft.rounding.as_str())
                .bind(totals.subtotal)
                .bind(totals.tax)
                .bind(totals.total)
                .bind(recurring_id)
                .bind(period)
                .fetch_optional(&mut *tx)
                .await?;
                let (id, new) = match inserted {
                    Some(id) => (id, true),
                    // The occurrence exists already (a job run again).
                    None => (
                        sqlx::query_scalar(
                            "SELECT id FROM invoices WHERE recurring_id = $1 AND period = $2",
                        )
                        .bind(recurring_id)
                        .bind(period)
                        .fetch_one(&mut *tx)
                        .await?,
                        false,
                    ),
                };
                for (line, computed) in draft.lines.iter().zip(&totals.lines).filter(|_| new) {
                    sqlx::query(
                        "INSERT INTO invoice_lines (invoice_id, description, quantity, unit_price, tax_rate, amount, tax) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(id)
                    .bind(&line.description)
                    .bind(line.quantity.to_string())
                    .bind(line.unit_price)
                    .bind(line.tax_rate.to_string())
                    .bind(computed.amount)
                    .bind(computed.tax)
                    .execute(&mut *tx)
                    .await?;
                }
                let invoice = read_invoices_in!(tx, &draft.organization, &InvoiceSelection::One(id), today)
                    .0
                    .pop()
                    .ok_or(sqlx::Error::RowNotFound)?;
                if let Some((key, render)) = idempotency {
                    let (status, body) = render(&invoice);
                    idempotency::store_answer!(&mut *tx, key, status, body)?;
                }
                tx.commit().await?;
                Ok(invoice)
            })
        }
        .await;
        idempotency::settle(inserted)
    })
    .await?
}

/// Creates a draft invoice with its totals.
///
/// With `idempotency`, the rendered answer is stored in the same transaction.
pub async fn create_invoice(
    ledger: &Ledger,
    organization: &str,
    new: NewInvoice,
    idempotency: Option<(&IdempotencyKey, RenderRecord<'_, Invoice>)>,
) -> LedgerResult<Invoice> {
    let draft = draft_of(ledger, organization, new, None).await?;
    insert_draft(ledger.database(), draft, idempotency).await
}

/// Creates the draft of one occurrence of a recurring invoice, or answers
/// the one created before: there is one invoice per template and period,
/// however often this runs.
pub async fn create_recurring_invoice(
    ledger: &Ledger,
    organization: &str,
    recurring_id: i64,
    period: NaiveDate,
    new: NewInvoice,
) -> LedgerResult<Invoice> {
    let draft = draft_of(ledger, organization, new, Some((recurring_id, period))).await?;
    insert_draft(ledger.database(), draft, None).await
}

/// Checks a new invoice as [`create_invoice`] would, without creating it.
pub(crate) async fn check_invoice(
    ledger: &Ledger,
    organization: &str,
    new: NewInvoice,
) -> LedgerResult<()> {
    draft_of(ledger, organization, new, None).await.map(drop)
}

/// Checks a new invoice and computes what its draft holds.
async fn draft_of(
    ledger: &Ledger,
    organization: &str,
    new: NewInvoice,
    recurring: Option<(i64, NaiveDate)>,
) -> LedgerResult<Draft> {
    let db = ledger.database();
    let due_date = parse_date(&new.due_date)?;
    if !customer_exists(db, organization, new.customer_id).await? {
        return Err(invalid(
            "UNKNOWN_CUSTOMER",
            format!("There is no customer {}.", new.customer_id),
        ));
    }
    let accounts = posting_accounts(ledger, organization).await?;
    let currency = match new.currency {
        Some(currency) => currency,
        None => accounts
            .get(RECEIVABLE)
            .map(|a| a.currency.clone())
            .ok_or_else(|| {
                invalid(
                    "MISSING_ACCOUNT",
                    format!("Invoices need account {RECEIVABLE} (receivables)."),
                )
            })?,
    };
    let currency_digits = crate::ledger::accounts::validate_currency(&currency)?;
    let lines = parse_lines(&new.lines, currency_digits)?;
    Ok(Draft {
        organization: organization.to_owned(),
        customer_id: new.customer_id,
        currency,
        due_date,
        rounding: get_settings(db, organization).await?.tax_rounding,
        lines,
        recurring,
    })
}

pub(crate) async fn posting_accounts(
    ledger: &Ledger,
    organization: &str,
) -> LedgerResult<HashMap<String, Account>> {
    accounts_for_posting(
        ledger,
        organization,
        &[CASH, RECEIVABLE, TAX_PAYABLE, REVENUE, RETURNS],
    )
    .await
}

const SELECT_INVOICE: &str = "SELECT id, kind, customer_id, credits_invoice, currency, status, due_date, issue_date, \
     void_date, tax_rounding, subtotal, tax, total, paid, credited, issue_entry_id, recurring_id, period, \
     (SELECT COUNT(*) FROM invoice_lines l WHERE l.invoice_id = invoices.id) AS line_count FROM invoices";

/// Most invoice lines one page of invoices carries. With at most 500 lines
/// of at most 500 characters per invoice, 500 invoices could otherwise make
/// an answer of hundreds of megabytes; a page stops before the invoice that
/// would take it past this budget (it always holds one invoice), and its
/// `Link` goes on from there.
pub const INVOICE_LINES_PER_PAGE: i64 = 5_000;

/// Filters of the invoice list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InvoiceFilter {
    /// Only invoices in this state.
    pub status: Option<InvoiceStatus>,
    /// Only this customer's invoices.
    pub customer_id: Option<i64>,
}

/// The invoices [`read_invoices_in`] reads.
enum InvoiceSelection {
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
    /// The header query; its binds are the organization and [`Self::binds`].
    fn query(&self) -> String {
        let filter = match self {
            InvoiceSelection::One(_) => "WHERE organization_id = $1 AND id = $2",
            InvoiceSelection::Page { .. } => "WHERE organization_id = $1 AND id < $2",
        };
        format!(
            "{SELECT_INVOICE} {filter} AND ($3 = '' OR status = $3) AND ($4 = 0 OR customer_id = $4) \
             ORDER BY id DESC LIMIT $5"
        )
    }

    /// The id, status, customer and row count binds of [`Self::query`].
    fn binds(&self) -> (i64, &'static str, i64, i64) {
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
    fn keep(&self, line_counts: &[i64]) -> usize {
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
fn lines_query(count: usize) -> String {
    format!(
        "SELECT invoice_id, description, quantity, unit_price, tax_rate, amount, tax FROM invoice_lines \
         WHERE invoice_id IN ({}) ORDER BY invoice_id, id",
        crate::db::sql::placeholders(1, count)
    )
}

/// Reads an invoice or credit note of the organization, with its lines.
pub async fn get_invoice(db: &Database, organization: &str, id: i64) -> LedgerResult<Invoice> {
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
    organization: &str,
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

async fn read_invoices(
    db: &Database,
    organization: &str,
    selection: InvoiceSelection,
) -> LedgerResult<(Vec<Invoice>, bool)> {
    let organization = organization.to_owned();
    let today = chrono::Utc::now().date_naive();
    let selection = &selection;
    let invoices = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&organization).await?;
                let invoices = read_invoices_in!(tx, &organization, selection, today);
                tx.commit().await?;
                Ok(invoices)
            })
        })
        .await?;
    Ok(invoices)
}

/// Builds a balanced entry from (account code, signed minor units) lines,
/// skipping zero amounts, and validates it like any client entry.
/// A balanced entry of `lines` (account code, minor units: positive for a
/// debit, negative for a credit; zeros left out), all in `currency`.
pub(crate) fn posting(
    organization: &str,
    accounts: &HashMap<String, Account>,
    currency: &str,
    date: NaiveDate,
    memo: String,
    lines: &[(&str, i64)],
) -> LedgerResult<ValidEntry> {
    entry(organization, accounts, currency, date, memo, lines)
}

fn entry(
    organization: &str,
    accounts: &HashMap<String, Account>,
    currency: &str,
    date: NaiveDate,
    memo: String,
    lines: &[(&str, i64)],
) -> LedgerResult<ValidEntry> {
    for (code, _) in lines {
        match accounts.get(*code) {
            Some(account) if account.currency == currency => {}
            _ => {
                return Err(invalid(
                    "MISSING_ACCOUNT",
                    format!("Postings in {currency} need account {code} in {currency}."),
                ));
            }
        }
    }
    let d = digits(currency);
    let input = EntryInput {
        date: date.format("%Y-%m-%d").to_string(),
        memo,
        lines: lines
            .iter()
            .filter(|(_, amount)| *amount != 0)
            .map(|(code, amount)| {
                let text = AmountText(money::format_minor(amount.abs(), d));
                LineInput {
                    account: (*code).to_owned(),
                    debit: (*amount > 0).then(|| text.clone()),
                    credit: (*amount < 0).then_some(text),
                }
            })
            .collect(),
    };
    validate_memo(&input.memo)?;
    validate(organization, &input, accounts)
}

fn date_or_today(date: Option<&str>) -> LedgerResult<NaiveDate> {
    date.map_or_else(|| Ok(chrono::Utc::now().date_naive()), parse_date)
}

/// Issues a draft invoice: posts receivables against revenue and tax.
pub async fn issue_invoice(
    ledger: &Ledger,
    organization: &str,
    id: i64,
    date: Option<&str>,
    idempotency: Option<IdempotencyKey>,
) -> LedgerResult<Invoice> {
    let (db, committer) = (ledger.database(), ledger.committer());
    let date = date_or_today(date)?;
    let invoice = get_invoice(db, organization, id).await?;
    if invoice.kind != InvoiceKind::Invoice || invoice.status != InvoiceStatus::Draft {
        return Err(LedgerError::Conflict {
            code: "INVOICE_NOT_DRAFT",
            message: format!(
                "Invoice {id} is {}; only drafts can be issued.",
                invoice.status
            ),
        });
    }
    if invoice.total_minor == 0 {
        return Err(invalid(
            "EMPTY_INVOICE",
            "An invoice with a total of zero cannot be issued.",
        ));
    }
    let accounts = posting_accounts(ledger, organization).await?;
    let posting = entry(
        organization,
        &accounts,
        &invoice.currency,
        date,
        format!("Invoice {}", invoice.number),
        &[
            (RECEIVABLE, invoice.total_minor),
            (REVENUE, -invoice.subtotal_minor),
            (TAX_PAYABLE, -invoice.tax_minor),
        ],
    )?;
    committer
        .post_with_effects(
            vec![posting],
            idempotency.map(idempotency::pending),
            vec![Effect::Issue {
                invoice_id: id,
                date,
            }],
        )
        .await?;
    get_invoice(db, organization, id).await
}

/// Records a payment against an issued invoice: cash against receivables.
pub async fn record_payment(
    ledger: &Ledger,
    organization: &str,
    id: i64,
    amount: &str,
    date: Option<&str>,
    idempotency: Option<IdempotencyKey>,
) -> LedgerResult<Invoice> {
    let (db, committer) = (ledger.database(), ledger.committer());
    let date = date_or_today(date)?;
    let invoice = get_invoice(db, organization, id).await?;
    if invoice.kind != InvoiceKind::Invoice || !invoice.status.is_open() {
        return Err(LedgerError::Conflict {
            code: "INVOICE_NOT_OPEN",
            message: format!(
                "Invoice {id} is {}; payments apply to issued, unpaid invoices.",
                invoice.status
            ),
        });
    }
    let d = digits(&invoice.currency);
    let minor = money::parse_minor(amount, d)
        .ok()
        .filter(|m| *m > 0)
        .ok_or_else(|| {
            invalid(
                "INVALID_AMOUNT",
                format!("A payment is a positive amount with at most {d} fraction digits."),
            )
        })?;
    if minor > invoice.outstanding_minor {
        return Err(invalid(
            "OVERPAYMENT",
            format!(
                "The payment exceeds what is outstanding ({} {}).",
                invoice.outstanding, invoice.currency
            ),
        ));
    }
    let accounts = posting_accounts(ledger, organization).await?;
    let posting = entry(
        organization,
        &accounts,
        &invoice.currency,
        date,
        format!("Payment for {}", invoice.number),
        &[(CASH, minor), (RECEIVABLE, -minor)],
    )?;
    committer
        .post_with_effects(
            vec![posting],
            idempotency.map(idempotency::pending),
            vec![Effect::Pay {
                invoice_id: id,
                amount: minor,
                date,
            }],
        )
        .await?;
    get_invoice(db, organization, id).await
}

/// Voids an invoice: a draft simply; an issued one without payments or
/// credits by reversing its issuing entry.
pub async fn void_invoice(
    ledger: &Ledger,
    organization: &str,
    id: i64,
    date: Option<&str>,
    idempotency: Option<IdempotencyKey>,
) -> LedgerResult<Invoice> {
    let (db, committer) = (ledger.database(), ledger.committer());
    let date = date_or_today(date)?;
    let invoice = get_invoice(db, organization, id).await?;
    match (invoice.kind, invoice.status, invoice.issue_entry_id) {
        (InvoiceKind::Invoice, InvoiceStatus::Draft, _) => {
            let org = organization.to_owned();
            let changed = db
                .run(|pool| async move {
                    on_pool!(pool, p => in_scope!(p, &org, tx => {
                        sqlx::query("UPDATE invoices SET status = 'void', void_date = $1 WHERE id = $2 AND organization_id = $3 AND status = 'draft'")
                            .bind(date)
                            .bind(id)
                            .bind(&org)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                    }))
                })
                .await?;
            if changed != 1 {
                return Err(LedgerError::Conflict {
                    code: "INVOICE_STATE_CHANGED",
                    message: "The invoice changed meanwhile; reload it.".to_owned(),
                });
            }
        }
        (InvoiceKind::Invoice, InvoiceStatus::Issued, Some(entry_id)) => {
            let mirror =
                crate::ledger::entries::reverse_entry(ledger, organization, entry_id, Some(date))
                    .await?;
            committer
                .post_with_effects(
                    vec![mirror],
                    idempotency.map(idempotency::pending),
                    vec![Effect::Void {
                        invoice_id: id,
                        date,
                    }],
                )
                .await?;
        }
        _ => {
            return Err(LedgerError::Conflict {
                code: "INVOICE_NOT_VOIDABLE",
                message: format!(
                    "Invoice {id} is {}; only drafts and issued invoices without payments or credits can be voided.",
                    invoice.status
                ),
            });
        }
    }
    get_invoice(db, organization, id).await
}

/// Issues a credit note against an open invoice: sales returns and tax back
/// against receivables, reducing what the customer owes.
pub async fn credit_note(
    ledger: &Ledger,
    organization: &str,
    id: i64,
    new: NewCreditNote,
    idempotency: Option<IdempotencyKey>,
) -> LedgerResult<Invoice> {
    let (db, committer) = (ledger.database(), ledger.committer());
    let date = date_or_today(new.date.as_deref())?;
    let invoice = get_invoice(db, organization, id).await?;
    if invoice.kind != InvoiceKind::Invoice || !invoice.status.is_open() {
        return Err(LedgerError::Conflict {
            code: "INVOICE_NOT_OPEN",
            message: format!(
                "Invoice {id} is {}; credit notes apply to issued, unpaid invoices.",
                invoice.status
            ),
        });
    }
    let lines = parse_lines(&new.lines, digits(&invoice.currency))?;
    let rounding = TaxRounding::parse(&invoice.tax_rounding).unwrap_or(TaxRounding::Line);
    let figures: Vec<LineFigures> = lines
        .iter()
        .map(|l| LineFigures {
            quantity: l.quantity,
            unit_price: l.unit_price,
            tax_rate: l.tax_rate,
        })
        .collect();
    let totals = totals::compute(&figures, rounding)
        .map_err(|_| invalid("AMOUNT_TOO_LARGE", "The credit note amounts are too large."))?;
    if totals.total == 0 || totals.total > invoice.outstanding_minor {
        return Err(invalid(
            "INVALID_CREDIT",
            format!(
                "A credit note's total must be positive and at most what is outstanding ({} {}).",
                invoice.outstanding, invoice.currency
            ),
        ));
    }
    let accounts = posting_accounts(ledger, organization).await?;
    let posting = entry(
        organization,
        &accounts,
        &invoice.currency,
        date,
        format!("Credit note for {}", invoice.number),
        &[
            (RETURNS, totals.subtotal),
            (TAX_PAYABLE, totals.tax),
            (RECEIVABLE, -totals.total),
        ],
    )?;
    let note = CreditNoteRows {
        customer_id: invoice.customer_id,
        credits_invoice: id,
        currency: invoice.currency.clone(),
        date,
        tax_rounding: rounding.as_str(),
        subtotal: totals.subtotal,
        tax: totals.tax,
        total: totals.total,
        lines: lines
            .iter()
            .zip(&totals.lines)
            .map(|(line, computed)| {
                (
                    line.description.clone(),
                    line.quantity.to_string(),
                    line.unit_price,
                    line.tax_rate.to_string(),
                    computed.amount,
                    computed.tax,
                )
            })
            .collect(),
    };
    // The credit note, its posting and the credit on the invoice are one
    // transaction: all of them or nothing.
    let ids = committer
        .post_with_effects(
            vec![posting],
            idempotency.map(idempotency::pending),
            vec![
                Effect::CreditNote(Box::new(note)),
                Effect::Credit {
                    invoice_id: id,
                    amount: totals.total,
                },
            ],
        )
        .await?;
    let entry_id = ids.first().copied().ok_or_else(|| {
        LedgerError::Storage(crate::Error::Setup(
            "a credit note posted no entry".to_owned(),
        ))
    })?;
    let credit_id = credit_note_of_entry(db, organization, entry_id).await?;
    get_invoice(db, organization, credit_id).await
}

/// The credit note the entry `entry_id` issued.
async fn credit_note_of_entry(
    db: &Database,
    organization: &str,
    entry_id: i64,
) -> LedgerResult<i64> {
    let organization = organization.to_owned();
    let id: Option<i64> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_scalar(
                    "SELECT id FROM invoices WHERE organization_id = $1 AND issue_entry_id = $2 AND kind = 'credit_note'",
                )
                .bind(&organization)
                .bind(entry_id)
                .fetch_optional(&mut *tx)
                .await?
            }))
        })
        .await?;
    id.ok_or_else(|| {
        LedgerError::NotFound(format!("No credit note was issued by entry {entry_id}."))
    })
}

/// One customer's (or the total's) receivables by age.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgingBuckets {
    /// Not yet due.
    #[schema(value_type = crate::money::AmountText)]
    pub current: String,
    /// 1 to 30 days past due.
    #[schema(value_type = crate::money::AmountText)]
    pub days_1_30: String,
    /// 31 to 60 days past due.
    #[schema(value_type = crate::money::AmountText)]
    pub days_31_60: String,
    /// 61 to 90 days past due.
    #[schema(value_type = crate::money::AmountText)]
    pub days_61_90: String,
    /// More than 90 days past due.
    #[schema(value_type = crate::money::AmountText)]
    pub over_90: String,
    /// All of them.
    #[schema(value_type = crate::money::AmountText)]
    pub total: String,
}

/// One customer's line of the aging report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgingRow {
    /// The customer.
    pub customer_id: i64,
    /// Its name.
    pub customer: String,
    /// Currency.
    pub currency: String,
    /// The buckets.
    #[serde(flatten)]
    pub buckets: AgingBuckets,
}

/// `GET /api/reports/ar-aging`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ArAging {
    /// The date.
    pub as_of: NaiveDate,
    /// Per customer and currency.
    pub customers: Vec<AgingRow>,
    /// Per currency.
    pub totals: Vec<AgingRow>,
}

fn buckets(sums: [i64; 5], d: u32) -> AgingBuckets {
    AgingBuckets {
        current: money::format_minor(sums[0], d),
        days_1_30: money::format_minor(sums[1], d),
        days_31_60: money::format_minor(sums[2], d),
        days_61_90: money::format_minor(sums[3], d),
        over_90: money::format_minor(sums[4], d),
        total: money::format_minor(sums.iter().sum(), d),
    }
}

/// Receivables outstanding at the end of `as_of`, by days past due.
pub async fn ar_aging(
    db: &Database,
    organization: &str,
    as_of: NaiveDate,
) -> LedgerResult<ArAging> {
    let organization = organization.to_owned();
    // What each invoice issued by then still owed then: its total less the
    // payments and credit notes dated up to then.
    let rows: Vec<(i64, String, String, NaiveDate, i64)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as(
                    "SELECT c.id, c.name, i.currency, i.due_date, CAST(i.total \
                       - COALESCE((SELECT SUM(pm.amount) FROM payments pm WHERE pm.invoice_id = i.id AND pm.payment_date <= $2), 0) \
                       - COALESCE((SELECT SUM(cn.total) FROM invoices cn WHERE cn.credits_invoice = i.id \
                                   AND cn.status <> 'draft' AND cn.issue_date <= $2), 0) AS BIGINT) \
                     FROM invoices i JOIN customers c ON c.id = i.customer_id \
                     WHERE i.organization_id = $1 AND i.kind = 'invoice' AND i.issue_date <= $2 \
                       AND (i.void_date IS NULL OR i.void_date > $2)",
                )
                .bind(&organization)
                .bind(as_of)
                .fetch_all(&mut *tx)
                .await?
            }))
        })
        .await?;
    let mut per_customer: BTreeMap<(i64, String), (String, [i64; 5])> = BTreeMap::new();
    let mut per_currency: BTreeMap<String, [i64; 5]> = BTreeMap::new();
    for (customer_id, name, currency, due_date, outstanding) in rows {
        if outstanding <= 0 {
            continue;
        }
        let late = (as_of - due_date).num_days();
        let bucket = match late {
            ..=0 => 0,
            1..=30 => 1,
            31..=60 => 2,
            61..=90 => 3,
            _ => 4,
        };
        per_customer
            .entry((customer_id, currency.clone()))
            .or_insert_with(|| (name, [0; 5]))
            .1[bucket] += outstanding;
        per_currency.entry(currency).or_default()[bucket] += outstanding;
    }
    Ok(ArAging {
        as_of,
        customers: per_customer
            .into_iter()
            .map(|((customer_id, currency), (customer, sums))| AgingRow {
                customer_id,
                customer,
                buckets: buckets(sums, digits(&currency)),
                currency,
            })
            .collect(),
        totals: per_currency
            .into_iter()
            .map(|(currency, sums)| AgingRow {
                customer_id: 0,
                customer: "All customers".to_owned(),
                buckets: buckets(sums, digits(&currency)),
                currency,
            })
            .collect(),
    })
}

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
