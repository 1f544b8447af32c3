//! Plaid's API: the few calls bank feeds need, in its wire format (JSON
//! bodies carrying `client_id` and `secret`; errors as `error_type`,
//! `error_code`, `error_message`).
//!
//! Access tokens travel as [`SecretString`]: they are exposed only to build
//! a request body, and no type here prints them.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) mod webhook;

use super::{Api, CallError, Retry};
use crate::config::ApiCredentials;
use crate::deps::{Dependency, PLAID_VERSION};
use crate::error::Fault;

/// The most transaction updates one `/transactions/sync` page carries
/// (Plaid's maximum is 500).
pub(crate) const SYNC_PAGE: u32 = 500;

/// The name Plaid Link shows the user.
const LINK_CLIENT_NAME: &str = "AccuBooks";
/// The countries whose banks Plaid Link offers.
const LINK_COUNTRY_CODES: [&str; 1] = ["US"];

/// A Plaid client.
pub(crate) struct Plaid {
    pub(crate) api: Api,
    pub(crate) credentials: ApiCredentials,
    /// The keys Plaid signs webhooks with, fetched once each.
    webhook_keys: webhook::KeyCache,
}

/// Why a Plaid call gave nothing to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlaidError {
    /// Plaid is down, slow or failing (or known down: no call was made).
    #[error("Plaid is unavailable ({0})")]
    Unavailable(Fault),
    /// The public token is invalid, expired or already exchanged.
    #[error("the public token is invalid or expired")]
    InvalidPublicToken,
    /// The bank or Plaid cannot serve the item now (`INSTITUTION_DOWN`,
    /// `PRODUCT_NOT_READY`, a rate limit, an API error): a later attempt may
    /// succeed. `code` is ours (a job's error code), `plaid_code` Plaid's.
    #[error("Plaid cannot serve the item now ({plaid_code}); a later attempt may succeed")]
    Temporary {
        /// Our code for it, e.g. `BANK_INSTITUTION_DOWN`.
        code: &'static str,
        /// Plaid's `error_code`.
        plaid_code: String,
    },
    /// The bank asks the user to log in again (`ITEM_LOGIN_REQUIRED`, a
    /// revoked consent, a locked account, …): Plaid Link in update mode
    /// fixes it.
    #[error("the bank asks the user to log in again ({0})")]
    LoginRequired(String),
    /// The item itself is broken (`INVALID_ACCESS_TOKEN`, `ITEM_NOT_FOUND`,
    /// another `ITEM_ERROR`): no retry fixes it; the user removes it and
    /// links the bank again.
    #[error("the bank item cannot be used ({0})")]
    ItemError(String),
    /// The item's data changed while a sync paged through it: restart
    /// from the cursor the pagination began with.
    #[error("the transactions changed during pagination")]
    MutationDuringPagination,
    /// Any other refusal (bad keys, a malformed request).
    #[error("Plaid refused the request ({error_type} {error_code})")]
    Refused {
        /// Plaid's `error_type`.
        error_type: String,
        /// Plaid's `error_code`.
        error_code: String,
    },
}

impl From<CallError> for PlaidError {
    fn from(err: CallError) -> Self {
        match err {
            CallError::Unavailable(fault) => PlaidError::Unavailable(fault),
            CallError::Refused { body, .. } => PlaidError::from_error_object(&body),
        }
    }
}

impl PlaidError {
    /// Plaid's own code of the error, for logs (never its message).
    pub(crate) fn plaid_code(&self) -> &str {
        match self {
            PlaidError::Unavailable(fault) => fault.code,
            PlaidError::InvalidPublicToken => "INVALID_PUBLIC_TOKEN",
            PlaidError::MutationDuringPagination => "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
            PlaidError::Temporary { plaid_code, .. } => plaid_code,
            PlaidError::LoginRequired(code) | PlaidError::ItemError(code) => code,
            PlaidError::Refused { error_code, .. } => error_code,
        }
    }

