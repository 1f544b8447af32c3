//! Employees and the payroll rules (deductions and employer contributions).

use chrono::NaiveDate;

use super::calc::{PayFrequency, Rule, RuleAmount, RuleKind};
use super::*;
use crate::db::Database;
use crate::db::sql::{in_scope, on_pool};
use crate::idempotency::{self, IdempotencyKey};
use crate::jobs::now_ms;
use crate::ledger::accounts::accounts_for_posting;
use crate::ledger::{Ledger, LedgerResult, RenderRecord, parse_date};
use crate::money::{self, AmountText, Decimal};
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};

/// Adds an employee. With `idempotency`, the rendered answer is stored in
/// the same transaction.
pub async fn create_employee(
    ledger: &Ledger,
    organization: &OrganizationId,
    new: NewEmployee,
    idempotency: Option<(&IdempotencyKey, RenderRecord<'_, Employee>)>,
) -> LedgerResult<Employee> {
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid(
            "INVALID_FIELD",
            "The name has 1 to 200 characters.",
        ));
    }
    let digits = digits(ledger, organization).await?;
    let (pay_type, amount) = match &new.pay {
        PayInput::Salary { annual } => ("salary", parse_money(annual, digits, "The salary")?),
        PayInput::Hourly { rate } => ("hourly", parse_money(rate, digits, "The rate")?),
    };
    let start = parse_date(&new.start_date)?;
    let end = new.end_date.as_deref().map(parse_date).transpose()?;
    if end.is_some_and(|end| end < start) {
        return Err(invalid(
            "INVALID_FIELD",
            "The end date is before the start date.",
        ));
    }
    let owned = organization.to_owned();
    let frequency = new.frequency;
    let shown = AmountText(money::format_minor(amount, digits));
    let pay = match new.pay {
        PayInput::Salary { .. } => PayInput::Salary { annual: shown },
        PayInput::Hourly { .. } => PayInput::Hourly { rate: shown },
    };
    ledger
        .database()
        .run(|pool| async move {
            let created: Result<Employee, sqlx::Error> = async {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO employees (organization_id, name, pay_type, pay_amount, frequency, \
                     start_date, end_date, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     RETURNING id",
                )
                .bind(&owned)
                .bind(&name)
                .bind(pay_type)
                .bind(amount)
                .bind(frequency_name(frequency))
                .bind(start)
                .bind(end)
                .bind(now_ms())
                .fetch_one(&mut *tx)
                .await?;
                let employee = Employee {
                    id,
                    name: name.clone(),
                    pay: pay.clone(),
                    frequency,
                    start_date: start,
                    end_date: end,
                };
                if let Some((key, render)) = idempotency {
                    let (status, body) = render(&employee);
                    idempotency::store_answer!(&mut *tx, key, status, body)?;
                }
                employee
            }))
            }
            .await;
            idempotency::settle(created)
        })
        .await?
}

pub(super) fn frequency_name(frequency: PayFrequency) -> &'static str {
    match frequency {
        PayFrequency::Weekly => "weekly",
        PayFrequency::Biweekly => "biweekly",
        PayFrequency::Semimonthly => "semimonthly",
        PayFrequency::Monthly => "monthly",
    }
}

pub(super) fn parse_frequency(name: &str) -> PayFrequency {
    match name {
        "weekly" => PayFrequency::Weekly,
        "biweekly" => PayFrequency::Biweekly,
        "semimonthly" => PayFrequency::Semimonthly,
        _ => PayFrequency::Monthly,
    }
}

pub(super) type EmployeeRow = (
    i64,
    String,
    String,
    i64,
    String,
    NaiveDate,
    Option<NaiveDate>,
);

/// The organization's employees with an id above `after`, by id, at most
/// `fetch` of them.
pub(super) async fn employee_rows(
    db: &Database,
    organization: &OrganizationId,
    after: i64,
    fetch: i64,
) -> LedgerResult<Vec<EmployeeRow>> {
    let owned = organization.to_owned();
    Ok(db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(
                    "SELECT id, name, pay_type, pay_amount, frequency, start_date, end_date \
                     FROM employees WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(&owned)
                .bind(after)
                .bind(fetch)
                .fetch_all(&mut *tx)
                .await?
            }))
        })
        .await?)
}

