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
mod tests {
    use super::*;
    use chrono::{Days, TimeDelta, Weekday};
    use proptest::prelude::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn decimal(text: &str) -> Decimal {
        Decimal::parse(text, 10).unwrap()
    }

    fn salaried(annual: i64, frequency: PayFrequency, start: &str) -> Employee {
        Employee {
            pay: Pay::Salary { annual },
            frequency,
            start_date: date(start),
            end_date: None,
        }
    }

    fn hourly(rate: i64, start: &str) -> Employee {
        Employee {
            pay: Pay::Hourly { rate },
            frequency: PayFrequency::Biweekly,
            start_date: date(start),
            end_date: None,
        }
    }

    fn rule(name: &str, kind: RuleKind, amount: RuleAmount, annual_cap: Option<i64>) -> Rule {
        Rule {
            name: name.to_owned(),
            kind,
            amount,
            annual_cap,
        }
    }

    fn rate(text: &str) -> RuleAmount {
        RuleAmount::Rate(decimal(text))
    }

    fn input(gross: i64, year_to_date: &[i64]) -> SlipInput {
        SlipInput {
            gross,
            year_to_date: year_to_date.to_vec(),
        }
    }

    /// The amount a payslip shows for rule `k`.
    fn amount_of(slip: &Payslip, rules: &[Rule], k: usize) -> i64 {
        let position = rules[..k]
            .iter()
            .filter(|r| r.kind == rules[k].kind)
            .count();
        match rules[k].kind {
            RuleKind::Deduction => slip.deductions[position],
            RuleKind::Employer => slip.employer[position],
        }
    }

    /// The exact amount of rule `k` on each payslip, in millionths, worked
    /// out afresh from the rules and the payslip's earlier deductions.
    fn exact_of(inputs: &[SlipInput], rules: &[Rule], slips: &[Payslip], k: usize) -> Vec<i128> {
        let rule = &rules[k];
        inputs
            .iter()
            .zip(slips)
            .map(|(input, slip)| {
                let wanted = match rule.amount {
                    RuleAmount::Rate(rate) => {
                        i128::from(input.gross) * rate.rescale(RATE_DIGITS).unwrap()
                    }
                    RuleAmount::Fixed(amount) if input.gross > 0 => i128::from(amount) * MILLION,
                    RuleAmount::Fixed(_) => 0,
                };
                let mut limit = rule
                    .annual_cap
                    .map(|cap| (cap - input.year_to_date[k]).max(0));
                if rule.kind == RuleKind::Deduction {
                    let earlier: i64 = (0..k)
                        .filter(|j| rules[*j].kind == RuleKind::Deduction)
                        .map(|j| amount_of(slip, rules, j))
                        .sum();
                    let left = input.gross - earlier;
                    limit = Some(limit.map_or(left, |l| l.min(left)));
                }
                limit.map_or(wanted, |l| wanted.min(i128::from(l) * MILLION))
            })
            .collect()
    }

    /// Every promise of [`payslips`] about one run.
    fn check_run(inputs: &[SlipInput], rules: &[Rule], slips: &[Payslip]) {
        assert_eq!(slips.len(), inputs.len());
        let deductions = rules
            .iter()
            .filter(|r| r.kind == RuleKind::Deduction)
            .count();
        for (slip, input) in slips.iter().zip(inputs) {
            assert_eq!(slip.gross, input.gross);
            assert_eq!(slip.deductions.len(), deductions);
            assert_eq!(slip.employer.len(), rules.len() - deductions);
            assert_eq!(
                slip.gross - slip.deductions.iter().sum::<i64>(),
                slip.net,
                "{slip:?}"
            );
            assert!(slip.net >= 0, "{slip:?}");
        }
        for k in 0..rules.len() {
            let exact = exact_of(inputs, rules, slips, k);
            let amounts: Vec<i64> = slips.iter().map(|s| amount_of(s, rules, k)).collect();
            // The run's line is the exact total rounded once, and the parts add up to it.
            let line = div_round_half_up(exact.iter().sum(), MILLION);
            assert_eq!(
                i128::from(amounts.iter().sum::<i64>()),
                line,
                "rule {k}: {amounts:?} {exact:?}"
            );
            for (i, (amount, exact)) in amounts.iter().zip(&exact).enumerate() {
                let scaled = i128::from(*amount) * MILLION;
                assert!(*amount >= 0);
                assert!(
                    (scaled - exact).abs() < MILLION,
                    "rule {k}, slip {i}: {amount} vs {exact}/10^6"
                );
                if let Some(cap) = rules[k].annual_cap {
                    assert!(*amount <= (cap - inputs[i].year_to_date[k]).max(0));
                }
            }
        }
    }

