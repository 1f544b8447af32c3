//! Journal entries: validation, reading one, and the reversal of a posted
//! entry; the journal's pages in `journal`.
//! Writing goes through the [`Committer`](super::Committer).

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::Ledger;
use super::accounts::{Account, accounts_for_posting};
use super::{LedgerError, LedgerResult};
use crate::db::Database;
use crate::db::sql::{Connection, in_scope, on_pool};
use crate::idempotency::{IdempotencyKey, Render};
use crate::metadata::Metadata;
use crate::money::{self, AmountText, MoneyError};
use crate::organization::OrganizationId;

/// Most lines one entry may have.
pub const MAX_LINES: usize = 1000;

/// A line as a client sends it: exactly one of `debit` and `credit`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    /// The account's code.
    pub account: String,
    /// A positive decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debit: Option<AmountText>,
    /// A positive decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<AmountText>,
}

/// An entry as a client sends it.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryInput {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Free text, at most 500 characters.
    #[serde(default)]
    pub memo: String,
    /// Two or more lines, balanced per currency.
    pub lines: Vec<LineInput>,
    /// String keys and values kept with the entry (contract §5).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// One validated line: the account and a signed amount (debit positive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidLine {
    /// The account's id.
    pub account_id: i64,
    /// The account's code.
    pub account_code: String,
    /// The account's currency.
    pub currency: String,
    /// Minor units; positive for a debit, negative for a credit.
    pub amount: i64,
}

/// What an entry is: an ordinary one, or a period's closing entry (which
/// income statements leave out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// Any entry but a closing one.
    #[default]
    Standard,
    /// The year-end (or period-end) closing entry: revenue and expense
    /// balances moved into retained earnings.
    Closing,
}

impl EntryKind {
    /// As stored: `NULL` for a standard entry.
    pub(crate) fn to_stored(self) -> Option<&'static str> {
        match self {
            EntryKind::Standard => None,
            EntryKind::Closing => Some("closing"),
        }
    }

    pub(super) fn from_stored(text: Option<&str>) -> Self {
        match text {
            Some("closing") => EntryKind::Closing,
            _ => EntryKind::Standard,
        }
    }
}

/// An entry that is balanced, dated and names existing accounts of its
/// organization: ready to be posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidEntry {
    /// The organization.
    pub organization: OrganizationId,
    /// The entry date.
    pub date: NaiveDate,
    /// The memo.
    pub memo: String,
    /// The entry this one reverses.
    pub reverses: Option<i64>,
    /// The lines.
    pub lines: Vec<ValidLine>,
    /// Its metadata.
    pub metadata: Metadata,
    /// Standard, or a closing entry.
    pub kind: EntryKind,
}

/// A posted line as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EntryLine {
    /// The account's code.
    pub account: String,
    /// The debit, if this line is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::money::AmountText>)]
    pub debit: Option<String>,
    /// The credit, if this line is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::money::AmountText>)]
    pub credit: Option<String>,
}

/// A posted entry as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Entry {
    /// Its id.
    pub id: i64,
    /// Its date.
    pub date: NaiveDate,
    /// Its memo.
    pub memo: String,
    /// The entry it reverses.
    pub reverses: Option<i64>,
    /// The entry that reverses it.
    pub reversed_by: Option<i64>,
    /// Its lines.
    pub lines: Vec<EntryLine>,
    /// Its metadata (`{}` when none was given).
    pub metadata: Metadata,
    /// `standard`, or `closing` for a period's closing entry.
    pub kind: EntryKind,
}

impl ValidEntry {
    /// The entry as the API shows it once posted under `id`.
    pub fn posted(&self, id: i64) -> Entry {
        Entry {
            id,
            date: self.date,
            memo: self.memo.clone(),
            reverses: self.reverses,
            reversed_by: None,
            lines: self.lines.iter().map(show_line).collect(),
            metadata: self.metadata.clone(),
            kind: self.kind,
        }
    }
}

pub(super) fn show_line(line: &ValidLine) -> EntryLine {
    let digits = money::minor_digits(&line.currency).unwrap_or(2);
    let text = money::format_minor(line.amount.abs(), digits);
    let (debit, credit) = if line.amount > 0 {
        (Some(text), None)
    } else {
        (None, Some(text))
    };
    EntryLine {
        account: line.account_code.clone(),
        debit,
        credit,
    }
}

