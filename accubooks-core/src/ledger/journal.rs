//! The journal read back: pages of an organization's entries, filtered by
//! dates, account, reversal and metadata, in the books' order or newest
//! first.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Deserialize;
use sqlx::Row;

use super::{LedgerError, LedgerResult};
use crate::db::Database;
use crate::db::sql::{BeginScoped, List, has_metadata, in_list, on_pool};
use crate::metadata::Metadata;
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};

use super::entries::{Entry, EntryKind, EntryLine, ValidLine, show_line};

/// Which journal entries a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Dated on or after this day.
    pub from: Option<NaiveDate>,
    /// Dated on or before this day.
    pub to: Option<NaiveDate>,
    /// With a line on the account of this code.
    pub account: Option<String>,
    /// Reversed by another entry (`true`) or not (`false`).
    pub reversed: Option<bool>,
    /// With each of these metadata keys set to its value.
    pub metadata: Metadata,
    /// The order of the list.
    pub order: EntryOrder,
}

/// The order of a list of journal entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryOrder {
    /// Oldest date first, then by id (the order of the books).
    #[default]
    Date,
    /// Newest date first, then by id descending.
    Newest,
}

impl EntryOrder {
    /// The order named `date` or `newest`; anything else is a 422.
    pub fn from_name(name: &str) -> LedgerResult<Self> {
        match name {
            "date" => Ok(EntryOrder::Date),
            "newest" => Ok(EntryOrder::Newest),
            _ => Err(LedgerError::invalid(
                "INVALID_QUERY",
                "order is date (the default) or newest.",
            )),
        }
    }
}

/// The sort key of a journal entry in a list: its date, then its id.
pub type EntryKey = (NaiveDate, i64);

