//! Reports asked for as jobs (contract section 7): the request is checked
//! and recorded with its job in one transaction; the job computes the
//! report and stores it, as JSON or as CSV (see [`csv`]), to
//! be fetched by id.

pub mod cash_flow;
mod csv;

pub use cash_flow::{CashAccountLine, CashFlowLine, CashFlowStatement, CashFlowTotals, cash_flow};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::Database;
use crate::db::sql::{in_scope, on_pool};
use crate::events::{self, NewEvent};
use crate::idempotency::{self, IdempotencyKey};
use crate::jobs::store::rfc3339;
use crate::jobs::{JobFailure, NewJob, Queue, insert_job, now_ms};
use crate::ledger::{LedgerError, LedgerResult, RenderRecord, parse_date};
use crate::organization::OrganizationId;

/// The kind of the job that computes a report.
pub const JOB_KIND: &str = "report";
/// The queue of reports asked for as jobs.
pub const QUEUE: Queue = Queue::new("report-generation");

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReportName {
    /// `GET /api/reports/trial-balance`.
    TrialBalance,
    /// `GET /api/reports/balance-sheet`.
    BalanceSheet,
    /// `GET /api/reports/income-statement`.
    IncomeStatement,
    /// `GET /api/reports/general-ledger`.
    GeneralLedger,
    /// `GET /api/reports/ar-aging`.
    ArAging,
    /// `GET /api/reports/cash-flow`.
    CashFlow,
}

/// The stored form of a result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultFormat {
    /// The report's JSON, as its route answers it.
    #[default]
    Json,
    /// A CSV table a spreadsheet opens.
    Csv,
}

impl ResultFormat {
    fn as_str(self) -> &'static str {
        match self {
            ResultFormat::Json => "json",
            ResultFormat::Csv => "csv",
        }
    }

    /// The media type of a result in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ResultFormat::Json => "application/json",
            ResultFormat::Csv => "text/csv; charset=utf-8; header=present",
        }
    }
}

/// `POST /api/report-jobs`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReportJob {
    /// Which report.
    pub report: ReportName,
    /// The report's query, as its route takes it: `as_of` (trial balance,
    /// balance sheet, AR aging; default today, UTC, fixed when asked),
    /// `from` and `to` (income statement, cash flow, general ledger), `account`
    /// (general ledger).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, Value>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    pub format: ResultFormat,
}

/// A report's query, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "kebab-case")]
pub enum ReportQuery {
    /// Balances at the end of a day.
    TrialBalance {
        /// The day.
        as_of: NaiveDate,
    },
    /// The balance sheet at the end of a day.
    BalanceSheet {
        /// The day.
        as_of: NaiveDate,
    },
    /// Revenue and expenses of a period.
    IncomeStatement {
        /// Inclusive.
        from: NaiveDate,
        /// Inclusive.
        to: NaiveDate,
    },
    /// One account's postings.
    GeneralLedger {
        /// The account's code.
        account: String,
        /// Inclusive.
        from: NaiveDate,
        /// Inclusive.
        to: NaiveDate,
    },
    /// Receivables by days past due.
    ArAging {
        /// The day.
        as_of: NaiveDate,
    },
    /// Cash in and out of a period, by counterpart.
    CashFlow {
        /// Inclusive.
        from: NaiveDate,
        /// Inclusive.
        to: NaiveDate,
    },
}

