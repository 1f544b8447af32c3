//! Routes of reporting: the reports, and reports asked for as jobs.

use chrono::NaiveDate;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{ApiError, Request, Response, Route, answer_response, json_response};
use crate::app::AccuBooks;
use crate::deps::DATABASE;
use crate::ledger;
use crate::reporting::{NewReportJob, ReportJob};

pub(crate) fn routes() -> Vec<Route> {
    let mut routes = report_routes();
    routes.extend(report_job_routes());
    routes
}

fn report_routes() -> Vec<Route> {
    vec![
        Route::read("/api/reports/trial-balance", trial_balance)
            .summary("Every account's debit or credit balance at the end of a day")
            .query_date("as_of", "Default today (UTC)", false)
            .returns::<ledger::TrialBalance>(200),
        Route::read("/api/reports/balance-sheet", balance_sheet)
            .summary("Assets, liabilities and equity, with current earnings")
            .query_date("as_of", "Default today (UTC)", false)
            .returns::<ledger::BalanceSheet>(200),
        Route::read("/api/reports/income-statement", income_statement)
            .summary("Revenue and expenses of a period")
            .query_date("from", "Inclusive", true)
            .query_date("to", "Inclusive", true)
            .returns::<ledger::IncomeStatement>(200),
        Route::read("/api/reports/cash-flow", cash_flow)
            .summary(
                "Cash in and out of a period by counterpart account (direct method): cash \
                 accounts are 1000, the accounts linked bank accounts post to, and their \
                 descendants; opening cash + net change = closing cash",
            )
            .query_date("from", "Inclusive", true)
            .query_date("to", "Inclusive", true)
            .returns::<crate::reporting::CashFlowStatement>(200),
        Route::read("/api/reports/general-ledger", general_ledger)
            .summary(
                "One account's postings with running balances, a page of rows at a time \
                 (truncated is true while the Link header names a next page)",
            )
            .query("account", "The account's code", true)
            .query_date("from", "Inclusive", true)
            .query_date("to", "Inclusive", true)
            .paged()
            .returns::<ledger::GeneralLedger>(200)
            .answers(404, "No account with this code in the organization"),
    ]
}

pub(crate) fn query<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    serde_urlencoded::from_str(request.parts.uri.query().unwrap_or(""))
        .map_err(|err| ApiError::invalid("INVALID_QUERY", format!("Invalid query string: {err}.")))
}

/// An optional date of a query: `None` when absent (the use case then
/// takes today), `422 INVALID_DATE` when not `YYYY-MM-DD`.
pub(crate) fn optional_date(text: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    Ok(text.map(ledger::parse_date).transpose()?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AsOf {
    as_of: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Period {
    from: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerQuery {
    account: String,
    from: String,
    to: String,
}

async fn trial_balance(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let q: AsOf = query(&request)?;
    let as_of = optional_date(q.as_of.as_deref())?;
    let report = app
        .books()
        .trial_balance(&request.principal()?, as_of)
        .await?;
    Ok(json_response(StatusCode::OK, &report))
}

async fn balance_sheet(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let q: AsOf = query(&request)?;
    let as_of = optional_date(q.as_of.as_deref())?;
    let report = app
        .books()
        .balance_sheet(&request.principal()?, as_of)
        .await?;
    Ok(json_response(StatusCode::OK, &report))
}

async fn income_statement(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let q: Period = query(&request)?;
    let (from, to) = (ledger::parse_date(&q.from)?, ledger::parse_date(&q.to)?);
    let books = app.books();
    let report = books
        .income_statement(&request.principal()?, from, to)
        .await?;
    Ok(json_response(StatusCode::OK, &report))
}

async fn cash_flow(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let q: Period = query(&request)?;
    let (from, to) = (ledger::parse_date(&q.from)?, ledger::parse_date(&q.to)?);
    let report = app
        .books()
        .cash_flow(&request.principal()?, from, to)
        .await?;
    Ok(json_response(StatusCode::OK, &report))
}

async fn general_ledger(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, q): (_, LedgerQuery) = super::list_query(&request)?;
    let (from, to) = (ledger::parse_date(&q.from)?, ledger::parse_date(&q.to)?);
    let books = app.books();
    let report = books
        .general_ledger(&request.principal()?, &q.account, from, to, page)
        .await?;
    Ok(super::page_response(&request, &report))
}

fn report_job_routes() -> Vec<Route> {
    vec![
        Route::new(Method::POST, "/api/report-jobs", create_report_job)
            .needs(DATABASE)
            .idempotent()
            .summary("Ask for a report as a job (report-generation queue), in JSON or CSV")
            .body::<NewReportJob>()
            .returns::<ReportJob>(202)
            .answers(
                422,
                "The organization's stored report results reach \
                 REPORT_STORAGE_PER_ORGANIZATION_BYTES (REPORT_QUOTA_EXCEEDED); results are \
                 freed as they expire after RETENTION_DAYS. A job whose result would go \
                 beyond the quota ends dead with the same code, storing nothing",
            ),
        Route::read("/api/report-jobs/{id}", get_report_job)
            .summary("A report job and its status")
            .returns::<ReportJob>(200),
        Route::read("/api/report-jobs/{id}/result", report_result)
            .summary(
                "The stored result: the report's JSON, or a CSV table (RFC 4180) whose cells \
                 starting like a formula (= + - @ tab CR, numbers such as -12.50 aside) carry \
                 a leading ' so a spreadsheet shows them as text",
            )
            .answers(200, "The report, as application/json or text/csv")
            .answers(409, "The result does not exist yet (REPORT_NOT_READY)")
            .answers(
                410,
                "The result was purged RETENTION_DAYS after it was made (REPORT_EXPIRED); \
                 ask for the report again. One retention later the report job is gone (404)",
            ),
    ]
}

const NO_SUCH_REPORT_JOB: &str = "There is no such report job.";

async fn create_report_job(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, new, key) = (request.principal()?, request.json()?, request.key()?);
    let job = app.books().create_report_job(&caller, new, key).await?;
    Ok(answer_response(StatusCode::ACCEPTED, &job))
}

async fn get_report_job(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_REPORT_JOB)?);
    let job = app.books().report_job(&caller, id).await?;
    Ok(json_response(StatusCode::OK, &job))
}

async fn report_result(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_REPORT_JOB)?);
    let (format, text) = app.books().report_result(&caller, id).await?;
    let mut response = http::Response::new(super::Body::from(text.into_bytes()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}
