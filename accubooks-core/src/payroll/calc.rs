//! The arithmetic of a pay run (contract section 7): gross pay, deductions,
//! employer contributions and net pay, exactly, in integer minor units.
//!
//! Nothing here reads or writes anything; the run's job gathers the
//! employees, the rules and the year-to-date figures and posts the result.
//!
//! - **Gross.** A salary earns `annual / periods_per_year` for a period,
//!   prorated by the working days (Monday to Friday) the employee is
//!   employed in it over the period's working days. An hourly employee
//!   earns rate × hours. Either is rounded half-up once, at the end.
//! - **Rules.** A rule takes a rate of the gross (a fraction, at most six
//!   fraction digits, 0 to 1) or a fixed amount (from payslips with a
//!   positive gross only), limited by its annual cap minus what it already
//!   took from that employee this calendar year.
//! - **Rounding across the run.** The run posts one line per rule, so a
//!   rule's run total is the exact sum of its per-employee amounts rounded
//!   half-up once; that total is then split back over the payslips by
//!   largest remainder. The payslips add up to the run's line exactly, and
//!   each payslip amount is its exact amount rounded down or up, never
//!   more than one minor unit away, and never above the cap.
//! - **Net never negative.** Deductions are applied in rule order; each
//!   takes at most what the earlier ones left of the gross, so a fixed
//!   deduction that no longer fits takes only the rest.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::money::{Decimal, div_round_half_up};

/// Most fraction digits of a rule's rate: 0.062 is 62,000 millionths.
pub const RATE_DIGITS: u32 = 6;

/// Exact amounts are counted in millionths of a minor unit: a rate of six
/// fraction digits times a gross in minor units is then an integer.
const MILLION: i128 = 1_000_000;

/// How often an employee is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PayFrequency {
    /// 52 periods a year.
    Weekly,
    /// Every other week, 26 periods a year.
    Biweekly,
    /// Twice a month, 24 periods a year.
    Semimonthly,
    /// 12 periods a year.
    Monthly,
}

impl PayFrequency {
    /// Pay periods in a year: 52, 26, 24 or 12.
    pub fn periods_per_year(self) -> i64 {
        match self {
            PayFrequency::Weekly => 52,
            PayFrequency::Biweekly => 26,
            PayFrequency::Semimonthly => 24,
            PayFrequency::Monthly => 12,
        }
    }
}

/// How an employee's pay is set, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pay {
    /// A yearly salary, paid in equal parts each period.
    Salary {
        /// The salary for a whole year.
        annual: i64,
    },
    /// Paid by the hour worked.
    Hourly {
        /// The pay for one hour.
        rate: i64,
    },
}

/// What the pay of one employee depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Employee {
    /// Salary or hourly rate.
    pub pay: Pay,
    /// How often the employee is paid.
    pub frequency: PayFrequency,
    /// The first day employed.
    pub start_date: NaiveDate,
    /// The last day employed, if the employee has left or will leave.
    pub end_date: Option<NaiveDate>,
}

/// Who bears what a rule computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// Withheld from the employee's gross pay.
    Deduction,
    /// Paid by the employer on top of the gross pay.
    Employer,
}

/// How much a rule takes from one payslip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAmount {
    /// A fraction of the gross pay, 0 to 1 with at most six fraction digits
    /// (0.062 for 6.2 %).
    Rate(Decimal),
    /// A fixed amount in minor units, taken from every payslip with a
    /// positive gross.
    Fixed(i64),
}

/// A payroll rule: a deduction or an employer contribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The name shown on the payslip and in error messages.
    pub name: String,
    /// Deduction or employer contribution.
    pub kind: RuleKind,
    /// A rate of the gross or a fixed amount.
    pub amount: RuleAmount,
    /// The most the rule takes from one employee in one calendar year (for
    /// an employer rule: the most it contributes), in minor units.
    pub annual_cap: Option<i64>,
}

