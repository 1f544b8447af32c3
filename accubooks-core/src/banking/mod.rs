//! Bank feeds (contract section 8): Plaid items and their accounts, the
//! bank lines imported from them, match suggestions, and matching.
//!
//! - **Link**: a Plaid item's access token is kept sealed
//!   ([`Sealer`](crate::sealed::Sealer)) under the context
//!   `plaid-item:<organization>:<item id>`, so it opens only for its own row.
//! - **Sync** (a job on the `bank-feeds` queue): `/transactions/sync` from
//!   the stored cursor, page by page until `has_more` is false. The whole
//!   pass (its lines and its last cursor) is saved in one transaction, which
//!   first moves the cursor from where the pass began (compare and set): two
//!   syncs of one item never both save a pass, and a pass Plaid interrupts
//!   (`TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`) is discarded and paged
//!   again from its first cursor, saving nothing. Accounts are learnt from
//!   the answers' `accounts`. Lines are keyed by Plaid's transaction id, so
//!   a pass saved twice imports nothing twice. A line the bank modifies or
//!   removes is updated or deleted while not matched; once matched it keeps
//!   its posting and is flagged (`bank_change`). A posted transaction
//!   deletes the pending line it names (`pending_transaction_id`).
//! - **Review**: a transaction that cannot be booked as Plaid sent it (an
//!   amount inexact in its currency, an unofficial or unknown currency,
//!   zero) is kept with status `review` and a `review_reason`, never
//!   stopping the feed; a user may dismiss it (`dismissed`).
//! - **Match**: a line posts once: the posting's transaction turns it from
//!   `unmatched` to `matched` (the `matched` guard), which only one
//!   transaction can do.
//!
//! Amounts keep Plaid's sign: positive is money leaving the account.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::jobs::{JobFailure, JobStatus, Queue};
use crate::ledger::{Ledger, LedgerError};
use crate::organization::OrganizationId;
use crate::saas::plaid::Plaid;
use crate::sealed::Sealer;

/// The kind of a bank sync's job.
pub const JOB_KIND: &str = "bank-sync";
/// The queue of the imports of bank transactions from Plaid.
pub const QUEUE: Queue = Queue::new("bank-feeds");
/// How far (in days, either way) a bank line's date may be from an entry's
/// for the entry to be suggested.
pub const SUGGESTION_WINDOW_DAYS: i64 = 7;
/// The most suggestions a line carries.
pub const MAX_SUGGESTIONS: usize = 5;
/// How often one run restarts its pagination after Plaid reports that the
/// item's data changed meanwhile, before it leaves the rest to a retry.
const MAX_RESTARTS: u32 = 3;
/// The longest bank line name kept.
const MAX_NAME_CHARS: usize = 500;

/// The context a Plaid access token is sealed under: it opens only for this
/// organization's row of this item.
pub fn token_context(organization: &OrganizationId, item_id: &str) -> String {
    format!("plaid-item:{organization}:{item_id}")
}

fn conflict(code: &'static str, message: impl Into<String>) -> LedgerError {
    LedgerError::Conflict {
        code,
        message: message.into(),
    }
}

/// `POST /api/bank/link`.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// The public token Plaid Link handed the client.
    pub public_token: String,
}

impl std::fmt::Debug for NewLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewLink { public_token: [REDACTED] }")
    }
}

/// A bank account of a linked item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BankAccount {
    /// Id (in AccuBooks).
    pub id: i64,
    /// Plaid's item id.
    pub item_id: String,
    /// Plaid's account id.
    pub plaid_account_id: String,
    /// The bank's name of it.
    pub name: String,
    /// The last digits of its number.
    pub mask: Option<String>,
    /// ISO 4217 (`XXX` when the bank names none).
    pub currency: String,
    /// The ledger account its lines post to, once mapped.
    pub ledger_account: Option<String>,
}