/// Parses an ISO date (`YYYY-MM-DD`) between years 1900 and 9999.
pub fn parse_date(text: &str) -> LedgerResult<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|d| text.len() == 10 && (1900..=9999).contains(&chrono::Datelike::year(d)))
        .ok_or_else(|| {
            LedgerError::invalid(
                "INVALID_DATE",
                format!("{text:?} is not a date of the form YYYY-MM-DD."),
            )
        })
}

pub(crate) fn validate_memo(memo: &str) -> LedgerResult<()> {
    if memo.chars().count() > 500 || memo.chars().any(|c| c.is_control() && c != '\n') {
        return Err(LedgerError::invalid(
            "INVALID_MEMO",
            "A memo has at most 500 characters and no control characters.",
        ));
    }
    Ok(())
}

/// Checks an entry against the organization's accounts (by code). Pure.
pub fn validate(
    organization: &OrganizationId,
    input: &EntryInput,
    accounts: &HashMap<String, Account>,
) -> LedgerResult<ValidEntry> {
    let date = parse_date(&input.date)?;
    validate_memo(&input.memo)?;
    if input.lines.len() < 2 {
        return Err(LedgerError::invalid(
            "TOO_FEW_LINES",
            "An entry needs at least two lines: one debit and one credit.",
        ));
    }
    if input.lines.len() > MAX_LINES {
        return Err(LedgerError::invalid(
            "TOO_MANY_LINES",
            format!("An entry has at most {MAX_LINES} lines."),
        ));
    }
    let mut lines = Vec::with_capacity(input.lines.len());
    let mut sums: BTreeMap<&str, i128> = BTreeMap::new();
    for (index, line) in input.lines.iter().enumerate() {
        let number = index + 1;
        let account = accounts.get(&line.account).ok_or_else(|| {
            LedgerError::invalid(
                "UNKNOWN_ACCOUNT",
                format!("Line {number}: there is no account {:?}.", line.account),
            )
        })?;
        let (text, sign) = match (&line.debit, &line.credit) {
            (Some(debit), None) => (&debit.0, 1i64),
            (None, Some(credit)) => (&credit.0, -1),
            _ => {
                return Err(LedgerError::invalid(
                    "INVALID_LINE",
                    format!("Line {number}: give exactly one of \"debit\" and \"credit\"."),
                ));
            }
        };
        let amount = money::parse_minor(text, account.digits()).map_err(|err| {
            let detail = match err {
                MoneyError::TooPrecise { digits, .. } => format!(
                    "{text:?} has more than {digits} fraction digits, the most {} allows",
                    account.currency
                ),
                other => other.to_string(),
            };
            LedgerError::invalid("INVALID_AMOUNT", format!("Line {number}: {detail}."))
        })?;
        if amount <= 0 {
            return Err(LedgerError::invalid(
                "INVALID_AMOUNT",
                format!(
                    "Line {number}: amounts are positive; use \"credit\" instead of a negative debit."
                ),
            ));
        }
        let signed = amount * sign;
        *sums.entry(account.currency.as_str()).or_default() += i128::from(signed);
        lines.push(ValidLine {
            account_id: account.id,
            account_code: account.code.clone(),
            currency: account.currency.clone(),
            amount: signed,
        });
    }
    let unbalanced: Vec<String> = sums
        .iter()
        .filter(|(_, sum)| **sum != 0)
        .map(|(currency, sum)| {
            let digits = money::minor_digits(currency).unwrap_or(2);
            let difference = i64::try_from(sum.abs()).map_or_else(
                |_| "a huge amount".to_owned(),
                |d| money::format_minor(d, digits),
            );
            let side = if *sum > 0 { "debits" } else { "credits" };
            format!("{currency} {side} exceed the other side by {difference}")
        })
        .collect();
    if !unbalanced.is_empty() {
        return Err(LedgerError::invalid(
            "UNBALANCED_ENTRY",
            format!(
                "Debits and credits must be equal per currency: {}.",
                unbalanced.join("; ")
            ),
        ));
    }
    Ok(ValidEntry {
        organization: organization.to_owned(),
        date,
        memo: input.memo.clone(),
        reverses: None,
        lines,
        metadata: input.metadata.clone(),
        kind: EntryKind::Standard,
    })
}

