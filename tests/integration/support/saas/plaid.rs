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
//! [`FakeSaas`](super::FakeSaas) that served any fails its test when dropped
//! (the link flow's answers against `schemas/plaid-link.json`).
//!
//! The link flow: `/link/token/create` (new items and update mode, the
//! requests kept for tests to read), `/item/remove`, and webhooks signed as
//! Plaid signs them (an ES256 JWT in `Plaid-Verification`, its key served
//! by `/webhook_verification_key/get`). An item can be put into Plaid's
//! documented errors (`ITEM_LOGIN_REQUIRED`, `INSTITUTION_DOWN`,
//! `PRODUCT_NOT_READY`) and repaired (the user finished update mode).

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
    /// The error every call about the item answers, until repaired.
    failing: Option<ItemFailure>,
    /// Removed with `/item/remove`: its access token no longer works.
    removed: bool,
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
    /// The bodies of `/link/token/create` requests, secrets removed.
    link_token_requests: Vec<Value>,
    /// `/webhook_verification_key/get` calls answered.
    key_fetches: usize,
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

/// An error Plaid answers for an item, as its docs describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemFailure {
    /// `ITEM_ERROR` / `ITEM_LOGIN_REQUIRED` (400): the user must log in again.
    LoginRequired,
    /// `INSTITUTION_ERROR` / `INSTITUTION_DOWN` (400): the bank is down.
    InstitutionDown,
    /// `ITEM_ERROR` / `PRODUCT_NOT_READY` (400): the first pull is not done.
    ProductNotReady,
}

/// Plaid's webhooks, as its documentation and schemas describe them.
pub mod webhooks {
    use serde_json::{Value, json};

    use super::ItemFailure;

    /// `TRANSACTIONS` / `SYNC_UPDATES_AVAILABLE`: new updates to sync.
    pub fn sync_updates_available(item: &str) -> Value {
        json!({
            "webhook_type": "TRANSACTIONS", "webhook_code": "SYNC_UPDATES_AVAILABLE",
            "item_id": item, "initial_update_complete": true,
            "historical_update_complete": true, "environment": "sandbox",
        })
    }

    /// `ITEM` / `ERROR` with the item's error object.
    pub fn error(item: &str, failure: ItemFailure) -> Value {
        let mut error = failure.answer().1.0;
        error["status"] = json!(400);
        json!({
            "webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": item,
            "error": error, "environment": "sandbox",
        })
    }

    /// `ITEM` / `LOGIN_REPAIRED`: the user logged in again (in update mode
    /// in another app, or the bank lifted its requirement).
    pub fn login_repaired(item: &str) -> Value {
        json!({
            "webhook_type": "ITEM", "webhook_code": "LOGIN_REPAIRED", "item_id": item,
            "environment": "sandbox",
        })
    }

    /// `ITEM` / `PENDING_EXPIRATION`: the user's consent ends in 7 days.
    pub fn pending_expiration(item: &str) -> Value {
        json!({
            "webhook_type": "ITEM", "webhook_code": "PENDING_EXPIRATION", "item_id": item,
            "consent_expiration_time": "2026-12-14T00:00:00Z", "environment": "sandbox",
        })
    }

    /// `ITEM` / `PENDING_DISCONNECT`: the item stops working soon.
    pub fn pending_disconnect(item: &str) -> Value {
        json!({
            "webhook_type": "ITEM", "webhook_code": "PENDING_DISCONNECT", "item_id": item,
            "reason": "INSTITUTION_TOKEN_EXPIRATION", "disconnect_time": "2026-12-14T00:00:00Z",
            "environment": "sandbox",
        })
    }
}

impl ItemFailure {
    fn answer(self) -> Answer {
        match self {
            ItemFailure::LoginRequired => error(
                StatusCode::BAD_REQUEST,
                "ITEM_ERROR",
                "ITEM_LOGIN_REQUIRED",
                "the login details of this item have changed (credentials, MFA, or required user action) and a user login is required to update this information. use Link's update mode to restore the item to a good state",
            ),
            ItemFailure::InstitutionDown => error(
                StatusCode::BAD_REQUEST,
                "INSTITUTION_ERROR",
                "INSTITUTION_DOWN",
                "this institution is not currently responding to this request. please try again soon",
            ),
            ItemFailure::ProductNotReady => error(
                StatusCode::BAD_REQUEST,
                "ITEM_ERROR",
                "PRODUCT_NOT_READY",
                "the requested product is not yet ready. please provide a webhook or try the request again later",
            ),
        }
    }
}