/// One employee's part of a run, as [`payslips`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlipInput {
    /// Gross pay for the period, in minor units (see [`gross`]).
    pub gross: i64,
    /// Per rule, in the rules' order: what the rule already took from (or,
    /// for an employer rule, contributed for) this employee this calendar
    /// year.
    pub year_to_date: Vec<i64>,
}

/// One employee's computed payslip, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payslip {
    /// Gross pay.
    pub gross: i64,
    /// One amount per deduction rule, in the rules' order.
    pub deductions: Vec<i64>,
    /// One amount per employer rule, in the rules' order.
    pub employer: Vec<i64>,
    /// Gross minus the deductions; never negative.
    pub net: i64,
}

/// Why pay cannot be computed. Every variant is a mistake in the input
/// (the same input fails again), never a passing failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayrollError {
    /// An hourly employee was employed in the period, but no hours were given.
    #[error(
        "Hours are required for an hourly employee: give the hours worked in the period, such as \"80.00\"."
    )]
    HoursMissing,
    /// Hours were given for a salaried employee.
    #[error(
        "Hours are only for hourly employees: a salaried employee is paid their salary, so leave the hours out."
    )]
    HoursForSalary,
    /// Hours were given for an hourly employee not employed in the period.
    #[error(
        "{hours} hours are given for an employee who is not employed between {period_start} and {period_end}; remove the hours, or correct the employee's start or end date."
    )]
    HoursOutsideEmployment {
        /// The hours given.
        hours: String,
        /// The period's first day.
        period_start: NaiveDate,
        /// The period's last day.
        period_end: NaiveDate,
    },
    /// The hours are negative.
    #[error("The hours worked cannot be negative ({0}).")]
    NegativeHours(String),
    /// A negative salary or hourly rate.
    #[error("An employee's annual salary or hourly rate cannot be negative.")]
    NegativePay,
    /// The period's end is before its start.
    #[error(
        "The pay period ends on {end}, before it starts on {start}; give the period's first and last days in order."
    )]
    PeriodReversed {
        /// The period's first day.
        start: NaiveDate,
        /// The period's last day.
        end: NaiveDate,
    },
    /// A salary cannot be prorated over a period without a working day.
    #[error(
        "The pay period from {start} to {end} has no working day (Monday to Friday), so a salary cannot be prorated over it; choose a period that includes a weekday."
    )]
    NoWorkingDays {
        /// The period's first day.
        start: NaiveDate,
        /// The period's last day.
        end: NaiveDate,
    },
    /// The employee's end date is before the start date.
    #[error("The employee's end date {end} is before the start date {start}; correct one of them.")]
    EmploymentReversed {
        /// The employee's first day.
        start: NaiveDate,
        /// The employee's last day.
        end: NaiveDate,
    },
    /// A rate below 0 or above 1.
    #[error(
        "The rate {rate} of the rule {rule:?} is outside 0 to 1; write a rate as a fraction, such as 0.062 for 6.2 %."
    )]
    RateOutOfRange {
        /// The rule's name.
        rule: String,
        /// The rate as given.
        rate: String,
    },
    /// A rate with more than six fraction digits.
    #[error(
        "The rate {rate} of the rule {rule:?} has more than 6 fraction digits; round it to at most 6, such as 0.062 or 0.014500."
    )]
    RateTooPrecise {
        /// The rule's name.
        rule: String,
        /// The rate as given.
        rate: String,
    },
    /// A negative fixed amount.
    #[error("The fixed amount of the rule {rule:?} cannot be negative.")]
    NegativeFixedAmount {
        /// The rule's name.
        rule: String,
    },
    /// A negative annual cap.
    #[error("The annual cap of the rule {rule:?} cannot be negative; leave it out for no cap.")]
    NegativeCap {
        /// The rule's name.
        rule: String,
    },
    /// A negative gross pay.
    #[error(
        "The gross pay of payslip {index} (counting from 0) is negative; gross pay is zero or more."
    )]
    NegativeGross {
        /// The payslip's position in the run.
        index: usize,
    },
    /// Not one year-to-date amount per rule.
    #[error(
        "Payslip {index} (counting from 0) has {found} year-to-date amounts for {expected} rules; give one per rule, in the rules' order."
    )]
    YearToDateMismatch {
        /// The payslip's position in the run.
        index: usize,
        /// The number of rules.
        expected: usize,
        /// The number of year-to-date amounts given.
        found: usize,
    },
    /// A negative year-to-date amount.
    #[error(
        "The year-to-date amount of the rule {rule:?} on payslip {index} (counting from 0) is negative."
    )]
    NegativeYearToDate {
        /// The payslip's position in the run.
        index: usize,
        /// The rule's name.
        rule: String,
    },
    /// An amount does not fit in 64-bit minor units.
    #[error(
        "The pay amounts are too large to compute exactly; check the salaries, rates, hours and rule amounts for a misplaced digit."
    )]
    TooLarge,
}

