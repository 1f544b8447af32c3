//! Plaid's webhook: verified as Plaid documents (the `Plaid-Verification`
//! JWT), then `SYNC_UPDATES_AVAILABLE` asks for a sync of the item's
//! organization and the `ITEM` webhooks set the item's status. Syncing
//! when asked (`POST /api/bank/sync`) stays the fallback.

use serde::{Deserialize, Serialize};

use super::{Books, Error, Result};
use crate::banking::{self, ItemStatus};
use crate::deps;
use crate::identity::Role;
use crate::saas::plaid::PlaidError;
use crate::saas::plaid::webhook::VerifyError;
use crate::usecases::Client;

/// The provider's label in metrics.
const PROVIDER: &str = "plaid";

/// What Plaid's webhook did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlaidWebhookReceipt {
    /// Plaid's `webhook_type` and `webhook_code`, e.g.
    /// `TRANSACTIONS.SYNC_UPDATES_AVAILABLE`.
    pub webhook: String,
    /// See [`PlaidWebhookOutcome`].
    pub outcome: PlaidWebhookOutcome,
    /// The sync job, when one was asked for.
    pub job_id: Option<i64>,
}

/// See [`PlaidWebhookReceipt::outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlaidWebhookOutcome {
    /// A sync of the item's organization was asked for (or one already
    /// waiting is answered).
    SyncRequested,
    /// The item's status was set.
    StatusSet,
    /// A webhook that changes nothing here.
    Ignored,
    /// About an item this server does not hold (removed, or never linked):
    /// acknowledged, so Plaid stops sending it.
    UnknownItem,
}

/// What one webhook asks, read from its JSON.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    Sync,
    Status(ItemStatus, Option<String>),
    Nothing,
}

/// What a webhook (`webhook_type`, `webhook_code`, its `error`) asks of
/// its item.
fn asked(body: &serde_json::Value) -> Asked {
    let text = |field: &str| body[field].as_str().unwrap_or_default();
    match (text("webhook_type"), text("webhook_code")) {
        ("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE") => Asked::Sync,
        ("ITEM", "LOGIN_REPAIRED") => Asked::Status(ItemStatus::Active, None),
        ("ITEM", code @ ("PENDING_EXPIRATION" | "PENDING_DISCONNECT")) => {
            Asked::Status(ItemStatus::LoginRequired, Some(code.to_owned()))
        }
        ("ITEM", code @ ("USER_PERMISSION_REVOKED" | "USER_ACCOUNT_REVOKED")) => {
            Asked::Status(ItemStatus::Error, Some(code.to_owned()))
        }
        ("ITEM", "ERROR") => match PlaidError::from_error_object(&body["error"]) {
            PlaidError::LoginRequired(code) => Asked::Status(ItemStatus::LoginRequired, Some(code)),
            PlaidError::ItemError(code) => Asked::Status(ItemStatus::Error, Some(code)),
            // Passing trouble (the bank down): the next sync meets it or not.
            _ => Asked::Nothing,
        },
        _ => Asked::Nothing,
    }
}

