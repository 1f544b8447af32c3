//! Match suggestions (open invoices and unmatched entries near the line's
//! amount and date) and matching a line: its posting and the `matched`
//! guard commit together.

use chrono::NaiveDate;

use super::*;
use crate::db::Database;
use crate::db::sql::Connection;
use crate::db::sql::{List, in_list, in_scope, on_pool};
use crate::events::{self, NewEvent};
use crate::idempotency::{self, IdempotencyKey};
use crate::invoicing::invoices::{self, RECEIVABLE};
use crate::ledger::accounts::accounts_for_posting;
use crate::ledger::{
    Bind, Effect, EffectTx, Guard, GuardedUpdate, Ledger, LedgerError, LedgerResult, WhenLocked,
};
use crate::money;
use crate::organization::OrganizationId;
use futures::future::BoxFuture;

/// An open invoice: (id, currency, outstanding, issue date, number).
pub(super) type OpenInvoice = (i64, String, i64, Option<NaiveDate>, Option<i64>);
/// A journal line on a mapped account: (account id, amount, entry id, date,
/// memo, the invoice it pays if it is a payment).
pub(super) type EntryLine = (i64, i64, i64, NaiveDate, String, Option<i64>);

pub(super) struct Candidates {
    pub(super) invoices: Vec<OpenInvoice>,
    pub(super) entries: Vec<EntryLine>,
}

/// Everything the lines' suggestions may name, in two queries.
pub(super) async fn candidates(
    db: &Database,
    organization: &OrganizationId,
    lines: &[Stored],
) -> LedgerResult<Candidates> {
    let mut mapped: Vec<i64> = lines.iter().filter_map(|s| s.ledger_account_id).collect();
    mapped.sort_unstable();
    mapped.dedup();
    let window = chrono::Duration::days(SUGGESTION_WINDOW_DAYS);
    let from = lines.iter().map(|s| s.line.date).min().unwrap_or_default() - window;
    let to = lines.iter().map(|s| s.line.date).max().unwrap_or_default() + window;
    let owned = organization.to_owned();
    let (invoices, entries): (Vec<OpenInvoice>, Vec<EntryLine>) = db
        .run(|pool| async move {
            let entries_sql = format!(
                "SELECT l.account_id, l.amount, e.id, e.entry_date, e.memo, p.invoice_id FROM journal_lines l \
                 JOIN journal_entries e ON e.id = l.entry_id LEFT JOIN payments p ON p.entry_id = e.id \
                 WHERE e.organization_id = $1 AND e.entry_date >= $2 AND e.entry_date <= $3 \
                 AND {} \
                 AND NOT EXISTS (SELECT 1 FROM bank_transactions b WHERE b.entry_id = e.id) \
                 ORDER BY e.id LIMIT 10000",
                in_list(&pool, "l.account_id", 4)
            );
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                let invoices: Vec<OpenInvoice> = sqlx::query_as(
                    "SELECT id, currency, total - credited - paid, issue_date, number FROM invoices \
                     WHERE organization_id = $1 AND kind = 'invoice' AND status IN ('issued', 'partially_paid') \
                     ORDER BY id LIMIT 10000",
                )
                .bind(&owned)
                .fetch_all(&mut *tx)
                .await?;
                let entries: Vec<EntryLine> = if mapped.is_empty() {
                    Vec::new()
                } else {
                    sqlx::query_as(sqlx::AssertSqlSafe(entries_sql.as_str()))
                        .bind(&owned)
                        .bind(from)
                        .bind(to)
                        .bind(List(mapped))
                        .fetch_all(&mut *tx)
                        .await?
                };
                (invoices, entries)
            }))
        })
        .await?;
    Ok(Candidates { invoices, entries })
}

