//! `GET /api/export/ledger`: the books as an hledger or beancount journal.

use bytes::Bytes;
use http::{HeaderValue, Method, header};
use serde::Deserialize;

use super::{ApiError, Request, Response, Route};
use crate::app::AccuBooks;
use crate::deps::DATABASE;
use crate::ledger::{self, ExportFormat};

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
    let q: ExportQuery = serde_urlencoded::from_str(request.parts.uri.query().unwrap_or(""))
        .map_err(|err| {
            ApiError::invalid("INVALID_QUERY", format!("Invalid query string: {err}."))
        })?;
    let format = ExportFormat::parse(&q.format).ok_or_else(|| {
        ApiError::invalid(
            "INVALID_FORMAT",
            format!(
                "{:?} is not an export format: use \"hledger\" or \"beancount\".",
                q.format
            ),
        )
    })?;
    let as_of = match q.as_of.as_deref() {
        Some(text) => ledger::parse_date(text)?,
        None => chrono::Utc::now().date_naive(),
    };
    let organization = request.organization()?;
    let _slot = app
        .work_limits()
        .acquire(crate::limits::Work::Export, &organization)?;
    let text = ledger::export_ledger(app.database(), &organization, format, as_of).await?;
    let mut response = http::Response::new(Bytes::from(text));
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
