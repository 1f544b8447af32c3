//! The fake Plaid: `POST` JSON endpoints authenticated by `client_id` and
//! `secret` in the body, errors as Plaid's error object.
//!
//! It keeps what a real Plaid keeps for the calls AccuBooks makes: the
//! public tokens it issued (each exchanged once), items with their access
//! tokens and accounts, and per item a log of transaction updates that
//! `/transactions/sync` pages through by cursor (`c<position>`). Tests add,
//! modify and remove transactions, revoke an access token, shrink the page
//! size and force one `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION` (or
//! one on every page after a pass's first, until told to stop). They can
//! send amounts as Plaid does (JSON doubles: `0.123`, `1500.0`), a null
//! `iso_currency_code` with an `unofficial_currency_code`, a pending
//! transaction posted (the posted one names it in `pending_transaction_id`,
//! the pending one is removed), and accounts that only the sync answers'
//! `accounts` list (each answer lists the accounts of its own transactions,
//! as Plaid documents).
//!
//! Every request must carry the `Plaid-Version` of the vendored schemas
//! (`schemas/plaid.json`), and every answer is checked against them: what
//! does not conform is kept in [`FakePlaid::violations`], and a
//! [`FakeSaas`](super::FakeSaas) that served any fails its test when dropped.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::schema;

/// The client id and secret the fake Plaid accepts.
pub const PLAID_CLIENT: (&str, &str) = ("fake-client-id", "fake-plaid-s3cr3t");

/// One update of an item's transactions.
#[derive(Debug, Clone)]
enum Update {
    Added(Value),
    Modified(Value),
    Removed { id: String, account: String },
}

#[derive(Debug, Default)]
struct Item {
    access_token: String,
    accounts: Vec<Value>,
    /// Accounts `/accounts/get` leaves out (only sync answers list them).
    unlisted: HashSet<String>,
    updates: Vec<Update>,
    /// The `next_cursor`s answered with `has_more`: a request with one of
    /// them continues a pass.
    continuations: HashSet<String>,
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
    /// Every page after a pass's first answers the mutation error.
    mutating: bool,
    sync_calls: usize,
    /// Answers that did not conform to Plaid's schemas, and requests without
    /// the pinned `Plaid-Version`.
    violations: Vec<String>,
}

/// The Plaid API version of the vendored schemas (`2020-09-14_…`: the date
/// is the version a request names).
fn pinned_version() -> &'static str {
    let version = schema::Schemas::plaid().document()["version"]
        .as_str()
        .expect("a version");
    version.split('_').next().expect("a date")
}

/// An account as Plaid's `AccountBase` describes it.
fn account(id: &str, name: &str, mask: &str, iso: Option<&str>, unofficial: Option<&str>) -> Value {
    json!({
        "account_id": id, "name": name, "mask": mask, "type": "depository",
        "subtype": "checking", "official_name": null,
        "balances": {"available": 100.0, "current": 110.0, "limit": null,
                     "iso_currency_code": iso, "unofficial_currency_code": unofficial},
    })
}

/// A transaction with every field Plaid's `Transaction` requires.
fn transaction(
    id: &str,
    account: &str,
    amount: serde_json::Number,
    date: &str,
    name: &str,
) -> Value {
    json!({
        "transaction_id": id, "account_id": account, "amount": amount,
        "iso_currency_code": "USD", "unofficial_currency_code": null,
        "category": null, "category_id": null, "check_number": null,
        "date": date, "authorized_date": null, "authorized_datetime": null, "datetime": null,
        "location": {"address": null, "city": null, "region": null, "postal_code": null,
                     "country": null, "lat": null, "lon": null, "store_number": null},
        "payment_meta": {"reference_number": null, "ppd_id": null, "payee": null, "by_order_of": null,
                         "payer": null, "payment_method": null, "payment_processor": null, "reason": null},
        "name": name, "merchant_name": null, "original_description": null,
        "pending": false, "pending_transaction_id": null, "account_owner": null,
        "transaction_type": "special", "logo_url": null, "website": null,
        "payment_channel": "other", "transaction_code": null, "personal_finance_category": null,
    })
}