impl NewReportJob {
    /// The checked query (`422` for a missing, unknown or malformed
    /// parameter); a missing `as_of` is today (UTC).
    pub fn query(&self) -> LedgerResult<ReportQuery> {
        let allowed: &[&str] = match self.report {
            ReportName::TrialBalance | ReportName::BalanceSheet | ReportName::ArAging => &["as_of"],
            ReportName::IncomeStatement | ReportName::CashFlow => &["from", "to"],
            ReportName::GeneralLedger => &["account", "from", "to"],
        };
        if let Some(unknown) = self.params.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(LedgerError::invalid(
                "INVALID_FIELD",
                format!(
                    "This report takes no parameter {:?}; it takes {}.",
                    unknown.chars().take(64).collect::<String>(),
                    allowed.join(", ")
                ),
            ));
        }
        let text = |name: &str| -> LedgerResult<Option<&str>> {
            match self.params.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text)),
                Some(_) => Err(LedgerError::invalid(
                    "INVALID_FIELD",
                    format!("The parameter {name} is a string."),
                )),
            }
        };
        let required = |name: &str| -> LedgerResult<&str> {
            text(name)?.ok_or_else(|| {
                LedgerError::invalid("INVALID_FIELD", format!("This report needs {name}."))
            })
        };
        let as_of = || -> LedgerResult<NaiveDate> {
            text("as_of")?.map_or_else(|| Ok(chrono::Utc::now().date_naive()), parse_date)
        };
        Ok(match self.report {
            ReportName::TrialBalance => ReportQuery::TrialBalance { as_of: as_of()? },
            ReportName::BalanceSheet => ReportQuery::BalanceSheet { as_of: as_of()? },
            ReportName::ArAging => ReportQuery::ArAging { as_of: as_of()? },
            ReportName::IncomeStatement => ReportQuery::IncomeStatement {
                from: parse_date(required("from")?)?,
                to: parse_date(required("to")?)?,
            },
            ReportName::CashFlow => ReportQuery::CashFlow {
                from: parse_date(required("from")?)?,
                to: parse_date(required("to")?)?,
            },
            ReportName::GeneralLedger => ReportQuery::GeneralLedger {
                account: required("account")?.to_owned(),
                from: parse_date(required("from")?)?,
                to: parse_date(required("to")?)?,
            },
        })
    }
}

/// A report job as `GET /api/report-jobs/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReportJob {
    /// The report job's id.
    pub id: i64,
    /// The id of the job that computes it.
    pub job_id: i64,
    /// Which report.
    pub report: ReportName,
    /// The query, as checked (today filled in).
    #[schema(value_type = Object)]
    pub params: Value,
    /// `json` or `csv`.
    pub format: ResultFormat,
    /// The job's status; the result exists once it is `succeeded`.
    pub status: crate::jobs::JobStatus,
    /// RFC 3339.
    pub created_at: String,
    /// When the result was stored (RFC 3339), or null.
    pub finished_at: Option<String>,
}

impl ReportName {
    /// The report's name, as its route and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportName::TrialBalance => "trial-balance",
            ReportName::BalanceSheet => "balance-sheet",
            ReportName::IncomeStatement => "income-statement",
            ReportName::GeneralLedger => "general-ledger",
            ReportName::ArAging => "ar-aging",
            ReportName::CashFlow => "cash-flow",
        }
    }

    fn parse(name: &str) -> Option<ReportName> {
        [
            ReportName::TrialBalance,
            ReportName::BalanceSheet,
            ReportName::IncomeStatement,
            ReportName::GeneralLedger,
            ReportName::ArAging,
            ReportName::CashFlow,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }
}

/// What bounds the report results one organization keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Storage {
    /// `REPORT_STORAGE_PER_ORGANIZATION_BYTES`.
    pub quota: u64,
    /// `RETENTION_DAYS`: when stored results expire.
    pub retention_days: u32,
}

impl Storage {
    fn exceeded(&self, stored: u64) -> LedgerError {
        LedgerError::invalid(
            "REPORT_QUOTA_EXCEEDED",
            format!(
                "This organization's stored report results would take {stored} bytes, beyond \
                 its quota of {} bytes (REPORT_STORAGE_PER_ORGANIZATION_BYTES). Results are \
                 freed as they expire, {} days after they were made (RETENTION_DAYS); ask \
                 again then, or ask for a smaller report.",
                self.quota, self.retention_days
            ),
        )
    }
}

/// The bytes of the report results `organization` keeps stored.
pub async fn stored_bytes(db: &Database, organization: &OrganizationId) -> LedgerResult<u64> {
    let owned = organization.to_owned();
    let bytes: i64 = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(result_bytes), 0) AS BIGINT) FROM report_jobs \
                     WHERE organization_id = $1 AND result_bytes > 0",
                )
                .bind(&owned)
                .fetch_one(&mut *tx)
                .await?
            }))
        })
        .await?;
    Ok(bytes.unsigned_abs())
}

