//! Reports computed from running balances and per-day movements, so their
//! cost grows with the number of accounts, not of postings.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::accounts::{Account, AccountType};
use super::balances::{Boundary, balance_sql, movement_sql};
use super::hierarchy::{Node, roll_up};
use super::{LedgerError, LedgerResult};
use crate::db::Database;
use crate::db::sql::{BeginScoped, on_pool};
use crate::money;
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};

/// One account's balance in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BalanceLine {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: AccountType,
    /// Currency.
    pub currency: String,
    /// The debit balance, or "0.00".
    #[schema(value_type = crate::money::AmountText)]
    pub debit: String,
    /// The credit balance, or "0.00".
    #[schema(value_type = crate::money::AmountText)]
    pub credit: String,
    /// The parent account's code, or null.
    pub parent: Option<String>,
    /// Depth in the account tree: 0 for an account without a parent, 1 for
    /// its children, and so on (children follow their parent).
    pub level: u32,
    /// For an account with children: the debit side of its balance plus
    /// all its descendants' ("0.00" when that sum is a credit); null for
    /// an account without children. Not counted again in the totals.
    #[schema(value_type = Option<crate::money::AmountText>)]
    pub subtotal_debit: Option<String>,
    /// The credit side of the same sum, or null.
    #[schema(value_type = Option<crate::money::AmountText>)]
    pub subtotal_credit: Option<String>,
    /// The signed balance in minor units (debits positive); not serialized.
    #[serde(skip)]
    pub balance_minor: i64,
    /// The signed subtotal in minor units, for an account with children.
    #[serde(skip)]
    pub subtotal_minor: Option<i64>,
}

/// Totals of one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CurrencyTotals {
    /// Currency.
    pub currency: String,
    /// Sum of debit balances.
    #[schema(value_type = crate::money::AmountText)]
    pub debit: String,
    /// Sum of credit balances.
    #[schema(value_type = crate::money::AmountText)]
    pub credit: String,
}

/// `GET /api/reports/trial-balance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TrialBalance {
    /// The date the balances are taken at (end of day).
    pub as_of: NaiveDate,
    /// Every account, by code.
    pub accounts: Vec<BalanceLine>,
    /// Total debits, when the books have one currency.
    #[schema(value_type = Option<crate::money::AmountText>)]
    pub total_debit: Option<String>,
    /// Total credits, when the books have one currency.
    #[schema(value_type = Option<crate::money::AmountText>)]
    pub total_credit: Option<String>,
    /// Totals per currency.
    pub totals: Vec<CurrencyTotals>,
}

fn digits(currency: &str) -> u32 {
    money::minor_digits(currency).unwrap_or(2)
}

/// An account and an amount of it, as the reports' queries read them:
/// code, name, type, currency, parent's code, amount.
type AmountRow = (String, String, String, String, Option<String>, i64);

/// The columns of an [`AmountRow`] before its amount, `a` being the
/// account and `p` its parent (`LEFT JOIN accounts p ON p.id = a.parent_id`).
const ACCOUNT_COLUMNS: &str = "a.code, a.name, a.type, a.currency, p.code";

fn balance_line(
    (code, name, kind, currency, parent, balance): AmountRow,
) -> Result<BalanceLine, sqlx::Error> {
    let d = digits(&currency);
    Ok(BalanceLine {
        code,
        name,
        kind: AccountType::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown account type {kind:?}").into()))?,
        debit: money::format_minor(balance.max(0), d),
        credit: money::format_minor((-balance).max(0), d),
        currency,
        parent,
        level: 0,
        subtotal_debit: None,
        subtotal_credit: None,
        balance_minor: balance,
        subtotal_minor: None,
    })
}

/// `lines` (by code) in tree order, children after their parent, with
/// their levels and, for parents, their subtotals.
fn in_tree(lines: Vec<BalanceLine>) -> Vec<BalanceLine> {
    let nodes: Vec<Node<'_>> = lines
        .iter()
        .map(|l| Node {
            code: &l.code,
            parent: l.parent.as_deref(),
            currency: &l.currency,
            amount: l.balance_minor,
        })
        .collect();
    let places = roll_up(&nodes);
    let mut slots: Vec<Option<BalanceLine>> = lines.into_iter().map(Some).collect();
    places
        .into_iter()
        .filter_map(|place| {
            let mut line = slots[place.index].take()?;
            line.level = place.level;
            line.subtotal_minor = place.subtotal;
            if let Some(sum) = place.subtotal {
                let d = digits(&line.currency);
                line.subtotal_debit = Some(money::format_minor(sum.max(0), d));
                line.subtotal_credit = Some(money::format_minor((-sum).max(0), d));
            }
            Some(line)
        })
        .collect()
}

