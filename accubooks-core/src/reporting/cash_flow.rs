//! The cash-flow statement, direct method: the cash that came in and went
//! out in a period, by the account on the other side of each movement.
//!
//! **Which accounts are cash.** The cash account the books post to
//! (`1000`, where invoice payments and pay runs go: `invoicing::CASH`),
//! every ledger account a linked bank account is mapped to
//! (`PUT /api/bank/accounts/{id} {"ledger_account"}`), and every
//! descendant of these (a `1010 Bank` opened with `"parent": "1000"`).
//!
//! **Where a movement goes.** Per entry and currency, the cash lines' sum
//! is the entry's cash movement (a transfer between two cash accounts sums
//! to zero and moves nothing). It is split over the entry's other lines
//! on the opposite side (cash in is split over the credit lines, cash out
//! over the debit lines) in proportion to their amounts, by the largest
//! remainder, so the parts add up to the movement exactly. A receipt of
//! 100.00 against revenue 150.00 and a receivable of 50.00 is 100.00 from
//! revenue. Each account is then shown in the section of its kind:
//! `customers` (revenue accounts and receivables `1100` with its
//! descendants), `suppliers` (expense accounts and payables `2000` with its
//! descendants), `liabilities` (other liabilities: loans, taxes), `equity`
//! and `assets` (other assets: purchases and sales of assets). Amounts are
//! signed: positive is cash in.
//!
//! Opening and closing cash are the cash accounts' balances at the start
//! of `from` and the end of `to`, read in the same snapshot as the lines;
//! every section's lines add up to the net change, and opening + net
//! change = closing, to the cent.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use futures::TryStreamExt;
use serde::Serialize;

use crate::db::Database;
use crate::db::sql::{BeginScoped, List, in_list, on_pool};
use crate::ledger::balances::{Boundary, balance_sql};
use crate::ledger::{AccountType, LedgerError, LedgerResult};
use crate::money;
use crate::organization::OrganizationId;

/// Accounts payable, from the default chart every organization gets.
pub const PAYABLE: &str = "2000";

/// A cash account in a cash-flow statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CashAccountLine {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Currency.
    pub currency: String,
    /// The parent account's code, or null.
    pub parent: Option<String>,
    /// Its balance at the start of `from`.
    #[schema(value_type = crate::money::AmountText)]
    pub opening: String,
    /// Its balance at the end of `to`.
    #[schema(value_type = crate::money::AmountText)]
    pub closing: String,
    /// `closing` less `opening`.
    #[schema(value_type = crate::money::AmountText)]
    pub amount: String,
}

/// The cash one account brought in (positive) or took out (negative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CashFlowLine {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Currency.
    pub currency: String,
    /// The parent account's code, or null.
    pub parent: Option<String>,
    /// Cash in (positive) or out (negative) against this account.
    #[schema(value_type = crate::money::AmountText)]
    pub amount: String,
}

/// The figures of one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CashFlowTotals {
    /// Currency.
    pub currency: String,
    /// Cash at the start of `from`.
    #[schema(value_type = crate::money::AmountText)]
    pub opening_cash: String,
    /// Sum of `customers`.
    #[schema(value_type = crate::money::AmountText)]
    pub customers: String,
    /// Sum of `suppliers`.
    #[schema(value_type = crate::money::AmountText)]
    pub suppliers: String,
    /// Sum of `liabilities`.
    #[schema(value_type = crate::money::AmountText)]
    pub liabilities: String,
    /// Sum of `equity`.
    #[schema(value_type = crate::money::AmountText)]
    pub equity: String,
    /// Sum of `assets`.
    #[schema(value_type = crate::money::AmountText)]
    pub assets: String,
    /// The five sums together; `closing_cash` less `opening_cash`.
    #[schema(value_type = crate::money::AmountText)]
    pub net_change: String,
    /// Cash at the end of `to`.
    #[schema(value_type = crate::money::AmountText)]
    pub closing_cash: String,
}

