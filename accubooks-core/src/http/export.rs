//! `GET /api/export/ledger`: the books as an hledger or beancount journal.

use futures::StreamExt;
use http::{HeaderValue, Method, header};
use serde::Deserialize;

use super::{ApiError, Body, Request, Response, Route};
use crate::app::AccuBooks;
use crate::deps::DATABASE;
use crate::ledger::ExportFormat;

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/api/export/ledger", export_ledger)
            .needs(DATABASE)
            .timeout(crate::ledger::EXPORT_TIME_LIMIT)
            .summary("The books as an hledger or beancount journal with exact balance assertions")
            .query("format", "hledger or beancount", true)
            .query_date("as_of", "Default today (UTC)", false)
            .answers(
                429,
                "Too many exports run at once (EXPORTS_PER_ORGANIZATION, EXPORTS_MAX)",
            ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    format: String,
    as_of: Option<String>,
}

fn file_name(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Hledger => "attachment; filename=\"books.journal\"",
        ExportFormat::Beancount => "attachment; filename=\"books.beancount\"",
    }
}

async fn export_ledger(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let q: ExportQuery = super::reports::query(&request)?;
    let format = ExportFormat::from_name(&q.format)?;
    let as_of = super::reports::optional_date(q.as_of.as_deref())?;
    let books = app.books();
    let stream = books
        .export_ledger(&request.principal()?, format, as_of)
        .await?;
    // A failure midway aborts the response (the client sees it incomplete);
    // it is logged here, with the request id of the span.
    let chunks = stream.map(|chunk| {
        chunk.map_err(|err| {
            tracing::warn!(error = %err, "the export failed midway");
            std::io::Error::other("the export failed midway")
        })
    });
    let mut response = http::Response::new(Body::stream(chunks));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(file_name(format)),
    );
    Ok(response)
}