/// The institution of every item the fake issues (Plaid's sandbox
/// "First Platypus Bank").
pub const INSTITUTION: &str = "ins_109508";
/// The id of the key the fake signs webhooks with.
pub const WEBHOOK_KEY_ID: &str = "6c5516e1-92dc-479e-a8ff-5a51992e0001";
/// The fake's webhook signing key (P-256, PKCS #8 DER, made for these
/// tests) and the public point `/webhook_verification_key/get` answers.
const WEBHOOK_PRIVATE_KEY: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420f8b1bace5c5d025a5d0b5836da373164de57809fa8c1db1e66d5c398d6a81f55a14403420004e289a11738bedde414ee5a5895d47f236c1d1da1a00963ae2826e0ba443c0482da8b1dda46d06c95dad3b2c52483483b869f0b80a18fe91a852937306ca1f243";
const WEBHOOK_KEY_X: &str = "4omhFzi-3eQU7lpYldR_I2wdHaGgCWOuKCbgukQ8BII";
const WEBHOOK_KEY_Y: &str = "2osd2kbQbJXa07LFJINIO4afC4Chj-kahSk3MGyh8kM";
/// A key that is not Plaid's: what a forger signs with.
const FORGER_PRIVATE_KEY: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420846506e147b122f3e3e5b09c9ba987b2f9133653d68cb3fa908627f2f4d9f2cca14403420004b223f2b306709f0cfb9d76d51852217875242e4ac14c9b05f61f70770d4f727c165361d3f47f35a3ceaef4c2be6ffa489cb03a3b0380de9cc932bd2d25d36e13";

/// A `Plaid-Verification` header for `body`: an ES256 JWT whose header
/// names the key (`kid`) and whose claims are `iat` and the body's SHA-256.
fn sign(private_key: &str, body: &[u8], iat: i64) -> String {
    use sha2::Digest;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(WEBHOOK_KEY_ID.to_owned());
    let claims = json!({
        "iat": iat,
        "request_body_sha256": hex::encode(sha2::Sha256::digest(body)),
    });
    let key = jsonwebtoken::EncodingKey::from_ec_der(&hex::decode(private_key).unwrap());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
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
        self.fail(item, Some(ItemFailure::LoginRequired));
    }

    /// Every call about the item answers this error (`None`: none; as
    /// after the user finished Link's update mode, which keeps the item,
    /// its access token, accounts and transaction ids).
    pub fn fail(&self, item: &str, failure: Option<ItemFailure>) {
        self.state
            .lock()
            .unwrap()
            .items
            .get_mut(item)
            .unwrap()
            .failing = failure;
    }

    /// Whether the item was removed (`/item/remove`).
    pub fn is_removed(&self, item: &str) -> bool {
        self.state.lock().unwrap().items[item].removed
    }

    /// The `/link/token/create` requests so far, `client_id` and `secret`
    /// left out.
    pub fn link_token_requests(&self) -> Vec<Value> {
        self.state.lock().unwrap().link_token_requests.clone()
    }

    /// `/webhook_verification_key/get` calls answered so far.
    pub fn key_fetches(&self) -> usize {
        self.state.lock().unwrap().key_fetches
    }

    /// The `Plaid-Verification` header Plaid sends with `body`, issued at
    /// `iat` (Unix seconds).
    pub fn sign_webhook(&self, body: &[u8], iat: i64) -> String {
        sign(WEBHOOK_PRIVATE_KEY, body, iat)
    }

    /// A header like Plaid's, signed with another key.
    pub fn forge_webhook(&self, body: &[u8], iat: i64) -> String {
        sign(FORGER_PRIVATE_KEY, body, iat)
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
        Some((_, item)) if item.removed => Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "INVALID_ACCESS_TOKEN",
            "provided access token is for an item that was removed",
        )),
        None => Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "INVALID_ACCESS_TOKEN",
            "provided access token is in an invalid format",
        )),
        Some((_, item)) if item.failing.is_some() => Err(item.failing.expect("checked").answer()),
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
                "accounts": listed, "item": item_object(id), "request_id": "fake",
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
    let (plaid_schemas, link) = (schema::Schemas::plaid(), schema::Schemas::plaid_link());
    let found = if plaid_schemas.document()["answers"].get(&path).is_some() {
        plaid_schemas.check_answer(&path, parts.status.as_u16(), &answer)
    } else {
        // The link flow's answers are in its own vendored copy.
        let key = if parts.status.is_success() {
            path.as_str()
        } else {
            "error"
        };
        let errors = link.check(&link.name("answers", key), &answer);
        errors.into_iter().map(|e| format!("{path}: {e}")).collect()
    };
    plaid.state.lock().unwrap().violations.extend(found);
    Response::from_parts(parts, Body::from(bytes))
}