/// The Mondays to Fridays from `from` to `to`, both included; 0 when `to`
/// is before `from`. Counted in constant time: whole weeks, then the days
/// left over from `from`'s weekday on.
pub fn working_days(from: NaiveDate, to: NaiveDate) -> i64 {
    if to < from {
        return 0;
    }
    let days = (to - from).num_days() + 1;
    let first = i64::from(from.weekday().num_days_from_monday());
    weekdays_before(first + days) - weekdays_before(first)
}

/// The Mondays to Fridays among the first `n` days of a calendar that
/// starts on a Monday.
fn weekdays_before(n: i64) -> i64 {
    n / 7 * 5 + (n % 7).min(5)
}

/// An employee's gross pay for the period from `period_start` to
/// `period_end` (both included), in minor units, rounded half-up once.
///
/// A salary earns `annual / periods_per_year` of its frequency, times the
/// working days the employee is employed in the period over the period's
/// working days. An hourly employee earns rate × `hours`. An employee not
/// employed on any day of the period earns 0.
///
/// `hours` is required for an hourly employee employed in the period and
/// refused for a salaried one; hours other than zero for an hourly employee
/// not employed in the period are refused too, rather than silently unpaid.
pub fn gross(
    employee: &Employee,
    period_start: NaiveDate,
    period_end: NaiveDate,
    hours: Option<Decimal>,
) -> Result<i64, PayrollError> {
    if period_end < period_start {
        return Err(PayrollError::PeriodReversed {
            start: period_start,
            end: period_end,
        });
    }
    if let Some(end) = employee.end_date
        && end < employee.start_date
    {
        return Err(PayrollError::EmploymentReversed {
            start: employee.start_date,
            end,
        });
    }
    let employed_from = employee.start_date.max(period_start);
    let employed_to = employee
        .end_date
        .map_or(period_end, |end| end.min(period_end));
    let employed = employed_from <= employed_to;
    match employee.pay {
        Pay::Salary { annual } => {
            if hours.is_some() {
                return Err(PayrollError::HoursForSalary);
            }
            if annual < 0 {
                return Err(PayrollError::NegativePay);
            }
            let period_days = working_days(period_start, period_end);
            if period_days == 0 {
                return Err(PayrollError::NoWorkingDays {
                    start: period_start,
                    end: period_end,
                });
            }
            // Zero when not employed: `working_days` of a reversed range.
            let employed_days = working_days(employed_from, employed_to);
            // At most i64::MAX × 10^8 working days: far inside i128.
            let numerator = i128::from(annual) * i128::from(employed_days);
            let denominator =
                i128::from(employee.frequency.periods_per_year()) * i128::from(period_days);
            minor(div_round_half_up(numerator, denominator))
        }
        Pay::Hourly { rate } => {
            if rate < 0 {
                return Err(PayrollError::NegativePay);
            }
            let hours = match hours {
                Some(hours) if hours.mantissa < 0 => {
                    return Err(PayrollError::NegativeHours(show(hours)));
                }
                Some(hours) => hours,
                None if employed => return Err(PayrollError::HoursMissing),
                None => return Ok(0),
            };
            if !employed {
                if hours.mantissa == 0 {
                    return Ok(0);
                }
                return Err(PayrollError::HoursOutsideEmployment {
                    hours: show(hours),
                    period_start,
                    period_end,
                });
            }
            let unit = 10i128
                .checked_pow(hours.scale)
                .ok_or(PayrollError::TooLarge)?;
            let product = i128::from(rate)
                .checked_mul(hours.mantissa)
                .ok_or(PayrollError::TooLarge)?;
            minor(div_round_half_up(product, unit))
        }
    }
}

