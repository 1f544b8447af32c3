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

use super::{Api, CallError, Retry};
use crate::config::ApiCredentials;
use crate::deps::{Dependency, PLAID_VERSION};
use crate::error::Fault;

/// The most transaction updates one `/transactions/sync` page carries
/// (Plaid's maximum is 500).
pub(crate) const SYNC_PAGE: u32 = 500;

/// A Plaid client.
pub(crate) struct Plaid {
    pub(crate) api: Api,
    pub(crate) credentials: ApiCredentials,
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
    /// The item's access token no longer works: the user must link the
    /// bank again (`ITEM_LOGIN_REQUIRED`, `INVALID_ACCESS_TOKEN`, …).
    #[error("the bank item needs to be linked again ({0})")]
    LoginRequired(String),
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
    /// Reads Plaid's error object (`error_type`, `error_code`); its
    /// `error_message` is not kept, so nothing Plaid echoes reaches a log.
    fn from_error_object(body: &Value) -> Self {
        let text = |field: &str| body[field].as_str().unwrap_or("UNKNOWN").to_owned();
        let (error_type, error_code) = (text("error_type"), text("error_code"));
        match error_code.as_str() {
            "INVALID_PUBLIC_TOKEN" => PlaidError::InvalidPublicToken,
            "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION" => PlaidError::MutationDuringPagination,
            "ITEM_LOGIN_REQUIRED"
            | "INVALID_ACCESS_TOKEN"
            | "ITEM_NOT_FOUND"
            | "ACCESS_NOT_GRANTED"
            | "ITEM_LOCKED"
            | "USER_PERMISSION_REVOKED" => PlaidError::LoginRequired(error_code),
            _ if error_type == "ITEM_ERROR" => PlaidError::LoginRequired(error_code),
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

    /// The item's accounts.
    pub(crate) async fn accounts(
        &self,
        access_token: &SecretString,
    ) -> Result<Vec<PlaidAccount>, PlaidError> {
        #[derive(Deserialize)]
        struct Answer {
            accounts: Vec<PlaidAccount>,
        }
        let body = self
            .post(
                Retry::Idempotent,
                "/accounts/get",
                json!({"access_token": access_token.expose_secret()}),
            )
            .await?;
        Ok(parse::<Answer>(body)?.accounts)
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
            PlaidError::LoginRequired("INVALID_ACCESS_TOKEN".into())
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
