//! Bank feeds (Plaid): link, map, sync, reconcile.
//!
//! Only linking and asking for a sync talk to Plaid; they are refused at
//! once (`503 BANK_INTEGRATION_UNAVAILABLE` while Plaid is down,
//! `BANK_INTEGRATION_NOT_CONFIGURED` when it is not configured), whichever door they come through. Reading the imported lines
//! and matching them need only the database.

use super::idempotent::{Keyed, stored};
use super::{Answer, Books, ClientKey, Error, Result, org};
use crate::banking::{
    self, AccountMapping, BankAccount, BankLine, LineStatus, LinkedItem, MatchInput, NewLink,
    SyncRequested,
};
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
                message:
                    "The bank asks the user to log in again; link the bank again with Plaid Link."
                        .to_owned(),
            }
            .into(),
            other => {
                if let PlaidError::Refused {
                    error_type,
                    error_code,
                } = &other
                {
                    tracing::warn!(
                        error_type = %error_type,
                        error_code = %error_code,
                        "Plaid refused a request (check PLAID_CLIENT_ID and PLAID_SECRET)"
                    );
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
            let accounts = plaid
                .accounts(&exchanged.access_token)
                .await
                .map_err(|e| self.plaid_error(e))?;
            let render = |linked: &LinkedItem| stored(linked);
            let key = key
                .as_ref()
                .map(|k| (k, &render as ledger::RenderRecord<'_, _>));
            let organization = org(caller);
            let linked = banking::save_link(
                self.app.database(),
                self.app.sealer(),
                &organization,
                &exchanged.item_id,
                &exchanged.access_token,
                &accounts,
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