/// Plaid's `Item` object, as `/accounts/get` answers it.
fn item_object(id: &str) -> Value {
    json!({
        "item_id": id, "institution_id": INSTITUTION, "webhook": null, "error": null,
        "available_products": ["balance"], "billed_products": ["transactions"],
        "products": ["transactions"], "consented_products": ["transactions"],
        "consent_expiration_time": null, "update_type": "background",
    })
}

async fn link_token(State(plaid): State<Arc<FakePlaid>>, Json(body): Json<Value>) -> Answer {
    if let Err(refused) = authorized(&body) {
        return refused;
    }
    let mut state = plaid.state.lock().unwrap();
    let missing = ["client_name", "language", "country_codes", "user"]
        .into_iter()
        .find(|field| body[*field].is_null());
    if let Some(field) = missing.or(body["user"]["client_user_id"]
        .is_null()
        .then_some("user.client_user_id"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "MISSING_FIELDS",
            &format!("the following required fields are missing: {field}"),
        );
    }
    if body.get("access_token").is_some() {
        // Update mode: the item must exist (a failing item is what it is for).
        let token = body["access_token"].as_str().unwrap_or_default();
        if !state
            .items
            .values()
            .any(|i| i.access_token == token && !i.removed)
        {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_INPUT",
                "INVALID_ACCESS_TOKEN",
                "provided access token is in an invalid format",
            );
        }
    } else if body["products"].as_array().is_none_or(Vec::is_empty) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "MISSING_FIELDS",
            "the following required fields are missing: products",
        );
    }
    let mut kept = body.clone();
    if let Some(fields) = kept.as_object_mut() {
        fields.remove("client_id");
        fields.remove("secret");
    }
    state.link_token_requests.push(kept);
    ok(json!({
        "link_token": format!("link-sandbox-{}", uuid::Uuid::new_v4()),
        "expiration": "2026-12-07T18:00:00Z",
        "request_id": "fake",
    }))
}

async fn item_remove(State(plaid): State<Arc<FakePlaid>>, Json(body): Json<Value>) -> Answer {
    if let Err(refused) = authorized(&body) {
        return refused;
    }
    let mut state = plaid.state.lock().unwrap();
    let token = body["access_token"].as_str().unwrap_or_default();
    // A failing item can be removed: removal is how a user gives up on it.
    match state
        .items
        .values_mut()
        .find(|item| item.access_token == token && !item.removed)
    {
        Some(item) => {
            item.removed = true;
            ok(json!({"request_id": "fake"}))
        }
        None => error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "INVALID_ACCESS_TOKEN",
            "provided access token is in an invalid format",
        ),
    }
}

async fn webhook_key(State(plaid): State<Arc<FakePlaid>>, Json(body): Json<Value>) -> Answer {
    if let Err(refused) = authorized(&body) {
        return refused;
    }
    let mut state = plaid.state.lock().unwrap();
    state.key_fetches += 1;
    if body["key_id"] != WEBHOOK_KEY_ID {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "INVALID_WEBHOOK_VERIFICATION_KEY_ID",
            "invalid key_id provided",
        );
    }
    ok(json!({
        "key": {
            "alg": "ES256", "created_at": 1_560_466_143, "crv": "P-256", "expired_at": null,
            "kid": WEBHOOK_KEY_ID, "kty": "EC", "use": "sig",
            "x": WEBHOOK_KEY_X, "y": WEBHOOK_KEY_Y,
        },
        "request_id": "fake",
    }))
}

/// The fake Plaid's routes.
pub fn routes(state: Arc<FakePlaid>) -> Router {
    Router::new()
        .route("/institutions/get", post(institutions))
        .route("/item/public_token/exchange", post(exchange))
        .route("/accounts/get", post(accounts))
        .route("/transactions/sync", post(sync))
        .route("/link/token/create", post(link_token))
        .route("/item/remove", post(item_remove))
        .route("/webhook_verification_key/get", post(webhook_key))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            checked,
        ))
        .with_state(state)
}
