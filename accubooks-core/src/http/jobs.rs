//! Routes of background jobs and recurring invoices. They need only the
//! database: while Redis is down, work asked for waits in the outbox.

use http::{Method, StatusCode};
use serde::Deserialize;

use super::reports::query;
use super::{
    Access, ApiError, Handler, NoFilter, Request, Response, Route, answer_response, json_response,
    list_query, page_response,
};
use crate::app::AccuBooks;
use crate::deps::DATABASE;
use crate::identity::Role;
use crate::invoicing::recurring::{NewRecurringInvoice, Preview, RecurringInvoice};
use crate::jobs::{Job, JobStatus, Queue};
use crate::payroll::{Employee, NewEmployee, NewPayrollRun, PayrollRule, PayrollRun};
use crate::reporting::{NewReportJob, ReportJob};

pub(crate) fn routes() -> Vec<Route> {
    fn read(path: &'static str, handler: impl Handler) -> Route {
        Route::new(Method::GET, path, handler).needs(DATABASE)
    }
    fn write(path: &'static str, handler: impl Handler) -> Route {
        Route::new(Method::POST, path, handler)
            .needs(DATABASE)
            .access(Access::Role(Role::Accountant))
    }
    /// Payroll data (salaries, payslips) is for accountants and owners.
    fn payroll_read(path: &'static str, handler: impl Handler) -> Route {
        read(path, handler).access(Access::Role(Role::Accountant))
    }
    vec![
        read("/api/jobs", list_jobs)
            .summary("The organization's background jobs, newest first")
            .query(
                "queue",
                "recurring-invoices, payroll-processing or report-generation",
                false,
            )
            .query(
                "status",
                "pending, queued, running, succeeded, failed or dead",
                false,
            )
            .paged()
            .returns_list::<Job>(200),
        read("/api/jobs/{id}", get_job)
            .summary("A background job")
            .returns::<Job>(200),
        write("/api/jobs/{id}/retry", retry_job)
            .summary("Queue a dead job again, its attempts counted afresh")
            .returns::<Job>(200)
            .answers(409, "The job is not dead"),
        write("/api/recurring-invoices", create_recurring)
            .idempotent()
            .summary(
                "Create a recurring invoice; each occurrence on or before today (in the \
                 organization's time zone) becomes one invoice, missed ones included",
            )
            .body::<NewRecurringInvoice>()
            .returns::<RecurringInvoice>(201),
        read("/api/recurring-invoices", list_recurring)
            .summary("The organization's recurring invoices, oldest first")
            .paged()
            .returns_list::<RecurringInvoice>(200),
        read("/api/recurring-invoices/{id}", get_recurring)
            .summary("A recurring invoice")
            .returns::<RecurringInvoice>(200),
        read("/api/recurring-invoices/{id}/preview", preview)
            .summary("The next occurrences not yet generated")
            .query("count", "How many, 1 to 500; default 12", false)
            .returns::<Preview>(200),
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
        read("/api/report-jobs/{id}", get_report_job)
            .summary("A report job and its status")
            .returns::<ReportJob>(200),
        read("/api/report-jobs/{id}/result", report_result)
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
        write("/api/employees", create_employee)
            .idempotent()
            .summary("Add an employee (salaried or hourly)")
            .body::<NewEmployee>()
            .returns::<Employee>(201),
        payroll_read("/api/employees", list_employees)
            .summary("The organization's employees, by id")
            .paged()
            .returns_list::<Employee>(200),
        payroll_read("/api/payroll/rules", get_rules)
            .summary("The payroll rules: deductions and employer contributions")
            .returns_list::<PayrollRule>(200),
        Route::new(Method::PUT, "/api/payroll/rules", put_rules)
            .needs(DATABASE)
            .access(Access::Role(Role::Accountant))
            .summary("Replace the payroll rules (runs already asked for keep theirs)")
            .body::<Vec<PayrollRule>>()
            .returns_list::<PayrollRule>(200),
        write("/api/payroll-runs", create_run)
            .idempotent()
            .summary(
                "Ask for a pay run of every employee employed in the period, worked on the \
                 payroll-processing queue; it posts one balanced entry",
            )
            .body::<NewPayrollRun>()
            .returns::<PayrollRun>(202)
            .answers(
                409,
                "Another run pays some of these employees for part of the period",
            ),
        payroll_read("/api/payroll-runs/{id}", get_run)
            .summary("A pay run: its status, and its payslips and entry once posted")
            .returns::<PayrollRun>(200),
    ]
}

