//! The bank lines as stored, and their listing.

use chrono::NaiveDate;

use super::*;
use crate::db::Database;
use crate::db::sql::{in_scope, on_pool};
use crate::ledger::{LedgerError, LedgerResult};
use crate::money;
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};

/// Flags a matched line the bank changed (`$1`: `modified` or `removed`);
/// its posting stands.
pub(super) const FLAG_MATCHED: &str = "UPDATE bank_transactions SET bank_change = $1 WHERE organization_id = $2 \
     AND plaid_transaction_id = $3 AND status = 'matched'";

// --------------------------------------------------------------- lines

pub(super) const SELECT_LINES: &str = "SELECT t.id, t.account_id, t.plaid_transaction_id, t.posted_on, t.name, t.amount, \
     t.currency, t.pending, t.status, t.entry_id, t.invoice_id, t.bank_change, a.ledger_account_id, l.code, \
     t.review_reason, t.plaid_amount \
     FROM bank_transactions t JOIN bank_accounts a ON a.id = t.account_id \
     LEFT JOIN accounts l ON l.id = a.ledger_account_id WHERE t.organization_id = $1";

pub(super) type LineRow = (
    i64,
    i64,
    String,
    NaiveDate,
    String,
    Option<i64>,
    String,
    bool,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A line as read, with what suggestions and matching need.
pub(super) struct Stored {
    pub(super) line: BankLine,
    pub(super) amount_minor: i64,
    pub(super) ledger_account_id: Option<i64>,
}

pub(super) fn stored_of(row: LineRow) -> Stored {
    let (
        id,
        account_id,
        plaid_transaction_id,
        date,
        name,
        amount,
        currency,
        pending,
        status,
        entry_id,
        invoice_id,
        bank_change,
        ledger_account_id,
        ledger_account,
        review_reason,
        plaid_amount,
    ) = row;
    let digits = money::minor_digits(&currency);
    // A line set aside may have no exact amount: then Plaid's as sent.
    let amount_text = match (amount, digits) {
        (Some(minor), Some(digits)) => money::format_minor(minor, digits),
        _ => plaid_amount.unwrap_or_default(),
    };
    let direction = if amount_text.starts_with('-') {
        "in"
    } else {
        "out"
    };
    Stored {
        line: BankLine {
            id,
            account_id,
            plaid_transaction_id,
            date,
            name,
            amount: amount_text,
            direction,
            currency,
            pending,
            status: LineStatus::parse(&status).unwrap_or(LineStatus::Unmatched),
            review_reason,
            entry_id,
            invoice_id,
            ledger_account,
            bank_change,
            suggestions: Vec::new(),
        },
        amount_minor: amount.unwrap_or(0),
        ledger_account_id,
    }
}

pub(super) async fn read_lines(
    db: &Database,
    organization: &OrganizationId,
    filter: &'static str,
    value: LineFilter,
) -> LedgerResult<Vec<Stored>> {
    let owned = organization.to_owned();
    let sql = format!("{SELECT_LINES} {filter}");
    let rows: Vec<LineRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                let query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(&owned);
                match &value {
                    LineFilter::Id(id) => query.bind(*id),
                    LineFilter::Status { status, before, fetch } => {
                        query.bind(*status).bind(*before).bind(*fetch)
                    }
                }
                .fetch_all(&mut *tx)
                .await?
            }))
        })
        .await?;
    Ok(rows.into_iter().map(stored_of).collect())
}

pub(super) enum LineFilter {
    Id(i64),
    /// A page of the lines with this status: ids below `before`, at most
    /// `fetch` of them.
    Status {
        status: &'static str,
        before: i64,
        fetch: i64,
    },
}

pub(super) async fn read_line(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
) -> LedgerResult<Stored> {
    read_lines(db, organization, "AND t.id = $2", LineFilter::Id(id))
        .await?
        .pop()
        .ok_or_else(|| LedgerError::NotFound("There is no such bank transaction.".to_owned()))
}

/// A page of the organization's bank lines with this status, newest
/// imported first; unmatched ones carry their match suggestions. The order
/// is by id, not by date: a line's date changes when the bank posts a
/// pending line, and a page boundary on it could then skip or repeat it.
pub async fn list_lines(
    db: &Database,
    organization: &OrganizationId,
    status: LineStatus,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<BankLine>>> {
    let fetched = read_lines(
        db,
        organization,
        "AND t.status = $2 AND t.id < $3 ORDER BY t.id DESC LIMIT $4",
        LineFilter::Status {
            status: status.as_str(),
            before: page.after.unwrap_or(i64::MAX),
            fetch: page.limit.fetch(),
        },
    )
    .await?;
    let Page {
        items: lines,
        next,
        limit,
    } = page.page(fetched, |stored| stored.line.id);
    let page_of = |items| Page { items, next, limit };
    if status != LineStatus::Unmatched || lines.is_empty() {
        return Ok(page_of(lines.into_iter().map(|s| s.line).collect()));
    }
    let candidates = candidates(db, organization, &lines).await?;
    Ok(page_of(
        lines
            .into_iter()
            .map(|stored| {
                let suggestions = suggest(&stored, &candidates);
                BankLine {
                    suggestions,
                    ..stored.line
                }
            })
            .collect(),
    ))
}

/// Dismisses a line that is not matched (one set aside for review, or any
/// unmatched one): it is kept, listed under `dismissed`, and never
/// suggested nor booked. Dismissing it again answers it as it is; a matched
/// line is `409 BANK_TRANSACTION_MATCHED`.
pub async fn dismiss_line(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
) -> LedgerResult<BankLine> {
    let owned = organization.to_owned();
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &owned, tx => {
            sqlx::query(
                "UPDATE bank_transactions SET status = 'dismissed' WHERE id = $1 AND organization_id = $2 \
                 AND status IN ('unmatched', 'review')",
            )
            .bind(id)
            .bind(&owned)
            .execute(&mut *tx)
            .await?;
        }))
    })
    .await?;
    let stored = read_line(db, organization, id).await?;
    if stored.line.status == LineStatus::Matched {
        return Err(super::matching::already_matched(id));
    }
    Ok(stored.line)
}
