//! Payroll (contract section 7): employees, the organization's rules, and
//! pay runs worked on the `payroll-processing` queue.
//!
//! A run is checked when it is asked for (dates, hours, accounts, an
//! overlap with another run of the same employees: 409) and keeps the
//! employees, hours and rules it was asked with. Its job computes the
//! payslips ([`payroll_calc`](calc): proration by working
//! days, caps by calendar year of the pay date, largest-remainder rounding)
//! and posts one balanced entry: wages expense `5100` (gross and employer
//! contributions), one liability line per rule account, cash `1000` (net).
//! The entry's transaction turns the run from `pending` to `posted`, which
//! only one transaction can do: a job run again never posts twice.

pub mod calc;

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use self::calc::{Pay, PayFrequency, Rule, RuleAmount, RuleKind, SlipInput};
use crate::db::sql::{BeginScoped, List, in_list, in_scope, on_pool};
use crate::db::{Database, Pool};
use crate::idempotency::{self, IdempotencyKey};
use crate::jobs::{JobFailure, NewJob, Queue, insert_job, now_ms};
use crate::ledger::accounts::accounts_for_posting;
use crate::ledger::committer::Effect;
use crate::ledger::{Ledger, LedgerError, LedgerResult, RenderRecord, parse_date};
use crate::money::{self, AmountText, Decimal};
use crate::paging::{Page, PageRequest};

/// The kind of a pay run's job.
pub const JOB_KIND: &str = "payroll-run";
/// Wages expense: gross pay and employer contributions.
pub const WAGES: &str = "5100";
/// Cash: net pay.
pub const CASH: &str = "1000";

/// The most employees one pay run pays. A run's payslips are one stored
/// answer and its calculation one job, so both stay bounded; beyond it a
/// run is refused with `422 TOO_MANY_EMPLOYEES` before anything is written.
pub const MAX_EMPLOYEES_PER_RUN: usize = 10_000;

fn invalid(code: &'static str, message: impl Into<String>) -> LedgerError {
    LedgerError::invalid(code, message)
}

/// How an employee is paid, as clients write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum PayInput {
    /// A yearly salary, paid in equal parts per pay period.
    Salary {
        /// Decimal string in the organization's currency.
        annual: AmountText,
    },
    /// A rate per hour worked.
    Hourly {
        /// Decimal string in the organization's currency.
        rate: AmountText,
    },
}

/// `POST /api/employees`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEmployee {
    /// Full name.
    pub name: String,
    /// Salary or hourly rate.
    pub pay: PayInput,
    /// `weekly`, `biweekly`, `semimonthly` or `monthly`.
    pub frequency: PayFrequency,
    /// `YYYY-MM-DD`.
    pub start_date: String,
    /// `YYYY-MM-DD`, or null while employed.
    #[serde(default)]
    pub end_date: Option<String>,
}

/// An employee as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Employee {
    /// Id.
    pub id: i64,
    /// Full name.
    pub name: String,
    /// Salary or hourly rate.
    pub pay: PayInput,
    /// Pay frequency.
    pub frequency: PayFrequency,
    /// First day employed.
    pub start_date: NaiveDate,
    /// Last day employed.
    pub end_date: Option<NaiveDate>,
}

/// A payroll rule as clients write it: a rate or a fixed amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayrollRule {
    /// Shown on payslips; unique among the rules.
    pub name: String,
    /// `deduction` (from the employee's gross) or `employer` (a contribution
    /// on top).
    pub kind: RuleKindName,
    /// A fraction of gross pay, e.g. `"0.062"`.
    #[serde(default)]
    pub rate: Option<AmountText>,
    /// A fixed amount per pay run, e.g. `"50.00"`.
    #[serde(default)]
    pub amount: Option<AmountText>,
    /// The most the rule takes from one employee in a calendar year.
    #[serde(default)]
    pub annual_cap: Option<AmountText>,
    /// The liability account the rule's amounts are owed on, e.g. `"2200"`.
    pub account: String,
}