/// A linked item and its accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LinkedItem {
    /// Plaid's item id.
    pub item_id: String,
    /// Its accounts.
    pub accounts: Vec<BankAccount>,
}

/// `PUT /api/bank/accounts/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountMapping {
    /// The code of an asset or liability account of the chart, in the bank
    /// account's currency, e.g. `"1000"`.
    pub ledger_account: String,
}

/// A sync asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncRequested {
    /// The job that imports the lines (`GET /api/jobs/{id}`).
    pub job_id: i64,
    /// The job's status.
    pub status: JobStatus,
}

/// Whether a bank line is reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineStatus {
    /// Imported, not yet posted or matched.
    Unmatched,
    /// Posted (or matched to a payment) once.
    Matched,
    /// Set aside: Plaid sent it in a form that cannot be booked (see
    /// `review_reason`); review it, then dismiss it.
    Review,
    /// Dismissed by a user: kept, never suggested nor booked.
    Dismissed,
}

impl LineStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LineStatus::Unmatched => "unmatched",
            LineStatus::Matched => "matched",
            LineStatus::Review => "review",
            LineStatus::Dismissed => "dismissed",
        }
    }

    /// The status of its stored name (`unmatched` for an unknown one).
    pub fn parse(text: &str) -> Option<LineStatus> {
        Some(match text {
            "unmatched" => LineStatus::Unmatched,
            "matched" => LineStatus::Matched,
            "review" => LineStatus::Review,
            "dismissed" => LineStatus::Dismissed,
            _ => return None,
        })
    }
}

/// What a suggestion proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SuggestionKind {
    /// An open invoice this money in may pay: match with `{"invoice_id"}`.
    Invoice,
    /// A recorded invoice payment on the mapped ledger account.
    Payment,
    /// Another journal entry on the mapped ledger account.
    Entry,
}

/// A likely counterpart of a bank line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    /// What it is.
    pub kind: SuggestionKind,
    /// The invoice (for an invoice or a payment).
    pub invoice_id: Option<i64>,
    /// The entry (for a payment or an entry).
    pub entry_id: Option<i64>,
    /// The invoice number or the entry's memo.
    pub label: String,
    /// The invoice's outstanding amount, or the entry line's amount.
    #[schema(value_type = crate::money::AmountText)]
    pub amount: String,
    /// The entry's date, or the invoice's issue date.
    pub date: Option<NaiveDate>,
    /// Higher ranks first (the README gives the rule).
    pub score: u32,
    /// Why it is suggested: `amount`, `reference`, `date`.
    pub reasons: Vec<&'static str>,
}

/// An imported bank line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BankLine {
    /// Id.
    pub id: i64,
    /// The bank account (its AccuBooks id).
    pub account_id: i64,
    /// Plaid's transaction id.
    pub plaid_transaction_id: String,
    /// The bank's date.
    pub date: NaiveDate,
    /// The bank's description.
    pub name: String,
    /// Decimal string with Plaid's sign: positive is money leaving the
    /// account, negative money received. For a line set aside because its
    /// amount is not exact in its currency: Plaid's amount as sent.
    #[schema(value_type = crate::money::AmountText)]
    pub amount: String,
    /// `in` (received) or `out` (paid).
    pub direction: &'static str,
    /// ISO 4217, or Plaid's unofficial code (say `BTC`) for a line set
    /// aside with `UNOFFICIAL_CURRENCY`.
    pub currency: String,
    /// Not yet settled at the bank (cannot be matched yet).
    pub pending: bool,
    /// `unmatched`, `matched`, `review` (set aside) or `dismissed`.
    pub status: LineStatus,
    /// Why a line was set aside (`INEXACT_AMOUNT`, `INVALID_AMOUNT`,
    /// `UNKNOWN_CURRENCY`, `UNOFFICIAL_CURRENCY`, `ZERO_AMOUNT`); kept once
    /// it is dismissed.
    pub review_reason: Option<String>,
    /// The entry that posted it, once matched.
    pub entry_id: Option<i64>,
    /// The invoice it paid, if it was matched to one.
    pub invoice_id: Option<i64>,
    /// The ledger account of its bank account, once mapped.
    pub ledger_account: Option<String>,
    /// Set when the bank modified or removed the line after it was matched
    /// (`modified`, `removed`): the posting stands; review it.
    pub bank_change: Option<String>,
    /// For unmatched lines: likely counterparts, best first.
    pub suggestions: Vec<Suggestion>,
}

