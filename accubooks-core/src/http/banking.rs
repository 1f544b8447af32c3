//! Routes of bank feeds (Plaid). Linking and asking for a sync need Plaid
//! (503 `BANK_INTEGRATION_UNAVAILABLE` at once while it is down,
//! `BANK_INTEGRATION_NOT_CONFIGURED` when it is not configured); reading and matching the imported lines need only the
//! database.

use http::{Method, StatusCode};
use serde::Deserialize;

use super::{
    Access, ApiError, NoFilter, Request, Response, Route, answer_response, json_response,
    list_query, page_response,
};
use crate::app::AccuBooks;
use crate::banking::{
    AccountMapping, BankAccount, BankItem, BankLine, LineStatus, LinkTokenIssued, LinkTokenRequest,
    LinkedItem, MatchInput, NewLink, SyncRequested,
};
use crate::deps::{DATABASE, PLAID};
use crate::usecases::{Client, PlaidWebhookReceipt};

/// The largest body Plaid's webhook takes (64 KiB, or `BODY_LIMIT_BYTES`
/// when that is smaller): Plaid's webhooks are well under 1 KiB, so a
/// larger body is refused (413) before it is read, let alone verified.
pub const PLAID_WEBHOOK_BODY_LIMIT: usize = 64 * 1024;

pub(crate) fn routes() -> Vec<Route> {
    let mut routes = link_routes();
    routes.extend(item_routes());
    routes
}

fn link_routes() -> Vec<Route> {
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
                "The bank asks the user to log in again (BANK_ITEM_LOGIN_REQUIRED), or this \
                 bank login is already linked (BANK_ITEM_ALREADY_LINKED: use update mode)",
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

fn item_routes() -> Vec<Route> {
    vec![
        Route::change(Method::POST, "/api/bank/link-token", link_token)
            .needs(PLAID)
            .summary(
                "A Plaid Link token: {\"item_id\": null} for a new bank; an item's id for update \
                 mode (the user logs in to it again; it keeps its accounts, mappings and lines)",
            )
            .body::<LinkTokenRequest>()
            .returns::<LinkTokenIssued>(201)
            .answers_too(404, "No such item (or it was removed)")
            .answers(
                409,
                "The item cannot be used (BANK_ITEM_ERROR, BANK_ITEM_UNREADABLE): remove it \
                 and link the bank again",
            ),
        Route::new(Method::GET, "/api/bank/items", list_items)
            .needs(DATABASE)
            .summary(
                "The linked bank items with their status (active, login_required, error) and \
                 when each last synced, oldest first",
            )
            .paged()
            .returns_list::<BankItem>(200),
        Route::change(Method::DELETE, "/api/bank/items/{id}", remove_item)
            .needs(PLAID)
            .summary(
                "Remove a bank item at Plaid (/item/remove) and stop its sync; its accounts and \
                 lines, matched or not, stay",
            )
            .returns_empty(204)
            .answers_too(404, "No such item (or it was removed)")
            .answers(
                409,
                "The item's access token no longer opens (BANK_ITEM_UNREADABLE)",
            ),
        Route::change(
            Method::POST,
            "/api/bank/items/{id}/reconnected",
            item_reconnected,
        )
        .needs(PLAID)
        .summary(
            "After Plaid Link in update mode: check with Plaid that the item works again, make \
             it active and ask for a sync",
        )
        .returns::<BankItem>(200)
        .answers_too(404, "No such item (or it was removed)")
        .answers(
            409,
            "The bank still asks the user to log in (BANK_ITEM_LOGIN_REQUIRED)",
        ),
        Route::new(Method::POST, "/api/webhooks/plaid", plaid_webhook)
            .needs(DATABASE)
            .access(Access::Public)
            .signed_webhook(PLAID, PLAID_WEBHOOK_BODY_LIMIT)
            .summary(
                "Plaid's webhook, verified with its Plaid-Verification JWT (ES256, Plaid's key, \
                 the body's SHA-256, 5 minutes): SYNC_UPDATES_AVAILABLE asks for a sync; ITEM \
                 webhooks set the item's status",
            )
            .returns::<PlaidWebhookReceipt>(200)
            .answers(
                400,
                "A missing, forged or stale Plaid-Verification (INVALID_SIGNATURE)",
            ),
    ]
}

const NO_SUCH_ITEM: &str = "There is no such bank item; GET /api/bank/items lists them.";

/// The `{id}` of an item route: Plaid's item id.
fn item_id(request: &Request) -> Result<&str, ApiError> {
    request
        .param("id")
        .filter(|id| !id.is_empty() && id.len() <= 200)
        .ok_or_else(|| ApiError::NotFound(NO_SUCH_ITEM.to_owned()))
}

async fn link_token(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let caller = request.principal()?;
    let asked: LinkTokenRequest = request.optional_json()?;
    let issued = app.books().bank_link_token(&caller, asked).await?;
    Ok(json_response(StatusCode::CREATED, &issued))
}

async fn list_items(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, NoFilter {}) = list_query(&request)?;
    let items = app.books().bank_items(&request.principal()?, page).await?;
    Ok(page_response(&request, &items))
}

async fn remove_item(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, item_id(&request)?);
    app.books().remove_bank_item(&caller, id).await?;
    let mut response = http::Response::new(super::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

async fn item_reconnected(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, item_id(&request)?);
    let item = app.books().bank_item_reconnected(&caller, id).await?;
    Ok(json_response(StatusCode::OK, &item))
}

async fn plaid_webhook(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let verification = request.header(http::HeaderName::from_static("plaid-verification"));
    let client = Client::Remote(request.client);
    let receipt = app
        .books()
        .plaid_webhook(&request.body, verification, client)
        .await?;
    Ok(json_response(StatusCode::OK, &receipt))
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