/// Records a report job and its job in one transaction. With
/// `idempotency`, the rendered answer is stored in the same transaction.
/// Refused (`422 REPORT_QUOTA_EXCEEDED`) when the organization's stored
/// results already reach `storage`'s quota.
pub async fn create_report_job(
    db: &Database,
    organization: &OrganizationId,
    new: &NewReportJob,
    storage: Storage,
    idempotency: Option<(&IdempotencyKey, RenderRecord<'_, ReportJob>)>,
) -> LedgerResult<ReportJob> {
    let query = new.query()?;
    // Read outside the write's transaction: two requests at once may both
    // pass, which the job's own check before storing catches.
    let stored = stored_bytes(db, organization).await?;
    if stored >= storage.quota {
        return Err(storage.exceeded(stored));
    }
    let params = serde_json::to_value(&query).unwrap_or_default();
    let owned = organization.to_owned();
    let (report, format) = (new.report, new.format);
    let now = now_ms();
    db.run(|pool| async move {
        let created: Result<ReportJob, sqlx::Error> = async {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                let job = NewJob {
                    queue: QUEUE,
                    kind: JOB_KIND,
                    unique_key: format!("report:{}", uuid::Uuid::new_v4()),
                    payload: Value::Null,
                };
                let job_id = insert_job!(tx, &owned, &job, now)?;
                let id = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO report_jobs (organization_id, job_id, report, params, format, \
                     created_ms) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(&owned)
                .bind(job_id)
                .bind(report.as_str())
                .bind(params.to_string())
                .bind(format.as_str())
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let created = ReportJob {
                    id,
                    job_id,
                    report,
                    params: shown_params(&params.to_string()),
                    format,
                    status: crate::jobs::JobStatus::Pending,
                    created_at: rfc3339(now),
                    finished_at: None,
                };
                if let Some((key, render)) = idempotency {
                    let (status, body) = render(&created);
                    idempotency::store_answer!(&mut *tx, key, status, body)?;
                }
                created
            }))
        }
        .await;
        idempotency::settle(created)
    })
    .await?
}

/// The stored query as the API shows it: it names its report, which the
/// job says once.
fn shown_params(stored: &str) -> Value {
    match serde_json::from_str::<Value>(stored) {
        Ok(Value::Object(mut fields)) => {
            fields.remove("report");
            Value::Object(fields)
        }
        _ => Value::Object(serde_json::Map::new()),
    }
}

type Row = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    i32,
    i64,
    Option<i64>,
);

const SELECT: &str = "SELECT r.id, r.job_id, r.report, r.params, r.format, j.status, j.attempts, \
     r.created_ms, r.finished_ms FROM report_jobs r JOIN jobs j ON j.id = r.job_id \
     WHERE r.organization_id = $1 AND r.id = $2";

/// A report job of the organization.
pub async fn get_report_job(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
) -> LedgerResult<ReportJob> {
    let organization = organization.to_owned();
    let row: Option<Row> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as(SELECT)
                    .bind(&organization)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
            }))
        })
        .await?;
    row.map(shown).ok_or_else(no_such_report_job)
}

/// A report job's row as the API shows it.
fn shown(row: Row) -> ReportJob {
    let (id, job_id, report, params, format, status, _, created, finished) = row;
    ReportJob {
        id,
        job_id,
        report: ReportName::parse(&report).unwrap_or(ReportName::TrialBalance),
        params: shown_params(&params),
        format: if format == "csv" {
            ResultFormat::Csv
        } else {
            ResultFormat::Json
        },
        status: crate::jobs::JobStatus::parse(&status).unwrap_or(crate::jobs::JobStatus::Pending),
        created_at: rfc3339(created),
        finished_at: finished.map(rfc3339),
    }
}

fn no_such_report_job() -> LedgerError {
    LedgerError::NotFound("There is no such report job.".to_owned())
}