    /// Reads Plaid's error object (`error_type`, `error_code`); its
    /// `error_message` is not kept, so nothing Plaid echoes reaches a log.
    pub(crate) fn from_error_object(body: &Value) -> Self {
        let text = |field: &str| body[field].as_str().unwrap_or("UNKNOWN").to_owned();
        let (error_type, error_code) = (text("error_type"), text("error_code"));
        let temporary = |code| PlaidError::Temporary {
            code,
            plaid_code: error_code.clone(),
        };
        match (error_type.as_str(), error_code.as_str()) {
            (_, "INVALID_PUBLIC_TOKEN") => PlaidError::InvalidPublicToken,
            (_, "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION") => {
                PlaidError::MutationDuringPagination
            }
            (_, "PRODUCT_NOT_READY") => temporary("BANK_PRODUCT_NOT_READY"),
            ("INSTITUTION_ERROR", _)
            | (
                _,
                "INSTITUTION_DOWN" | "INSTITUTION_NOT_RESPONDING" | "INSTITUTION_NOT_AVAILABLE",
            ) => temporary("BANK_INSTITUTION_DOWN"),
            ("RATE_LIMIT_EXCEEDED", _) => temporary("BANK_RATE_LIMITED"),
            ("API_ERROR", _) => temporary("BANK_PROVIDER_ERROR"),
            (
                _,
                "ITEM_LOGIN_REQUIRED"
                | "PENDING_EXPIRATION"
                | "PENDING_DISCONNECT"
                | "ACCESS_NOT_GRANTED"
                | "ITEM_LOCKED"
                | "INVALID_CREDENTIALS"
                | "INVALID_MFA"
                | "INSUFFICIENT_CREDENTIALS"
                | "USER_SETUP_REQUIRED"
                | "USER_PERMISSION_REVOKED",
            ) => PlaidError::LoginRequired(error_code),
            ("ITEM_ERROR", _) | (_, "INVALID_ACCESS_TOKEN" | "ITEM_NOT_FOUND") => {
                PlaidError::ItemError(error_code)
            }
            _ => PlaidError::Refused {
                error_type,
                error_code,
            },
        }
    }
}

/// An exchanged public token.
pub(crate) struct Exchanged {
    /// Plaid's item id.
    pub(crate) item_id: String,
    /// The item's access token.
    pub(crate) access_token: SecretString,
}

/// An item's accounts and institution, as `/accounts/get` answers.
pub(crate) struct ItemAccounts {
    pub(crate) accounts: Vec<PlaidAccount>,
    /// Plaid's institution id (`ins_…`), when Plaid names one.
    pub(crate) institution_id: Option<String>,
}

/// A Link token, as `/link/token/create` answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct LinkToken {
    pub(crate) link_token: String,
    /// ISO 8601, when the token stops working (4 hours after creation; 30
    /// minutes in update mode).
    pub(crate) expiration: String,
}

/// A key Plaid signs webhooks with, as `/webhook_verification_key/get`
/// answers (a JWK of an EC P-256 key).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct WebhookKey {
    pub(crate) kid: String,
    pub(crate) alg: String,
    pub(crate) crv: String,
    pub(crate) kty: String,
    pub(crate) x: String,
    pub(crate) y: String,
    /// Set once Plaid rotated the key out: it no longer verifies webhooks.
    #[serde(default)]
    pub(crate) expired_at: Option<i64>,
}

/// An account of an item, as `/accounts/get` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct PlaidAccount {
    pub(crate) account_id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) mask: Option<String>,
    #[serde(default)]
    pub(crate) balances: Balances,
}

/// The part of an account's balances that names its currency: an ISO 4217
/// code, or null and then Plaid's unofficial code (a crypto account).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Balances {
    #[serde(default)]
    pub(crate) iso_currency_code: Option<String>,
    #[serde(default)]
    pub(crate) unofficial_currency_code: Option<String>,
}

/// A transaction, as `/transactions/sync` adds or modifies it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct PlaidTransaction {
    pub(crate) transaction_id: String,
    pub(crate) account_id: String,
    /// A JSON number (a double in Plaid's schema: `0.123`, `1500.0`),
    /// positive when money leaves the account; read from its shortest
    /// decimal text, never computed with as a float.
    pub(crate) amount: serde_json::Number,
    /// Null when the currency has no ISO code; then
    /// `unofficial_currency_code` names it.
    #[serde(default)]
    pub(crate) iso_currency_code: Option<String>,
    #[serde(default)]
    pub(crate) unofficial_currency_code: Option<String>,
    /// For a posted transaction: the pending one it replaces (which Plaid
    /// removes).
    #[serde(default)]
    pub(crate) pending_transaction_id: Option<String>,
    pub(crate) date: NaiveDate,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) merchant_name: Option<String>,
    #[serde(default)]
    pub(crate) pending: bool,
}

/// A transaction `/transactions/sync` removed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Removed {
    pub(crate) transaction_id: String,
}

/// One page of `/transactions/sync`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct SyncPage {
    #[serde(default)]
    pub(crate) added: Vec<PlaidTransaction>,
    #[serde(default)]
    pub(crate) modified: Vec<PlaidTransaction>,
    #[serde(default)]
    pub(crate) removed: Vec<Removed>,
    /// The item's accounts (required by Plaid's schema): a line's account
    /// is learnt here, even one opened since the link.
    pub(crate) accounts: Vec<PlaidAccount>,
    pub(crate) next_cursor: String,
    pub(crate) has_more: bool,
}

