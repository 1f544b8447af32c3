//! What an invoice posts: its issue, payments, void and credit notes, each
//! an entry with the guarded change of the invoice (an effect) committed
//! together.

use std::collections::HashMap;

use chrono::NaiveDate;
use futures::future::BoxFuture;
use sqlx::Row;

use super::announce::{Announce, When};
use super::numbering;
use super::totals::{self, LineFigures, TaxRounding};
use super::*;
use crate::db::Database;
use crate::db::sql::{in_scope, on_pool};
use crate::events::{self, NewEvent};
use crate::idempotency::{self, IdempotencyKey};
use crate::ledger::accounts::Account;
use crate::ledger::entries::{
    EntryInput, LineInput, ValidEntry, parse_date, validate, validate_memo,
};
use crate::ledger::{
    Bind, Effect, EffectTx, Guard, GuardedUpdate, Ledger, LedgerError, LedgerResult, WhenLocked,
};
use crate::money::{self, AmountText};
use crate::organization::OrganizationId;

/// Builds a balanced entry from (account code, signed minor units) lines,
/// skipping zero amounts, and validates it like any client entry.
/// A balanced entry of `lines` (account code, minor units: positive for a
/// debit, negative for a credit; zeros left out), all in `currency`.
pub(crate) fn posting(
    organization: &OrganizationId,
    accounts: &HashMap<String, Account>,
    currency: &str,
    date: NaiveDate,
    memo: String,
    lines: &[(&str, i64)],
) -> LedgerResult<ValidEntry> {
    entry(organization, accounts, currency, date, memo, lines)
}

pub(super) fn entry(
    organization: &OrganizationId,
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
        metadata: Default::default(),
    };
    validate_memo(&input.memo)?;
    validate(organization, &input, accounts)
}

pub(super) fn date_or_today(date: Option<&str>) -> LedgerResult<NaiveDate> {
    date.map_or_else(|| Ok(chrono::Utc::now().date_naive()), parse_date)
}

// What invoices' postings change in the same transaction, through the
// committer's effects: each guards the state it expects of the invoice.

/// An issued credit note reduces what is owed on an open invoice.
pub(super) fn credit(invoice_id: i64, amount: i64) -> GuardedUpdate {
    GuardedUpdate::new(
        "UPDATE invoices SET credited = credited + $1, status = CASE \
         WHEN total - credited - paid - $1 = 0 THEN 'paid' ELSE status END \
         WHERE id = $2 AND organization_id = $3 AND status IN ('issued', 'partially_paid') \
         AND total - credited - paid >= $1",
        vec![Bind::I64(amount), Bind::I64(invoice_id), Bind::Organization],
    )
}

/// A refund takes back part of what was paid on an invoice, by the
/// posting's entry (receivables against cash).
pub(crate) fn unpay(invoice_id: i64, amount: i64) -> GuardedUpdate {
    GuardedUpdate::new(
        "UPDATE invoices SET paid = paid - $1, status = CASE \
         WHEN paid - $1 = 0 THEN 'issued' ELSE 'partially_paid' END \
         WHERE id = $2 AND organization_id = $3 \
         AND status IN ('partially_paid', 'paid') AND paid >= $1",
        vec![Bind::I64(amount), Bind::I64(invoice_id), Bind::Organization],
    )
}

/// An issued, unsettled invoice is voided by the posting's (reversing) entry.
pub(super) fn void(invoice_id: i64) -> GuardedUpdate {
    GuardedUpdate::new(
        "UPDATE invoices SET status = 'void', void_date = $1, void_entry_id = $2 \
         WHERE id = $3 AND organization_id = $4 AND status = 'issued' AND paid = 0 AND credited = 0",
        vec![
            Bind::EntryDate,
            Bind::EntryId,
            Bind::I64(invoice_id),
            Bind::Organization,
        ],
    )
}

/// A payment settles part of an open invoice, posted by the posting's
/// entry, and is recorded among the invoice's payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Payment {
    /// The invoice.
    pub(crate) invoice_id: i64,
    /// Minor units.
    pub(crate) amount: i64,
}