/// The stored result of a report job, with its format: `409
/// REPORT_NOT_READY` until the job has stored it, `410 REPORT_EXPIRED` once
/// it is purged (`retention_days` after it was made).
pub async fn report_result(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
    retention_days: u32,
) -> LedgerResult<(ResultFormat, String)> {
    let job = get_report_job(db, organization, id).await?;
    let organization = organization.to_owned();
    let result: Option<(Option<String>, Option<i64>)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as(
                    "SELECT result, expired_ms FROM report_jobs \
                     WHERE organization_id = $1 AND id = $2",
                )
                .bind(&organization)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
            }))
        })
        .await?;
    match result.unwrap_or((None, None)) {
        (Some(text), _) => Ok((job.format, text)),
        (None, Some(_)) => Err(LedgerError::Gone {
            code: "REPORT_EXPIRED",
            message: format!(
                "The result of this report job expired: results are kept {retention_days} \
                 days (RETENTION_DAYS). Ask for the report again with POST /api/report-jobs."
            ),
        }),
        (None, None) => Err(LedgerError::Conflict {
            code: "REPORT_NOT_READY",
            message: format!(
                "The report is not ready yet (its job is {}); retry when GET \
                 /api/report-jobs/{id} shows it finished.",
                job.status.as_str()
            ),
        }),
    }
}

/// The job of a report: computes it from `source` (the primary, or the
/// standby reports read from) and stores the result in `db` (once: a second
/// run finds it stored).
/// A result that would take the organization's stored results beyond
/// `storage`'s quota is not stored: the job is dead with
/// `REPORT_QUOTA_EXCEEDED`.
pub async fn generate(
    db: &Database,
    source: &Database,
    organization: &OrganizationId,
    job_id: i64,
    storage: Storage,
) -> Result<(), JobFailure> {
    let owned = organization.to_owned();
    let row: Option<(i64, String, String, Option<String>)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_as(
                    "SELECT id, params, format, result FROM report_jobs \
                     WHERE organization_id = $1 AND job_id = $2",
                )
                .bind(&owned)
                .bind(job_id)
                .fetch_optional(&mut *tx)
                .await?
            }))
        })
        .await?;
    let (id, params, format, result) = row.ok_or(JobFailure::permanent("NOT_FOUND"))?;
    if result.is_some() {
        return Ok(());
    }
    let query: ReportQuery =
        serde_json::from_str(&params).map_err(|_| JobFailure::permanent("INVALID_JOB_PAYLOAD"))?;
    let csv = format == "csv";
    let text = render(source, organization, &query, csv).await?;
    let bytes = u64::try_from(text.len()).unwrap_or(u64::MAX);
    let stored = stored_bytes(db, organization).await?;
    if stored.saturating_add(bytes) > storage.quota {
        tracing::info!(
            organization = %organization,
            job = job_id,
            bytes,
            stored,
            quota = storage.quota,
            "a report result was not stored: beyond the organization's quota"
        );
        return Err(JobFailure::permanent("REPORT_QUOTA_EXCEEDED"));
    }
    let owned = organization.to_owned();
    let finished = now_ms();
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &owned, tx => {
            let stored = sqlx::query(
                "UPDATE report_jobs SET result = $1, finished_ms = $2, result_bytes = $3 \
                 WHERE organization_id = $4 AND id = $5 AND result IS NULL",
            )
            .bind(&text)
            .bind(finished)
            .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
            .bind(&owned)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            // Once: a run of the job again (its ending lost) stores nothing.
            if stored.rows_affected() == 1 {
                let row: Row = sqlx::query_as(SELECT)
                    .bind(&owned)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let ready = NewEvent::new(events::REPORT_READY, &shown(row));
                events::write((&mut *tx).into(), &[(owned.as_str(), &ready)], finished).await?;
            }
        }))
    })
    .await?;
    Ok(())
}

/// Computes a report and renders it.
async fn render(
    db: &Database,
    organization: &OrganizationId,
    query: &ReportQuery,
    csv: bool,
) -> LedgerResult<String> {
    let report: Box<dyn erased::Report> = match query {
        ReportQuery::TrialBalance { as_of } => {
            Box::new(crate::ledger::trial_balance(db, organization, *as_of).await?)
        }
        ReportQuery::BalanceSheet { as_of } => {
            Box::new(crate::ledger::balance_sheet(db, organization, *as_of).await?)
        }
        ReportQuery::IncomeStatement { from, to } => {
            Box::new(crate::ledger::income_statement(db, organization, *from, *to).await?)
        }
        ReportQuery::GeneralLedger { account, from, to } => {
            Box::new(whole_general_ledger(db, organization, account, *from, *to).await?)
        }
        ReportQuery::ArAging { as_of } => {
            Box::new(crate::invoicing::ar_aging(db, organization, *as_of).await?)
        }
        ReportQuery::CashFlow { from, to } => {
            Box::new(cash_flow(db, organization, *from, *to).await?)
        }
    };
    if !csv {
        return Ok(report.json());
    }
    let value: Value = serde_json::from_str(&report.json()).unwrap_or_default();
    Ok(csv::to_csv(query, &value))
}