fn decode(rows: Vec<AmountRow>) -> LedgerResult<Vec<BalanceLine>> {
    rows.into_iter()
        .map(balance_line)
        .collect::<Result<_, _>>()
        .map_err(|e| LedgerError::Storage(crate::Error::Query(e)))
}

/// Every account's balance at the end of `as_of`, in tree order.
pub(crate) async fn balances_as_of(
    db: &Database,
    organization: &OrganizationId,
    as_of: NaiveDate,
) -> LedgerResult<Vec<BalanceLine>> {
    let organization = organization.to_owned();
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS}, {} FROM accounts a LEFT JOIN accounts p ON p.id = a.parent_id \
         WHERE a.organization_id = $1 ORDER BY a.code",
        balance_sql("a", Boundary::EndOf, "$2")
    );
    let rows: Vec<AmountRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&organization).await?;
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&organization)
                    .bind(as_of)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(rows)
            })
        })
        .await?;
    Ok(in_tree(decode(rows)?))
}

fn totals(lines: &[BalanceLine]) -> Vec<CurrencyTotals> {
    let mut sums: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for line in lines {
        let entry = sums.entry(line.currency.as_str()).or_default();
        if line.balance_minor > 0 {
            entry.0 += line.balance_minor;
        } else {
            entry.1 -= line.balance_minor;
        }
    }
    sums.into_iter()
        .map(|(currency, (debit, credit))| CurrencyTotals {
            currency: currency.to_owned(),
            debit: money::format_minor(debit, digits(currency)),
            credit: money::format_minor(credit, digits(currency)),
        })
        .collect()
}

/// The trial balance at the end of `as_of`.
pub async fn trial_balance(
    db: &Database,
    organization: &OrganizationId,
    as_of: NaiveDate,
) -> LedgerResult<TrialBalance> {
    let accounts = balances_as_of(db, organization, as_of).await?;
    let totals = totals(&accounts);
    let (total_debit, total_credit) = match totals.as_slice() {
        [only] => (Some(only.debit.clone()), Some(only.credit.clone())),
        _ => (None, None),
    };
    Ok(TrialBalance {
        as_of,
        accounts,
        total_debit,
        total_credit,
        totals,
    })
}

/// One line of a statement: an account and its amount in its normal sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StatementLine {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Currency.
    pub currency: String,
    /// The amount, positive when the balance is on the account's normal side.
    #[schema(value_type = crate::money::AmountText)]
    pub amount: String,
    /// The parent account's code, or null.
    pub parent: Option<String>,
    /// Depth in the account tree: 0 for an account without a parent
    /// (children follow their parent).
    pub level: u32,
    /// For an account with children: its amount plus all its descendants',
    /// in the same sign; null for an account without children. Not counted
    /// again in the totals.
    #[schema(value_type = Option<crate::money::AmountText>)]
    pub subtotal: Option<String>,
}

/// The statement lines of the accounts of `kind` among `lines` (in tree
/// order, so the section is too), in their normal sign.
fn section(lines: &[BalanceLine], kind: AccountType, normal_sign: i64) -> Vec<StatementLine> {
    let picked: Vec<BalanceLine> = lines.iter().filter(|l| l.kind == kind).cloned().collect();
    // The tree again, within the section: a parent has its children's type,
    // so the section holds whole trees.
    in_tree(picked)
        .into_iter()
        .map(|line| {
            let d = digits(&line.currency);
            StatementLine {
                amount: money::format_minor(line.balance_minor * normal_sign, d),
                subtotal: line
                    .subtotal_minor
                    .map(|sum| money::format_minor(sum * normal_sign, d)),
                code: line.code,
                name: line.name,
                currency: line.currency,
                parent: line.parent,
                level: line.level,
            }
        })
        .collect()
}

/// Balance sheet totals of one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BalanceSheetTotals {
    /// Currency.
    pub currency: String,
    /// Total assets.
    #[schema(value_type = crate::money::AmountText)]
    pub assets: String,
    /// Total liabilities.
    #[schema(value_type = crate::money::AmountText)]
    pub liabilities: String,
    /// Total equity accounts.
    #[schema(value_type = crate::money::AmountText)]
    pub equity: String,
    /// Revenue less expenses not yet closed into equity.
    #[schema(value_type = crate::money::AmountText)]
    pub current_earnings: String,
    /// Liabilities + equity + current earnings; equals `assets`.
    #[schema(value_type = crate::money::AmountText)]
    pub liabilities_and_equity: String,
}