impl Effect for Payment {
    fn apply<'a>(&'a self, tx: &'a mut EffectTx<'_>) -> BoxFuture<'a, Result<Guard, sqlx::Error>> {
        Box::pin(async move {
            let settled = GuardedUpdate::new(
                "UPDATE invoices SET paid = paid + $1, status = CASE \
                 WHEN total - credited - paid - $1 = 0 THEN 'paid' ELSE 'partially_paid' END \
                 WHERE id = $2 AND organization_id = $3 AND status IN ('issued', 'partially_paid') \
                 AND total - credited - paid >= $1",
                vec![
                    Bind::I64(self.amount),
                    Bind::I64(self.invoice_id),
                    Bind::Organization,
                ],
            )
            .apply(tx)
            .await?;
            if settled == Guard::Held {
                tx.execute(
                    "INSERT INTO payments (organization_id, invoice_id, amount, payment_date, entry_id) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        Bind::Organization,
                        Bind::I64(self.invoice_id),
                        Bind::I64(self.amount),
                        Bind::EntryDate,
                        Bind::EntryId,
                    ],
                )
                .await?;
            }
            Ok(settled)
        })
    }
}

/// A credit note, created issued by the posting's entry in the same
/// transaction (so no draft is ever left behind by a failed posting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CreditNoteRows {
    customer_id: i64,
    credits_invoice: i64,
    currency: String,
    tax_rounding: &'static str,
    subtotal: i64,
    tax: i64,
    total: i64,
    /// Description, quantity, unit price, tax rate, amount and tax per line.
    lines: Vec<(String, String, i64, String, i64, i64)>,
}

impl Effect for CreditNoteRows {
    fn apply<'a>(&'a self, tx: &'a mut EffectTx<'_>) -> BoxFuture<'a, Result<Guard, sqlx::Error>> {
        Box::pin(async move {
            let number = match numbering::next_number(tx, InvoiceKind::CreditNote).await? {
                Ok(number) => number,
                Err(refused) => return Ok(refused),
            };
            let id = tx
                .fetch_id(
                    "INSERT INTO invoices (organization_id, customer_id, kind, credits_invoice, currency, \
                     status, due_date, issue_date, issue_entry_id, tax_rounding, subtotal, tax, total, number) \
                     VALUES ($1, $2, 'credit_note', $3, $4, 'issued', $5, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                    &[
                        Bind::Organization,
                        Bind::I64(self.customer_id),
                        Bind::I64(self.credits_invoice),
                        Bind::Text(self.currency.clone()),
                        Bind::EntryDate,
                        Bind::EntryId,
                        Bind::Text(self.tax_rounding.to_owned()),
                        Bind::I64(self.subtotal),
                        Bind::I64(self.tax),
                        Bind::I64(self.total),
                        Bind::I64(number),
                    ],
                )
                .await?;
            for (description, quantity, unit_price, tax_rate, amount, tax) in &self.lines {
                tx.execute(
                    "INSERT INTO invoice_lines (invoice_id, description, quantity, unit_price, tax_rate, amount, tax) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        Bind::I64(id),
                        Bind::Text(description.clone()),
                        Bind::Text(quantity.clone()),
                        Bind::I64(*unit_price),
                        Bind::Text(tax_rate.clone()),
                        Bind::I64(*amount),
                        Bind::I64(*tax),
                    ],
                )
                .await?;
            }
            let note = super::announce::read_in(tx, id).await?;
            tx.emit(NewEvent::new(events::CREDIT_NOTE_ISSUED, &note));
            Ok(Guard::Held)
        })
    }
}

/// Issues a draft invoice: posts receivables against revenue and tax.
pub async fn issue_invoice(
    ledger: &Ledger,
    organization: &OrganizationId,
    id: i64,
    date: Option<&str>,
    idempotency: Option<IdempotencyKey>,
) -> LedgerResult<Invoice> {
    let date = date_or_today(date)?;
    issue(
        ledger,
        organization,
        id,
        date,
        idempotency,
        WhenLocked::Refuse,
    )
    .await
}

