//! Routes of bank feeds (Plaid). Linking and asking for a sync need Plaid
//! (503 `BANK_INTEGRATION_UNAVAILABLE` at once while it is down,
//! `BANK_INTEGRATION_NOT_CONFIGURED` when it is not configured); reading and matching the imported lines need only the
//! database.

use http::{Method, StatusCode};
use serde::Deserialize;

use super::{
    ApiError, NoFilter, Request, Response, Route, answer_response, json_response, list_query,
    page_response,
};
use crate::app::AccuBooks;
use crate::banking::{
    AccountMapping, BankAccount, BankLine, LineStatus, LinkedItem, MatchInput, NewLink,
    SyncRequested,
};
use crate::deps::{DATABASE, PLAID};

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::change(Method::POST, "/api/bank/link", link)
            .needs(PLAID)
            .idempotent()
            .summary(
                "Link a bank: exchange Plaid Link's public token and list the item's accounts \
                 (the access token is kept sealed on the server, never answered)",
            )
            .body::<NewLink>()
            .returns::<LinkedItem>(201)
            .answers(
                409,
                "The bank asks the user to log in again (BANK_ITEM_LOGIN_REQUIRED)",
            ),
        Route::new(Method::GET, "/api/bank/accounts", list_accounts)
            .needs(DATABASE)
            .summary("The linked bank accounts and the ledger accounts they map to, by id")
            .paged()
            .returns_list::<BankAccount>(200),
        Route::change(Method::PUT, "/api/bank/accounts/{id}", map_account)
            .summary("Map a bank account to a ledger account (asset or liability, same currency)")
            .body::<AccountMapping>()
            .returns::<BankAccount>(200),
        Route::change(Method::POST, "/api/bank/sync", sync)
            .needs(PLAID)
            .idempotent()
            .summary(
                "Import new, changed and removed bank lines of every linked bank, as a job \
                 (bank-feeds queue); a sync already waiting or running is answered instead",
            )
            .returns::<SyncRequested>(202)
            .answers(409, "No bank is linked yet (NO_BANK_ITEMS)"),
        Route::new(Method::GET, "/api/bank/transactions", list_transactions)
            .needs(DATABASE)
            .summary(
                "Imported bank lines, newest imported first (by id: a line's date changes when \
                 the bank posts it); unmatched ones with match suggestions, best first",
            )
            .query(
                "status",
                "unmatched (default), matched, review (set aside: cannot be booked as the bank \
                 sent it) or dismissed",
                false,
            )
            .paged()
            .returns_list::<BankLine>(200),
        Route::change(
            Method::POST,
            "/api/bank/transactions/{id}/match",
            match_transaction,
        )
        .idempotent()
        .summary(
            "Post a bank line once: to an open invoice ({\"invoice_id\"}: records the \
                 payment) or to an account ({\"account\"}: categorises it)",
        )
        .body::<MatchInput>()
        .returns::<BankLine>(200)
        .answers(
            409,
            "Already matched (BANK_TRANSACTION_MATCHED), pending, its bank account not \
                 mapped, or the invoice not open",
        ),
        Route::change(
            Method::POST,
            "/api/bank/transactions/{id}/dismiss",
            dismiss_transaction,
        )
        .summary(
            "Dismiss a bank line that is not matched (one set aside for review, a zero \
                 amount): it is kept under status=dismissed and never booked",
        )
        .returns::<BankLine>(200)
        .answers(409, "Already matched (BANK_TRANSACTION_MATCHED)"),
    ]
}

const NO_SUCH_ACCOUNT: &str = "There is no such bank account.";
const NO_SUCH_TRANSACTION: &str = "There is no such bank transaction.";

async fn link(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, link, key) = (request.principal()?, request.json()?, request.key()?);
    let linked = app.books().link_bank(&caller, link, key).await?;
    Ok(answer_response(StatusCode::CREATED, &linked))
}

async fn list_accounts(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, NoFilter {}) = list_query(&request)?;
    let accounts = app
        .books()
        .bank_accounts(&request.principal()?, page)
        .await?;
    Ok(page_response(&request, &accounts))
}

async fn map_account(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_ACCOUNT)?);
    let mapping = request.json()?;
    let account = app.books().map_bank_account(&caller, id, mapping).await?;
    Ok(json_response(StatusCode::OK, &account))
}

async fn sync(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, key) = (request.principal()?, request.key()?);
    let requested = app.books().sync_banks(&caller, key).await?;
    Ok(answer_response(StatusCode::ACCEPTED, &requested))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusFilter {
    status: Option<String>,
}

async fn list_transactions(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, filter): (_, StatusFilter) = list_query(&request)?;
    let status = match filter.status.as_deref() {
        None => LineStatus::Unmatched,
        Some(text) => LineStatus::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "INVALID_QUERY",
                "status is unmatched, matched, review or dismissed.",
            )
        })?,
    };
    let lines = app
        .books()
        .bank_transactions(&request.principal()?, status, page)
        .await?;
    Ok(page_response(&request, &lines))
}

async fn match_transaction(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_TRANSACTION)?);
    let (input, key) = (request.json()?, request.key()?);
    let line = app
        .books()
        .match_bank_transaction(&caller, id, input, key)
        .await?;
    Ok(answer_response(StatusCode::OK, &line))
}

async fn dismiss_transaction(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_TRANSACTION)?);
    let line = app.books().dismiss_bank_transaction(&caller, id).await?;
    Ok(json_response(StatusCode::OK, &line))
}