/// `GET /api/reports/balance-sheet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BalanceSheet {
    /// The date.
    pub as_of: NaiveDate,
    /// Asset accounts.
    pub assets: Vec<StatementLine>,
    /// Liability accounts.
    pub liabilities: Vec<StatementLine>,
    /// Equity accounts.
    pub equity: Vec<StatementLine>,
    /// Totals per currency.
    pub totals: Vec<BalanceSheetTotals>,
}

/// The balance sheet at the end of `as_of`.
pub async fn balance_sheet(
    db: &Database,
    organization: &OrganizationId,
    as_of: NaiveDate,
) -> LedgerResult<BalanceSheet> {
    let lines = balances_as_of(db, organization, as_of).await?;
    // (assets, liabilities, equity, earnings) in normal sign, per currency.
    let mut sums: BTreeMap<&str, [i64; 4]> = BTreeMap::new();
    for line in &lines {
        let slot = sums.entry(line.currency.as_str()).or_default();
        match line.kind {
            AccountType::Asset => slot[0] += line.balance_minor,
            AccountType::Liability => slot[1] -= line.balance_minor,
            AccountType::Equity => slot[2] -= line.balance_minor,
            AccountType::Revenue | AccountType::Expense => slot[3] -= line.balance_minor,
        }
    }
    let totals = sums
        .into_iter()
        .map(|(currency, [assets, liabilities, equity, earnings])| {
            let d = digits(currency);
            BalanceSheetTotals {
                currency: currency.to_owned(),
                assets: money::format_minor(assets, d),
                liabilities: money::format_minor(liabilities, d),
                equity: money::format_minor(equity, d),
                current_earnings: money::format_minor(earnings, d),
                liabilities_and_equity: money::format_minor(liabilities + equity + earnings, d),
            }
        })
        .collect();
    Ok(BalanceSheet {
        as_of,
        assets: section(&lines, AccountType::Asset, 1),
        liabilities: section(&lines, AccountType::Liability, -1),
        equity: section(&lines, AccountType::Equity, -1),
        totals,
    })
}

/// Income statement totals of one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IncomeTotals {
    /// Currency.
    pub currency: String,
    /// Total revenue.
    #[schema(value_type = crate::money::AmountText)]
    pub revenue: String,
    /// Total expenses.
    #[schema(value_type = crate::money::AmountText)]
    pub expenses: String,
    /// Revenue less expenses.
    #[schema(value_type = crate::money::AmountText)]
    pub net_income: String,
}

/// `GET /api/reports/income-statement`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IncomeStatement {
    /// First day, inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// Revenue accounts and what they earned in the period.
    pub revenue: Vec<StatementLine>,
    /// Expense accounts and what they cost in the period.
    pub expenses: Vec<StatementLine>,
    /// Totals per currency.
    pub totals: Vec<IncomeTotals>,
}

/// The one query of the income statement: every revenue and expense
/// account of organization `$1` (with its parent's code) and what moved on
/// it from the start of `$2` to the end of `$3`, by code, less the closing
/// entries of those days (they move the result into equity; found by the
/// partial index `journal_entries_closing`, so they cost nothing when there
/// are none).
fn income_statement_sql() -> String {
    format!(
        "SELECT {ACCOUNT_COLUMNS}, CAST({} - COALESCE((SELECT SUM(l.amount) \
         FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id \
         WHERE e.organization_id = $1 AND e.kind IS NOT NULL \
         AND e.entry_date >= $2 AND e.entry_date <= $3 AND l.account_id = a.id), 0) AS BIGINT) \
         FROM accounts a LEFT JOIN accounts p ON p.id = a.parent_id \
         WHERE a.organization_id = $1 AND a.type IN ('revenue', 'expense') ORDER BY a.code",
        movement_sql("a", "$2", "$3")
    )
}

/// Revenue and expenses between `from` and `to`, inclusive, without the
/// closing entries of the period.
pub async fn income_statement(
    db: &Database,
    organization: &OrganizationId,
    from: NaiveDate,
    to: NaiveDate,
) -> LedgerResult<IncomeStatement> {
    if from > to {
        return Err(LedgerError::invalid(
            "INVALID_PERIOD",
            "\"from\" must not be after \"to\".",
        ));
    }
    let organization = organization.to_owned();
    let sql = income_statement_sql();
    let rows: Vec<AmountRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&organization).await?;
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&organization)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(rows)
            })
        })
        .await?;
    let lines = decode(rows)?;
    let mut sums: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for line in &lines {
        let slot = sums.entry(line.currency.as_str()).or_default();
        match line.kind {
            AccountType::Revenue => slot.0 -= line.balance_minor,
            _ => slot.1 += line.balance_minor,
        }
    }
    Ok(IncomeStatement {
        from,
        to,
        revenue: section(&lines, AccountType::Revenue, -1),
        expenses: section(&lines, AccountType::Expense, 1),
        totals: sums
            .into_iter()
            .map(|(currency, (revenue, expenses))| {
                let d = digits(currency);
                IncomeTotals {
                    currency: currency.to_owned(),
                    revenue: money::format_minor(revenue, d),
                    expenses: money::format_minor(expenses, d),
                    net_income: money::format_minor(revenue - expenses, d),
                }
            })
            .collect(),
    })
}