async fn create_employee(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, new, key) = (request.principal()?, request.json()?, request.key()?);
    let employee = app.books().create_employee(&caller, new, key).await?;
    Ok(answer_response(StatusCode::CREATED, &employee))
}

async fn list_employees(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, NoFilter {}) = list_query(&request)?;
    let employees = app.books().employees(&request.principal()?, page).await?;
    Ok(page_response(&request, &employees))
}

async fn get_rules(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let rules = app.books().payroll_rules(&request.principal()?).await?;
    Ok(json_response(StatusCode::OK, &rules))
}

async fn put_rules(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, rules) = (request.principal()?, request.json()?);
    let rules = app.books().put_payroll_rules(&caller, rules).await?;
    Ok(json_response(StatusCode::OK, &rules))
}

async fn create_run(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, new, key) = (request.principal()?, request.json()?, request.key()?);
    let run = app.books().create_payroll_run(&caller, new, key).await?;
    Ok(answer_response(StatusCode::ACCEPTED, &run))
}

async fn get_run(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (
        request.principal()?,
        request.id("There is no such pay run.")?,
    );
    let run = app.books().payroll_run(&caller, id).await?;
    Ok(json_response(StatusCode::OK, &run))
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

const NO_SUCH_JOB: &str = "There is no such job.";
const NO_SUCH_RECURRING: &str = "There is no such recurring invoice.";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFilter {
    queue: Option<String>,
    status: Option<String>,
}

async fn list_jobs(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, filter): (_, JobFilter) = list_query(&request)?;
    let queue = filter
        .queue
        .map(|name| {
            Queue::parse(&name).ok_or_else(|| {
                ApiError::invalid(
                    "INVALID_QUERY",
                    "queue is recurring-invoices, payroll-processing or report-generation.",
                )
            })
        })
        .transpose()?;
    let status = filter
        .status
        .map(|name| {
            JobStatus::parse(&name).ok_or_else(|| {
                ApiError::invalid(
                    "INVALID_QUERY",
                    "status is pending, queued, running, succeeded, failed or dead.",
                )
            })
        })
        .transpose()?;
    let jobs = app
        .books()
        .jobs(&request.principal()?, queue, status, page)
        .await?;
    Ok(page_response(&request, &jobs))
}

async fn get_job(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_JOB)?);
    let job = app.books().job(&caller, id).await?;
    Ok(json_response(StatusCode::OK, &job))
}

async fn retry_job(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_JOB)?);
    let job = app.books().retry_job(&caller, id).await?;
    Ok(json_response(StatusCode::OK, &job))
}

async fn create_recurring(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, new, key) = (request.principal()?, request.json()?, request.key()?);
    let recurring = app
        .books()
        .create_recurring_invoice(&caller, new, key)
        .await?;
    Ok(answer_response(StatusCode::CREATED, &recurring))
}

async fn list_recurring(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, NoFilter {}) = list_query(&request)?;
    let recurring = app
        .books()
        .recurring_invoices(&request.principal()?, page)
        .await?;
    Ok(page_response(&request, &recurring))
}

async fn get_recurring(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_RECURRING)?);
    let recurring = app.books().recurring_invoice(&caller, id).await?;
    Ok(json_response(StatusCode::OK, &recurring))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Count {
    count: Option<String>,
}

async fn preview(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_RECURRING)?);
    let count: Count = query(&request)?;
    let count = match count.count {
        None => 12,
        Some(text) => text.parse().map_err(|_| {
            ApiError::invalid("INVALID_QUERY", "count is a whole number from 1 to 500.")
        })?,
    };
    let preview = app
        .books()
        .preview_recurring_invoice(&caller, id, count)
        .await?;
    Ok(json_response(StatusCode::OK, &preview))
}