/// `GET /api/reports/cash-flow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CashFlowStatement {
    /// First day, inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// The cash accounts, by code, with their opening and closing balances.
    pub cash: Vec<CashAccountLine>,
    /// Receipts from customers (net of refunds): revenue and receivables.
    pub customers: Vec<CashFlowLine>,
    /// Payments for expenses and to suppliers: expenses and payables.
    pub suppliers: Vec<CashFlowLine>,
    /// Other liabilities: loans taken and repaid, taxes paid.
    pub liabilities: Vec<CashFlowLine>,
    /// Owners' contributions and drawings.
    pub equity: Vec<CashFlowLine>,
    /// Other assets bought and sold.
    pub assets: Vec<CashFlowLine>,
    /// Cash at the start of `from`, when the books have one currency.
    #[schema(value_type = Option<crate::money::AmountText>)]
    pub opening_cash: Option<String>,
    /// Cash in less cash out, when the books have one currency.
    #[schema(value_type = Option<crate::money::AmountText>)]
    pub net_change: Option<String>,
    /// Cash at the end of `to`, when the books have one currency.
    #[schema(value_type = Option<crate::money::AmountText>)]
    pub closing_cash: Option<String>,
    /// The figures per currency.
    pub totals: Vec<CashFlowTotals>,
}

/// The sections, in the order the statement shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Customers,
    Suppliers,
    Liabilities,
    Equity,
    Assets,
}

/// An account as the statement reads it: id, code, name, type, currency,
/// parent id, parent code, balance at the start of `from`, at the end of
/// `to`.
type AccountRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    i64,
    i64,
);

/// A line of an entry that touched cash: entry id, account id, amount.
type LineRow = (i64, i64, i64);

/// One entry's lines of one currency: the sum of its cash lines, and its
/// other lines (account id, amount).
type EntryByCurrency<'a> = BTreeMap<&'a str, (i64, Vec<(i64, i64)>)>;

/// Splits a cash movement `cash` (minor units, debits positive: cash in is
/// positive) over the other lines of its entry (`others`, debits
/// positive): the lines on the opposite side share it in proportion to
/// their amounts, by the largest remainder (ties to the earlier line), so
/// the parts add up to `cash` exactly. Answers each line's part, positive
/// for cash in. Should no line be on the opposite side (an entry that does
/// not balance, which posting refuses), each line takes its own amount.
fn split(cash: i64, others: &[i64]) -> Vec<i64> {
    if cash == 0 {
        return vec![0; others.len()];
    }
    let opposite = |n: i64| n != 0 && (n > 0) != (cash > 0);
    let weight: i128 = others
        .iter()
        .filter(|n| opposite(**n))
        .map(|n| i128::from(*n).abs())
        .sum();
    if weight == 0 {
        return others.iter().map(|n| -n).collect();
    }
    let whole = i128::from(cash).abs();
    let mut parts: Vec<i128> = Vec::with_capacity(others.len());
    let mut remainders: Vec<(i128, usize)> = Vec::new();
    for (i, n) in others.iter().enumerate() {
        if opposite(*n) {
            let share = whole * i128::from(*n).abs();
            parts.push(share / weight);
            remainders.push((share % weight, i));
        } else {
            parts.push(0);
        }
    }
    let mut left = whole - parts.iter().sum::<i128>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    let sign = cash.signum();
    parts
        .into_iter()
        // Each part is at most |cash|, an i64.
        .map(|p| i64::try_from(p).unwrap_or(i64::MAX) * sign)
        .collect()
}

/// The ids of `roots` and of every account below them.
fn with_descendants(parents: &HashMap<i64, Option<i64>>, roots: &HashSet<i64>) -> HashSet<i64> {
    parents
        .keys()
        .copied()
        .filter(|id| {
            let mut at = Some(*id);
            // A tree is at most a few levels deep; the bound only guards
            // against a loop of parents, which the API cannot make.
            for _ in 0..=parents.len() {
                match at {
                    Some(a) if roots.contains(&a) => return true,
                    Some(a) => at = parents.get(&a).copied().flatten(),
                    None => return false,
                }
            }
            false
        })
        .collect()
}

/// What the statement reads, in one snapshot.
struct Read {
    accounts: Vec<AccountRow>,
    cash: HashSet<i64>,
    /// Cash moved against each (non-cash) account in the period.
    flows: HashMap<i64, i64>,
}

/// Adds one entry's cash movements (its lines, in order) to `flows`:
/// currency by currency, its cash lines' sum split over its other lines.
fn add_entry(
    flows: &mut HashMap<i64, i64>,
    entry: &[LineRow],
    currency_of: &HashMap<i64, &str>,
    cash: &HashSet<i64>,
) {
    let mut by_currency: EntryByCurrency<'_> = BTreeMap::new();
    for &(_, account, amount) in entry {
        let Some(currency) = currency_of.get(&account) else {
            continue;
        };
        let slot = by_currency.entry(currency).or_default();
        if cash.contains(&account) {
            slot.0 += amount;
        } else {
            slot.1.push((account, amount));
        }
    }
    for (cash, others) in by_currency.values() {
        let amounts: Vec<i64> = others.iter().map(|o| o.1).collect();
        for ((account, _), part) in others.iter().zip(split(*cash, &amounts)) {
            if part != 0 {
                *flows.entry(*account).or_default() += part;
            }
        }
    }
}

