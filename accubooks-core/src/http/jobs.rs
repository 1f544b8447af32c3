//! Routes of background jobs. They need only the database: while Redis is
//! down, the workers take the jobs asked for straight from it.

use super::{ApiError, Request, Response, Route, json_response, list_query, page_response};
use crate::app::AccuBooks;
use crate::jobs::{Job, JobStatus};
use http::{Method, StatusCode};
use serde::Deserialize;

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::read("/api/jobs", list_jobs)
            .summary("The organization's background jobs, newest first")
            .query(
                "queue",
                "A queue's name: recurring-invoices, payroll-processing, report-generation, \
                 payments, bank-feeds, webhooks, or one a host registered",
                false,
            )
            .query(
                "status",
                "pending, queued, running, succeeded, failed or dead",
                false,
            )
            .paged()
            .returns_list::<Job>(200),
        Route::read("/api/jobs/{id}", get_job)
            .summary("A background job")
            .returns::<Job>(200),
        Route::change(Method::POST, "/api/jobs/{id}/retry", retry_job)
            .summary("Queue a dead job again, its attempts counted afresh")
            .returns::<Job>(200)
            .answers(409, "The job is not dead"),
    ]
}

const NO_SUCH_JOB: &str = "There is no such job.";

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
            let known = app.jobs().queues();
            known
                .iter()
                .copied()
                .find(|queue| queue.as_str() == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = known.iter().map(|queue| queue.as_str()).collect();
                    ApiError::invalid(
                        "INVALID_QUERY",
                        format!("queue is one of {}.", names.join(", ")),
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