/// `POST /api/bank/transactions/{id}/match`: exactly one of the fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchInput {
    /// Money received that pays (part of) this open invoice: posts the
    /// mapped bank account against receivables `1100` and records the
    /// payment.
    #[serde(default)]
    pub invoice_id: Option<i64>,
    /// Categorises the line: posts it between the mapped bank account and
    /// this account (e.g. `"5000"`).
    #[serde(default)]
    pub account: Option<String>,
}

// ---------------------------------------------------------------- link

/// Saves an item's accounts (`&[PlaidAccount]`) in the open transaction
/// `$tx`: new ones are added, known ones take the bank's current name and
/// mask (a link and an accounts re-read during a sync say the same).
/// (A macro: the same SQL for both backends' transaction types.)
macro_rules! save_accounts_in {
    ($tx:expr, $organization:expr, $item:expr, $accounts:expr) => {
        for account in $accounts {
            let currency = account
                .balances
                .iso_currency_code
                .clone()
                .unwrap_or_else(|| "XXX".to_owned());
            sqlx::query(
                "INSERT INTO bank_accounts (organization_id, item_id, plaid_account_id, name, mask, currency) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (organization_id, plaid_account_id) \
                 DO UPDATE SET item_id = excluded.item_id, name = excluded.name, mask = excluded.mask",
            )
            .bind($organization)
            .bind($item)
            .bind(&account.account_id)
            .bind(truncate(&account.name))
            .bind(&account.mask)
            .bind(currency)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

// The rooms of the feature, after the macro they share (macros are
// textually scoped).
mod items;
mod lines;
mod links;
mod matching;
mod sync;

pub use items::*;
pub use lines::*;
pub use links::*;
pub use matching::*;
pub use sync::*;

/// What a sync needs beyond the engine: the ledger, the sealer of the
/// items' tokens and the Plaid client (none when Plaid is not configured:
/// the job is then dead with `BANK_INTEGRATION_DISABLED`).
struct SyncState {
    ledger: Ledger,
    sealer: Sealer,
    plaid: Option<std::sync::Arc<Plaid>>,
}

/// Registers the sync's job.
pub(crate) fn register(
    registry: &mut crate::jobs::JobRegistry,
    ledger: &Ledger,
    sealer: &Sealer,
    plaid: Option<std::sync::Arc<Plaid>>,
) {
    fn run<'a>(
        state: &'a SyncState,
        _: &'a crate::jobs::JobEnv,
        job: &'a crate::jobs::JobContext,
    ) -> futures::future::BoxFuture<'a, Result<(), JobFailure>> {
        Box::pin(sync(
            &state.ledger,
            &state.sealer,
            state.plaid.as_deref(),
            &job.organization,
        ))
    }
    let state = SyncState {
        ledger: ledger.clone(),
        sealer: sealer.clone(),
        plaid,
    };
    registry.kind(JOB_KIND, QUEUE, crate::jobs::with_state(state, run));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saas::plaid::PlaidError;

    fn stored(amount: i64, name: &str, date: &str, mapped: Option<i64>) -> Stored {
        stored_of((
            1,
            1,
            "t".into(),
            NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
            name.into(),
            Some(amount),
            "USD".into(),
            false,
            "unmatched".into(),
            None,
            None,
            None,
            mapped,
            mapped.map(|_| "1000".to_owned()),
            None,
            None,
        ))
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn suggestions_rank_reference_and_amount_first() {
        let candidates = Candidates {
            invoices: vec![
                (7, "USD".into(), 12_500, Some(day("2026-01-02")), Some(1)),
                (8, "USD".into(), 12_500, Some(day("2026-01-20")), Some(2)),
                (9, "USD".into(), 99, Some(day("2026-01-20")), Some(9)),
                (10, "EUR".into(), 12_500, Some(day("2026-01-20")), Some(4)),
            ],
            entries: vec![
                (3, 12_500, 40, day("2026-01-22"), "Deposit".into(), None),
                (3, 12_500, 41, day("2026-01-12"), "Too early".into(), None),
                (
                    4,
                    12_500,
                    42,
                    day("2026-01-21"),
                    "Other account".into(),
                    None,
                ),
            ],
        };
        let line = stored(-12_500, "Wire ACME inv-000009", "2026-01-21", Some(3));
        let found = suggest(&line, &candidates);
        let order: Vec<(SuggestionKind, Option<i64>, Option<i64>, u32)> = found
            .iter()
            .map(|s| (s.kind, s.invoice_id, s.entry_id, s.score))
            .collect();
        assert_eq!(
            order,
            vec![
                (SuggestionKind::Invoice, Some(8), None, 70),
                (SuggestionKind::Invoice, Some(7), None, 70),
                (SuggestionKind::Entry, None, Some(40), 59),
                (SuggestionKind::Invoice, Some(9), None, 30),
            ]
        );
        assert_eq!(found[0].amount, "125.00");
        assert_eq!(found[3].reasons, vec!["reference"]);
    }

    #[test]
    fn money_out_suggests_no_invoice_and_unmapped_lines_no_entry() {
        let candidates = Candidates {
            invoices: vec![(7, "USD".into(), 500, None, Some(7))],
            entries: vec![(3, -500, 40, day("2026-01-21"), "Rent".into(), None)],
        };
        let out = suggest(
            &stored(500, "INV-000007", "2026-01-21", Some(3)),
            &candidates,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].entry_id, Some(40));
        assert!(suggest(&stored(500, "x", "2026-01-21", None), &candidates).is_empty());
    }

    #[test]
    fn plaid_failures_are_temporary_only_when_they_pass() {
        use crate::error::{Fault, Transience};
        let kind = |err: PlaidError| job_failure(&err).transience;
        assert_eq!(
            kind(PlaidError::Unavailable(Fault::TIMEOUT)),
            Transience::Temporary
        );
        assert_eq!(
            kind(PlaidError::LoginRequired("ITEM_LOGIN_REQUIRED".into())),
            Transience::Permanent
        );
        let temporary = PlaidError::Temporary {
            code: "BANK_INSTITUTION_DOWN",
            plaid_code: "INSTITUTION_DOWN".into(),
        };
        assert_eq!(
            job_failure(&temporary),
            JobFailure::temporary("BANK_INSTITUTION_DOWN")
        );
        assert_eq!(
            item_status_after(&job_failure(&PlaidError::LoginRequired(
                "ITEM_LOGIN_REQUIRED".into()
            ))),
            Some(ItemStatus::LoginRequired)
        );
        assert_eq!(
            item_status_after(&job_failure(&PlaidError::ItemError(
                "ITEM_NOT_FOUND".into()
            ))),
            Some(ItemStatus::Error)
        );
        assert_eq!(item_status_after(&job_failure(&temporary)), None);
        assert_eq!(
            kind(PlaidError::Refused {
                error_type: "INVALID_INPUT".into(),
                error_code: "INVALID_API_KEYS".into()
            }),
            Transience::Permanent
        );
    }

    #[test]
    fn tokens_are_sealed_for_their_organization_and_item() {
        assert_eq!(
            token_context(&OrganizationId::nth(1), "item-9"),
            format!("plaid-item:{}:item-9", OrganizationId::nth(1))
        );
    }
}