/// The payslips of a run: for each input, in order, what every rule takes
/// or contributes, and the net pay.
///
/// For each rule and employee the exact amount is the gross × the rate (or
/// the fixed amount, for a positive gross only: an employee paid nothing in
/// the run has nothing withheld and costs no contribution), limited by the
/// cap minus the year to date (never below zero) and, for a deduction, by
/// what the earlier deductions left of the gross. The rule's run total is
/// the exact amounts' sum rounded half-up; it is split back over the
/// payslips by largest remainder of the exact amounts (earlier payslips
/// first on ties), so every payslip amount is its exact amount rounded down
/// or up and the payslips add up to the total.
///
/// Fails on an invalid rule or input, or when a line of the run's entry
/// (a rule's total, or the wages: gross plus employer contributions) would
/// not fit in 64-bit minor units.
pub fn payslips(inputs: &[SlipInput], rules: &[Rule]) -> Result<Vec<Payslip>, PayrollError> {
    let takes = rules
        .iter()
        .map(check_rule)
        .collect::<Result<Vec<_>, _>>()?;
    for (index, input) in inputs.iter().enumerate() {
        check_input(index, input, rules)?;
    }
    let mut slips: Vec<Payslip> = inputs
        .iter()
        .map(|input| Payslip {
            gross: input.gross,
            deductions: Vec::new(),
            employer: Vec::new(),
            net: input.gross,
        })
        .collect();
    let mut exact = Vec::with_capacity(inputs.len());
    for (k, (rule, take)) in rules.iter().zip(&takes).enumerate() {
        exact.clear();
        for (input, slip) in inputs.iter().zip(&slips) {
            // Both factors are below 2^63 and 10^6: far inside i128.
            let wanted = match *take {
                Take::PerMillion(rate) => i128::from(input.gross) * rate,
                Take::Fixed(amount) if input.gross > 0 => i128::from(amount) * MILLION,
                Take::Fixed(_) => 0,
            };
            // Both are non-negative, so the difference cannot overflow.
            let mut limit = rule
                .annual_cap
                .map(|cap| (cap - input.year_to_date[k]).max(0));
            if rule.kind == RuleKind::Deduction {
                limit = Some(limit.map_or(slip.net, |limit| limit.min(slip.net)));
            }
            exact.push(limit.map_or(wanted, |limit| wanted.min(i128::from(limit) * MILLION)));
        }
        let parts = split_exact(&exact)?;
        for (slip, part) in slips.iter_mut().zip(parts) {
            match rule.kind {
                RuleKind::Deduction => {
                    slip.deductions.push(part);
                    slip.net -= part;
                }
                RuleKind::Employer => slip.employer.push(part),
            }
        }
    }
    let wages = slips.iter().fold(0i128, |sum, slip| {
        sum + i128::from(slip.gross) + slip.employer.iter().map(|a| i128::from(*a)).sum::<i128>()
    });
    minor(wages)?;
    Ok(slips)
}

/// A rule's amount, checked.
#[derive(Debug, Clone, Copy)]
enum Take {
    /// Millionths of the gross.
    PerMillion(i128),
    /// Minor units.
    Fixed(i64),
}