/// Validates an entry, looking its accounts up.
pub async fn prepare(
    ledger: &Ledger,
    organization: &OrganizationId,
    input: &EntryInput,
) -> LedgerResult<ValidEntry> {
    let mut codes: Vec<&str> = input.lines.iter().map(|l| l.account.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    if codes.len() > MAX_LINES {
        return Err(LedgerError::invalid(
            "TOO_MANY_LINES",
            format!("An entry has at most {MAX_LINES} lines."),
        ));
    }
    let accounts = accounts_for_posting(ledger, organization, &codes).await?;
    validate(organization, input, &accounts)
}

/// Validates many entries with one account lookup. On failure, says which
/// entry (by index) is at fault.
pub async fn prepare_batch(
    ledger: &Ledger,
    organization: &OrganizationId,
    inputs: &[EntryInput],
) -> Result<Vec<ValidEntry>, (usize, LedgerError)> {
    // Deduplicated through a set: a batch names few accounts on many lines,
    // and sorting every line's code first showed in profiles.
    let codes: std::collections::BTreeSet<&str> = inputs
        .iter()
        .flat_map(|e| e.lines.iter().map(|l| l.account.as_str()))
        .collect();
    let codes: Vec<&str> = codes.into_iter().collect();
    if codes.len() > MAX_LINES {
        return Err((
            0,
            LedgerError::invalid(
                "TOO_MANY_ACCOUNTS",
                format!("A batch names at most {MAX_LINES} accounts."),
            ),
        ));
    }
    let accounts = accounts_for_posting(ledger, organization, &codes)
        .await
        .map_err(|e| (0, e))?;
    inputs
        .iter()
        .enumerate()
        .map(|(index, input)| validate(organization, input, &accounts).map_err(|e| (index, e)))
        .collect()
}

/// Reads an entry of the organization.
pub async fn get_entry(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
) -> LedgerResult<Entry> {
    let organization = organization.to_owned();
    let found = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                read_entry((&mut *tx).into(), &organization, id).await?
            }))
        })
        .await?;
    found.ok_or_else(|| LedgerError::NotFound(format!("There is no journal entry {id}.")))
}

