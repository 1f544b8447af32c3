//! The chart of accounts and the journal.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::idempotent::{Keyed, stored};
use super::{Answer, Books, ClientKey, Dated, Error, Result, org};
use crate::identity::{Principal, Role};
use crate::ledger::{
    self, Account, AccountBalance, Entry, EntryFilter, EntryInput, EntryKey, LedgerKey, LedgerRow,
    NewAccount,
};
use crate::metadata::Metadata;
use crate::paging::{Page, PageRequest};

/// Most entries one batch may carry.
pub const MAX_BATCH: usize = 10_000;

/// Entries posted together, all or none.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// 1 to 10,000 entries.
    pub entries: Vec<EntryInput>,
}

/// The ids of a batch's entries, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = BatchAnswer)]
pub struct Posted {
    /// One id per entry.
    pub ids: Vec<i64>,
}

impl Books<'_> {
    /// A page of the chart of accounts with current balances, by code: those
    /// with every pair of `metadata` (all when empty).
    pub async fn accounts(
        &self,
        caller: &Principal,
        metadata: Metadata,
        page: PageRequest<String>,
    ) -> Result<Page<Vec<Account>>> {
        self.run("accounts", Some(caller), Role::Viewer, async {
            let db = self.app.database();
            Ok(ledger::list_accounts(db, &org(caller), &metadata, &page).await?)
        })
        .await
    }

    /// Replaces an account's metadata.
    pub async fn replace_account_metadata(
        &self,
        caller: &Principal,
        code: &str,
        metadata: Metadata,
    ) -> Result<Account> {
        self.run(
            "replace_account_metadata",
            Some(caller),
            Role::Accountant,
            async {
                let db = self.app.database();
                Ok(ledger::replace_account_metadata(db, &org(caller), code, &metadata).await?)
            },
        )
        .await
    }

    /// Opens an account.
    pub async fn create_account(
        &self,
        caller: &Principal,
        new: NewAccount,
        key: Option<ClientKey>,
    ) -> Result<Answer<Account>> {
        let keyed = Keyed {
            operation: "create_account",
            target: None,
            input: &new,
        };
        let new = &new;
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async move {
            let render = |account: &Account| stored(account);
            let key = key
                .as_ref()
                .map(|k| (k, &render as ledger::RenderRecord<'_, _>));
            let db = self.app.database();
            Ok(ledger::create_account(db, &org(caller), new.clone(), key).await?)
        })
        .await
    }

    /// Validates and posts one balanced entry.
    pub async fn post_entry(
        &self,
        caller: &Principal,
        input: EntryInput,
        key: Option<ClientKey>,
    ) -> Result<Answer<Entry>> {
        let keyed = Keyed {
            operation: "post_entry",
            target: None,
            input: &input,
        };
        self.run_keyed(caller, Role::Accountant, key, keyed, |key| async {
            let entry = ledger::prepare(self.app.ledger(), &org(caller), &input).await?;
            let shown = entry.clone();
            let key = key.map(|key| {
                let render: crate::idempotency::Render =
                    Box::new(move |ids: &[i64]| stored(&shown.posted(ids[0])));
                (key, render)
            });
            let ids = self
                .app
                .ledger()
                .committer()
                .post(vec![entry.clone()], key)
                .await?;
            Ok(entry.posted(ids[0]))
        })
        .await
    }

    /// Validates every entry, then posts them all or none in one
    /// transaction; answers their ids in order.
    pub async fn post_batch(
        &self,
        caller: &Principal,
        batch: Batch,
        key: Option<ClientKey>,
    ) -> Result<Answer<Posted>> {
        let keyed = Keyed {
            operation: "post_batch",
            target: None,
            input: &batch,
        };
        self.run("post_batch", Some(caller), Role::Accountant, async {
            let entries = &batch.entries;
            if entries.is_empty() || entries.len() > MAX_BATCH {
                return Err(ledger::LedgerError::invalid(
                    "INVALID_BATCH",
                    format!("A batch carries 1 to {MAX_BATCH} entries."),
                )
                .into());
            }
            let organization = org(caller);
            self.keyed(caller, key, keyed, |key| async {
                let _slot = self
                    .app
                    .work_limits()
                    .acquire_batch(&organization, entries.len())?;
                let valid = ledger::prepare_batch(self.app.ledger(), &organization, entries)
                    .await
                    .map_err(|(index, err)| Error::in_entry(err, index))?;
                let key = key.map(|key| {
                    let render: crate::idempotency::Render =
                        Box::new(|ids: &[i64]| stored(&Posted { ids: ids.to_vec() }));
                    (key, render)
                });
                let ids = self.app.ledger().committer().post(valid, key).await?;
                Ok(Posted { ids })
            })
            .await
        })
        .await
    }

    /// A posted entry.
    pub async fn entry(&self, caller: &Principal, id: i64) -> Result<Entry> {
        self.run("entry", Some(caller), Role::Viewer, async {
            Ok(ledger::get_entry(self.app.database(), &org(caller), id).await?)
        })
        .await
    }

    /// A page of the journal: the entries `filter` keeps, in its order.
    pub async fn entries(
        &self,
        caller: &Principal,
        filter: EntryFilter,
        page: PageRequest<EntryKey>,
    ) -> Result<Page<Vec<Entry>>> {
        self.run("entries", Some(caller), Role::Viewer, async {
            let db = self.app.reports_database();
            Ok(ledger::list_entries(db, &org(caller), &filter, &page).await?)
        })
        .await
    }

    /// A page of an account's history: its postings in date order with the
    /// balance after each, from `from` to `to` (default: all of it).
    pub async fn account_history(
        &self,
        caller: &Principal,
        code: &str,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        page: PageRequest<LedgerKey>,
    ) -> Result<Page<Vec<LedgerRow>>> {
        self.run("account_history", Some(caller), Role::Viewer, async {
            let db = self.app.reports_database();
            Ok(ledger::account_history(db, &org(caller), code, from, to, &page).await?)
        })
        .await
    }

    /// An account's balance at the end of `as_of` (default: today, UTC).
    pub async fn account_balance(
        &self,
        caller: &Principal,
        code: &str,
        as_of: Option<NaiveDate>,
    ) -> Result<AccountBalance> {
        self.run("account_balance", Some(caller), Role::Viewer, async {
            let db = self.app.reports_database();
            let as_of = super::reporting::or_today(as_of);
            Ok(ledger::account_balance(db, &org(caller), code, as_of).await?)
        })
        .await
    }

    /// Posts the mirror entry of a posted one, once, dated `date` (default:
    /// the entry's date).
    pub async fn reverse_entry(
        &self,
        caller: &Principal,
        id: i64,
        input: Dated,
        key: Option<ClientKey>,
    ) -> Result<Answer<Entry>> {
        let keyed = Keyed {
            operation: "reverse_entry",
            target: Some(id),
            input: &input,
        };
        self.run("reverse_entry", Some(caller), Role::Accountant, async {
            let date = input.date.as_deref().map(ledger::parse_date).transpose()?;
            self.keyed(caller, key, keyed, |key| async move {
                let render: ledger::RenderEntry = stored::<Entry>;
                Ok(ledger::post_reversal(
                    self.app.ledger(),
                    &org(caller),
                    id,
                    date,
                    key.map(|key| (key, render)),
                )
                .await?)
            })
            .await
        })
        .await
    }
}