    #[test]
    fn frequencies() {
        let all = [
            PayFrequency::Weekly,
            PayFrequency::Biweekly,
            PayFrequency::Semimonthly,
            PayFrequency::Monthly,
        ];
        assert_eq!(all.map(PayFrequency::periods_per_year), [52, 26, 24, 12]);
        assert_eq!(
            serde_json::to_string(&all).unwrap(),
            r#"["weekly","biweekly","semimonthly","monthly"]"#
        );
        let parsed: PayFrequency = serde_json::from_str("\"semimonthly\"").unwrap();
        assert_eq!(parsed, PayFrequency::Semimonthly);
        assert!(serde_json::from_str::<PayFrequency>("\"Monthly\"").is_err());
    }

    #[test]
    fn working_days_skip_weekends() {
        // 2026-03-02 is a Monday.
        assert_eq!(date("2026-03-02").weekday(), Weekday::Mon);
        assert_eq!(working_days(date("2026-03-02"), date("2026-03-06")), 5);
        assert_eq!(working_days(date("2026-03-02"), date("2026-03-08")), 5);
        assert_eq!(working_days(date("2026-03-07"), date("2026-03-08")), 0);
        assert_eq!(working_days(date("2026-03-07"), date("2026-03-07")), 0);
        assert_eq!(working_days(date("2026-03-06"), date("2026-03-09")), 2);
        assert_eq!(working_days(date("2026-03-04"), date("2026-03-04")), 1);
        assert_eq!(working_days(date("2026-03-05"), date("2026-03-04")), 0);
        assert_eq!(working_days(date("2026-03-01"), date("2026-03-31")), 22);
        assert_eq!(working_days(date("2026-01-01"), date("2026-12-31")), 261);
        assert_eq!(working_days(date("2024-01-01"), date("2024-12-31")), 262);
    }

    #[test]
    fn a_full_period_earns_the_periodic_salary() {
        let employee = salaried(6_000_000, PayFrequency::Monthly, "2020-01-01");
        let pay = gross(&employee, date("2026-03-01"), date("2026-03-31"), None);
        assert_eq!(pay, Ok(500_000));
        // 60,000.00 / 26 = 2,307.6923… → 2,307.69.
        let biweekly = salaried(6_000_000, PayFrequency::Biweekly, "2020-01-01");
        let pay = gross(&biweekly, date("2026-03-02"), date("2026-03-15"), None);
        assert_eq!(pay, Ok(230_769));
        // 0.13 / 26 = 0.005 → 0.01: half-up, once.
        let tiny = salaried(13, PayFrequency::Biweekly, "2020-01-01");
        let pay = gross(&tiny, date("2026-03-02"), date("2026-03-15"), None);
        assert_eq!(pay, Ok(1));
    }

