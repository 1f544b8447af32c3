//! The fake Plaid: `POST` JSON endpoints authenticated by `client_id` and
//! `secret` in the body, errors as Plaid's error object.
//!
//! It keeps what a real Plaid keeps for the calls AccuBooks makes: the
//! public tokens it issued (each exchanged once), items with their access
//! tokens and accounts, and per item a log of transaction updates that
//! `/transactions/sync` pages through by cursor (`c<position>`). Tests add,
//! modify and remove transactions, revoke an access token, shrink the page
//! size and force one `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

/// The client id and secret the fake Plaid accepts.
pub const PLAID_CLIENT: (&str, &str) = ("fake-client-id", "fake-plaid-s3cr3t");

/// One update of an item's transactions.
#[derive(Debug, Clone)]
enum Update {
    Added(Value),
    Modified(Value),
    Removed(String),
}

#[derive(Debug, Default)]
struct Item {
    access_token: String,
    accounts: Vec<Value>,
    updates: Vec<Update>,
    /// The transactions as they stand, by id.
    current: HashMap<String, Value>,
    revoked: bool,
}

#[derive(Debug, Default)]
struct Kept {
    issued: u64,
    /// Public token → item id, until exchanged.
    public_tokens: HashMap<String, String>,
    items: HashMap<String, Item>,
    /// Most updates one page carries (Plaid's `count` otherwise).
    page_size: Option<usize>,
    /// The sync call (counted from 1 after arming) that answers
    /// `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`.
    mutation_at: Option<usize>,
    sync_calls: usize,
}

/// The fake Plaid's state and controls.
#[derive(Debug, Default)]
pub struct FakePlaid {
    state: Mutex<Kept>,
}

impl FakePlaid {
    /// Issues a public token for a new item with these accounts
    /// (`(account id, name, mask)`, all in USD), as Plaid Link would after
    /// a user logs in to their bank. Answers the public token and item id.
    pub fn issue_public_token(&self, accounts: &[(&str, &str, &str)]) -> (String, String) {
        let mut state = self.state.lock().unwrap();
        state.issued += 1;
        let n = state.issued;
        let (public, item) = (
            format!("public-sandbox-{n}-{}", uuid::Uuid::new_v4()),
            format!("item-{n}"),
        );
        state.public_tokens.insert(public.clone(), item.clone());
        state.items.insert(
            item.clone(),
            Item {
                access_token: format!("access-sandbox-{}", uuid::Uuid::new_v4()),
                accounts: accounts
                    .iter()
                    .map(|(id, name, mask)| {
                        json!({
                            "account_id": id, "name": name, "mask": mask, "type": "depository",
                            "subtype": "checking", "official_name": null,
                            "balances": {"available": 100.0, "current": 110.0, "limit": null,
                                         "iso_currency_code": "USD", "unofficial_currency_code": null},
                        })
                    })
                    .collect(),
                ..Item::default()
            },
        );
        (public, item)
    }

    /// The access token of an item (to check it never leaves the server).
    pub fn access_token(&self, item: &str) -> String {
        self.state.lock().unwrap().items[item].access_token.clone()
    }

    /// A new transaction; `amount` is Plaid's: positive is money out.
    pub fn add(&self, item: &str, id: &str, account: &str, amount: &str, date: &str, name: &str) {
        let amount: serde_json::Number = serde_json::from_str(amount).unwrap();
        let transaction = json!({
            "transaction_id": id, "account_id": account, "amount": amount,
            "iso_currency_code": "USD", "unofficial_currency_code": null,
            "date": date, "authorized_date": null, "name": name, "merchant_name": null,
            "pending": false, "pending_transaction_id": null, "payment_channel": "other",
        });
        let mut state = self.state.lock().unwrap();
        let item = state.items.get_mut(item).unwrap();
        item.current.insert(id.to_owned(), transaction.clone());
        item.updates.push(Update::Added(transaction));
    }

    /// The bank changes a transaction's amount.
    pub fn modify(&self, item: &str, id: &str, amount: &str) {
        let amount: serde_json::Number = serde_json::from_str(amount).unwrap();
        let mut state = self.state.lock().unwrap();
        let item = state.items.get_mut(item).unwrap();
        let transaction = item.current.get_mut(id).unwrap();
        transaction["amount"] = Value::Number(amount);
        let transaction = transaction.clone();
        item.updates.push(Update::Modified(transaction));
    }

    /// The bank removes a transaction.
    pub fn remove(&self, item: &str, id: &str) {
        let mut state = self.state.lock().unwrap();
        let item = state.items.get_mut(item).unwrap();
        item.current.remove(id);
        item.updates.push(Update::Removed(id.to_owned()));
    }

    /// The item's access token stops working (`ITEM_LOGIN_REQUIRED`).
    pub fn revoke(&self, item: &str) {
        self.state
            .lock()
            .unwrap()
            .items
            .get_mut(item)
            .unwrap()
            .revoked = true;
    }

    /// Pages carry at most this many updates.
    pub fn set_page_size(&self, size: usize) {
        self.state.lock().unwrap().page_size = Some(size);
    }