/// One posting in a general ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LedgerRow {
    /// Entry date.
    pub date: NaiveDate,
    /// Entry id.
    pub entry_id: i64,
    /// Entry memo.
    pub memo: String,
    /// Debit, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::money::AmountText>)]
    pub debit: Option<String>,
    /// Credit, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::money::AmountText>)]
    pub credit: Option<String>,
    /// Balance after this posting (debits positive).
    #[schema(value_type = crate::money::AmountText)]
    pub balance: String,
}

/// `GET /api/reports/general-ledger`: one page of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GeneralLedger {
    /// The account's code.
    pub account: String,
    /// Its currency.
    pub currency: String,
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// Balance at the start of `from`.
    #[schema(value_type = crate::money::AmountText)]
    pub opening_balance: String,
    /// Balance after the last row of this page (at the end of `to` on the
    /// last page).
    #[schema(value_type = crate::money::AmountText)]
    pub closing_balance: String,
    /// This page's postings in date order (then entry, then line).
    pub rows: Vec<LedgerRow>,
    /// Whether more rows follow this page (the `Link` header names the next).
    pub truncated: bool,
}

/// Most rows a general-ledger report job puts in its stored result (the
/// API pages instead).
pub const GENERAL_LEDGER_LIMIT: i64 = 10_000;

/// The sort key of a general-ledger row: entry date, entry id, line number
/// (unique, and fixed once posted: entries are immutable).
pub type LedgerKey = (NaiveDate, i64, i32);

/// A posting as the general ledger reads it: entry id, date, memo, amount,
/// line number.
type PostingRow = (i64, NaiveDate, String, i64, i32);

/// The first day an account's history shows when no period is asked for.
pub const EARLIEST: NaiveDate = NaiveDate::from_ymd_opt(1900, 1, 1).expect("a valid date");
/// The last day an account's history shows when no period is asked for.
pub const LATEST: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("a valid date");

/// One page of one account's postings between two dates.
struct Postings {
    account: Account,
    /// The balance at the start of `from`.
    opening: i64,
    /// The balance after the page's last row.
    closing: i64,
    rows: Page<Vec<LedgerRow>>,
}

/// One page of the postings of account `code` from `from` to `to`, in
/// (date, entry, line) order, with running balances. The rows come from the
/// index `journal_lines_by_account_date` starting at the cursor, and the
/// balance before the page is the account's balance less the day movements
/// from the cursor's date on, plus that day's lines up to the cursor: a page
/// costs its rows and the days after it, however long the history.
async fn postings(
    db: &Database,
    organization: &OrganizationId,
    code: &str,
    from: NaiveDate,
    to: NaiveDate,
    page: &PageRequest<LedgerKey>,
) -> LedgerResult<Postings> {
    if from > to {
        return Err(LedgerError::invalid(
            "INVALID_PERIOD",
            "\"from\" must not be after \"to\".",
        ));
    }
    let account = super::accounts::accounts_by_code(db, organization, &[code])
        .await?
        .remove(code)
        .ok_or_else(|| LedgerError::NotFound(format!("There is no account {code:?}.")))?;
    let id = account.id;
    let organization = organization.to_owned();
    // Before `from`, every id is greater than 0 and every line number
    // greater than -1: the first page starts after this key.
    let (after_date, after_entry, after_line) = page.after.unwrap_or((from, 0, -1));
    let fetch = page.limit.fetch();
    // The balance at the start of `from`, and at the start of the cursor's
    // day plus that day's lines up to the cursor.
    let opening_sql = format!(
        "SELECT {}, CAST({} + COALESCE((SELECT SUM(l.amount) FROM journal_lines l \
             WHERE l.account_id = a.id AND l.entry_date = $3 \
             AND (l.entry_id, l.line_no) <= ($4, $5)), 0) AS BIGINT) \
         FROM accounts a WHERE a.id = $1",
        balance_sql("a", Boundary::StartOf, "$2"),
        balance_sql("a", Boundary::StartOf, "$3"),
    );
    let (opening, before, rows): (i64, i64, Vec<PostingRow>) = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                // One snapshot: the balance, the day movements and the rows
                // agree while others post.
                let mut tx = p.begin_snapshot_for(&organization).await?;
                let (opening, before): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(opening_sql.as_str()))
                .bind(id)
                .bind(from)
                .bind(after_date)
                .bind(after_entry)
                .bind(after_line)
                .fetch_one(&mut *tx)
                .await?;
                let rows = sqlx::query_as(
                    "SELECT l.entry_id, l.entry_date, e.memo, l.amount, l.line_no \
                     FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id \
                     WHERE l.account_id = $1 AND l.entry_date <= $2 \
                     AND (l.entry_date, l.entry_id, l.line_no) > ($3, $4, $5) \
                     ORDER BY l.entry_date, l.entry_id, l.line_no LIMIT $6",
                )
                .bind(id)
                .bind(to)
                .bind(after_date)
                .bind(after_entry)
                .bind(after_line)
                .bind(fetch)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok((opening, before, rows))
            })
        })
        .await?;
    let d = account.digits();
    let Page { items, next, limit } = page.page(rows, |(entry_id, date, _, _, line_no)| {
        (*date, *entry_id, *line_no)
    });
    let mut balance = before;
    let items = items
        .into_iter()
        .map(|(entry_id, date, memo, amount, _)| {
            balance += amount;
            let text = money::format_minor(amount.abs(), d);
            LedgerRow {
                date,
                entry_id,
                memo,
                debit: (amount > 0).then(|| text.clone()),
                credit: (amount < 0).then_some(text),
                balance: money::format_minor(balance, d),
            }
        })
        .collect();
    Ok(Postings {
        account,
        opening,
        closing: balance,
        rows: Page { items, next, limit },
    })
}

