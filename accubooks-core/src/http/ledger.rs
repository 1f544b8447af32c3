//! Routes of the ledger: accounts, journal entries and the export.

use futures::StreamExt;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;

use super::reporting::optional_date;
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
            .query(
                "metadata[KEY]",
                "Only accounts whose metadata has KEY set to this value (each pair at most once)",
                false,
            )
            .paged()
            .returns_list::<ledger::AccountShown<'static>>(200),
        Route::change(Method::POST, "/api/accounts", create_account)
            .idempotent()
            .summary("Open an account")
            .body::<ledger::NewAccount>()
            .returns::<ledger::AccountShown<'static>>(201)
            .answers(
                422,
                "Invalid content; for \"parent\": UNKNOWN_ACCOUNT (no such account), \
                 PARENT_TYPE_MISMATCH, PARENT_CURRENCY_MISMATCH, ACCOUNT_TREE_TOO_DEEP (a tree \
                 has at most 8 levels)",
            ),
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
        Route::read("/api/journal-entries", list_entries)
            .summary(
                "The journal: entries with their lines, by date (order=date, the default) or \
                 newest first (order=newest)",
            )
            .query_date("from", "Dated on or after this day", false)
            .query_date("to", "Dated on or before this day", false)
            .query("account", "Only entries with a line on the account of this code", false)
            .query("reversed", "true: only entries reversed since; false: only those not", false)
            .query("order", "date (default) or newest", false)
            .query(
                "metadata[KEY]",
                "Only entries whose metadata has KEY set to this value (each pair at most once)",
                false,
            )
            .paged()
            .returns_list::<ledger::Entry>(200),
        Route::change(
            Method::PUT,
            "/api/accounts/{code}/metadata",
            replace_account_metadata,
        )
        .summary("Replace an account's metadata ({} removes it)")
        .body::<crate::metadata::Metadata>()
        .returns::<ledger::AccountShown<'static>>(200),
        Route::read("/api/accounts/{code}/entries", account_history)
            .summary(
                "An account's postings in date order, each with the account's balance after it \
                 (debits positive)",
            )
            .query_date("from", "From this day (default: the first posting)", false)
            .query_date("to", "To this day (default: the last posting)", false)
            .paged()
            .returns_list::<ledger::LedgerRow>(200),
        Route::read("/api/accounts/{code}/balance", account_balance)
            .summary("An account's balance at the end of a day (debits positive)")
            .query_date("as_of", "Default today (UTC)", false)
            .returns::<ledger::AccountBalance>(200),
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
    let (page, NoFilter {}, metadata) = super::list_query_with_metadata(&request)?;
    let accounts = app
        .books()
        .accounts(&request.principal()?, metadata, page)
        .await?;
    Ok(page_response(&request, &accounts))
}

async fn replace_account_metadata(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, metadata) = (request.principal()?, request.json()?);
    let account = app
        .books()
        .replace_account_metadata(&caller, account_code(&request), metadata)
        .await?;
    Ok(json_response(StatusCode::OK, &account))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    from: Option<String>,
    to: Option<String>,
    account: Option<String>,
    reversed: Option<String>,
    order: Option<String>,
}

async fn list_entries(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, q, metadata): (_, EntriesQuery, _) = super::list_query_with_metadata(&request)?;
    let reversed = match q.reversed.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(ApiError::invalid(
                "INVALID_QUERY",
                "reversed is true or false.",
            ));
        }
    };
    let order = q
        .order
        .as_deref()
        .map(ledger::EntryOrder::from_name)
        .transpose()?
        .unwrap_or_default();
    let filter = ledger::EntryFilter {
        from: optional_date(q.from.as_deref())?,
        to: optional_date(q.to.as_deref())?,
        account: q.account,
        reversed,
        order,
        metadata,
    };
    let entries = app
        .books()
        .entries(&request.principal()?, filter, page)
        .await?;
    Ok(page_response(&request, &entries))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    from: Option<String>,
    to: Option<String>,
}

/// The account code of the path (`{code}`).
fn account_code(request: &Request) -> &str {
    request.param("code").unwrap_or_default()
}

async fn account_history(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, q): (_, HistoryQuery) = list_query(&request)?;
    let (from, to) = (
        optional_date(q.from.as_deref())?,
        optional_date(q.to.as_deref())?,
    );
    let rows = app
        .books()
        .account_history(
            &request.principal()?,
            account_code(&request),
            from,
            to,
            page,
        )
        .await?;
    Ok(page_response(&request, &rows))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BalanceQuery {
    as_of: Option<String>,
}

async fn account_balance(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let q: BalanceQuery = super::reporting::query(&request)?;
    let as_of = optional_date(q.as_of.as_deref())?;
    let balance = app
        .books()
        .account_balance(&request.principal()?, account_code(&request), as_of)
        .await?;
    Ok(json_response(StatusCode::OK, &balance))
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