    #[test]
    fn a_salary_is_prorated_by_working_days_employed() {
        // March 2026 has 22 working days; the 4th is the third of them.
        let mut employee = salaried(6_000_000, PayFrequency::Monthly, "2026-03-04");
        let (start, end) = (date("2026-03-01"), date("2026-03-31"));
        // 5,000.00 × 20 / 22 = 4,545.4545… → 4,545.45.
        assert_eq!(gross(&employee, start, end, None), Ok(454_545));
        // Starting on the Saturday before the first working day loses nothing.
        employee.start_date = date("2026-02-28");
        assert_eq!(gross(&employee, start, end, None), Ok(500_000));
        // Leaving on Friday the 13th: 10 working days, 2,272.7272… → 2,272.73.
        employee.start_date = date("2025-01-01");
        employee.end_date = Some(date("2026-03-13"));
        assert_eq!(gross(&employee, start, end, None), Ok(227_273));
        // Starting the 4th and leaving the 13th: 8 working days.
        employee.start_date = date("2026-03-04");
        assert_eq!(gross(&employee, start, end, None), Ok(181_818));
        // Employed only over a weekend of the period: no working day, nothing.
        employee.start_date = date("2026-03-07");
        employee.end_date = Some(date("2026-03-08"));
        assert_eq!(gross(&employee, start, end, None), Ok(0));
    }