/// A page of the organization's employees, by id.
pub async fn list_employees(
    ledger: &Ledger,
    organization: &OrganizationId,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<Employee>>> {
    let (after, fetch) = (page.after.unwrap_or(0), page.limit.fetch());
    let rows = employee_rows(ledger.database(), organization, after, fetch).await?;
    if rows.is_empty() {
        return Ok(page.page(Vec::new(), |e: &Employee| e.id));
    }
    let digits = digits(ledger, organization).await?;
    let employees = rows
        .into_iter()
        .map(
            |(id, name, pay_type, amount, frequency, start_date, end_date)| {
                let text = AmountText(money::format_minor(amount, digits));
                Employee {
                    id,
                    name,
                    pay: if pay_type == "hourly" {
                        PayInput::Hourly { rate: text }
                    } else {
                        PayInput::Salary { annual: text }
                    },
                    frequency: parse_frequency(&frequency),
                    start_date,
                    end_date,
                }
            },
        )
        .collect();
    Ok(page.page(employees, |e| e.id))
}

/// The rules, checked and converted for the calculator.
pub(super) fn calc_rules(rules: &[PayrollRule], digits: u32) -> LedgerResult<Vec<Rule>> {
    let mut names = std::collections::HashSet::new();
    rules
        .iter()
        .map(|rule| {
            let name = rule.name.trim();
            if name.is_empty() || name.chars().count() > 100 || !names.insert(name.to_owned()) {
                return Err(invalid(
                    "INVALID_PAYROLL_RULE",
                    "Each rule has a name of 1 to 100 characters, different from the others.",
                ));
            }
            let amount = match (&rule.rate, &rule.amount) {
                (Some(rate), None) => RuleAmount::Rate(
                    Decimal::parse(&rate.0, calc::RATE_DIGITS).map_err(|_| {
                        invalid(
                            "INVALID_PAYROLL_RULE",
                            format!("The rate of {name} is a fraction such as \"0.062\", at most 6 digits."),
                        )
                    })?,
                ),
                (None, Some(amount)) => {
                    RuleAmount::Fixed(parse_money(amount, digits, &format!("The amount of {name}"))?)
                }
                _ => {
                    return Err(invalid(
                        "INVALID_PAYROLL_RULE",
                        format!("The rule {name} has either a rate or an amount, not both."),
                    ));
                }
            };
            let annual_cap = rule
                .annual_cap
                .as_ref()
                .map(|cap| parse_money(cap, digits, &format!("The cap of {name}")))
                .transpose()?;
            Ok(Rule {
                name: name.to_owned(),
                kind: match rule.kind {
                    RuleKindName::Deduction => RuleKind::Deduction,
                    RuleKindName::Employer => RuleKind::Employer,
                },
                amount,
                annual_cap,
            })
        })
        .collect()
}

/// The organization's payroll rules.
pub async fn get_rules(
    db: &Database,
    organization: &OrganizationId,
) -> LedgerResult<Vec<PayrollRule>> {
    let owned = organization.to_owned();
    let text: Option<String> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_scalar("SELECT rules FROM payroll_rules WHERE organization_id = $1")
                    .bind(&owned)
                    .fetch_optional(&mut *tx)
                    .await?
            }))
        })
        .await?;
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

/// Replaces the organization's payroll rules; each names an existing
/// account. Runs already asked for keep the rules they were asked with.
pub async fn put_rules(
    ledger: &Ledger,
    organization: &OrganizationId,
    rules: Vec<PayrollRule>,
) -> LedgerResult<Vec<PayrollRule>> {
    let digits = digits(ledger, organization).await?;
    calc_rules(&rules, digits)?;
    let codes: Vec<&str> = rules.iter().map(|r| r.account.as_str()).collect();
    let accounts = accounts_for_posting(ledger, organization, &codes).await?;
    if let Some(missing) = codes.iter().find(|c| !accounts.contains_key(**c)) {
        return Err(invalid(
            "UNKNOWN_ACCOUNT",
            format!("There is no account {missing:?}; create it before a rule posts to it."),
        ));
    }
    let text = serde_json::to_string(&rules).unwrap_or_default();
    let owned = organization.to_owned();
    ledger
        .database()
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query(
                    "INSERT INTO payroll_rules (organization_id, rules) VALUES ($1, $2) \
                     ON CONFLICT (organization_id) DO UPDATE SET rules = excluded.rules",
                )
                .bind(&owned)
                .bind(&text)
                .execute(&mut *tx)
                .await?;
            }))
        })
        .await?;
    Ok(rules)
}