    /// The `call`-th sync call from now (1 = the next) answers
    /// `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`, once.
    pub fn mutation_during_pagination_at(&self, call: usize) {
        let mut state = self.state.lock().unwrap();
        state.mutation_at = Some(state.sync_calls + call);
    }

    /// Sync calls answered (or refused) so far.
    pub fn sync_calls(&self) -> usize {
        self.state.lock().unwrap().sync_calls
    }
}

/// Plaid's error object.
pub fn error(
    status: StatusCode,
    error_type: &str,
    code: &str,
    message: &str,
) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({
            "error_type": error_type,
            "error_code": code,
            "error_message": message,
            "display_message": null,
            "request_id": "fake",
        })),
    )
}

type Answer = (StatusCode, Json<Value>);

fn authorized(body: &Value) -> Result<(), Answer> {
    if body["client_id"] == PLAID_CLIENT.0 && body["secret"] == PLAID_CLIENT.1 {
        Ok(())
    } else {
        Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "INVALID_API_KEYS",
            "invalid client_id or secret provided",
        ))
    }
}

/// The item of the body's access token.
fn item_of<'a>(state: &'a mut Kept, body: &Value) -> Result<(&'a str, &'a mut Item), Answer> {
    let token = body["access_token"].as_str().unwrap_or_default();
    let found = state
        .items
        .iter_mut()
        .find(|(_, item)| item.access_token == token);
    match found {
        None => Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "INVALID_ACCESS_TOKEN",
            "provided access token is in an invalid format",
        )),
        Some((_, item)) if item.revoked => Err(error(
            StatusCode::BAD_REQUEST,
            "ITEM_ERROR",
            "ITEM_LOGIN_REQUIRED",
            "the login details of this item have changed",
        )),
        Some((id, item)) => Ok((id.as_str(), item)),
    }
}

fn ok(body: Value) -> Answer {
    (StatusCode::OK, Json(body))
}

async fn institutions(Json(body): Json<Value>) -> Answer {
    match authorized(&body) {
        Ok(()) => ok(json!({"institutions": [], "total": 0, "request_id": "fake"})),
        Err(refused) => refused,
    }
}

async fn exchange(State(plaid): State<Arc<FakePlaid>>, Json(body): Json<Value>) -> Answer {
    if let Err(refused) = authorized(&body) {
        return refused;
    }
    let mut state = plaid.state.lock().unwrap();
    let public = body["public_token"].as_str().unwrap_or_default();
    let Some(item) = state.public_tokens.remove(public) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "INVALID_PUBLIC_TOKEN",
            "provided public token is expired or invalid",
        );
    };
    let access = state.items[&item].access_token.clone();
    ok(json!({"access_token": access, "item_id": item, "request_id": "fake"}))
}

async fn accounts(State(plaid): State<Arc<FakePlaid>>, Json(body): Json<Value>) -> Answer {
    if let Err(refused) = authorized(&body) {
        return refused;
    }
    let mut state = plaid.state.lock().unwrap();
    match item_of(&mut state, &body) {
        Ok((id, item)) => ok(json!({
            "accounts": item.accounts, "item": {"item_id": id}, "request_id": "fake",
        })),
        Err(refused) => refused,
    }
}

async fn sync(State(plaid): State<Arc<FakePlaid>>, Json(body): Json<Value>) -> Answer {
    if let Err(refused) = authorized(&body) {
        return refused;
    }
    let mut state = plaid.state.lock().unwrap();
    state.sync_calls += 1;
    if state.mutation_at == Some(state.sync_calls) {
        state.mutation_at = None;
        return error(
            StatusCode::BAD_REQUEST,
            "TRANSACTIONS_ERROR",
            "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
            "underlying transaction data changed since last page was fetched. Please restart pagination from last update.",
        );
    }
    let count = body["count"].as_u64().unwrap_or(100) as usize;
    let count = state.page_size.map_or(count, |size| size.min(count));
    let (_, item) = match item_of(&mut state, &body) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let from = match body["cursor"].as_str() {
        None | Some("") => 0,
        Some(cursor) => match cursor
            .strip_prefix('c')
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if n <= item.updates.len() => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_INPUT",
                    "INVALID_FIELD",
                    "cursor is not valid",
                );
            }
        },
    };
    let to = (from + count).min(item.updates.len());
    let (mut added, mut modified, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    for update in &item.updates[from..to] {
        match update {
            Update::Added(t) => added.push(t.clone()),
            Update::Modified(t) => modified.push(t.clone()),
            Update::Removed(id) => removed.push(json!({"transaction_id": id})),
        }
    }
    ok(json!({
        "accounts": item.accounts, "added": added, "modified": modified, "removed": removed,
        "next_cursor": format!("c{to}"), "has_more": to < item.updates.len(),
        "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE", "request_id": "fake",
    }))
}

/// The fake Plaid's routes.
pub fn routes(state: Arc<FakePlaid>) -> Router {
    Router::new()
        .route("/institutions/get", post(institutions))
        .route("/item/public_token/exchange", post(exchange))
        .route("/accounts/get", post(accounts))
        .route("/transactions/sync", post(sync))
        .with_state(state)
}