/// An answer that did not have the expected shape: Plaid is not answering
/// as documented, which a later attempt may not meet either.
const UNEXPECTED_ANSWER: Fault = Fault::temporary("UNEXPECTED_ANSWER");

fn parse<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, PlaidError> {
    serde_json::from_value(body).map_err(|_| PlaidError::Unavailable(UNEXPECTED_ANSWER))
}

impl Plaid {
    /// A client of Plaid at the credentials' API base.
    pub(crate) fn new(
        credentials: ApiCredentials,
        timeout: Duration,
        dependency: Arc<Dependency>,
    ) -> Self {
        Plaid {
            api: Api::new(&credentials.api_base, timeout, dependency),
            credentials,
            webhook_keys: webhook::KeyCache::default(),
        }
    }

    /// `POST {base}{path}` with `fields` and the credentials as its body.
    async fn post(&self, retry: Retry, path: &str, fields: Value) -> Result<Value, PlaidError> {
        let mut body = fields;
        body["client_id"] = json!(self.credentials.key.expose_secret());
        body["secret"] = json!(self.credentials.secret.expose_secret());
        Ok(self
            .api
            .call(retry, |client, base| {
                client
                    .post(format!("{base}{path}"))
                    .header("Plaid-Version", PLAID_VERSION)
                    .json(&body)
            })
            .await?)
    }

