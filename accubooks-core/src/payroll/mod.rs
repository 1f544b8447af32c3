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

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use self::calc::{Pay, PayFrequency};
use crate::jobs::{JobFailure, Queue};
use crate::ledger::accounts::accounts_for_posting;
use crate::ledger::{Ledger, LedgerError, LedgerResult};
use crate::money::{self, AmountText, Decimal};
use crate::organization::OrganizationId;

mod employees;
mod runs;

pub use employees::*;
pub use runs::*;

/// The kind of a pay run's job.
pub const JOB_KIND: &str = "payroll-run";
/// The queue of pay runs' jobs.
pub const QUEUE: Queue = Queue::new("payroll-processing");
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
async fn digits(ledger: &Ledger, organization: &OrganizationId) -> LedgerResult<u32> {
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

/// Registers the pay run's job.
pub(crate) fn register(registry: &mut crate::jobs::JobRegistry, ledger: &Ledger) {
    fn run<'a>(
        ledger: &'a Ledger,
        _: &'a crate::jobs::JobEnv,
        job: &'a crate::jobs::JobContext,
    ) -> futures::future::BoxFuture<'a, Result<(), JobFailure>> {
        Box::pin(process(ledger, &job.organization, job.id))
    }
    registry.kind(
        JOB_KIND,
        QUEUE,
        crate::jobs::with_state(ledger.clone(), run),
    );
}