/// One page of the postings of one account between two dates, with running
/// balances: the rows after `page.after`, the first row's balance counting
/// every posting before it.
pub async fn general_ledger(
    db: &Database,
    organization: &OrganizationId,
    code: &str,
    from: NaiveDate,
    to: NaiveDate,
    page: &PageRequest<LedgerKey>,
) -> LedgerResult<Page<GeneralLedger>> {
    let Postings {
        account,
        opening,
        closing,
        rows: Page { items, next, limit },
    } = postings(db, organization, code, from, to, page).await?;
    let d = account.digits();
    let report = GeneralLedger {
        account: account.code,
        currency: account.currency,
        from,
        to,
        opening_balance: money::format_minor(opening, d),
        closing_balance: money::format_minor(closing, d),
        rows: items,
        truncated: next.is_some(),
    };
    Ok(Page {
        items: report,
        next,
        limit,
    })
}

/// One page of an account's history: its postings in date order (then
/// entry, then line), each with the balance after it, from `from` (default
/// the beginning) to `to` (default the end).
pub async fn account_history(
    db: &Database,
    organization: &OrganizationId,
    code: &str,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    page: &PageRequest<LedgerKey>,
) -> LedgerResult<Page<Vec<LedgerRow>>> {
    let (from, to) = (from.unwrap_or(EARLIEST), to.unwrap_or(LATEST));
    Ok(postings(db, organization, code, from, to, page).await?.rows)
}

/// One account's balance at the end of a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AccountBalance {
    /// The account's code.
    pub code: String,
    /// The day.
    pub as_of: NaiveDate,
    /// The balance at the end of that day (debits positive).
    #[schema(value_type = crate::money::AmountText)]
    pub balance: String,
    /// The account's currency.
    pub currency: String,
}

/// Account `code`'s balance at the end of `as_of`: its balance less the day
/// movements after it, as the trial balance reads it (O(days after)).
pub async fn account_balance(
    db: &Database,
    organization: &OrganizationId,
    code: &str,
    as_of: NaiveDate,
) -> LedgerResult<AccountBalance> {
    let account = super::accounts::accounts_by_code(db, organization, &[code])
        .await?
        .remove(code)
        .ok_or_else(|| LedgerError::NotFound(format!("There is no account {code:?}.")))?;
    let id = account.id;
    let organization = organization.to_owned();
    let sql = format!(
        "SELECT {} FROM accounts a WHERE a.id = $1",
        balance_sql("a", Boundary::EndOf, "$2")
    );
    let balance: i64 = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_snapshot_for(&organization).await?;
                let balance = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .bind(as_of)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(balance)
            })
        })
        .await?;
    Ok(AccountBalance {
        balance: money::format_minor(balance, account.digits()),
        code: account.code,
        as_of,
        currency: account.currency,
    })
}