    /// Exchanges a Link public token for the item's access token. Not
    /// idempotent (a public token is exchanged once): retried only when the
    /// request was never sent.
    pub(crate) async fn exchange_public_token(
        &self,
        public_token: &str,
    ) -> Result<Exchanged, PlaidError> {
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            item_id: String,
        }
        let body = self
            .post(
                Retry::Unsent,
                "/item/public_token/exchange",
                json!({"public_token": public_token}),
            )
            .await?;
        let answer: Answer = parse(body)?;
        Ok(Exchanged {
            item_id: answer.item_id,
            access_token: SecretString::from(answer.access_token),
        })
    }

    /// The item's accounts and its institution.
    pub(crate) async fn item_accounts(
        &self,
        access_token: &SecretString,
    ) -> Result<ItemAccounts, PlaidError> {
        #[derive(Deserialize)]
        struct Item {
            #[serde(default)]
            institution_id: Option<String>,
        }
        #[derive(Deserialize)]
        struct Answer {
            accounts: Vec<PlaidAccount>,
            item: Item,
        }
        let body = self
            .post(
                Retry::Idempotent,
                "/accounts/get",
                json!({"access_token": access_token.expose_secret()}),
            )
            .await?;
        let answer: Answer = parse(body)?;
        Ok(ItemAccounts {
            accounts: answer.accounts,
            institution_id: answer.item.institution_id,
        })
    }

    /// A Link token for `client_user_id` (the organization): for a new item
    /// (products `transactions`), or with an item's access token for update
    /// mode (the user logs in again; the item, its accounts and its
    /// transaction ids stay). Plaid sends the item's webhooks to `webhook`.
    pub(crate) async fn link_token(
        &self,
        client_user_id: &str,
        update: Option<&SecretString>,
        webhook: Option<&str>,
    ) -> Result<LinkToken, PlaidError> {
        let mut fields = json!({
            "client_name": LINK_CLIENT_NAME,
            "language": "en",
            "country_codes": LINK_COUNTRY_CODES,
            "user": {"client_user_id": client_user_id},
        });
        match update {
            // Update mode: the item's own products; none may be named.
            Some(token) => fields["access_token"] = json!(token.expose_secret()),
            None => fields["products"] = json!(["transactions"]),
        }
        if let Some(url) = webhook {
            fields["webhook"] = json!(url);
        }
        // A token nobody used costs nothing: safe to ask again.
        let body = self
            .post(Retry::Idempotent, "/link/token/create", fields)
            .await?;
        parse(body)
    }

    /// Removes the item at Plaid: its access token stops working and Plaid
    /// stops billing and updating it. An item Plaid no longer knows counts
    /// as removed (a retry after a lost answer meets that).
    pub(crate) async fn remove_item(&self, access_token: &SecretString) -> Result<(), PlaidError> {
        match self
            .post(
                Retry::Idempotent,
                "/item/remove",
                json!({"access_token": access_token.expose_secret()}),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(PlaidError::ItemError(code))
                if code == "ITEM_NOT_FOUND" || code == "INVALID_ACCESS_TOKEN" =>
            {
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// The public key `key_id` that Plaid signs webhooks with.
    pub(crate) async fn webhook_key(&self, key_id: &str) -> Result<WebhookKey, PlaidError> {
        #[derive(Deserialize)]
        struct Answer {
            key: WebhookKey,
        }
        let body = self
            .post(
                Retry::Idempotent,
                "/webhook_verification_key/get",
                json!({"key_id": key_id}),
            )
            .await?;
        Ok(parse::<Answer>(body)?.key)
    }

    /// One page of the item's transaction updates since `cursor` (empty:
    /// from the start).
    pub(crate) async fn sync(
        &self,
        access_token: &SecretString,
        cursor: &str,
    ) -> Result<SyncPage, PlaidError> {
        let mut fields = json!({"access_token": access_token.expose_secret(), "count": SYNC_PAGE});
        if !cursor.is_empty() {
            fields["cursor"] = json!(cursor);
        }
        let body = self
            .post(Retry::Idempotent, "/transactions/sync", fields)
            .await?;
        parse(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plaids_error_object() {
        let object = |error_type: &str, code: &str| json!({"error_type": error_type, "error_code": code, "error_message": "m", "request_id": "r"});
        assert_eq!(
            PlaidError::from_error_object(&object("INVALID_INPUT", "INVALID_PUBLIC_TOKEN")),
            PlaidError::InvalidPublicToken
        );
        assert_eq!(
            PlaidError::from_error_object(&object(
                "TRANSACTIONS_ERROR",
                "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"
            )),
            PlaidError::MutationDuringPagination
        );
        assert_eq!(
            PlaidError::from_error_object(&object("ITEM_ERROR", "ITEM_LOGIN_REQUIRED")),
            PlaidError::LoginRequired("ITEM_LOGIN_REQUIRED".into())
        );
        assert_eq!(
            PlaidError::from_error_object(&object("INVALID_INPUT", "INVALID_ACCESS_TOKEN")),
            PlaidError::ItemError("INVALID_ACCESS_TOKEN".into())
        );
        let temporary = |code, plaid: &str| PlaidError::Temporary {
            code,
            plaid_code: plaid.into(),
        };
        assert_eq!(
            PlaidError::from_error_object(&object("INSTITUTION_ERROR", "INSTITUTION_DOWN")),
            temporary("BANK_INSTITUTION_DOWN", "INSTITUTION_DOWN")
        );
        assert_eq!(
            PlaidError::from_error_object(&object("ITEM_ERROR", "PRODUCT_NOT_READY")),
            temporary("BANK_PRODUCT_NOT_READY", "PRODUCT_NOT_READY")
        );
        assert_eq!(
            PlaidError::from_error_object(&object("RATE_LIMIT_EXCEEDED", "TRANSACTIONS_LIMIT")),
            temporary("BANK_RATE_LIMITED", "TRANSACTIONS_LIMIT")
        );
        assert_eq!(
            PlaidError::from_error_object(&object("API_ERROR", "INTERNAL_SERVER_ERROR")),
            temporary("BANK_PROVIDER_ERROR", "INTERNAL_SERVER_ERROR")
        );
        assert_eq!(
            PlaidError::from_error_object(&object("ITEM_ERROR", "NO_ACCOUNTS")),
            PlaidError::ItemError("NO_ACCOUNTS".into())
        );
        assert_eq!(
            PlaidError::from_error_object(&object("INVALID_INPUT", "INVALID_API_KEYS")),
            PlaidError::Refused {
                error_type: "INVALID_INPUT".into(),
                error_code: "INVALID_API_KEYS".into()
            }
        );
        assert!(matches!(
            PlaidError::from_error_object(&Value::Null),
            PlaidError::Refused { .. }
        ));
    }

    #[test]
    fn reads_a_sync_page() {
        let page: SyncPage = parse(json!({
            "added": [{"transaction_id": "t1", "account_id": "a1", "amount": -25.5,
                       "iso_currency_code": "USD", "date": "2026-01-31", "name": "INV-000001 ACME",
                       "pending": false, "category": null}],
            "modified": [], "removed": [{"transaction_id": "t0"}],
            "accounts": [{"account_id": "a1", "name": "Checking", "mask": null,
                          "balances": {"iso_currency_code": null, "unofficial_currency_code": "BTC"}}],
            "next_cursor": "c1", "has_more": true, "request_id": "r"
        }))
        .unwrap();
        assert_eq!(page.added[0].amount.to_string(), "-25.5");
        assert_eq!(page.removed[0].transaction_id, "t0");
        assert_eq!(
            page.accounts[0]
                .balances
                .unofficial_currency_code
                .as_deref(),
            Some("BTC")
        );
        assert!(page.has_more);
        assert_eq!(
            parse::<SyncPage>(json!({"added": "x"})).unwrap_err(),
            PlaidError::Unavailable(UNEXPECTED_ANSWER)
        );
    }
}