/// The suggestions of one unmatched line, best first. The rule (also in
/// the README):
///
/// - money in only: an open invoice in the line's currency whose
///   outstanding amount equals the line's scores 70 (`amount`), and 30 more
///   (`reference`) when its number (`INV-000042`) appears in the line's
///   name; one whose number appears but whose amount differs scores 30;
/// - a journal line on the mapped ledger account that moves it by the
///   line's amount (a recorded payment, or any entry) within
///   ±[`SUGGESTION_WINDOW_DAYS`] days scores 60 less a point per day apart
///   (`amount`, `date`), and is not matched to another bank line;
/// - ties: the closer date, then the lower id.
pub(super) fn suggest(stored: &Stored, candidates: &Candidates) -> Vec<Suggestion> {
    let line = &stored.line;
    let digits = money::minor_digits(&line.currency).unwrap_or(2);
    let name = line.name.to_uppercase();
    let mut found: Vec<(u32, i64, i64, Suggestion)> = Vec::new();
    if stored.amount_minor < 0 {
        let incoming = -stored.amount_minor;
        for (id, currency, outstanding, issued, number) in &candidates.invoices {
            if *currency != line.currency {
                continue;
            }
            let number = number.map_or_else(
                || format!("invoice {id}"),
                |n| invoices::number_label(invoices::InvoiceKind::Invoice, n),
            );
            let mut reasons = Vec::new();
            let mut score = 0;
            if *outstanding == incoming {
                reasons.push("amount");
                score += 70;
            }
            if name.contains(&number) {
                reasons.push("reference");
                score += 30;
            }
            if score == 0 {
                continue;
            }
            let apart = issued.map_or(i64::MAX, |d| (line.date - d).num_days().abs());
            found.push((
                score,
                apart,
                *id,
                Suggestion {
                    kind: SuggestionKind::Invoice,
                    invoice_id: Some(*id),
                    entry_id: None,
                    label: number,
                    amount: money::format_minor(*outstanding, digits),
                    date: *issued,
                    score,
                    reasons,
                },
            ));
        }
    }
    if let Some(account) = stored.ledger_account_id {
        // The bank line moves the bank's ledger account the other way round
        // from Plaid's sign: money in is a debit.
        let movement = -stored.amount_minor;
        for (line_account, amount, entry, date, memo, invoice) in &candidates.entries {
            let apart = (line.date - *date).num_days().abs();
            if *line_account != account || *amount != movement || apart > SUGGESTION_WINDOW_DAYS {
                continue;
            }
            let score = 60 - u32::try_from(apart).unwrap_or(60);
            found.push((
                score,
                apart,
                *entry,
                Suggestion {
                    kind: if invoice.is_some() {
                        SuggestionKind::Payment
                    } else {
                        SuggestionKind::Entry
                    },
                    invoice_id: *invoice,
                    entry_id: Some(*entry),
                    label: memo.clone(),
                    amount: money::format_minor(amount.abs(), digits),
                    date: Some(*date),
                    score,
                    reasons: vec!["amount", "date"],
                },
            ));
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    found.dedup_by_key(|f| (f.3.kind, f.3.invoice_id, f.3.entry_id));
    found
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|f| f.3)
        .collect()
}

// --------------------------------------------------------------- match

/// An unmatched bank line becomes matched to the posting's entry (which
/// posts it, or, with `invoice_id`, the invoice's payment): only one
/// posting can take it from `unmatched`.
pub(super) fn matched(transaction_id: i64, invoice_id: Option<i64>) -> GuardedUpdate {
    GuardedUpdate::new(
        "UPDATE bank_transactions SET status = 'matched', entry_id = $1, invoice_id = $2 \
         WHERE id = $3 AND organization_id = $4 AND status = 'unmatched'",
        vec![
            Bind::EntryId,
            Bind::OptI64(invoice_id),
            Bind::I64(transaction_id),
            Bind::Organization,
        ],
    )
}

/// Emits `bank_transaction.matched` with the line as its match left it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Announce {
    line_id: i64,
}