    #[test]
    fn not_employed_in_the_period_earns_nothing() {
        let (start, end) = (date("2026-03-01"), date("2026-03-31"));
        let future = salaried(6_000_000, PayFrequency::Monthly, "2026-04-01");
        assert_eq!(gross(&future, start, end, None), Ok(0));
        let mut gone = salaried(6_000_000, PayFrequency::Monthly, "2025-01-01");
        gone.end_date = Some(date("2026-02-28"));
        assert_eq!(gross(&gone, start, end, None), Ok(0));
        let mut gone_hourly = hourly(2500, "2025-01-01");
        gone_hourly.end_date = Some(date("2026-02-28"));
        assert_eq!(gross(&gone_hourly, start, end, None), Ok(0));
        assert_eq!(
            gross(&gone_hourly, start, end, Some(decimal("0.00"))),
            Ok(0)
        );
        // Hours for days not employed are a mistake to fix, not pay to drop.
        let refused = gross(&gone_hourly, start, end, Some(decimal("8")));
        assert!(
            matches!(refused, Err(PayrollError::HoursOutsideEmployment { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn hourly_pay_is_rate_times_hours() {
        let (start, end) = (date("2026-03-02"), date("2026-03-15"));
        let employee = hourly(2500, "2026-01-01");
        assert_eq!(
            gross(&employee, start, end, Some(decimal("80.00"))),
            Ok(200_000)
        );
        // 19.99 × 7.25 = 144.9275 → 144.93.
        let employee = hourly(1999, "2026-01-01");
        assert_eq!(
            gross(&employee, start, end, Some(decimal("7.25"))),
            Ok(14_493)
        );
        // 0.01 × 0.5 = 0.005 → 0.01.
        let employee = hourly(1, "2026-01-01");
        assert_eq!(gross(&employee, start, end, Some(decimal("0.5"))), Ok(1));
        assert_eq!(gross(&employee, start, end, Some(decimal("0"))), Ok(0));
        // A weekend-only period is fine for hourly pay.
        let pay = gross(
            &employee,
            date("2026-03-07"),
            date("2026-03-08"),
            Some(decimal("300")),
        );
        assert_eq!(pay, Ok(300));
    }

    #[test]
    fn gross_refuses_what_it_cannot_pay_right() {
        let (start, end) = (date("2026-03-02"), date("2026-03-15"));
        let salary = salaried(6_000_000, PayFrequency::Biweekly, "2026-01-01");
        let wage = hourly(2500, "2026-01-01");
        assert_eq!(
            gross(&wage, start, end, None),
            Err(PayrollError::HoursMissing)
        );
        assert_eq!(
            gross(&salary, start, end, Some(decimal("80"))),
            Err(PayrollError::HoursForSalary)
        );
        assert_eq!(
            gross(&wage, start, end, Some(decimal("-1.5"))),
            Err(PayrollError::NegativeHours("-1.5".to_owned()))
        );
        assert_eq!(
            gross(&salary, end, start, None),
            Err(PayrollError::PeriodReversed {
                start: end,
                end: start
            })
        );
        assert!(matches!(
            gross(&salary, date("2026-03-07"), date("2026-03-08"), None),
            Err(PayrollError::NoWorkingDays { .. })
        ));
        let mut reversed = salary;
        reversed.end_date = Some(date("2025-12-31"));
        assert!(matches!(
            gross(&reversed, start, end, None),
            Err(PayrollError::EmploymentReversed { .. })
        ));
        assert_eq!(
            gross(&hourly(-1, "2026-01-01"), start, end, Some(decimal("1"))),
            Err(PayrollError::NegativePay)
        );
        assert_eq!(
            gross(
                &salaried(-1, PayFrequency::Weekly, "2026-01-01"),
                start,
                end,
                None
            ),
            Err(PayrollError::NegativePay)
        );
        assert_eq!(
            gross(
                &hourly(i64::MAX, "2026-01-01"),
                start,
                end,
                Some(decimal("2"))
            ),
            Err(PayrollError::TooLarge)
        );
        // The largest salary is fine: a period's part is smaller.
        let largest = salaried(i64::MAX, PayFrequency::Weekly, "2026-01-01");
        assert!(gross(&largest, start, end, None).is_ok());
        let message = PayrollError::HoursMissing.to_string();
        assert!(message.contains("hourly employee"), "{message}");
    }

    #[test]
    fn a_rate_rule_is_rounded_once_across_the_run() {
        // Three slips of 0.10 at 5 %: 0.005 each, 0.015 for the run → 0.02,
        // split 1/1/0 (earlier slips first on equal fractions), where
        // rounding each slip would withhold 0.03.
        let rules = [rule("Tax", RuleKind::Deduction, rate("0.05"), None)];
        let inputs = [input(10, &[0]), input(10, &[0]), input(10, &[0])];
        let slips = payslips(&inputs, &rules).unwrap();
        let taken: Vec<i64> = slips.iter().map(|s| s.deductions[0]).collect();
        assert_eq!(taken, [1, 1, 0]);
        assert_eq!(slips.iter().map(|s| s.net).collect::<Vec<_>>(), [9, 9, 10]);
        check_run(&inputs, &rules, &slips);
        // The largest fractions get the units left.
        let inputs = [input(1001, &[0]), input(1009, &[0]), input(1005, &[0])];
        let slips = payslips(&inputs, &rules).unwrap();
        // Exact 50.05, 50.45, 50.25 → 150.75 → 151: 50, 51, 50.
        let taken: Vec<i64> = slips.iter().map(|s| s.deductions[0]).collect();
        assert_eq!(taken, [50, 51, 50]);
        check_run(&inputs, &rules, &slips);
    }

    #[test]
    fn deductions_and_contributions_line_up_with_their_rules() {
        let rules = [
            rule("Social security", RuleKind::Deduction, rate("0.062"), None),
            rule(
                "Employer social security",
                RuleKind::Employer,
                rate("0.062"),
                None,
            ),
            rule(
                "Health plan",
                RuleKind::Deduction,
                RuleAmount::Fixed(5000),
                None,
            ),
            rule("Pension", RuleKind::Employer, RuleAmount::Fixed(2500), None),
        ];
        let inputs = [input(230_769, &[0; 4]), input(454_545, &[0; 4])];
        let slips = payslips(&inputs, &rules).unwrap();
        // 14,307.678 and 28,181.79 → 42,489.468 → 42,489: the unit left
        // over goes to the larger fraction, 14,307 + 28,182.
        assert_eq!(slips[0].deductions, [14_307, 5000]);
        assert_eq!(slips[1].deductions, [28_182, 5000]);
        assert_eq!(slips[0].employer, [14_307, 2500]);
        assert_eq!(slips[1].employer, [28_182, 2500]);
        assert_eq!(slips[0].net, 230_769 - 14_307 - 5000);
        check_run(&inputs, &rules, &slips);
    }

    #[test]
    fn a_cap_counts_what_was_already_taken_this_year() {
        let rules = [
            rule("Capped", RuleKind::Deduction, rate("0.1"), Some(10_000)),
            rule(
                "Capped match",
                RuleKind::Employer,
                RuleAmount::Fixed(700),
                Some(1_000),
            ),
        ];
        let inputs = [
            input(50_000, &[0, 0]),
            input(50_000, &[7_000, 500]),
            input(50_000, &[12_000, 1_200]),
        ];
        let slips = payslips(&inputs, &rules).unwrap();
        let taken: Vec<i64> = slips.iter().map(|s| s.deductions[0]).collect();
        assert_eq!(taken, [5_000, 3_000, 0]);
        let matched: Vec<i64> = slips.iter().map(|s| s.employer[0]).collect();
        assert_eq!(matched, [700, 500, 0]);
        check_run(&inputs, &rules, &slips);
    }

    #[test]
    fn a_capped_deduction_stops_exactly_at_its_cap_over_a_year() {
        // Two salaried biweekly employees, 26 runs of 2026 fed forward: 6.2 %
        // capped at 3,000.00 a year (and 2,500.00 matched by the employer).
        let employees = [
            salaried(6_000_000, PayFrequency::Biweekly, "2025-06-01"),
            salaried(7_777_777, PayFrequency::Biweekly, "2025-06-01"),
        ];
        let rules = [
            rule("Capped", RuleKind::Deduction, rate("0.062"), Some(300_000)),
            rule("Match", RuleKind::Employer, rate("0.062"), Some(250_000)),
        ];
        let mut year_to_date = vec![vec![0i64; 2]; 2];
        let first = date("2026-01-05");
        let mut capped_in = [None; 2];
        for run in 0..26u64 {
            let start = first + Days::new(run * 14);
            let end = start + Days::new(13);
            let inputs: Vec<SlipInput> = employees
                .iter()
                .zip(&year_to_date)
                .map(|(employee, ytd)| SlipInput {
                    gross: gross(employee, start, end, None).unwrap(),
                    year_to_date: ytd.clone(),
                })
                .collect();
            let slips = payslips(&inputs, &rules).unwrap();
            check_run(&inputs, &rules, &slips);
            for (e, slip) in slips.iter().enumerate() {
                year_to_date[e][0] += slip.deductions[0];
                year_to_date[e][1] += slip.employer[0];
                assert!(year_to_date[e][0] <= 300_000);
                assert!(year_to_date[e][1] <= 250_000);
                if year_to_date[e][0] == 300_000 && capped_in[e].is_none() {
                    capped_in[e] = Some(run);
                }
            }
        }
        assert_eq!(year_to_date, [[300_000, 250_000], [300_000, 250_000]]);
        // 2,307.69 a run × 6.2 % = 143.08: the cap is reached in run 21 (index 20).
        assert_eq!(capped_in, [Some(20), Some(16)]);
    }

    #[test]
    fn the_cap_holds_where_a_proportional_split_would_pass_it() {
        // At 7.5 %: exact 1.2, 6.525 capped at 5, and 0.3; 6.5 for the run
        // → 7. Sharing 7 in proportion (5.38, 1.29, 0.32) would hand the
        // unit left to the capped slip, 6 > 5; it goes to the largest
        // fraction of the exact amounts instead.
        let rules = [rule("Capped", RuleKind::Deduction, rate("0.075"), Some(13))];
        let inputs = [input(16, &[0]), input(87, &[8]), input(4, &[0])];
        let slips = payslips(&inputs, &rules).unwrap();
        let taken: Vec<i64> = slips.iter().map(|s| s.deductions[0]).collect();
        assert_eq!(taken, [1, 5, 1]);
        check_run(&inputs, &rules, &slips);
    }

    #[test]
    fn net_is_never_negative() {
        let rules = [
            rule("Loan", RuleKind::Deduction, RuleAmount::Fixed(800), None),
            rule("Garnish", RuleKind::Deduction, RuleAmount::Fixed(500), None),
            rule("Tax", RuleKind::Deduction, rate("0.5"), None),
            rule("Employer", RuleKind::Employer, rate("0.1"), None),
        ];
        let inputs = [
            input(1000, &[0; 4]),
            input(2000, &[0; 4]),
            input(4000, &[0; 4]),
        ];
        let slips = payslips(&inputs, &rules).unwrap();
        // In rule order: the loan, then what is left for the garnishment,
        // then nothing for the tax; the employer's share is not withheld.
        assert_eq!(slips[0].deductions, [800, 200, 0]);
        assert_eq!(slips[0].net, 0);
        assert_eq!(slips[0].employer, [100]);
        // A rate takes at most what is left: 1,000 wanted, 700 left.
        assert_eq!(slips[1].deductions, [800, 500, 700]);
        assert_eq!(slips[1].net, 0);
        assert_eq!(slips[2].deductions, [800, 500, 2000]);
        assert_eq!(slips[2].net, 700);
        assert_eq!(slips[2].employer, [400]);
        check_run(&inputs, &rules, &slips);
    }

    #[test]
    fn a_zero_gross_slip_takes_and_costs_nothing() {
        let rules = [
            rule("Tax", RuleKind::Deduction, rate("0.2"), None),
            rule("Health", RuleKind::Deduction, RuleAmount::Fixed(5000), None),
            rule("Pension", RuleKind::Employer, RuleAmount::Fixed(2500), None),
            rule("Match", RuleKind::Employer, rate("0.05"), Some(100)),
        ];
        let inputs = [input(0, &[0; 4]), input(100_000, &[0; 4])];
        let slips = payslips(&inputs, &rules).unwrap();
        assert_eq!(
            slips[0],
            Payslip {
                gross: 0,
                deductions: vec![0, 0],
                employer: vec![0, 0],
                net: 0
            }
        );
        assert_eq!(slips[1].deductions, [20_000, 5000]);
        assert_eq!(slips[1].employer, [2500, 100]);
        check_run(&inputs, &rules, &slips);
        // An empty run, and a run without rules.
        assert_eq!(payslips(&[], &rules), Ok(vec![]));
        let bare = payslips(&[input(123, &[])], &[]).unwrap();
        assert_eq!(bare[0].net, 123);
    }

    #[test]
    fn payslips_refuse_invalid_rules_and_inputs() {
        let ok = [input(1000, &[0])];
        let one = |amount, cap| [rule("R", RuleKind::Deduction, amount, cap)];
        assert!(matches!(
            payslips(&ok, &one(rate("1.000001"), None)),
            Err(PayrollError::RateOutOfRange { .. })
        ));
        assert!(matches!(
            payslips(&ok, &one(rate("-0.1"), None)),
            Err(PayrollError::RateOutOfRange { .. })
        ));
        assert!(matches!(
            payslips(&ok, &one(rate("0.0000001"), None)),
            Err(PayrollError::RateTooPrecise { .. })
        ));
        // Trailing zeros beyond six digits lose nothing.
        assert!(payslips(&ok, &one(rate("0.06200000"), None)).is_ok());
        assert!(payslips(&ok, &one(rate("1"), None)).is_ok());
        assert!(matches!(
            payslips(&ok, &one(RuleAmount::Fixed(-1), None)),
            Err(PayrollError::NegativeFixedAmount { .. })
        ));
        assert!(matches!(
            payslips(&ok, &one(RuleAmount::Fixed(1), Some(-1))),
            Err(PayrollError::NegativeCap { .. })
        ));
        let rules = one(rate("0.1"), None);
        assert_eq!(
            payslips(&[input(1, &[0]), input(-1, &[0])], &rules),
            Err(PayrollError::NegativeGross { index: 1 })
        );
        assert_eq!(
            payslips(&[input(1, &[])], &rules),
            Err(PayrollError::YearToDateMismatch {
                index: 0,
                expected: 1,
                found: 0
            })
        );
        assert_eq!(
            payslips(&[input(1, &[-5])], &rules),
            Err(PayrollError::NegativeYearToDate {
                index: 0,
                rule: "R".to_owned()
            })
        );
        let huge = [input(i64::MAX, &[0]), input(i64::MAX, &[0])];
        assert_eq!(payslips(&huge, &rules), Err(PayrollError::TooLarge));
        let message = payslips(&ok, &one(rate("1.5"), None))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("1.5") && message.contains("\"R\""),
            "{message}"
        );
    }

    fn rule_strategy() -> impl Strategy<Value = Rule> {
        let rate = (0u32..=RATE_DIGITS)
            .prop_flat_map(|scale| (0i128..=10i128.pow(scale), Just(scale)))
            .prop_map(|(mantissa, scale)| RuleAmount::Rate(Decimal { mantissa, scale }));
        let fixed = prop_oneof![0i64..1_000, 0i64..1_000_000].prop_map(RuleAmount::Fixed);
        (
            any::<bool>(),
            prop_oneof![rate, fixed],
            // Small caps bind often, which is where rounding could pass them.
            proptest::option::of(prop_oneof![0i64..100, 0i64..3_000_000]),
        )
            .prop_map(|(deduction, amount, annual_cap)| Rule {
                name: "rule".to_owned(),
                kind: if deduction {
                    RuleKind::Deduction
                } else {
                    RuleKind::Employer
                },
                amount,
                annual_cap,
            })
    }

    fn run_strategy() -> impl Strategy<Value = (Vec<Rule>, Vec<SlipInput>)> {
        proptest::collection::vec(rule_strategy(), 0..6).prop_flat_map(|rules| {
            let n = rules.len();
            let gross = prop_oneof![
                Just(0i64),
                0i64..100,
                0i64..10_000,
                0i64..10_000_000,
                0i64..1 << 50
            ];
            let year_to_date = prop_oneof![Just(0i64), 0i64..100, 0i64..3_000_000];
            let slip = (gross, proptest::collection::vec(year_to_date, n)).prop_map(
                |(gross, year_to_date)| SlipInput {
                    gross,
                    year_to_date,
                },
            );
            (Just(rules), proptest::collection::vec(slip, 0..12))
        })
    }

    /// One capped rate rule over slips that are either far from the cap
    /// (nothing taken yet) or close to it: the mix where a run's rounding
    /// could push a capped slip over its cap.
    fn near_cap_strategy() -> impl Strategy<Value = (Vec<Rule>, Vec<SlipInput>)> {
        (1i128..=1_000_000, 0i64..5_000).prop_flat_map(|(rate, cap)| {
            let gross = prop_oneof![0i64..100, 0i64..10_000];
            let year_to_date =
                prop_oneof![Just(0i64), (0i64..50).prop_map(move |k| (cap - k).max(0))];
            let slip = (gross, year_to_date).prop_map(|(gross, ytd)| input(gross, &[ytd]));
            let amount = RuleAmount::Rate(Decimal {
                mantissa: rate,
                scale: RATE_DIGITS,
            });
            let rules = vec![rule("Capped", RuleKind::Deduction, amount, Some(cap))];
            (Just(rules), proptest::collection::vec(slip, 2..9))
        })
    }

    fn day(offset: i64) -> NaiveDate {
        date("2000-01-01") + TimeDelta::days(offset)
    }

    proptest! {
        /// Any run: the parts add up to each rule's line, every amount is
        /// within a unit of its exact amount and within its cap, and net
        /// pay is gross minus deductions, never negative.
        #[test]
        fn parts_always_add_up((rules, inputs) in run_strategy()) {
            let slips = payslips(&inputs, &rules).unwrap();
            check_run(&inputs, &rules, &slips);
        }

        /// Fed forward over 26 runs, a capped deduction reaches its cap
        /// exactly and never passes it, whatever each run's gross.
        #[test]
        fn a_cap_stops_exactly_across_runs(
            grosses in proptest::collection::vec(
                proptest::collection::vec(100_000i64..1_000_000, 3), 26),
            per_million in 10_000i128..=100_000,
            cap in 0i64..=20_000,
            start in proptest::collection::vec(0i64..=20_000, 3),
        ) {
            let rules = [
                rule("Capped", RuleKind::Deduction,
                     RuleAmount::Rate(Decimal { mantissa: per_million, scale: 6 }), Some(cap)),
            ];
            let mut year_to_date = start.clone();
            for run in &grosses {
                let inputs: Vec<SlipInput> = run
                    .iter()
                    .zip(&year_to_date)
                    .map(|(gross, ytd)| input(*gross, &[*ytd]))
                    .collect();
                let slips = payslips(&inputs, &rules).unwrap();
                check_run(&inputs, &rules, &slips);
                for (e, slip) in slips.iter().enumerate() {
                    year_to_date[e] += slip.deductions[0];
                    prop_assert!(year_to_date[e] <= cap.max(start[e]));
                }
            }
            // At least 1,000.00 × 1 % a run: every cap is reached.
            for (e, ytd) in year_to_date.iter().enumerate() {
                prop_assert_eq!(*ytd, cap.max(start[e]));
            }
        }

        /// `working_days` agrees with counting day by day, weekends and
        /// reversed ranges included, from the year -190 to the year 4190.
        #[test]
        fn working_days_match_a_day_loop(from in -800_000i64..800_000, length in -10i64..800) {
            let (from, to) = (day(from), day(from + length));
            let mut naive = 0;
            let mut d = from;
            while d <= to {
                if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                    naive += 1;
                }
                d = d.succ_opt().unwrap();
            }
            prop_assert_eq!(working_days(from, to), naive);
        }

        /// One employee leaving on any day and another starting the next
        /// day share the period's salary to within a unit; neither earns
        /// more than the full period; a full period earns annual / periods.
        #[test]
        fn proration_splits_a_period(
            annual in 0i64..100_000_000_000,
            frequency in prop_oneof![
                Just(PayFrequency::Weekly),
                Just(PayFrequency::Biweekly),
                Just(PayFrequency::Semimonthly),
                Just(PayFrequency::Monthly),
            ],
            start in 0i64..20_000,
            length in 4i64..31,
            split in 0i64..31,
        ) {
            let (period_start, period_end) = (day(start), day(start + length));
            let split = day(start + split.min(length));
            let whole = Employee {
                pay: Pay::Salary { annual },
                frequency,
                start_date: day(start - 100),
                end_date: None,
            };
            let full = gross(&whole, period_start, period_end, None).unwrap();
            let periods = frequency.periods_per_year();
            prop_assert_eq!(
                i128::from(full),
                div_round_half_up(i128::from(annual), i128::from(periods))
            );
            let leaver = Employee { end_date: Some(split), ..whole };
            let joiner = Employee { start_date: split.succ_opt().unwrap(), ..whole };
            let before = gross(&leaver, period_start, period_end, None).unwrap();
            let after = gross(&joiner, period_start, period_end, None).unwrap();
            prop_assert!((0..=full).contains(&before) && (0..=full).contains(&after));
            prop_assert!((before + after - full).abs() <= 1, "{} + {} vs {}", before, after, full);
        }
    }

    proptest! {
        // Where a proportional split would pass a cap is rare even here
        // (about 1 run in 150): look often.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Runs near a cap: every amount stays within a unit of its exact
        /// amount and within its cap.
        #[test]
        fn runs_near_a_cap_stay_within_it((rules, inputs) in near_cap_strategy()) {
            let slips = payslips(&inputs, &rules).unwrap();
            check_run(&inputs, &rules, &slips);
        }
    }
}