/// Reads entry `id` of `organization` in the open transaction `conn`, as
/// it stands there.
pub(crate) async fn read_entry(
    conn: Connection<'_>,
    organization: &OrganizationId,
    id: i64,
) -> Result<Option<Entry>, sqlx::Error> {
    const HEAD: &str = "SELECT e.id, e.entry_date, e.memo, e.reverses, r.id AS reversed_by, \
         CAST(e.metadata AS TEXT) AS metadata, e.kind \
         FROM journal_entries e LEFT JOIN journal_entries r ON r.reverses = e.id \
         WHERE e.id = $1 AND e.organization_id = $2";
    const LINES: &str = "SELECT a.code, a.currency, l.amount FROM journal_lines l \
         JOIN accounts a ON a.id = l.account_id WHERE l.entry_id = $1 ORDER BY l.line_no";
    macro_rules! read {
        ($conn:expr) => {{
            let head = sqlx::query(HEAD)
                .bind(id)
                .bind(organization.as_str())
                .fetch_optional(&mut *$conn)
                .await?;
            let Some(head) = head else { return Ok(None) };
            let lines = sqlx::query(LINES).bind(id).fetch_all(&mut *$conn).await?;
            let lines = lines
                .iter()
                .map(|row| {
                    Ok(show_line(&ValidLine {
                        account_id: 0,
                        account_code: row.try_get("code")?,
                        currency: row.try_get("currency")?,
                        amount: row.try_get("amount")?,
                    }))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Entry {
                id: head.try_get("id")?,
                date: head.try_get("entry_date")?,
                memo: head.try_get("memo")?,
                reverses: head.try_get("reverses")?,
                reversed_by: head.try_get("reversed_by")?,
                lines,
                metadata: Metadata::from_stored(head.try_get("metadata")?),
                kind: EntryKind::from_stored(head.try_get("kind")?),
            }
        }};
    }
    Ok(Some(match conn {
        Connection::Postgres(conn) => read!(conn),
        Connection::Sqlite(conn) => read!(conn),
    }))
}

/// How an idempotent answer of a posted entry is stored: its stored status
/// and its JSON (every door stores the same, so any door can replay it).
pub type RenderEntry = fn(&Entry) -> (u16, String);

/// Reverses entry `id` once: builds its mirror (dated `date`, default the
/// entry's date) and posts it through the committer; with `idempotency`, the
/// answer is stored with the write. `409 ALREADY_REVERSED` if it was, also
/// when a concurrent reversal won.
pub async fn post_reversal(
    ledger: &Ledger,
    organization: &OrganizationId,
    id: i64,
    date: Option<NaiveDate>,
    idempotency: Option<(IdempotencyKey, RenderEntry)>,
) -> LedgerResult<Entry> {
    let committer = ledger.committer();
    let mirror = reverse_entry(ledger, organization, id, date).await?;
    let shown = mirror.clone();
    let idempotency = idempotency.map(|(key, render)| {
        let render: Render = Box::new(move |ids: &[i64]| render(&shown.posted(ids[0])));
        (key, render)
    });
    let ids = committer
        .post(vec![mirror.clone()], idempotency)
        .await
        .map_err(|err| match err {
            LedgerError::Conflict {
                code: "ALREADY_REVERSED",
                ..
            } => LedgerError::Conflict {
                code: "ALREADY_REVERSED",
                message: format!("Journal entry {id} was already reversed."),
            },
            other => other,
        })?;
    Ok(mirror.posted(ids[0]))
}

/// Builds the mirror of a posted entry, dated `date`. Fails if it is
/// absent, already reversed, or itself a reversal.
pub async fn reverse_entry(
    ledger: &Ledger,
    organization: &OrganizationId,
    id: i64,
    date: Option<NaiveDate>,
) -> LedgerResult<ValidEntry> {
    let db = ledger.database();
    let entry = get_entry(db, organization, id).await?;
    if let Some(by) = entry.reversed_by {
        return Err(LedgerError::Conflict {
            code: "ALREADY_REVERSED",
            message: format!("Journal entry {id} was already reversed by entry {by}."),
        });
    }
    if entry.reverses.is_some() {
        return Err(LedgerError::Conflict {
            code: "CANNOT_REVERSE_REVERSAL",
            message: format!("Journal entry {id} is a reversal; post a new entry instead."),
        });
    }
    if entry.kind == EntryKind::Closing {
        return Err(LedgerError::Conflict {
            code: "CANNOT_REVERSE_CLOSING",
            message: format!(
                "Journal entry {id} closes a period. To change a closed period, move the lock \
                 date back, post the corrections and close it again: that close moves only \
                 what changed."
            ),
        });
    }
    let codes: Vec<&str> = entry.lines.iter().map(|l| l.account.as_str()).collect();
    let accounts = accounts_for_posting(ledger, organization, &codes).await?;
    let mirrored = EntryInput {
        date: date.unwrap_or(entry.date).format("%Y-%m-%d").to_string(),
        memo: format!("Reversal of entry {id}"),
        metadata: Metadata::default(),
        lines: entry
            .lines
            .iter()
            .map(|l| LineInput {
                account: l.account.clone(),
                debit: l.credit.clone().map(AmountText),
                credit: l.debit.clone().map(AmountText),
            })
            .collect(),
    };
    let mut valid = validate(organization, &mirrored, &accounts)?;
    valid.reverses = Some(id);
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::AccountType;

    fn chart() -> HashMap<String, Account> {
        [
            ("1000", "USD", AccountType::Asset),
            ("4000", "USD", AccountType::Revenue),
            ("1200", "JPY", AccountType::Asset),
            ("4200", "JPY", AccountType::Revenue),
        ]
        .iter()
        .enumerate()
        .map(|(i, (code, currency, kind))| {
            (
                (*code).to_owned(),
                Account {
                    id: i as i64 + 1,
                    code: (*code).to_owned(),
                    name: format!("Account {code}"),
                    kind: *kind,
                    currency: (*currency).to_owned(),
                    parent: None,
                    balance_minor: 0,
                    metadata: Metadata::default(),
                },
            )
        })
        .collect()
    }

    fn line(account: &str, debit: Option<&str>, credit: Option<&str>) -> LineInput {
        LineInput {
            account: account.to_owned(),
            debit: debit.map(|d| AmountText(d.to_owned())),
            credit: credit.map(|c| AmountText(c.to_owned())),
        }
    }

    fn entry(lines: Vec<LineInput>) -> EntryInput {
        EntryInput {
            date: "2026-01-31".to_owned(),
            memo: "test".to_owned(),
            lines,
            metadata: Metadata::default(),
        }
    }

    fn code_of(result: LedgerResult<ValidEntry>) -> &'static str {
        match result {
            Err(LedgerError::Invalid { code, .. }) => code,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn a_balanced_entry_is_accepted() {
        let valid = validate(
            &OrganizationId::nth(1),
            &entry(vec![
                line("1000", Some("100.00"), None),
                line("4000", None, Some("100")),
            ]),
            &chart(),
        )
        .unwrap();
        assert_eq!(
            valid.lines.iter().map(|l| l.amount).collect::<Vec<_>>(),
            vec![10000, -10000]
        );
        let shown = valid.posted(7);
        assert_eq!(shown.lines[1].credit.as_deref(), Some("100.00"));
    }

    #[test]
    fn balance_is_per_currency() {
        let ok = entry(vec![
            line("1000", Some("1.00"), None),
            line("4000", None, Some("1.00")),
            line("1200", Some("150"), None),
            line("4200", None, Some("150")),
        ]);
        assert!(validate(&OrganizationId::nth(1), &ok, &chart()).is_ok());
        // 100 cents against 100 yen does not balance.
        let mixed = entry(vec![
            line("1000", Some("1.00"), None),
            line("4200", None, Some("100")),
        ]);
        assert_eq!(
            code_of(validate(&OrganizationId::nth(1), &mixed, &chart())),
            "UNBALANCED_ENTRY"
        );
    }

    #[test]
    fn bad_entries_are_refused_with_clear_codes() {
        let c = chart();
        assert_eq!(
            code_of(validate(
                &OrganizationId::nth(1),
                &entry(vec![
                    line("1000", Some("1.00"), None),
                    line("4000", None, Some("0.99"))
                ]),
                &c
            )),
            "UNBALANCED_ENTRY"
        );
        assert_eq!(
            code_of(validate(
                &OrganizationId::nth(1),
                &entry(vec![line("1000", Some("1.00"), None)]),
                &c
            )),
            "TOO_FEW_LINES"
        );
        assert_eq!(
            code_of(validate(&OrganizationId::nth(1), &entry(vec![]), &c)),
            "TOO_FEW_LINES"
        );
        assert_eq!(
            code_of(validate(
                &OrganizationId::nth(1),
                &entry(vec![
                    line("1000", Some("1.001"), None),
                    line("4000", None, Some("1.001"))
                ]),
                &c
            )),
            "INVALID_AMOUNT"
        );
        assert_eq!(
            code_of(validate(
                &OrganizationId::nth(1),
                &entry(vec![
                    line("1200", Some("1.5"), None),
                    line("4200", None, Some("1.5"))
                ]),
                &c
            )),
            "INVALID_AMOUNT"
        );
        assert_eq!(
            code_of(validate(
                &OrganizationId::nth(1),
                &entry(vec![
                    line("1000", Some("-1.00"), None),
                    line("4000", Some("1.00"), None)
                ]),
                &c
            )),
            "INVALID_AMOUNT"
        );
        assert_eq!(
            code_of(validate(
                &OrganizationId::nth(1),
                &entry(vec![
                    line("1000", Some("0"), None),
                    line("4000", None, Some("0"))
                ]),
                &c
            )),
            "INVALID_AMOUNT"
        );
        assert_eq!(
            code_of(validate(
                &OrganizationId::nth(1),
                &entry(vec![
                    line("1000", Some("1"), Some("1")),
                    line("4000", None, Some("1"))
                ]),
                &c
            )),
            "INVALID_LINE"
        );
        assert_eq!(
            code_of(validate(
                &OrganizationId::nth(1),
                &entry(vec![
                    line("9999", Some("1"), None),
                    line("4000", None, Some("1"))
                ]),
                &c
            )),
            "UNKNOWN_ACCOUNT"
        );
        let mut bad_date = entry(vec![
            line("1000", Some("1"), None),
            line("4000", None, Some("1")),
        ]);
        for date in [
            "2026-02-30",
            "31/01/2026",
            "2026-1-5",
            "0001-01-01",
            "'; DROP TABLE x; --",
        ] {
            bad_date.date = date.to_owned();
            assert_eq!(
                code_of(validate(&OrganizationId::nth(1), &bad_date, &c)),
                "INVALID_DATE",
                "{date}"
            );
        }
    }
}