/// The kind of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleKindName {
    /// Withheld from the employee.
    Deduction,
    /// Paid by the employer on top.
    Employer,
}

/// `POST /api/payroll-runs`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPayrollRun {
    /// `YYYY-MM-DD`, inclusive.
    pub period_start: String,
    /// `YYYY-MM-DD`, inclusive.
    pub period_end: String,
    /// `YYYY-MM-DD`: the posting's date; caps count by its calendar year.
    pub pay_date: String,
    /// Hours worked by each hourly employee (by id), e.g. `{"7": "80.00"}`.
    #[serde(default)]
    pub hours: BTreeMap<String, AmountText>,
}

/// One amount on a payslip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SlipLine {
    /// The rule.
    pub name: String,
    /// Decimal string.
    #[schema(value_type = crate::money::AmountText)]
    pub amount: String,
}

/// A payslip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PayslipView {
    /// The employee.
    pub employee_id: i64,
    /// Gross pay.
    #[schema(value_type = crate::money::AmountText)]
    pub gross: String,
    /// Withheld, per rule.
    pub deductions: Vec<SlipLine>,
    /// Employer contributions, per rule.
    pub employer: Vec<SlipLine>,
    /// Gross less deductions.
    #[schema(value_type = crate::money::AmountText)]
    pub net: String,
    /// Minor units per rule name (for the year-to-date of later runs).
    #[serde(skip_serializing, default)]
    #[schema(ignore)]
    pub taken: BTreeMap<String, i64>,
}

/// A pay run as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PayrollRun {
    /// Id.
    pub id: i64,
    /// The job that works it.
    pub job_id: i64,
    /// `pending` until its job has posted it, then `posted`; while pending,
    /// `job_status` says where its job is.
    pub status: String,
    /// The job's status.
    pub job_status: crate::jobs::JobStatus,
    /// Inclusive.
    pub period_start: NaiveDate,
    /// Inclusive.
    pub period_end: NaiveDate,
    /// The posting's date.
    pub pay_date: NaiveDate,
    /// Empty until posted.
    pub payslips: Vec<PayslipView>,
    /// The run's entry, once posted.
    pub entry_id: Option<i64>,
}

/// What a run keeps from when it was asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Inputs {
    digits: u32,
    employees: Vec<RunEmployee>,
    rules: Vec<PayrollRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunEmployee {
    id: i64,
    pay_type: String,
    pay_amount: i64,
    frequency: PayFrequency,
    start_date: NaiveDate,
    end_date: Option<NaiveDate>,
    hours: Option<String>,
}

impl RunEmployee {
    fn terms(&self) -> calc::Employee {
        calc::Employee {
            pay: if self.pay_type == "hourly" {
                Pay::Hourly {
                    rate: self.pay_amount,
                }
            } else {
                Pay::Salary {
                    annual: self.pay_amount,
                }
            },
            frequency: self.frequency,
            start_date: self.start_date,
            end_date: self.end_date,
        }
    }

    fn hours(&self) -> Option<Decimal> {
        self.hours
            .as_deref()
            .and_then(|h| Decimal::parse(h, 4).ok())
    }
}

/// The organization's currency digits: those of its cash account.
async fn digits(ledger: &Ledger, organization: &str) -> LedgerResult<u32> {
    let accounts = accounts_for_posting(ledger, organization, &[CASH]).await?;
    let cash = accounts.get(CASH).ok_or_else(|| {
        invalid(
            "MISSING_ACCOUNT",
            format!("Payroll pays net wages from account {CASH} (cash); create it first."),
        )
    })?;
    Ok(money::minor_digits(&cash.currency).unwrap_or(2))
}

fn parse_money(text: &AmountText, digits: u32, what: &str) -> LedgerResult<i64> {
    let minor = money::parse_minor(&text.0, digits)
        .map_err(|_| invalid("INVALID_AMOUNT", format!("{what} is not a valid amount.")))?;
    if minor < 0 {
        return Err(invalid(
            "INVALID_AMOUNT",
            format!("{what} may not be negative."),
        ));
    }
    Ok(minor)
}