/// Issues a recurring occurrence on its date, or, when that day is locked
/// or another invoice was issued later meanwhile, on the first day it may
/// have (its date kept as the entry's `original_date`, its `period` too):
/// an occurrence is due whatever the books say, so it is never refused.
pub(crate) async fn issue_occurrence(
    ledger: &Ledger,
    organization: &OrganizationId,
    id: i64,
    date: NaiveDate,
) -> LedgerResult<Invoice> {
    issue(
        ledger,
        organization,
        id,
        date,
        None,
        WhenLocked::PostOnFirstOpenDay,
    )
    .await
}

async fn issue(
    ledger: &Ledger,
    organization: &OrganizationId,
    id: i64,
    date: NaiveDate,
    idempotency: Option<IdempotencyKey>,
    when_locked: WhenLocked,
) -> LedgerResult<Invoice> {
    let (db, committer) = (ledger.database(), ledger.committer());
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
        // The number is taken in the posting's own transaction, after the
        // entry is written (and entries are immutable): the memo names the
        // invoice by its id, the invoice shows its number.
        format!("Invoice id {id}"),
        &[
            (RECEIVABLE, invoice.total_minor),
            (REVENUE, -invoice.subtotal_minor),
            (TAX_PAYABLE, -invoice.tax_minor),
        ],
    )?;
    committer
        .post_when_locked(
            vec![posting],
            idempotency.map(idempotency::pending),
            vec![
                Box::new(numbering::Issue { invoice_id: id }),
                Box::new(Announce {
                    kind: events::INVOICE_ISSUED,
                    invoice_id: id,
                    when: When::Always,
                }),
            ],
            when_locked,
        )
        .await?;
    get_invoice(db, organization, id).await
}

/// Records a payment against an issued invoice: cash against receivables.
pub async fn record_payment(
    ledger: &Ledger,
    organization: &OrganizationId,
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
        format!("Payment for {}", invoice.name()),
        &[(CASH, minor), (RECEIVABLE, -minor)],
    )?;
    committer
        .post_with_effects(
            vec![posting],
            idempotency.map(idempotency::pending),
            vec![
                Box::new(Payment {
                    invoice_id: id,
                    amount: minor,
                }),
                Box::new(Announce {
                    kind: events::INVOICE_PAID,
                    invoice_id: id,
                    when: When::Paid,
                }),
            ],
        )
        .await?;
    get_invoice(db, organization, id).await
}

/// Voids an invoice: a draft simply; an issued one without payments or
/// credits by reversing its issuing entry.
pub async fn void_invoice(
    ledger: &Ledger,
    organization: &OrganizationId,
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
                        let changed = sqlx::query("UPDATE invoices SET status = 'void', void_date = $1 WHERE id = $2 AND organization_id = $3 AND status = 'draft'")
                            .bind(date)
                            .bind(id)
                            .bind(&org)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        if changed == 1 {
                            let today = chrono::Utc::now().date_naive();
                            let (voided, _) = read_invoices_in!(tx, &p, &org, &InvoiceSelection::One(id), today);
                            let event = voided
                                .first()
                                .map(|invoice| NewEvent::new(events::INVOICE_VOIDED, invoice));
                            let event: Vec<(&str, &NewEvent)> =
                                event.iter().map(|e| (org.as_str(), e)).collect();
                            events::write((&mut *tx).into(), &event, crate::clock::now_ms()).await?;
                        }
                        changed
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
                    vec![
                        Box::new(void(id)),
                        Box::new(Announce {
                            kind: events::INVOICE_VOIDED,
                            invoice_id: id,
                            when: When::Always,
                        }),
                    ],
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
    organization: &OrganizationId,
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
        format!("Credit note for {}", invoice.name()),
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
                Box::new(note),
                Box::new(credit(id, totals.total)),
                Box::new(Announce {
                    kind: events::INVOICE_PAID,
                    invoice_id: id,
                    when: When::Paid,
                }),
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
pub(super) async fn credit_note_of_entry(
    db: &Database,
    organization: &OrganizationId,
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