/// One page of the organization's journal entries that `filter` keeps, in
/// its order. Each page reads only its own entries from an index: by date
/// from `journal_entries_by_org_date`, and with an account from that
/// account's lines (`journal_lines_by_account_date`).
pub async fn list_entries(
    db: &Database,
    organization: &OrganizationId,
    filter: &EntryFilter,
    page: &PageRequest<EntryKey>,
) -> LedgerResult<Page<Vec<Entry>>> {
    let from = filter.from.unwrap_or(super::reports::EARLIEST);
    let to = filter.to.unwrap_or(super::reports::LATEST);
    if from > to {
        return Err(LedgerError::invalid(
            "INVALID_PERIOD",
            "\"from\" must not be after \"to\".",
        ));
    }
    let account = match &filter.account {
        Some(code) => Some(
            super::accounts::accounts_by_code(db, organization, &[code.as_str()])
                .await?
                .remove(code.as_str())
                .ok_or_else(|| {
                    LedgerError::invalid(
                        "UNKNOWN_ACCOUNT",
                        format!("There is no account {code:?} to list the entries of."),
                    )
                })?
                .id,
        ),
        None => None,
    };
    let newest = filter.order == EntryOrder::Newest;
    // The first page starts after a key before (or, newest first, after)
    // every entry of the period: ids are positive.
    let (after_date, after_id) =
        page.after
            .unwrap_or(if newest { (to, i64::MAX) } else { (from, 0) });
    let (past, direction) = if newest { ("<", "DESC") } else { (">", "ASC") };
    // The metadata pairs, bound as one JSON object ($7).
    let pool = db.pool();
    let meta = |alias: &str| -> String {
        if filter.metadata.is_empty() {
            String::new()
        } else {
            format!(
                "AND {}",
                has_metadata(pool, &format!("{alias}.metadata"), 7)
            )
        }
    };
    let reversed = match filter.reversed {
        Some(true) => "AND EXISTS (SELECT 1 FROM journal_entries r WHERE r.reverses = k.id)",
        Some(false) => "AND NOT EXISTS (SELECT 1 FROM journal_entries r WHERE r.reverses = k.id)",
        None => "",
    };
    // The keys of the page ($1 is the account, or the organization), then
    // the entries and their lines.
    let keys = match account {
        Some(_) => format!(
            "SELECT DISTINCT k.entry_date, k.id FROM (SELECT l.entry_date, l.entry_id AS id \
             FROM journal_lines l WHERE l.account_id = $1 AND l.entry_date >= $2 \
             AND l.entry_date <= $3 AND (l.entry_date, l.entry_id) {past} ($4, $5)) k \
             WHERE true {reversed} {} \
             ORDER BY k.entry_date {direction}, k.id {direction} LIMIT $6",
            if filter.metadata.is_empty() {
                String::new()
            } else {
                format!(
                    "AND EXISTS (SELECT 1 FROM journal_entries m WHERE m.id = k.id {})",
                    meta("m")
                )
            }
        ),
        None => format!(
            "SELECT k.entry_date, k.id FROM journal_entries k WHERE k.organization_id = $1 \
             AND k.entry_date >= $2 AND k.entry_date <= $3 \
             AND (k.entry_date, k.id) {past} ($4, $5) {reversed} {} \
             ORDER BY k.entry_date {direction}, k.id {direction} LIMIT $6",
            meta("k")
        ),
    };
    let owned = organization.to_owned();
    let fetch = page.limit.fetch();
    let metadata = filter.metadata.clone();
    let entries: Vec<Entry> = db
        .run(|pool| async move {
            let heads_sql = format!(
                "SELECT e.id, e.entry_date, e.memo, e.reverses, r.id AS reversed_by, \
                 CAST(e.metadata AS TEXT) AS metadata, e.kind \
                 FROM journal_entries e LEFT JOIN journal_entries r ON r.reverses = e.id \
                 WHERE e.organization_id = $1 AND {}",
                in_list(&pool, "e.id", 2)
            );
            let lines_sql = format!(
                "SELECT l.entry_id, a.code, a.currency, l.amount FROM journal_lines l \
                 JOIN accounts a ON a.id = l.account_id WHERE {} ORDER BY l.entry_id, l.line_no",
                in_list(&pool, "l.entry_id", 1)
            );
            on_pool!(pool, p => {
                let mut tx = p.begin_snapshot_for(&owned).await?;
                let keys = sqlx::query_as(sqlx::AssertSqlSafe(keys.as_str()));
                let keys = match account {
                    Some(account) => keys.bind(account),
                    None => keys.bind(&owned),
                };
                let mut keys = keys
                    .bind(from)
                    .bind(to)
                    .bind(after_date)
                    .bind(after_id)
                    .bind(fetch);
                if !metadata.is_empty() {
                    keys = keys.bind(metadata.to_stored());
                }
                let keys: Vec<(NaiveDate, i64)> = keys.fetch_all(&mut *tx).await?;
                let ids: Vec<i64> = keys.iter().map(|(_, id)| *id).collect();
                let heads = sqlx::query(sqlx::AssertSqlSafe(heads_sql.as_str()))
                    .bind(&owned)
                    .bind(List(ids.clone()))
                    .fetch_all(&mut *tx)
                    .await?;
                let lines = sqlx::query(sqlx::AssertSqlSafe(lines_sql.as_str()))
                    .bind(List(ids.clone()))
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                let mut by_entry: HashMap<i64, Vec<EntryLine>> = HashMap::new();
                for row in &lines {
                    by_entry.entry(row.try_get("entry_id")?).or_default().push(show_line(&ValidLine {
                        account_id: 0,
                        account_code: row.try_get("code")?,
                        currency: row.try_get("currency")?,
                        amount: row.try_get("amount")?,
                    }));
                }
                let mut found: HashMap<i64, Entry> = HashMap::new();
                for head in &heads {
                    let id: i64 = head.try_get("id")?;
                    found.insert(id, Entry {
                        id,
                        date: head.try_get("entry_date")?,
                        memo: head.try_get("memo")?,
                        reverses: head.try_get("reverses")?,
                        reversed_by: head.try_get("reversed_by")?,
                        lines: by_entry.remove(&id).unwrap_or_default(),
                        metadata: Metadata::from_stored(head.try_get("metadata")?),
                        kind: EntryKind::from_stored(head.try_get("kind")?),
                    });
                }
                Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
            })
        })
        .await?;
    Ok(page.page(entries, |entry| (entry.date, entry.id)))
}