/// Adds an employee. With `idempotency`, the rendered answer is stored in
/// the same transaction.
pub async fn create_employee(
    ledger: &Ledger,
    organization: &str,
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

fn frequency_name(frequency: PayFrequency) -> &'static str {
    match frequency {
        PayFrequency::Weekly => "weekly",
        PayFrequency::Biweekly => "biweekly",
        PayFrequency::Semimonthly => "semimonthly",
        PayFrequency::Monthly => "monthly",
    }
}

fn parse_frequency(name: &str) -> PayFrequency {
    match name {
        "weekly" => PayFrequency::Weekly,
        "biweekly" => PayFrequency::Biweekly,
        "semimonthly" => PayFrequency::Semimonthly,
        _ => PayFrequency::Monthly,
    }
}

type EmployeeRow = (
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
async fn employee_rows(
    db: &Database,
    organization: &str,
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
    organization: &str,
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
fn calc_rules(rules: &[PayrollRule], digits: u32) -> LedgerResult<Vec<Rule>> {
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
pub async fn get_rules(db: &Database, organization: &str) -> LedgerResult<Vec<PayrollRule>> {
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
    organization: &str,
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

/// Asks for a pay run of every employee employed in the period: checked
/// now, recorded with its job in one transaction. With `idempotency`, the
/// rendered answer is stored in the same transaction.
pub async fn create_run(
    ledger: &Ledger,
    organization: &str,
    new: NewPayrollRun,
    idempotency: Option<(&IdempotencyKey, RenderRecord<'_, PayrollRun>)>,
) -> LedgerResult<PayrollRun> {
    let start = parse_date(&new.period_start)?;
    let end = parse_date(&new.period_end)?;
    let pay_date = parse_date(&new.pay_date)?;
    if end < start {
        return Err(invalid(
            "INVALID_FIELD",
            "The period ends before it starts.",
        ));
    }
    if (end - start).num_days() > 366 {
        return Err(invalid(
            "INVALID_FIELD",
            "A pay period is at most a year long.",
        ));
    }
    let digits = digits(ledger, organization).await?;
    let rules = get_rules(ledger.database(), organization).await?;
    calc_rules(&rules, digits)?;
    let mut codes: Vec<&str> = rules.iter().map(|r| r.account.as_str()).collect();
    codes.extend([WAGES, CASH]);
    let accounts = accounts_for_posting(ledger, organization, &codes).await?;
    if let Some(missing) = codes.iter().find(|c| !accounts.contains_key(**c)) {
        return Err(invalid(
            "MISSING_ACCOUNT",
            format!(
                "Payroll posts to account {missing}; create it first ({WAGES} is wages expense)."
            ),
        ));
    }
    let mut hours = new.hours.clone();
    let mut employees = Vec::new();
    for (id, name, pay_type, pay_amount, frequency, start_date, end_date) in
        // A run pays every employee, so it reads them all (bounding the
        // employees of one run is a limit of its own).
        employee_rows(ledger.database(), organization, 0, i64::MAX).await?
    {
        let employed = start_date <= end && end_date.is_none_or(|e| e >= start);
        let given = hours.remove(&id.to_string());
        if !employed {
            if given.is_some() {
                return Err(invalid(
                    "INVALID_PAYROLL",
                    format!(
                        "Employee {id} ({name}) was not employed in the period; remove their hours."
                    ),
                ));
            }
            continue;
        }
        let employee = RunEmployee {
            id,
            pay_type,
            pay_amount,
            frequency: parse_frequency(&frequency),
            start_date,
            end_date,
            hours: given.map(|h| h.0),
        };
        if employee.hours.is_some() && employee.hours().is_none() {
            return Err(invalid(
                "INVALID_PAYROLL",
                format!("The hours of employee {id} are a decimal such as \"80.00\"."),
            ));
        }
        calc::gross(&employee.terms(), start, end, employee.hours())
            .map_err(|err| invalid("INVALID_PAYROLL", format!("Employee {id} ({name}): {err}")))?;
        employees.push(employee);
    }
    if let Some(unknown) = hours.keys().next() {
        return Err(invalid(
            "INVALID_PAYROLL",
            format!(
                "There is no employee {:?}; hours are keyed by employee id.",
                unknown.chars().take(40).collect::<String>()
            ),
        ));
    }
    if employees.len() > MAX_EMPLOYEES_PER_RUN {
        return Err(invalid(
            "TOO_MANY_EMPLOYEES",
            format!(
                "A pay run pays at most {MAX_EMPLOYEES_PER_RUN} employees; {} were employed in \
                 this period. End the employment of those who left (end_date).",
                employees.len()
            ),
        ));
    }
    if employees.is_empty() {
        return Err(invalid(
            "NO_EMPLOYEES",
            "No employee was employed in this period.",
        ));
    }
    let ids: Vec<i64> = employees.iter().map(|e| e.id).collect();
    let inputs = serde_json::to_string(&Inputs {
        digits,
        employees,
        rules,
    })
    .unwrap_or_default();
    let owned = organization.to_owned();
    let now = now_ms();
    let created: Result<PayrollRun, LedgerError> = ledger
        .database()
        .run(|pool| async move {
            // Runs of one organization are asked for one at a time, so two
            // overlapping runs cannot both pass the check below.
            let lock = match pool {
                Pool::Postgres(_) => "SELECT id FROM organizations WHERE id = $1 FOR UPDATE",
                Pool::Sqlite(_) => "SELECT id FROM organizations WHERE id = $1",
            };
            let overlap = format!(
                "SELECT r.id FROM payroll_runs r JOIN payroll_run_employees e ON e.run_id = r.id \
                 WHERE r.organization_id = $1 AND r.period_start <= $2 AND r.period_end >= $3 \
                 AND {} LIMIT 1",
                in_list(&pool, "e.employee_id", 4)
            );
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&owned).await?;
                sqlx::query(lock).bind(&owned).execute(&mut *tx).await?;
                let query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(overlap.as_str()))
                    .bind(&owned)
                    .bind(end)
                    .bind(start)
                    .bind(List(ids.clone()));
                if let Some(other) = query.fetch_optional(&mut *tx).await? {
                    return Ok(Err(LedgerError::Conflict {
                        code: "PAYROLL_PERIOD_OVERLAP",
                        message: format!(
                            "Pay run {other} already pays some of these employees for part of this period."
                        ),
                    }));
                }
                let job = NewJob {
                    queue: Queue::PayrollProcessing,
                    kind: JOB_KIND,
                    unique_key: format!("payroll-run:{}", uuid::Uuid::new_v4()),
                    payload: serde_json::Value::Null,
                };
                let job_id = insert_job!(tx, &owned, &job, now)?;
                let run: i64 = sqlx::query_scalar(
                    "INSERT INTO payroll_runs (organization_id, job_id, period_start, period_end, \
                     pay_date, inputs, status, created_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7) RETURNING id",
                )
                .bind(&owned)
                .bind(job_id)
                .bind(start)
                .bind(end)
                .bind(pay_date)
                .bind(&inputs)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                for id in &ids {
                    sqlx::query("INSERT INTO payroll_run_employees (run_id, employee_id) VALUES ($1, $2)")
                        .bind(run)
                        .bind(*id)
                        .execute(&mut *tx)
                        .await?;
                }
                let created = PayrollRun {
                    id: run,
                    job_id,
                    status: "pending".to_owned(),
                    job_status: crate::jobs::JobStatus::Pending,
                    period_start: start,
                    period_end: end,
                    pay_date,
                    payslips: Vec::new(),
                    entry_id: None,
                };
                if let Some((key, render)) = idempotency {
                    let (status, body) = render(&created);
                    if let Err(err) = idempotency::store_answer!(&mut *tx, key, status, body) {
                        return idempotency::settle::<PayrollRun>(Err(err));
                    }
                }
                tx.commit().await?;
                Ok(Ok(created))
            })
        })
        .await?;
    created
}

type RunRow = (
    i64,
    i64,
    String,
    NaiveDate,
    NaiveDate,
    NaiveDate,
    Option<String>,
    Option<i64>,
    String,
    String,
);

/// A pay run of the organization.
pub async fn get_run(db: &Database, organization: &str, id: i64) -> LedgerResult<PayrollRun> {
    let owned = organization.to_owned();
    let row: Option<RunRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(
                    "SELECT r.id, r.job_id, r.status, r.period_start, r.period_end, r.pay_date, \
                     r.payslips, r.entry_id, j.status, r.inputs FROM payroll_runs r \
                     JOIN jobs j ON j.id = r.job_id WHERE r.organization_id = $1 AND r.id = $2",
                )
                .bind(&owned)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
            }))
        })
        .await?;
    let (id, job_id, status, period_start, period_end, pay_date, payslips, entry_id, job, _) =
        row.ok_or_else(|| LedgerError::NotFound("There is no such pay run.".to_owned()))?;
    Ok(PayrollRun {
        id,
        job_id,
        status,
        job_status: crate::jobs::JobStatus::parse(&job).unwrap_or(crate::jobs::JobStatus::Pending),
        period_start,
        period_end,
        pay_date,
        payslips: payslips
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or_default(),
        entry_id,
    })
}

