//! Bank feeds (Plaid): link, map, sync, reconcile.
//!
//! Only linking and asking for a sync talk to Plaid; they are refused at
//! once (`503 BANK_INTEGRATION_UNAVAILABLE` while Plaid is down,
//! `BANK_INTEGRATION_NOT_CONFIGURED` when it is not configured), whichever door they come through. Reading the imported lines
//! and matching them need only the database.

use super::idempotent::{Keyed, stored};
use super::{Answer, Books, ClientKey, Error, Result, org};
use crate::banking::{
    self, AccountMapping, BankAccount, BankItem, BankLine, ItemStatus, LineStatus, LinkTokenIssued,
    LinkTokenRequest, LinkedItem, MatchInput, NewLink, SyncRequested,
};
use crate::deps::Unavailable;
use crate::identity::{Principal, Role};
use crate::ledger::{self, LedgerError};
use crate::paging::{Page, PageRequest};
use crate::saas::plaid::{Plaid, PlaidError};

impl Books<'_> {
    /// The Plaid client, or the dependency's 503 while Plaid is down or
    /// disabled.
    fn plaid(&self) -> Result<&Plaid> {
        match self.app.plaid() {
            Some(plaid) if plaid.api.dependency().is_available() => Ok(plaid),
            _ => Err(self.unavailable(crate::deps::PLAID)),
        }
    }

    /// What a refused or failed Plaid call answers the caller. Plaid's own
    /// message is never passed on (nor logged): only its code.
    fn plaid_error(&self, err: PlaidError) -> Error {
        match err {
            PlaidError::InvalidPublicToken => LedgerError::invalid(
                "INVALID_PUBLIC_TOKEN",
                "The public token is invalid, expired or already used; open Plaid Link again.",
            )
            .into(),
            PlaidError::LoginRequired(_) => LedgerError::Conflict {
                code: "BANK_ITEM_LOGIN_REQUIRED",
                message: "The bank asks the user to log in again: open Plaid Link in update mode \
                          (POST /api/bank/link-token with the item's id), then \
                          POST /api/bank/items/{id}/reconnected."
                    .to_owned(),
            }
            .into(),
            PlaidError::ItemError(code) => LedgerError::Conflict {
                code: "BANK_ITEM_ERROR",
                message: format!(
                    "Plaid cannot use this bank item ({code}); remove it \
                     (DELETE /api/bank/items/{{id}}) and link the bank again."
                ),
            }
            .into(),
            PlaidError::Temporary { code, plaid_code } => {
                tracing::warn!(plaid_code = %plaid_code, code, "Plaid cannot serve the item now");
                Error::Unavailable(Unavailable {
                    code: "BANK_INSTITUTION_UNAVAILABLE",
                    message: "The bank (or Plaid) cannot serve this bank connection right now; \
                              try again in a few minutes.",
                    retry_after: 60,
                })
            }
            other => {
                if let PlaidError::Refused {
                    error_type,
                    error_code,
                } = &other
                {
                    // Name the real cause: only refused keys point at the
                    // configuration.
                    if error_code.contains("API_KEYS") || error_code.contains("CLIENT_ID") {
                        tracing::warn!(
                            error_type = %error_type,
                            error_code = %error_code,
                            "Plaid refused our keys (check PLAID_CLIENT_ID and PLAID_SECRET)"
                        );
                    } else {
                        tracing::warn!(
                            error_type = %error_type,
                            error_code = %error_code,
                            "Plaid refused a request"
                        );
                    }
                }
                self.unavailable(crate::deps::PLAID)
            }
        }
    }

    /// Links a bank: exchanges Plaid Link's public token, reads the item's
    /// accounts and keeps the access token sealed.
    pub async fn link_bank(
        &self,
        caller: &Principal,
        link: NewLink,
        key: Option<ClientKey>,
    ) -> Result<Answer<LinkedItem>> {
        let keyed = Keyed {
            operation: "link_bank",
            target: None,
            input: &link,
        };
        let link = &link;
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async move {
            let plaid = self.plaid()?;
            let token = link.public_token.trim();
            if token.is_empty() || token.len() > 500 {
                return Err(LedgerError::invalid(
                    "INVALID_PUBLIC_TOKEN",
                    "public_token is the token Plaid Link handed the client.",
                )
                .into());
            }
            let exchanged = plaid
                .exchange_public_token(token)
                .await
                .map_err(|e| self.plaid_error(e))?;
            let found = plaid
                .item_accounts(&exchanged.access_token)
                .await
                .map_err(|e| self.plaid_error(e))?;
            let organization = org(caller);
            let institution = found.institution_id.as_deref();
            let db = self.app.database();
            if let Some(existing) = banking::same_login(
                db,
                &organization,
                &exchanged.item_id,
                institution,
                &found.accounts,
            )
            .await?
            {
                // The same bank login linked twice would import its history
                // twice: undo the new item at Plaid and point to update mode.
                if let Err(err) = plaid.remove_item(&exchanged.access_token).await {
                    tracing::warn!(organization = %organization, plaid_code = err.plaid_code(), "a duplicate bank item could not be removed at Plaid");
                }
                return Err(LedgerError::Conflict {
                    code: "BANK_ITEM_ALREADY_LINKED",
                    message: format!(
                        "This bank login is already linked as item {existing}; to log in to it \
                         again use Plaid Link in update mode (POST /api/bank/link-token with \
                         {{\"item_id\": \"{existing}\"}}), which keeps its accounts, mappings and lines."
                    ),
                }
                .into());
            }
            let render = |linked: &LinkedItem| stored(linked);
            let key = key
                .as_ref()
                .map(|k| (k, &render as ledger::RenderRecord<'_, _>));
            let linked = banking::save_link(
                db,
                self.app.sealer(),
                &organization,
                &exchanged.item_id,
                institution,
                &exchanged.access_token,
                &found.accounts,
                key,
            )
            .await?;
            tracing::info!(
                organization = %organization,
                accounts = linked.accounts.len(),
                "bank item linked"
            );
            Ok(linked)
        })
        .await
    }

    /// A Plaid Link token: for a new bank (`item_id` null), or for update
    /// mode of a linked item (the user logs in to it again).
    pub async fn bank_link_token(
        &self,
        caller: &Principal,
        request: LinkTokenRequest,
    ) -> Result<LinkTokenIssued> {
        self.run("bank_link_token", Some(caller), Role::Accountant, async {
            let plaid = self.plaid()?;
            let organization = org(caller);
            let update = match request.item_id.as_deref() {
                Some(id) => Some(
                    banking::item_token(self.app.database(), self.app.sealer(), &organization, id)
                        .await?,
                ),
                None => None,
            };
            let issued = plaid
                .link_token(
                    organization.as_str(),
                    update.as_ref(),
                    plaid.credentials.webhook_url.as_deref(),
                )
                .await
                .map_err(|e| self.plaid_error(e))?;
            tracing::info!(organization = %organization, update = update.is_some(), "Plaid Link token made");
            Ok(LinkTokenIssued {
                link_token: issued.link_token,
                expiration: issued.expiration,
            })
        })
        .await
    }

    /// A page of the organization's linked bank items, with their status.
    pub async fn bank_items(
        &self,
        caller: &Principal,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<BankItem>>> {
        self.run("bank_items", Some(caller), Role::Viewer, async {
            Ok(banking::list_items(self.app.database(), &org(caller), &page).await?)
        })
        .await
    }

    /// Removes a linked item at Plaid and stops its sync; its accounts and
    /// lines (matched or not) stay.
    pub async fn remove_bank_item(&self, caller: &Principal, item_id: &str) -> Result<()> {
        self.run("remove_bank_item", Some(caller), Role::Accountant, async {
            let plaid = self.plaid()?;
            let (db, organization) = (self.app.database(), org(caller));
            match banking::item_token(db, self.app.sealer(), &organization, item_id).await {
                Ok(token) => {
                    plaid
                        .remove_item(&token)
                        .await
                        .map_err(|e| self.plaid_error(e))?;
                    tracing::info!(organization = %organization, "bank item removed at Plaid");
                }
                // Sealed under another SESSION_SECRET: Plaid cannot be told,
                // but the user must be able to drop it and link the bank again.
                Err(LedgerError::Conflict {
                    code: banking::ITEM_UNREADABLE,
                    ..
                }) => {
                    tracing::warn!(
                        organization = %organization,
                        "a bank item whose access token no longer opens was removed here only; \
                         remove it in Plaid's dashboard too"
                    );
                }
                Err(err) => return Err(err.into()),
            }
            banking::mark_removed(db, &organization, item_id).await?;
            Ok(())
        })
        .await
    }

    /// After Plaid Link in update mode: checks with Plaid that the item
    /// works again, saves its accounts (the user may have shared more),
    /// makes it `active` and asks for a sync.
    pub async fn bank_item_reconnected(
        &self,
        caller: &Principal,
        item_id: &str,
    ) -> Result<BankItem> {
        let item = self
            .run(
                "bank_item_reconnected",
                Some(caller),
                Role::Accountant,
                async {
                    let plaid = self.plaid()?;
                    let (db, organization) = (self.app.database(), org(caller));
                    let token =
                        banking::item_token(db, self.app.sealer(), &organization, item_id).await?;
                    let found = match plaid.item_accounts(&token).await {
                        Ok(found) => found,
                        Err(err) => {
                            let status = match &err {
                                PlaidError::LoginRequired(_) => Some(ItemStatus::LoginRequired),
                                PlaidError::ItemError(_) => Some(ItemStatus::Error),
                                _ => None,
                            };
                            if let Some(status) = status {
                                banking::set_item_status(
                                    db,
                                    &organization,
                                    item_id,
                                    status,
                                    Some(err.plaid_code()),
                                )
                                .await?;
                            }
                            return Err(self.plaid_error(err));
                        }
                    };
                    banking::save_link(
                        db,
                        self.app.sealer(),
                        &organization,
                        item_id,
                        found.institution_id.as_deref(),
                        &token,
                        &found.accounts,
                        None,
                    )
                    .await?;
                    banking::request_sync(db, &organization).await?;
                    tracing::info!(organization = %organization, "bank item reconnected");
                    Ok(banking::get_item(db, &organization, item_id).await?)
                },
            )
            .await?;
        self.app.jobs().wake(crate::banking::QUEUE);
        Ok(item)
    }

    /// A page of the organization's bank accounts, by id.
    pub async fn bank_accounts(
        &self,
        caller: &Principal,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<BankAccount>>> {
        self.run("bank_accounts", Some(caller), Role::Viewer, async {
            Ok(banking::list_bank_accounts(self.app.database(), &org(caller), &page).await?)
        })
        .await
    }

    /// Maps a bank account to a ledger account.
    pub async fn map_bank_account(
        &self,
        caller: &Principal,
        id: i64,
        mapping: AccountMapping,
    ) -> Result<BankAccount> {
        self.run("map_bank_account", Some(caller), Role::Accountant, async {
            Ok(banking::map_bank_account(self.app.ledger(), &org(caller), id, &mapping).await?)
        })
        .await
    }

    /// Asks for a sync of every linked bank (a `bank-feeds` job); a sync
    /// already waiting or running is answered instead of a second one.
    pub async fn sync_banks(
        &self,
        caller: &Principal,
        key: Option<ClientKey>,
    ) -> Result<Answer<SyncRequested>> {
        let keyed = Keyed {
            operation: "sync_banks",
            target: None,
            input: &(),
        };
        let requested = self
            .run_keyed(caller, Role::Accountant, key, keyed, |_key| async move {
                self.plaid()?;
                Ok(banking::request_sync(self.app.database(), &org(caller)).await?)
            })
            .await?;
        self.app.jobs().wake(crate::banking::QUEUE);
        Ok(requested)
    }

    /// A page of the imported bank lines with this status, newest imported
    /// first; unmatched ones carry their match suggestions.
    pub async fn bank_transactions(
        &self,
        caller: &Principal,
        status: LineStatus,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<BankLine>>> {
        self.run("bank_transactions", Some(caller), Role::Viewer, async {
            Ok(banking::list_lines(self.app.database(), &org(caller), status, &page).await?)
        })
        .await
    }

    /// Dismisses a bank line that is not matched (one set aside for
    /// review, a zero amount): kept, never booked.
    pub async fn dismiss_bank_transaction(&self, caller: &Principal, id: i64) -> Result<BankLine> {
        self.run(
            "dismiss_bank_transaction",
            Some(caller),
            Role::Accountant,
            async { Ok(banking::dismiss_line(self.app.database(), &org(caller), id).await?) },
        )
        .await
    }

    /// Matches a bank line to an invoice or categorises it to an account:
    /// posts it once (`409 BANK_TRANSACTION_MATCHED` the second time).
    pub async fn match_bank_transaction(
        &self,
        caller: &Principal,
        id: i64,
        input: MatchInput,
        key: Option<ClientKey>,
    ) -> Result<Answer<BankLine>> {
        let keyed = Keyed {
            operation: "match_bank_transaction",
            target: Some(id),
            input: &input,
        };
        let input = &input;
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async move {
            let ledger = self.app.ledger();
            Ok(banking::match_line(ledger, &org(caller), id, input, key).await?)
        })
        .await
    }
}