impl Effect for Announce {
    fn apply<'a>(&'a self, tx: &'a mut EffectTx<'_>) -> BoxFuture<'a, Result<Guard, sqlx::Error>> {
        Box::pin(async move {
            let sql = format!("{SELECT_LINES} AND t.id = $2");
            let organization = tx.organization().as_str().to_owned();
            let row: LineRow = match tx.connection() {
                Connection::Postgres(conn) => {
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(&organization)
                        .bind(self.line_id)
                        .fetch_one(conn)
                        .await?
                }
                Connection::Sqlite(conn) => {
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(&organization)
                        .bind(self.line_id)
                        .fetch_one(conn)
                        .await?
                }
            };
            tx.emit(NewEvent::new(
                events::BANK_TRANSACTION_MATCHED,
                &stored_of(row).line,
            ));
            Ok(Guard::Held)
        })
    }
}

/// Matches an unmatched line: to an open invoice (records the payment and
/// posts the mapped bank account against receivables) or to an account
/// (posts the line between the mapped bank account and it). Posts once: a
/// second match is `409 BANK_TRANSACTION_MATCHED`.
pub async fn match_line(
    ledger: &Ledger,
    organization: &OrganizationId,
    id: i64,
    input: &MatchInput,
    idempotency: Option<IdempotencyKey>,
) -> LedgerResult<BankLine> {
    let db = ledger.database();
    let stored = read_line(db, organization, id).await?;
    let line = &stored.line;
    match line.status {
        LineStatus::Unmatched => {}
        LineStatus::Matched => return Err(already_matched(id)),
        LineStatus::Review => {
            return Err(conflict(
                "BANK_TRANSACTION_IN_REVIEW",
                format!(
                    "Bank transaction {id} was set aside ({}): it cannot be booked as the bank sent it; \
                     record it by hand and dismiss it (POST /api/bank/transactions/{id}/dismiss).",
                    line.review_reason.as_deref().unwrap_or("review")
                ),
            ));
        }
        LineStatus::Dismissed => {
            return Err(conflict(
                "BANK_TRANSACTION_DISMISSED",
                format!("Bank transaction {id} was dismissed; it is not booked."),
            ));
        }
    }
    if line.pending {
        return Err(conflict(
            "BANK_TRANSACTION_PENDING",
            "This bank transaction is still pending at the bank; match it once it has posted.",
        ));
    }
    let bank = line.ledger_account.clone().ok_or_else(|| {
        conflict(
            "BANK_ACCOUNT_NOT_MAPPED",
            format!(
                "Map bank account {} to a ledger account first (PUT /api/bank/accounts/{}).",
                line.account_id, line.account_id
            ),
        )
    })?;
    let memo: String = format!("Bank: {}", line.name).chars().take(200).collect();
    let (entry, effects) = match (input.invoice_id, input.account.as_deref()) {
        (Some(invoice_id), None) => {
            if stored.amount_minor >= 0 {
                return Err(LedgerError::invalid(
                    "BANK_TRANSACTION_NOT_INCOMING",
                    "Only money received (a negative Plaid amount) can pay an invoice.",
                ));
            }
            let incoming = -stored.amount_minor;
            let invoice = match invoices::get_invoice(db, organization, invoice_id).await {
                Err(LedgerError::NotFound(_)) => {
                    return Err(LedgerError::invalid(
                        "UNKNOWN_INVOICE",
                        format!("There is no invoice {invoice_id}."),
                    ));
                }
                other => other?,
            };
            if invoice.kind != invoices::InvoiceKind::Invoice || !invoice.status.is_open() {
                let refusal = conflict(
                    "INVOICE_NOT_OPEN",
                    format!(
                        "Invoice {invoice_id} is {}; a bank line pays issued, unpaid invoices.",
                        invoice.status
                    ),
                );
                return Err(unless_matched(db, organization, id, refusal).await);
            }
            if invoice.currency != line.currency {
                return Err(LedgerError::invalid(
                    "CURRENCY_MISMATCH",
                    format!(
                        "The bank line is in {} and invoice {} in {}.",
                        line.currency,
                        invoice.name(),
                        invoice.currency
                    ),
                ));
            }
            let digits = invoices::digits(&invoice.currency);
            if incoming > invoice.outstanding_minor {
                let refusal = LedgerError::invalid(
                    "OVERPAYMENT",
                    format!(
                        "The bank line ({} {}) exceeds what is outstanding on {} ({} {}).",
                        money::format_minor(incoming, digits),
                        line.currency,
                        invoice.name(),
                        invoice.outstanding,
                        invoice.currency
                    ),
                );
                return Err(unless_matched(db, organization, id, refusal).await);
            }
            let accounts = accounts_for_posting(ledger, organization, &[&bank, RECEIVABLE]).await?;
            let entry = invoices::posting(
                organization,
                &accounts,
                &line.currency,
                line.date,
                memo,
                &[(&bank, incoming), (RECEIVABLE, -incoming)],
            )?;
            let effects: Vec<Box<dyn Effect>> = vec![
                Box::new(invoices::Payment {
                    invoice_id,
                    amount: incoming,
                }),
                Box::new(matched(id, Some(invoice_id))),
                Box::new(Announce { line_id: id }),
                Box::new(invoices::Announce {
                    kind: events::INVOICE_PAID,
                    invoice_id,
                    when: invoices::When::Paid,
                }),
            ];
            (entry, effects)
        }
        (None, Some(account)) => {
            if account == bank {
                return Err(LedgerError::invalid(
                    "INVALID_FIELD",
                    format!(
                        "Account {bank} is the bank account itself; categorise the line to another account."
                    ),
                ));
            }
            let accounts = accounts_for_posting(ledger, organization, &[&bank, account]).await?;
            let entry = invoices::posting(
                organization,
                &accounts,
                &line.currency,
                line.date,
                memo,
                &[
                    (&bank, -stored.amount_minor),
                    (account, stored.amount_minor),
                ],
            )?;
            let effects: Vec<Box<dyn Effect>> = vec![
                Box::new(matched(id, None)),
                Box::new(Announce { line_id: id }),
            ];
            (entry, effects)
        }
        _ => {
            return Err(LedgerError::invalid(
                "INVALID_FIELD",
                "Give exactly one of invoice_id (an invoice this line pays) or account (a category).",
            ));
        }
    };
    // The money moved at the bank on the line's day whatever the books
    // say: in a locked period the match posts on the first open day.
    match ledger
        .committer()
        .post_when_locked(
            vec![entry],
            idempotency.map(idempotency::pending),
            effects,
            WhenLocked::PostOnFirstOpenDay,
        )
        .await
    {
        Ok(_) => {}
        Err(err @ LedgerError::Conflict { .. }) => {
            // Matched meanwhile by another request: say so, not that the
            // invoice changed.
            return Err(
                if read_line(db, organization, id).await?.line.status == LineStatus::Matched {
                    already_matched(id)
                } else {
                    err
                },
            );
        }
        Err(err) => return Err(err),
    }
    Ok(read_line(db, organization, id).await?.line)
}

/// `refusal` (about the invoice a line was to pay), unless a twin request
/// has matched the line since it was read, and paid the invoice with it:
/// then the line's state is the answer, `BANK_TRANSACTION_MATCHED`.
async fn unless_matched(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
    refusal: LedgerError,
) -> LedgerError {
    match read_line(db, organization, id).await {
        Ok(stored) if stored.line.status == LineStatus::Matched => already_matched(id),
        _ => refusal,
    }
}

pub(super) fn already_matched(id: i64) -> LedgerError {
    conflict(
        "BANK_TRANSACTION_MATCHED",
        format!("Bank transaction {id} is already matched; it posts once."),
    )
}