/// The cash-flow statement of `from` to `to`, inclusive.
pub async fn cash_flow(
    db: &Database,
    organization: &OrganizationId,
    from: NaiveDate,
    to: NaiveDate,
) -> LedgerResult<CashFlowStatement> {
    if from > to {
        return Err(LedgerError::invalid(
            "INVALID_PERIOD",
            "\"from\" must not be after \"to\".",
        ));
    }
    let owned = organization.to_owned();
    let accounts_sql = format!(
        "SELECT a.id, a.code, a.name, a.type, a.currency, a.parent_id, p.code, {}, {} \
         FROM accounts a LEFT JOIN accounts p ON p.id = a.parent_id \
         WHERE a.organization_id = $1 ORDER BY a.code",
        balance_sql("a", Boundary::StartOf, "$2"),
        balance_sql("a", Boundary::EndOf, "$3"),
    );
    let read = db
        .run(|pool| async move {
            let lines_sql = format!(
                "SELECT l.entry_id, l.account_id, l.amount FROM journal_lines l \
                 WHERE l.entry_id IN (SELECT c.entry_id FROM journal_lines c \
                     WHERE {} AND c.entry_date >= $2 AND c.entry_date <= $3) \
                 ORDER BY l.entry_id, l.line_no",
                in_list(&pool, "c.account_id", 1)
            );
            on_pool!(pool, p => {
                // One snapshot: the balances and the lines agree while
                // others post.
                let mut tx = p.begin_snapshot_for(&owned).await?;
                let accounts: Vec<AccountRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(accounts_sql.as_str()))
                        .bind(&owned)
                        .bind(from)
                        .bind(to)
                        .fetch_all(&mut *tx)
                        .await?;
                let banked: Vec<i64> = sqlx::query_scalar(
                    "SELECT ledger_account_id FROM bank_accounts \
                     WHERE organization_id = $1 AND ledger_account_id IS NOT NULL",
                )
                .bind(&owned)
                .fetch_all(&mut *tx)
                .await?;
                let mut roots: HashSet<i64> = banked.into_iter().collect();
                roots.extend(
                    accounts
                        .iter()
                        .filter(|a| a.1 == crate::invoicing::invoices::CASH)
                        .map(|a| a.0),
                );
                let parents: HashMap<i64, Option<i64>> =
                    accounts.iter().map(|a| (a.0, a.5)).collect();
                let cash = with_descendants(&parents, &roots);
                // Streamed in entry order and folded entry by entry: the
                // memory held is one entry's lines and one sum per account,
                // however many postings the period has.
                let currency_of: HashMap<i64, &str> =
                    accounts.iter().map(|a| (a.0, a.4.as_str())).collect();
                let mut flows = HashMap::new();
                let mut entry: Vec<LineRow> = Vec::new();
                let ids = List(cash.iter().copied().collect::<Vec<i64>>());
                let mut rows = sqlx::query_as::<_, LineRow>(sqlx::AssertSqlSafe(lines_sql.as_str()))
                    .bind(ids)
                    .bind(from)
                    .bind(to)
                    .fetch(&mut *tx);
                while let Some(row) = rows.try_next().await? {
                    if entry.last().is_some_and(|last| last.0 != row.0) {
                        add_entry(&mut flows, &entry, &currency_of, &cash);
                        entry.clear();
                    }
                    entry.push(row);
                }
                add_entry(&mut flows, &entry, &currency_of, &cash);
                drop(rows);
                tx.rollback().await?;
                Ok(Read { accounts, cash, flows })
            })
        })
        .await?;
    Ok(statement(from, to, &read))
}

