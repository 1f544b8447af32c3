//! Routes of the ledger: accounts, journal entries and the export.

use futures::StreamExt;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;

use super::{
    ApiError, Body, NoFilter, Request, Response, Route, answer_response, json_response, list_query,
    page_response,
};
use crate::app::AccuBooks;
use crate::deps::DATABASE;
use crate::ledger::{self, EntryInput, ExportFormat};
use crate::usecases::{Batch, Dated, Posted};

pub(crate) fn routes() -> Vec<Route> {
    let mut routes = books_routes();
    routes.extend(export_routes());
    routes
}

fn books_routes() -> Vec<Route> {
    vec![
        Route::read("/api/accounts", list_accounts)
            .summary("The chart of accounts with current balances, by code")
            .paged()
            .returns_list::<ledger::AccountShown<'static>>(200),
        Route::change(Method::POST, "/api/accounts", create_account)
            .idempotent()
            .summary("Open an account")
            .body::<ledger::NewAccount>()
            .returns::<ledger::AccountShown<'static>>(201),
        Route::change(Method::POST, "/api/journal-entries", post_entry)
            .idempotent()
            .summary("Post a balanced journal entry")
            .body::<EntryInput>()
            .returns::<ledger::Entry>(201),
        Route::change(Method::POST, "/api/journal-entries/batch", post_batch)
            .idempotent()
            .summary("Post many entries atomically, in one transaction")
            .body::<Batch>()
            .returns::<Posted>(201)
            .answers(
                429,
                "Too many large batches run at once (LARGE_BATCHES_PER_ORGANIZATION, LARGE_BATCHES_MAX)",
            ),
        Route::read("/api/journal-entries/{id}", get_entry)
            .summary("A posted entry")
            .returns::<ledger::Entry>(200),
        Route::change(
            Method::POST,
            "/api/journal-entries/{id}/reverse",
            reverse_entry,
        )
            .idempotent()
        .summary("Post the mirror entry of a posted one (once)")
        .body::<Dated>()
        .returns::<ledger::Entry>(201),
    ]
}

const NO_SUCH_ENTRY: &str = "There is no such journal entry.";

async fn list_accounts(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, NoFilter {}) = list_query(&request)?;
    let accounts = app.books().accounts(&request.principal()?, page).await?;
    Ok(page_response(&request, &accounts))
}

async fn create_account(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, new, key) = (request.principal()?, request.json()?, request.key()?);
    let account = app.books().create_account(&caller, new, key).await?;
    Ok(answer_response(StatusCode::CREATED, &account))
}

async fn post_entry(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, input, key) = (request.principal()?, request.json()?, request.key()?);
    let entry = app.books().post_entry(&caller, input, key).await?;
    Ok(answer_response(StatusCode::CREATED, &entry))
}

async fn post_batch(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, batch, key) = (request.principal()?, request.json()?, request.key()?);
    let posted = app.books().post_batch(&caller, batch, key).await?;
    Ok(answer_response(StatusCode::CREATED, &posted))
}

async fn get_entry(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_ENTRY)?);
    let entry = app.books().entry(&caller, id).await?;
    Ok(json_response(StatusCode::OK, &entry))
}

async fn reverse_entry(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_ENTRY)?);
    let (input, key) = (request.optional_json()?, request.key()?);
    let entry = app.books().reverse_entry(&caller, id, input, key).await?;
    Ok(answer_response(StatusCode::CREATED, &entry))
}

fn export_routes() -> Vec<Route> {
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
    let q: ExportQuery = super::reporting::query(&request)?;
    let format = ExportFormat::from_name(&q.format)?;
    let as_of = super::reporting::optional_date(q.as_of.as_deref())?;
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
