//! Pay runs: asked for (checked against overlapping runs and the bounds),
//! then worked by the `payroll-run` job, which computes the payslips with
//! the year to date and posts one balanced entry with the run (the `posted`
//! guard).

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};

use super::calc::{Rule, RuleKind, SlipInput};
use super::*;
use crate::db::sql::{BeginScoped, Connection, List, in_list, in_scope, on_pool};
use crate::db::{Database, Pool};
use crate::events::{self, NewEvent};
use crate::idempotency::{self, IdempotencyKey};
use crate::jobs::{JobFailure, NewJob, insert_job, now_ms};
use crate::ledger::accounts::accounts_for_posting;
use crate::ledger::{
    Bind, Effect, EffectTx, Guard, GuardedUpdate, Ledger, LedgerError, LedgerResult, RenderRecord,
    parse_date,
};
use crate::money;
use crate::organization::OrganizationId;
use futures::future::BoxFuture;

/// Asks for a pay run of every employee employed in the period: checked
/// now, recorded with its job in one transaction. With `idempotency`, the
/// rendered answer is stored in the same transaction.
pub async fn create_run(
    ledger: &Ledger,
    organization: &OrganizationId,
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
    // Posted later by a job: a locked pay date is refused now, not then.
    crate::ledger::ensure_open(ledger.database(), organization, pay_date).await?;
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
                // NO KEY UPDATE: it excludes itself, not the foreign-key
                // checks (KEY SHARE) of postings (see ledger::periods).
                Pool::Postgres(_) => "SELECT id FROM organizations WHERE id = $1 FOR NO KEY UPDATE",
                Pool::Sqlite(_) => "SELECT id FROM organizations WHERE id = $1",
            };
            let overlap = format!(
                "SELECT r.id FROM payroll_runs r JOIN payroll_run_employees e ON e.run_id = r.id \
                 WHERE r.organization_id = $1 AND r.period_start <= $2 AND r.period_end >= $3 \
                 AND {} LIMIT 1",
                in_list(&pool, "e.employee_id", 4)
            );
            on_pool!(pool, p => {
                // It reads, then writes: on SQLite the write lock is taken
                // up front, or a write committed in between (another
                // request's, a job's) fails it with `database is locked`.
                let mut tx = p.begin_writing_for(&owned).await?;
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
                    queue: QUEUE,
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
                        return idempotency::settle::<PayrollRun, LedgerError>(Err(err));
                    }
                }
                tx.commit().await?;
                Ok(Ok(created))
            })
        })
        .await?;
    created
}

pub(super) type RunRow = (
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

/// The query of one pay run: `$1` the organization, `$2` the run.
const SELECT_RUN: &str = "SELECT r.id, r.job_id, r.status, r.period_start, r.period_end, r.pay_date, \
     r.payslips, r.entry_id, j.status, r.inputs FROM payroll_runs r \
     JOIN jobs j ON j.id = r.job_id WHERE r.organization_id = $1 AND r.id = $2";

/// A pay run of the organization.
pub async fn get_run(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
) -> LedgerResult<PayrollRun> {
    let owned = organization.to_owned();
    let row: Option<RunRow> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(SELECT_RUN)
                    .bind(&owned)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
            }))
        })
        .await?;
    row.map(shown)
        .ok_or_else(|| LedgerError::NotFound("There is no such pay run.".to_owned()))
}

/// A pay run's row as the API shows it.
fn shown(row: RunRow) -> PayrollRun {
    let (id, job_id, status, period_start, period_end, pay_date, payslips, entry_id, job, _) = row;
    PayrollRun {
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
    }
}

/// Emits `payroll_run.posted` with the run as its posting left it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Announce {
    run_id: i64,
}

impl Effect for Announce {
    fn apply<'a>(&'a self, tx: &'a mut EffectTx<'_>) -> BoxFuture<'a, Result<Guard, sqlx::Error>> {
        Box::pin(async move {
            let organization = tx.organization().as_str().to_owned();
            let row: RunRow = match tx.connection() {
                Connection::Postgres(conn) => {
                    sqlx::query_as(SELECT_RUN)
                        .bind(&organization)
                        .bind(self.run_id)
                        .fetch_one(conn)
                        .await?
                }
                Connection::Sqlite(conn) => {
                    sqlx::query_as(SELECT_RUN)
                        .bind(&organization)
                        .bind(self.run_id)
                        .fetch_one(conn)
                        .await?
                }
            };
            tx.emit(NewEvent::new(events::PAYROLL_RUN_POSTED, &shown(row)));
            Ok(Guard::Held)
        })
    }
}

/// What posted runs of the same calendar year already took, per employee
/// and rule name.
pub(super) async fn year_to_date(
    db: &Database,
    organization: &OrganizationId,
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

/// A pending pay run is posted by the posting's entry, with its payslips
/// (as stored, JSON): only one posting can take it from `pending`.
pub(super) fn posted(run_id: i64, payslips: String) -> GuardedUpdate {
    GuardedUpdate::new(
        "UPDATE payroll_runs SET status = 'posted', entry_id = $1, payslips = $2 \
         WHERE id = $3 AND organization_id = $4 AND status = 'pending'",
        vec![
            Bind::EntryId,
            Bind::Text(payslips),
            Bind::I64(run_id),
            Bind::Organization,
        ],
    )
}

/// The job of a pay run: computes the payslips and posts the run's entry,
/// once.
pub async fn process(
    ledger: &Ledger,
    organization: &OrganizationId,
    job_id: i64,
) -> Result<(), JobFailure> {
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
            vec![
                Box::new(posted(run, payslips)),
                Box::new(Announce { run_id: run }),
            ],
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