/// The statement from what was read.
fn statement(from: NaiveDate, to: NaiveDate, read: &Read) -> CashFlowStatement {
    let parents: HashMap<i64, Option<i64>> = read.accounts.iter().map(|a| (a.0, a.5)).collect();
    let code_roots = |code: &str| -> HashSet<i64> {
        read.accounts
            .iter()
            .filter(|a| a.1 == code)
            .map(|a| a.0)
            .collect()
    };
    let receivable = with_descendants(
        &parents,
        &code_roots(crate::invoicing::invoices::RECEIVABLE),
    );
    let payable = with_descendants(&parents, &code_roots(PAYABLE));
    let section_of = |account: &AccountRow| -> Section {
        match AccountType::parse(&account.3) {
            _ if receivable.contains(&account.0) => Section::Customers,
            _ if payable.contains(&account.0) => Section::Suppliers,
            Some(AccountType::Revenue) => Section::Customers,
            Some(AccountType::Expense) => Section::Suppliers,
            Some(AccountType::Liability) => Section::Liabilities,
            Some(AccountType::Equity) => Section::Equity,
            Some(AccountType::Asset) | None => Section::Assets,
        }
    };

    let flows = &read.flows;
    let digits = |currency: &str| money::minor_digits(currency).unwrap_or(2);
    // Per currency: opening, the five sections, closing.
    let mut sums: BTreeMap<&str, (i64, [i64; 5], i64)> = BTreeMap::new();
    let mut cash_lines = Vec::new();
    let mut sections: [Vec<CashFlowLine>; 5] = Default::default();
    for account in &read.accounts {
        let (id, code, name, _, currency, _, parent, opening, closing) = account;
        let d = digits(currency);
        if read.cash.contains(id) {
            let slot = sums.entry(currency.as_str()).or_default();
            slot.0 += opening;
            slot.2 += closing;
            cash_lines.push(CashAccountLine {
                code: code.clone(),
                name: name.clone(),
                currency: currency.clone(),
                parent: parent.clone(),
                opening: money::format_minor(*opening, d),
                closing: money::format_minor(*closing, d),
                amount: money::format_minor(closing - opening, d),
            });
            continue;
        }
        // An account whose movements cancel out is left out, as one
        // without any.
        let Some(&flow) = flows.get(id).filter(|flow| **flow != 0) else {
            continue;
        };
        let section = section_of(account) as usize;
        sums.entry(currency.as_str()).or_default().1[section] += flow;
        sections[section].push(CashFlowLine {
            code: code.clone(),
            name: name.clone(),
            currency: currency.clone(),
            parent: parent.clone(),
            amount: money::format_minor(flow, d),
        });
    }
    let totals: Vec<CashFlowTotals> = sums
        .into_iter()
        .map(|(currency, (opening, parts, closing))| {
            let d = digits(currency);
            let text = |n: i64| money::format_minor(n, d);
            CashFlowTotals {
                currency: currency.to_owned(),
                opening_cash: text(opening),
                customers: text(parts[0]),
                suppliers: text(parts[1]),
                liabilities: text(parts[2]),
                equity: text(parts[3]),
                assets: text(parts[4]),
                net_change: text(parts.iter().sum()),
                closing_cash: text(closing),
            }
        })
        .collect();
    let (opening_cash, net_change, closing_cash) = match totals.as_slice() {
        [only] => (
            Some(only.opening_cash.clone()),
            Some(only.net_change.clone()),
            Some(only.closing_cash.clone()),
        ),
        _ => (None, None, None),
    };
    let [customers, suppliers, liabilities, equity, assets] = sections;
    CashFlowStatement {
        from,
        to,
        cash: cash_lines,
        customers,
        suppliers,
        liabilities,
        equity,
        assets,
        opening_cash,
        net_change,
        closing_cash,
        totals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_movement_is_split_exactly_over_the_opposite_side() {
        // Cash in 100.00 against revenue 150.00 and a receivable of 50.00:
        // all of it from revenue.
        assert_eq!(split(10_000, &[-15_000, 5_000]), vec![10_000, 0]);
        // Cash out 100.00 over three expenses of 1.00: 33.34, 33.33, 33.33.
        assert_eq!(split(-100, &[1, 1, 1]), vec![-34, -33, -33]);
        // Cash in 0.10 over 0.03 and 0.07 of revenue, 0.05 of a discount.
        let parts = split(10, &[-3, -12, 5]);
        assert_eq!(parts.iter().sum::<i64>(), 10);
        assert_eq!(parts, vec![2, 8, 0]);
        // A transfer between cash accounts moves nothing.
        assert_eq!(split(0, &[]), Vec::<i64>::new());
        // The largest amounts there are: no overflow, exact.
        let parts = split(i64::MAX, &[i64::MIN + 1, -1]);
        assert_eq!(
            parts.iter().map(|p| i128::from(*p)).sum::<i128>(),
            i128::from(i64::MAX)
        );
    }

    #[test]
    fn descendants_of_cash_are_cash() {
        let parents = HashMap::from([(1, None), (2, Some(1)), (3, Some(2)), (4, None)]);
        let cash = with_descendants(&parents, &HashSet::from([1]));
        assert_eq!(cash, HashSet::from([1, 2, 3]));
    }
}