impl Books<'_> {
    /// Plaid's webhook: the raw body and its `Plaid-Verification` header.
    pub async fn plaid_webhook(
        &self,
        payload: &[u8],
        verification: Option<&str>,
        client: Client,
    ) -> Result<PlaidWebhookReceipt> {
        let receipt = self
            .run("plaid_webhook", None, Role::Viewer, async {
                let Some(plaid) = self.app.plaid() else {
                    return Err(self.unavailable(deps::PLAID));
                };
                let address = match client {
                    Client::Remote(address) => address,
                    Client::Host => None,
                };
                let (limits, metrics) = (self.app.auth_limits(), self.app.metrics());
                if let Err(throttled) = limits.check_webhook(address) {
                    metrics.count_webhook_refused(PROVIDER, "rate_limited");
                    return Err(throttled.into());
                }
                let now = chrono::Utc::now().timestamp();
                match plaid.verify_webhook(payload, verification, now).await {
                    Ok(()) => {}
                    Err(VerifyError::Bad(bad)) => {
                        metrics.count_webhook_refused(PROVIDER, bad.reason());
                        tracing::debug!(provider = PROVIDER, reason = bad.reason(), "webhook refused");
                        limits.fail_webhook(address);
                        return Err(bad.into());
                    }
                    Err(VerifyError::Plaid(err)) => {
                        tracing::warn!(plaid_code = err.plaid_code(), "Plaid's webhook key could not be fetched; Plaid will retry the webhook");
                        return Err(self.unavailable(deps::PLAID));
                    }
                }
                let body: serde_json::Value = serde_json::from_slice(payload)
                    .map_err(|_| crate::saas::plaid::webhook::BadPlaidSignature::Malformed)?;
                let webhook = format!(
                    "{}.{}",
                    body["webhook_type"].as_str().unwrap_or_default(),
                    body["webhook_code"].as_str().unwrap_or_default()
                )
                .chars()
                .take(100)
                .collect::<String>();
                let receipt = |outcome, job_id| PlaidWebhookReceipt {
                    webhook: webhook.clone(),
                    outcome,
                    job_id,
                };
                let asked = asked(&body);
                if asked == Asked::Nothing {
                    tracing::debug!(webhook = %webhook, "Plaid webhook ignored");
                    return Ok(receipt(PlaidWebhookOutcome::Ignored, None));
                }
                let item = body["item_id"].as_str().unwrap_or_default();
                let db = self.app.database();
                let Some(organization) = banking::item_owner(db, item).await? else {
                    tracing::info!(webhook = %webhook, "Plaid webhook about an item this server does not hold; acknowledged");
                    return Ok(receipt(PlaidWebhookOutcome::UnknownItem, None));
                };
                match asked {
                    Asked::Sync => {
                        let requested = banking::request_sync(db, &organization).await?;
                        tracing::info!(organization = %organization, job = requested.job_id, "Plaid has bank updates; sync asked");
                        Ok(receipt(PlaidWebhookOutcome::SyncRequested, Some(requested.job_id)))
                    }
                    Asked::Status(status, code) => {
                        banking::set_item_status(db, &organization, item, status, code.as_deref())
                            .await?;
                        tracing::info!(organization = %organization, webhook = %webhook, status = status.as_str(), "bank item status set by Plaid's webhook");
                        Ok(receipt(PlaidWebhookOutcome::StatusSet, None))
                    }
                    Asked::Nothing => Ok(receipt(PlaidWebhookOutcome::Ignored, None)),
                }
            })
            .await?;
        if receipt.job_id.is_some() {
            self.app.jobs().wake(banking::QUEUE);
        }
        Ok(receipt)
    }
}

/// A refused signature is the same 400 whatever the provider.
impl From<crate::saas::plaid::webhook::BadPlaidSignature> for Error {
    fn from(bad: crate::saas::plaid::webhook::BadPlaidSignature) -> Self {
        Error::InvalidPlaidSignature(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn webhooks_ask_by_type_and_code() {
        let hook = |t: &str, c: &str| json!({"webhook_type": t, "webhook_code": c, "item_id": "i"});
        assert_eq!(
            asked(&hook("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE")),
            Asked::Sync
        );
        assert_eq!(
            asked(&hook("TRANSACTIONS", "DEFAULT_UPDATE")),
            Asked::Nothing
        );
        assert_eq!(
            asked(&hook("ITEM", "LOGIN_REPAIRED")),
            Asked::Status(ItemStatus::Active, None)
        );
        assert_eq!(
            asked(&hook("ITEM", "PENDING_EXPIRATION")),
            Asked::Status(ItemStatus::LoginRequired, Some("PENDING_EXPIRATION".into()))
        );
        let mut error = hook("ITEM", "ERROR");
        error["error"] = json!({"error_type": "ITEM_ERROR", "error_code": "ITEM_LOGIN_REQUIRED"});
        assert_eq!(
            asked(&error),
            Asked::Status(
                ItemStatus::LoginRequired,
                Some("ITEM_LOGIN_REQUIRED".into())
            )
        );
        error["error"] =
            json!({"error_type": "INSTITUTION_ERROR", "error_code": "INSTITUTION_DOWN"});
        assert_eq!(asked(&error), Asked::Nothing);
    }
}