/// The general ledger of a report job: the API's pages, joined up to
/// [`GENERAL_LEDGER_LIMIT`](crate::ledger::reports::GENERAL_LEDGER_LIMIT) rows
/// (`truncated` beyond), so the job holds no more than it did before the
/// API paged.
async fn whole_general_ledger(
    db: &Database,
    organization: &OrganizationId,
    account: &str,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> LedgerResult<crate::ledger::GeneralLedger> {
    use crate::paging::{Limit, PageRequest};
    let mut request = PageRequest {
        limit: Limit::MAX,
        after: None,
    };
    let first =
        crate::ledger::general_ledger(db, organization, account, from, to, &request).await?;
    let mut report = first.items;
    let mut next = first.next;
    while let Some(cursor) = next.take() {
        if report.rows.len() as i64 >= crate::ledger::reports::GENERAL_LEDGER_LIMIT {
            report.truncated = true;
            break;
        }
        request.after = Some(crate::paging::Cursor::key(cursor.as_str())?);
        let page =
            crate::ledger::general_ledger(db, organization, account, from, to, &request).await?;
        report.rows.extend(page.items.rows);
        report.closing_balance = page.items.closing_balance;
        report.truncated = page.items.truncated;
        next = page.next;
    }
    Ok(report)
}

mod erased {
    /// A report that serializes.
    pub(super) trait Report: Send {
        fn json(&self) -> String;
    }

    impl<T: serde::Serialize + Send> Report for T {
        fn json(&self) -> String {
            serde_json::to_string(self).expect("reports serialize")
        }
    }
}

/// The database reports read from: the standby (`DATABASE_REPORTS_URL`)
/// while it is available and not lagging, else the primary.
pub(crate) fn source<'a>(primary: &'a Database, standby: Option<&'a Database>) -> &'a Database {
    match standby {
        Some(standby) if standby.is_available() => standby,
        _ => primary,
    }
}

/// Registers the report's job: it reads from the `standby` while it is
/// available, stores in the primary, within `storage`.
pub(crate) fn register(
    registry: &mut crate::jobs::JobRegistry,
    standby: Option<Database>,
    storage: Storage,
) {
    fn run<'a>(
        (standby, storage): &'a (Option<Database>, Storage),
        env: &'a crate::jobs::JobEnv,
        job: &'a crate::jobs::JobContext,
    ) -> futures::future::BoxFuture<'a, Result<(), JobFailure>> {
        let db = env.database();
        Box::pin(generate(
            db,
            source(db, standby.as_ref()),
            &job.organization,
            job.id,
            *storage,
        ))
    }
    registry.kind(
        JOB_KIND,
        QUEUE,
        crate::jobs::with_state((standby, storage), run),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_are_checked_when_asked() {
        let new = |report, params: Value| NewReportJob {
            report,
            params: params.as_object().unwrap().clone(),
            format: ResultFormat::Csv,
        };
        assert!(new(ReportName::TrialBalance, json!({})).query().is_ok());
        assert!(
            new(ReportName::TrialBalance, json!({"from": "2026-01-01"}))
                .query()
                .is_err()
        );
        assert!(
            new(ReportName::IncomeStatement, json!({"from": "2026-01-01"}))
                .query()
                .is_err()
        );
        assert!(
            new(
                ReportName::GeneralLedger,
                json!({"account": 1000, "from": "2026-01-01", "to": "2026-01-31"})
            )
            .query()
            .is_err()
        );
        assert_eq!(
            new(
                ReportName::IncomeStatement,
                json!({"from": "2026-01-01", "to": "2026-01-31"})
            )
            .query()
            .unwrap(),
            ReportQuery::IncomeStatement {
                from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                to: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
            }
        );
    }
}