/// What posted runs of the same calendar year already took, per employee
/// and rule name.
async fn year_to_date(
    db: &Database,
    organization: &str,
    year: i32,
    except: i64,
) -> LedgerResult<HashMap<(i64, String), i64>> {
    let owned = organization.to_owned();
    let from = NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or(NaiveDate::MIN);
    let to = NaiveDate::from_ymd_opt(year, 12, 31).unwrap_or(NaiveDate::MAX);
    let rows: Vec<(Option<String>,)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(
                    "SELECT payslips FROM payroll_runs WHERE organization_id = $1 \
                     AND status = 'posted' AND pay_date >= $2 AND pay_date <= $3 AND id <> $4",
                )
                .bind(&owned)
                .bind(from)
                .bind(to)
                .bind(except)
                .fetch_all(&mut *tx)
                .await?
            }))
        })
        .await?;
    let mut taken = HashMap::new();
    for (payslips,) in rows {
        let slips: Vec<PayslipView> = payslips
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or_default();
        for slip in slips {
            for (rule, amount) in slip.taken {
                *taken.entry((slip.employee_id, rule)).or_insert(0) += amount;
            }
        }
    }
    Ok(taken)
}

/// The job of a pay run: computes the payslips and posts the run's entry,
/// once.
pub async fn process(ledger: &Ledger, organization: &str, job_id: i64) -> Result<(), JobFailure> {
    let db = ledger.database();
    let owned = organization.to_owned();
    let row: Option<(i64, String, NaiveDate, String)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(
                    "SELECT id, status, pay_date, inputs FROM payroll_runs \
                     WHERE organization_id = $1 AND job_id = $2",
                )
                .bind(&owned)
                .bind(job_id)
                .fetch_optional(&mut *tx)
                .await?
            }))
        })
        .await?;
    let (run, status, pay_date, inputs) = row.ok_or(JobFailure::permanent("NOT_FOUND"))?;
    if status == "posted" {
        return Ok(());
    }
    let inputs: Inputs =
        serde_json::from_str(&inputs).map_err(|_| JobFailure::permanent("INVALID_JOB_PAYLOAD"))?;
    let period = get_run(db, organization, run).await?;
    let rules = calc_rules(&inputs.rules, inputs.digits)?;
    let taken = year_to_date(db, organization, pay_date.year(), run).await?;
    let mut slips_in = Vec::with_capacity(inputs.employees.len());
    for employee in &inputs.employees {
        let gross = calc::gross(
            &employee.terms(),
            period.period_start,
            period.period_end,
            employee.hours(),
        )
        .map_err(|_| JobFailure::permanent("INVALID_PAYROLL"))?;
        let year_to_date = rules
            .iter()
            .map(|r| {
                taken
                    .get(&(employee.id, r.name.clone()))
                    .copied()
                    .unwrap_or(0)
            })
            .collect();
        slips_in.push(SlipInput {
            gross,
            year_to_date,
        });
    }
    let slips =
        calc::payslips(&slips_in, &rules).map_err(|_| JobFailure::permanent("INVALID_PAYROLL"))?;
    let d = inputs.digits;
    let format = |minor: i64| money::format_minor(minor, d);
    let deduction_rules: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.kind == RuleKind::Deduction)
        .collect();
    let employer_rules: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.kind == RuleKind::Employer)
        .collect();
    let account_of: HashMap<&str, &str> = inputs
        .rules
        .iter()
        .map(|r| (r.name.trim(), r.account.as_str()))
        .collect();
    let mut lines: BTreeMap<String, i64> = BTreeMap::new();
    let mut views = Vec::with_capacity(slips.len());
    for (employee, slip) in inputs.employees.iter().zip(&slips) {
        let mut taken = BTreeMap::new();
        let mut line = |rules: &[&Rule], amounts: &[i64]| -> Vec<SlipLine> {
            rules
                .iter()
                .zip(amounts)
                .map(|(rule, amount)| {
                    taken.insert(rule.name.clone(), *amount);
                    let account = account_of.get(rule.name.as_str()).copied().unwrap_or(WAGES);
                    *lines.entry(account.to_owned()).or_insert(0) -= amount;
                    SlipLine {
                        name: rule.name.clone(),
                        amount: format(*amount),
                    }
                })
                .collect()
        };
        let deductions = line(&deduction_rules, &slip.deductions);
        let employer = line(&employer_rules, &slip.employer);
        let employer_total: i64 = slip.employer.iter().sum();
        *lines.entry(WAGES.to_owned()).or_insert(0) += slip.gross + employer_total;
        *lines.entry(CASH.to_owned()).or_insert(0) -= slip.net;
        views.push(PayslipView {
            employee_id: employee.id,
            gross: format(slip.gross),
            deductions,
            employer,
            net: format(slip.net),
            taken,
        });
    }
    let codes: Vec<&str> = lines.keys().map(String::as_str).collect();
    let accounts = accounts_for_posting(ledger, organization, &codes).await?;
    let currency = accounts
        .get(CASH)
        .map(|a| a.currency.clone())
        .ok_or(JobFailure::permanent("MISSING_ACCOUNT"))?;
    let signed: Vec<(&str, i64)> = lines
        .iter()
        .map(|(code, amount)| (code.as_str(), *amount))
        .collect();
    let memo = format!("Payroll {} to {}", period.period_start, period.period_end);
    let entry = crate::invoicing::invoices::posting(
        organization,
        &accounts,
        &currency,
        pay_date,
        memo,
        &signed,
    )?;
    // Payslips as stored: with what each rule took, for later runs' caps.
    let stored: Vec<serde_json::Value> = views
        .iter()
        .map(|v| {
            let mut value = serde_json::to_value(v).unwrap_or_default();
            value["taken"] = serde_json::to_value(&v.taken).unwrap_or_default();
            value
        })
        .collect();
    let payslips = serde_json::to_string(&stored).unwrap_or_default();
    match ledger
        .committer()
        .post_with_effects(
            vec![entry],
            None,
            vec![Effect::PayrollRun {
                run_id: run,
                payslips,
            }],
        )
        .await
    {
        Ok(_) => Ok(()),
        // Posted meanwhile by another run of this job.
        Err(LedgerError::Conflict { .. })
            if get_run(db, organization, run).await?.status == "posted" =>
        {
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}