fn check_rule(rule: &Rule) -> Result<Take, PayrollError> {
    if rule.annual_cap.is_some_and(|cap| cap < 0) {
        return Err(PayrollError::NegativeCap {
            rule: rule.name.clone(),
        });
    }
    match rule.amount {
        RuleAmount::Fixed(amount) if amount < 0 => Err(PayrollError::NegativeFixedAmount {
            rule: rule.name.clone(),
        }),
        RuleAmount::Fixed(amount) => Ok(Take::Fixed(amount)),
        RuleAmount::Rate(rate) => {
            // 10^scale beyond i128 is beyond any mantissa: the rate is below 1.
            let above_one = 10i128
                .checked_pow(rate.scale)
                .is_some_and(|one| rate.mantissa > one);
            if rate.mantissa < 0 || above_one {
                return Err(PayrollError::RateOutOfRange {
                    rule: rule.name.clone(),
                    rate: show(rate),
                });
            }
            // At most 1, so only dropping non-zero digits can fail.
            let per_million =
                rate.rescale(RATE_DIGITS)
                    .ok_or_else(|| PayrollError::RateTooPrecise {
                        rule: rule.name.clone(),
                        rate: show(rate),
                    })?;
            Ok(Take::PerMillion(per_million))
        }
    }
}

fn check_input(index: usize, input: &SlipInput, rules: &[Rule]) -> Result<(), PayrollError> {
    if input.gross < 0 {
        return Err(PayrollError::NegativeGross { index });
    }
    if input.year_to_date.len() != rules.len() {
        return Err(PayrollError::YearToDateMismatch {
            index,
            expected: rules.len(),
            found: input.year_to_date.len(),
        });
    }
    if let Some((rule, _)) = rules
        .iter()
        .zip(&input.year_to_date)
        .find(|(_, ytd)| **ytd < 0)
    {
        return Err(PayrollError::NegativeYearToDate {
            index,
            rule: rule.name.clone(),
        });
    }
    Ok(())
}

/// Rounds the sum of `exact` (non-negative, in millionths) half-up and
/// splits it by largest remainder: each part is its exact amount rounded
/// down, and the units left go to the largest fractions (earlier first on
/// ties).
///
/// Why not `money::allocate`: that shares the total in proportion to the
/// exact amounts, which can hand a capped amount (a whole number) one unit
/// more than its cap. Here the left units number at most the non-zero
/// fractions (a sum of `m` fractions below 1 rounds to at most `m`), so
/// only amounts with a fraction are rounded up, each by one unit: every
/// part is within one unit of its exact amount and none passes its limit.
fn split_exact(exact: &[i128]) -> Result<Vec<i64>, PayrollError> {
    let sum = exact
        .iter()
        .try_fold(0i128, |sum, e| sum.checked_add(*e))
        .ok_or(PayrollError::TooLarge)?;
    let total = div_round_half_up(sum, MILLION);
    minor(total)?;
    let mut parts: Vec<i128> = exact.iter().map(|e| e / MILLION).collect();
    let mut left = total - parts.iter().sum::<i128>();
    let mut order: Vec<usize> = (0..exact.len()).collect();
    // A stable sort keeps earlier payslips first among equal fractions.
    order.sort_by_key(|&i| std::cmp::Reverse(exact[i] % MILLION));
    for i in order {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    debug_assert_eq!(left, 0, "the rounded total exceeds the parts' ceilings");
    parts.into_iter().map(minor).collect()
}

fn minor(amount: i128) -> Result<i64, PayrollError> {
    i64::try_from(amount).map_err(|_| PayrollError::TooLarge)
}

/// A decimal for a message, without `Decimal`'s `Display` panicking on a
/// scale whose power of ten does not fit.
fn show(decimal: Decimal) -> String {
    if 10u128.checked_pow(decimal.scale).is_some() {
        decimal.to_string()
    } else {
        format!("{}e-{}", decimal.mantissa, decimal.scale)
    }
}

#[cfg(test)]
mod tests;