/// Plaid's amount: a JSON number (a double) from its text, so `1500.0`
/// stays a double and `0.123` what Plaid would send.
fn number(amount: &str) -> serde_json::Number {
    serde_json::from_str(amount).expect("an amount is a JSON number")
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
                    .map(|(id, name, mask)| account(id, name, mask, Some("USD"), None))
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
        self.add_with(item, id, account, amount, date, name, json!({}));
    }

    /// A new transaction with some fields as given (say
    /// `{"iso_currency_code": null, "unofficial_currency_code": "BTC"}` or
    /// `{"pending": true}`).
    #[allow(clippy::too_many_arguments)]
    pub fn add_with(
        &self,
        item: &str,
        id: &str,
        account: &str,
        amount: &str,
        date: &str,
        name: &str,
        fields: Value,
    ) {
        let mut transaction = transaction(id, account, number(amount), date, name);
        for (field, value) in fields.as_object().expect("fields are an object") {
            transaction[field] = value.clone();
        }
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
        let gone = item.current.remove(id).expect("a current transaction");
        let account = gone["account_id"].as_str().unwrap().to_owned();
        item.updates.push(Update::Removed {
            id: id.to_owned(),
            account,
        });
    }

    /// The bank posts a pending transaction, as Plaid reports it: the
    /// posted one (a new id naming the pending one in
    /// `pending_transaction_id`) is added; the pending one is removed now
    /// when `remove_pending`, else left for a later [`remove`](Self::remove).
    pub fn post_pending(&self, item: &str, pending: &str, posted: &str, remove_pending: bool) {
        let mut transaction = {
            let state = self.state.lock().unwrap();
            state.items[item].current[pending].clone()
        };
        transaction["transaction_id"] = json!(posted);
        transaction["pending"] = json!(false);
        transaction["pending_transaction_id"] = json!(pending);
        {
            let mut state = self.state.lock().unwrap();
            let item = state.items.get_mut(item).unwrap();
            item.current.insert(posted.to_owned(), transaction.clone());
            item.updates.push(Update::Added(transaction));
        }
        if remove_pending {
            self.remove(item, pending);
        }
    }

    /// An account opened at the bank since the link, in `iso` (or, when
    /// `None`, the unofficial currency `unofficial`). Sync answers list it;
    /// `/accounts/get` too only when `listed`.
    pub fn open_account(
        &self,
        item: &str,
        id: &str,
        name: &str,
        iso: Option<&str>,
        unofficial: Option<&str>,
        listed: bool,
    ) {
        let mut state = self.state.lock().unwrap();
        let item = state.items.get_mut(item).unwrap();
        item.accounts
            .push(account(id, name, "0002", iso, unofficial));
        if !listed {
            item.unlisted.insert(id.to_owned());
        }
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

    /// While `on`, every sync call that continues a pass (with a cursor
    /// answered with `has_more`) answers the mutation error: no pass of
    /// more than one page completes.
    pub fn mutating(&self, on: bool) {
        self.state.lock().unwrap().mutating = on;
    }

    /// What did not conform to Plaid's schemas, or lacked the pinned
    /// `Plaid-Version`, so far.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    /// The violations so far, forgotten (for a test that provokes one).
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().unwrap().violations)
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
        Ok((id, item)) => {
            let listed: Vec<&Value> = item
                .accounts
                .iter()
                .filter(|a| {
                    !item
                        .unlisted
                        .contains(a["account_id"].as_str().unwrap_or_default())
                })
                .collect();
            ok(json!({
                "accounts": listed,
                "item": {"item_id": id, "webhook": null, "error": null, "institution_id": "ins_109508",
                         "available_products": ["balance"], "billed_products": ["transactions"],
                         "consent_expiration_time": null, "update_type": "background"},
                "request_id": "fake",
            }))
        }
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
    let mutating = state.mutating;
    let (_, item) = match item_of(&mut state, &body) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    if mutating
        && body["cursor"]
            .as_str()
            .is_some_and(|c| item.continuations.contains(c))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "TRANSACTIONS_ERROR",
            "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
            "underlying transaction data changed since last page was fetched. Please restart pagination from last update.",
        );
    }
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
            Update::Removed { id, account } => {
                removed.push(json!({"transaction_id": id, "account_id": account}));
            }
        }
    }
    // As Plaid documents: only the accounts of this answer's transactions.
    let mentioned: HashSet<&str> = added
        .iter()
        .chain(&modified)
        .chain(&removed)
        .filter_map(|t| t["account_id"].as_str())
        .collect();
    let accounts: Vec<&Value> = item
        .accounts
        .iter()
        .filter(|a| mentioned.contains(a["account_id"].as_str().unwrap_or_default()))
        .collect();
    let has_more = to < item.updates.len();
    if has_more {
        item.continuations.insert(format!("c{to}"));
    }
    ok(json!({
        "accounts": accounts, "added": added, "modified": modified, "removed": removed,
        "next_cursor": format!("c{to}"), "has_more": has_more,
        "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE", "request_id": "fake",
    }))
}

/// Refuses a request without the pinned `Plaid-Version` (a real account's
/// default version could answer in another shape), and checks every
/// answer against Plaid's schemas.
async fn checked(State(plaid): State<Arc<FakePlaid>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let version = request
        .headers()
        .get("plaid-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = if version.as_deref() == Some(pinned_version()) {
        next.run(request).await
    } else {
        plaid.state.lock().unwrap().violations.push(format!(
            "{path}: Plaid-Version {version:?}, not the pinned {}",
            pinned_version()
        ));
        error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "INVALID_HEADERS",
            "the Plaid-Version header names no version this fake follows",
        )
        .into_response()
    };
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("the fake's own answer reads");
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let found = schema::Schemas::plaid().check_answer(&path, parts.status.as_u16(), &answer);
    plaid.state.lock().unwrap().violations.extend(found);
    Response::from_parts(parts, Body::from(bytes))
}

/// The fake Plaid's routes.
pub fn routes(state: Arc<FakePlaid>) -> Router {
    Router::new()
        .route("/institutions/get", post(institutions))
        .route("/item/public_token/exchange", post(exchange))
        .route("/accounts/get", post(accounts))
        .route("/transactions/sync", post(sync))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            checked,
        ))
        .with_state(state)
}
